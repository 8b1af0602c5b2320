//! A layer's tar written straight into a file, its files' content copied by the kernel
//! (`copy_file_range`): the headers come from the same [`write_layer_with`] as every other
//! tar of the layer, so the bytes are the same; only the content never passes through this
//! process (no read into memory, no write out of it).
//!
//! How: the tar builder writes into [`FileOut`], and each regular file's content is given to
//! it by a [`KernelCopy`] reader that, when asked for bytes, copies a large chunk of its file
//! into the output at the right offset itself and answers with that many (unfilled) bytes;
//! `FileOut` then only counts them as written instead of writing them.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use nix::errno::Errno;

use super::create::{CreateOptions, FileContents, LayerSource, write_layer_with};
use crate::error::{IoContext, Result};

/// How much one `copy_file_range` call copies at most.
const CHUNK: usize = 16 << 20;
/// Header and padding bytes gathered before a write.
const BUFFERED: usize = 1 << 20;

/// Write the tar of `source` (as [`super::write_layer`] makes it) into `dest`, which must be
/// empty, from its start. Returns the number of bytes written.
pub fn write_layer_file(source: &LayerSource, dest: &File) -> Result<u64> {
    let state = Rc::new(RefCell::new(Out {
        file: dest,
        written: 0,
        buf: Vec::with_capacity(BUFFERED),
        ahead: 0,
    }));
    let mut contents = KernelCopies(state.clone());
    write_layer_with(
        source,
        FileOut(state.clone()),
        &CreateOptions::default(),
        &mut contents,
    )?;
    let mut out = state.borrow_mut();
    out.flush_buf().at("writing layer", "tar")?;
    Ok(out.written)
}

/// Where the tar goes: `written` bytes are in the file, `buf` follows them; `ahead` bytes past
/// those were copied in by a [`KernelCopy`] and not yet passed through [`FileOut`].
struct Out<'f> {
    file: &'f File,
    written: u64,
    buf: Vec<u8>,
    ahead: u64,
}

impl Out<'_> {
    fn flush_buf(&mut self) -> io::Result<()> {
        self.file.write_all_at(&self.buf, self.written)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// The tar builder's output.
struct FileOut<'f>(Rc<RefCell<Out<'f>>>);

impl Write for FileOut<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let mut out = self.0.borrow_mut();
        if out.ahead > 0 {
            // Bytes a KernelCopy answered with: already in the file.
            let n = b
                .len()
                .min(usize::try_from(out.ahead).unwrap_or(usize::MAX));
            out.ahead -= n as u64;
            return Ok(n);
        }
        out.buf.extend_from_slice(b);
        if out.buf.len() >= BUFFERED {
            out.flush_buf()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush_buf()
    }
}

/// Gives every regular file's content as a [`KernelCopy`].
struct KernelCopies<'f>(Rc<RefCell<Out<'f>>>);

impl FileContents for KernelCopies<'_> {
    fn open(&mut self, path: &Path, len: u64) -> Option<io::Result<Box<dyn io::Read + '_>>> {
        Some(File::open(path).map(|src| {
            Box::new(KernelCopy {
                src,
                offset: 0,
                left: len,
                out: self.0.clone(),
            }) as Box<dyn io::Read>
        }))
    }
}

/// One file's content, copied into the output by the kernel as it is asked for.
struct KernelCopy<'f> {
    src: File,
    offset: u64,
    left: u64,
    out: Rc<RefCell<Out<'f>>>,
}

impl io::Read for KernelCopy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut out = self.out.borrow_mut();
        if out.ahead == 0 {
            if self.left == 0 {
                return Ok(0);
            }
            out.flush_buf()?;
            let want = self.left.min(CHUNK as u64) as usize;
            let n = copy_range(&self.src, self.offset, out.file, out.written, want)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("content ended {} bytes before the file's size", self.left),
                ));
            }
            self.offset += n as u64;
            self.left -= n as u64;
            out.written += n as u64;
            out.ahead = n as u64;
        }
        // The caller passes these bytes (not filled: they are in the file already) to
        // FileOut, which counts them off `ahead`.
        Ok(buf
            .len()
            .min(usize::try_from(out.ahead).unwrap_or(usize::MAX)))
    }
}

/// Copy up to `len` bytes of `src` at `src_off` to `dest` at `dest_off`: by the kernel, or
/// through memory where the two files cannot (different filesystems on older kernels).
fn copy_range(
    src: &File,
    src_off: u64,
    dest: &File,
    dest_off: u64,
    len: usize,
) -> io::Result<usize> {
    let mut off_in = src_off as i64;
    let mut off_out = dest_off as i64;
    match nix::fcntl::copy_file_range(src, Some(&mut off_in), dest, Some(&mut off_out), len) {
        Ok(n) => Ok(n),
        Err(Errno::EXDEV | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
            let mut chunk = vec![0u8; len.min(1 << 20)];
            let n = src.read_at(&mut chunk, src_off)?;
            dest.write_all_at(&chunk[..n], dest_off)?;
            Ok(n)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_the_same_tar_as_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        // Sizes around the chunk, the header buffer and tar's 512-byte blocks.
        let big: Vec<u8> = (0..(CHUNK + BUFFERED + 777))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(tree.join("a/big"), &big).unwrap();
        std::fs::write(tree.join("a/b/small"), b"hello").unwrap();
        std::fs::write(tree.join("empty"), b"").unwrap();
        std::fs::write(tree.join("block"), vec![7u8; 512]).unwrap();
        std::fs::hard_link(tree.join("a/b/small"), tree.join("linked")).unwrap();
        std::os::unix::fs::symlink("a/big", tree.join("sym")).unwrap();
        for i in 0..300 {
            std::fs::write(tree.join(format!("a/b/f{i}")), format!("{i}").repeat(i)).unwrap();
        }
        let source = LayerSource::Tree(tree.clone());
        let mut expected = Vec::new();
        super::super::write_layer(&source, &mut expected, &CreateOptions::default()).unwrap();
        let out = dir.path().join("out.tar");
        let file = File::create(&out).unwrap();
        let n = write_layer_file(&source, &file).unwrap();
        drop(file);
        let got = std::fs::read(&out).unwrap();
        assert_eq!(n, got.len() as u64);
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the tars differ");
    }

    #[test]
    fn a_file_shorter_than_its_size_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let src = File::create(dir.path().join("src")).unwrap();
        src.write_all_at(b"abc", 0).unwrap();
        let dest = File::create(dir.path().join("dest")).unwrap();
        let out = Rc::new(RefCell::new(Out {
            file: &dest,
            written: 0,
            buf: Vec::new(),
            ahead: 0,
        }));
        let mut r = KernelCopy {
            src: File::open(dir.path().join("src")).unwrap(),
            offset: 0,
            left: 10,
            out: out.clone(),
        };
        let mut buf = [0u8; 8192];
        assert_eq!(io::Read::read(&mut r, &mut buf).unwrap(), 3);
        out.borrow_mut().ahead = 0;
        let err = io::Read::read(&mut r, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
