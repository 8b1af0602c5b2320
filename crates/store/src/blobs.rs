//! Content-addressed blobs: `blobs/<algorithm>/<hex>`, written to a temporary file, fsync'd,
//! verified and only then renamed into place, so a crash never leaves a partial blob visible.
//!
//! Writing a large blob starts the kernel's writeback of each finished 8 MB stretch while the
//! rest is still arriving (`sync_file_range`), so the fsync at commit waits for little more than
//! the last stretch instead of the whole blob: the disk works while the network and the hasher do.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rbuild_oci::{Algorithm, Digest, Hasher};

use crate::error::{IoContext, Result, StoreError};

/// The blob directory of a store.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Blobs {
    /// Blobs under `dir`, staging files under `tmp` (same filesystem).
    pub(crate) fn new(dir: PathBuf, tmp: PathBuf) -> Blobs {
        Blobs { dir, tmp }
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Open a blob for reading.
    pub fn open(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingBlob {
                    digest: digest.clone(),
                    in_archive: None,
                }
            } else {
                StoreError::Io {
                    op: "opening blob",
                    path,
                    source: e,
                }
            }
        })
    }

    /// Read a whole (small) blob.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open(digest)?
            .read_to_end(&mut buf)
            .at("reading blob", self.path(digest))?;
        Ok(buf)
    }

    /// The size of a blob in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        Ok(self
            .open(digest)?
            .metadata()
            .at("reading blob", self.path(digest))?
            .len())
    }

    /// Start writing a new blob hashed with `algorithm`.
    pub fn writer(&self, algorithm: Algorithm) -> Result<BlobWriter> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.tmp)
            .at("creating temporary blob in", &self.tmp)?;
        Ok(BlobWriter {
            file,
            buf: Vec::new(),
            hasher: Hasher::new(algorithm),
            size: 0,
            on_disk: 0,
            writeback_from: 0,
            blobs: self.clone(),
        })
    }

    /// Store `bytes`, verifying them against `expected` when given.
    ///
    /// The digest of bytes in memory is known before anything is written, so a blob the store
    /// already has (a cached rebuild's config and manifest) costs no temporary file and no
    /// fsync; `commit` would find it present and drop the copy anyway.
    pub fn put(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let alg = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let mut hasher = Hasher::new(alg);
        hasher.update(bytes);
        let digest = hasher.finish();
        if let Some(exp) = expected
            && *exp != digest
        {
            return Err(StoreError::DigestMismatch {
                what: "blob".into(),
                expected: exp.clone(),
                actual: digest,
            });
        }
        if self.path(&digest).exists() {
            return Ok(digest);
        }
        let mut w = self.writer(alg)?;
        w.write_all(bytes).at("writing blob", &self.tmp)?;
        Ok(w.commit(expected, "blob")?.0)
    }

    /// Copy a stream into the store, verifying it against `expected` when given.
    pub fn ingest(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let alg = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let mut w = self.writer(alg)?;
        copy(&mut reader, &mut w).map_err(|source| StoreError::Io {
            op: "copying",
            path: PathBuf::from(what),
            source,
        })?;
        w.commit(expected, what)
    }

    /// Move an already verified file (on the store's filesystem) in as blob `digest`.
    pub(crate) fn adopt(&self, file: &Path, digest: &Digest) -> Result<()> {
        let dest = self.path(digest);
        if dest.exists() {
            return Ok(());
        }
        File::open(file)
            .and_then(|f| f.sync_all())
            .at("syncing", file)?;
        publish(file, &dest)
    }

    /// Delete a blob (missing is fine).
    pub(crate) fn remove(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).at("removing blob", path),
            _ => Ok(()),
        }
    }

    /// Every blob present.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            let dir = self.dir.join(alg);
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd {
                let e = e.at("listing", &dir)?;
                if let Ok(d) = format!("{alg}:{}", e.file_name().to_string_lossy()).parse() {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

/// Writes smaller than this are gathered in a buffer; larger ones go straight to the file
/// (a registry hands over ~500 KB chunks: copying them through a buffer first costs a memcpy of
/// every byte and saves no system call worth having).
const DIRECT_WRITE: usize = 128 << 10;

/// Size of the gathering buffer.
const BUFFER: usize = 1 << 20;

/// Start writeback each time this much more of the file has been written.
const WRITEBACK_STEP: u64 = 8 << 20;

/// A blob being written: hashed as it goes, invisible until [`BlobWriter::commit`].
pub struct BlobWriter {
    file: tempfile::NamedTempFile,
    /// Small writes gathered until [`BUFFER`] bytes.
    buf: Vec<u8>,
    hasher: Hasher,
    /// Bytes accepted (hashed) so far.
    size: u64,
    /// Bytes handed to the file so far (`size` minus what `buf` holds).
    on_disk: u64,
    /// Where the stretch not yet handed to writeback starts.
    writeback_from: u64,
    blobs: Blobs,
}

impl Write for BlobWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.len() >= DIRECT_WRITE {
            self.drain()?;
            self.file.as_file_mut().write_all(data)?;
            self.on_disk += data.len() as u64;
            self.start_writeback();
        } else {
            if self.buf.len() + data.len() > BUFFER {
                self.drain()?;
            }
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(BUFFER);
            }
            self.buf.extend_from_slice(data);
        }
        self.hasher.update(data);
        self.size += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hand the gathered small writes to the file.
    fn drain(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.as_file_mut().write_all(&self.buf)?;
        self.on_disk += self.buf.len() as u64;
        self.buf.clear();
        self.start_writeback();
        Ok(())
    }

    /// Once another [`WRITEBACK_STEP`] is in the page cache, ask the kernel to start writing it
    /// out (without waiting). Only a head start for the fsync in [`BlobWriter::commit`], which
    /// stays the guarantee; a kernel or filesystem that refuses is simply not asked again.
    fn start_writeback(&mut self) {
        let len = self.on_disk - self.writeback_from;
        if len < WRITEBACK_STEP || self.writeback_from == u64::MAX {
            return;
        }
        let fd = self.file.as_file().as_raw_fd();
        // SAFETY: `fd` is an open descriptor owned by `self.file` for the whole call, and
        // sync_file_range reads no memory of ours.
        let rc = unsafe {
            nix::libc::sync_file_range(
                fd,
                self.writeback_from as nix::libc::off64_t,
                len as nix::libc::off64_t,
                nix::libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        self.writeback_from = if rc == 0 { self.on_disk } else { u64::MAX };
    }

    /// Fsync, verify against `expected` (when given) and publish; returns digest and size.
    /// On any error the temporary file is deleted and nothing becomes visible.
    pub fn commit(mut self, expected: Option<&Digest>, what: &str) -> Result<(Digest, u64)> {
        let tmp_path = self.file.path().to_path_buf();
        self.drain().at("writing", &tmp_path)?;
        self.file.as_file().sync_all().at("syncing", &tmp_path)?;
        let digest = self.hasher.finish();
        if let Some(exp) = expected
            && *exp != digest
        {
            return Err(StoreError::DigestMismatch {
                what: what.to_string(),
                expected: exp.clone(),
                actual: digest,
            });
        }
        let dest = self.blobs.path(&digest);
        if !dest.exists() {
            let (_, path) = self
                .file
                .keep()
                .map_err(|e| e.error)
                .at("keeping", &tmp_path)?;
            if let Err(e) = publish(&path, &dest) {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        }
        Ok((digest, self.size))
    }
}

/// Rename `from` to `to` (creating the parent) and fsync the directory.
pub(crate) fn publish(from: &Path, to: &Path) -> Result<()> {
    rename_into(from, to)?;
    sync_dir(to.parent().expect("blob path has a parent"))
}

/// Rename `from` to `to`, creating `to`'s parent: [`publish`] without the directory's sync,
/// for a caller renaming several files into one directory and syncing it once.
pub(crate) fn rename_into(from: &Path, to: &Path) -> Result<()> {
    let parent = to.parent().expect("blob path has a parent");
    fs::create_dir_all(parent).at("creating", parent)?;
    fs::rename(from, to).at("renaming into", to)
}

/// fsync directory `dir` (its entries' renames reach the disk).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("syncing", dir)
}

/// `io::copy` with a large buffer (fewer syscalls on multi-hundred-MB layers).
pub(crate) fn copy(r: &mut impl Read, w: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}
