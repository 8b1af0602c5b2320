//! Writing big files around the page cache: O_DIRECT writes from aligned buffers.
//!
//! A buffered write of hundreds of megabytes spends its time allocating and dirtying a fresh
//! page-cache page per 4 KiB (on a VM whose free memory goes back to the host, each is also a
//! fault), then writing them back; a direct write hands the buffer to the device. Used where
//! rbuild writes large files it does not read again soon: unpacking a layer's big files into a
//! snapshot, and the builder's COPY of big files.

use std::fs::File;
use std::io::{self, Read, Write};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// O_DIRECT wants buffers, offsets and lengths aligned to the device's logical block size;
/// 4 KiB covers the common ones (a device that wants more gets buffered writes).
pub const ALIGN: usize = 4096;

/// Files of at least this size are worth writing direct.
pub const MIN_FILE: u64 = 8 << 20;

/// The size of the buffers [`copy`] is meant for.
pub const CHUNK: usize = 4 << 20;

/// A zeroed buffer aligned to [`ALIGN`].
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of `len` bytes.
    pub fn new(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        AlignedBuf { raw, start, len }
    }

    /// The buffer.
    pub fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    /// The buffer, to fill.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// A file written with O_DIRECT while it can be: aligned writes go direct, the file's
/// unaligned end is written buffered, and a filesystem (tmpfs before Linux 6.6, some FUSE) or
/// device that refuses gets buffered writes throughout.
pub struct DirectFile {
    file: File,
    direct: bool,
}

impl DirectFile {
    /// Write `file` (open for writing, at offset 0 or an aligned offset) direct if its
    /// filesystem allows.
    pub fn new(file: File) -> DirectFile {
        let direct = set_direct(&file, true).is_ok();
        DirectFile { file, direct }
    }

    /// Whether writes still go direct.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Write `data` at the file's position. Only the file's last write may have an unaligned
    /// length (after it, writes are buffered).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let aligned = if self.direct {
            data.len() & !(ALIGN - 1)
        } else {
            0
        };
        if aligned > 0 {
            match self.file.write_all(&data[..aligned]) {
                Ok(()) => {}
                // A device with larger blocks, or an unaligned buffer: buffered from here on.
                Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
                    self.buffered()?;
                    self.file.write_all(&data[..aligned])?;
                }
                Err(e) => return Err(e),
            }
        }
        if aligned < data.len() {
            self.buffered()?;
            self.file.write_all(&data[aligned..])?;
        }
        Ok(())
    }

    fn buffered(&mut self) -> io::Result<()> {
        if self.direct {
            set_direct(&self.file, false)?;
            self.direct = false;
        }
        Ok(())
    }

    /// The file, for setting its metadata.
    pub fn into_file(self) -> File {
        self.file
    }
}

/// Copy everything `r` gives into `out` through `buf`, in whole buffers but the last; the
/// bytes copied.
pub fn copy(r: &mut impl Read, out: &mut DirectFile, buf: &mut AlignedBuf) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let b = buf.bytes_mut();
        let mut filled = 0;
        while filled < b.len() {
            match r.read(&mut b[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.write(&buf.bytes()[..filled])?;
        total += filled as u64;
        if filled < buf.bytes().len() {
            return Ok(total);
        }
    }
}

/// Turn O_DIRECT on or off for `file`.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_DIRECT
    } else {
        flags - OFlag::O_DIRECT
    };
    fcntl(file, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 4099) as u8).collect()
    }

    #[test]
    fn copies_whole_and_unaligned_ends_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = AlignedBuf::new(64 * 1024);
        assert_eq!(buf.bytes().as_ptr() as usize % ALIGN, 0);
        for len in [0, 1, 4095, 4096, 64 * 1024, 64 * 1024 + 1, 200_000] {
            let data = pattern(len);
            let path = dir.path().join(format!("f{len}"));
            let mut out = DirectFile::new(File::create(&path).unwrap());
            let n = copy(&mut &data[..], &mut out, &mut buf).unwrap();
            assert_eq!(n, len as u64);
            drop(out);
            assert_eq!(std::fs::read(&path).unwrap(), data, "{len} bytes");
        }
    }

    #[test]
    fn direct_where_the_filesystem_allows_it() {
        // The temp dir's filesystem (ext4 here, tmpfs on some machines): either way the file
        // is written; on one that allows O_DIRECT the flag is on the descriptor.
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        let out = DirectFile::new(file);
        let flags = fcntl(&out.file, FcntlArg::F_GETFL).unwrap();
        assert_eq!(
            out.is_direct(),
            OFlag::from_bits_truncate(flags).contains(OFlag::O_DIRECT)
        );
    }
}
