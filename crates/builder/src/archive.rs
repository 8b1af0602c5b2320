//! `ADD` of a local tar archive: detection and safe extraction into the step's layer tree.
//!
//! Docker's rules (BuildKit's `isArchivePath` and `unpack`): a source is an archive when it
//! is a regular file whose first bytes name a compression docker knows (gzip, bzip2, xz,
//! zstd) or none, and whose first tar header then parses. Anything else, including a
//! compressed file that is not a tar, is copied as a plain file. Only top-level sources are
//! candidates (after wildcard expansion); files inside a copied directory never are.
//!
//! Extraction goes through the store's layer engine with docker's archive rules
//! ([`Paths::Rooted`]): the destination acts as `/` (a leading `/` is dropped, absolute
//! symlinks resolve against it), `..` that would climb above it and relative symlinks that
//! leave it are refused, hard links must name an entry inside. Whiteouts are not applied
//! (an archive is not a layer: `.wh.*` entries are written as files). Modes, mtimes and
//! xattrs come from the tar; owners too, unless `--chown` gives them; `--chmod` does not
//! apply to extracted entries.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::Path;

use rbuild_store::StoreError;
use rbuild_store::layer::{ApplyOptions, Paths, Whiteouts, apply_stream};

use crate::error::BuildError;

/// The compression of a file, as docker detects it from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No known magic: possibly a plain tar.
    None,
    /// gzip (`1f 8b 08`).
    Gzip,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// zstd (a frame `28 b5 2f fd`, or a skippable frame `5? 2a 4d 18`).
    Zstd,
}

impl Compression {
    /// Detect the compression from the first bytes of a file (at least 6 to tell them all).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b, 0x08]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
            || (head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18])
        {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// How to extract an archive.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// `--chown` as numeric ids: every entry of the archive is owned by them.
    pub owner: Option<(u32, u32)>,
    /// Without `--chown`, keep the tar's owners (needs root); otherwise entries belong to the
    /// caller. Defaults to true when running as root.
    pub preserve_owners: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            owner: None,
            preserve_owners: rbuild_store::userns::can_chown(),
        }
    }
}

/// Whether `path` is an archive `ADD` extracts: a regular file (not a symlink) that is a tar,
/// plain or compressed, whose first header parses. Never fails: anything unreadable is not an
/// archive (and the copy that follows reports the problem).
pub fn is_archive(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => {}
        _ => return false,
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    let Ok(reader) = open(file) else {
        return false;
    };
    let mut archive = tar::Archive::new(reader);
    let Ok(mut entries) = archive.entries() else {
        return false;
    };
    matches!(entries.next(), Some(Ok(_)))
}

/// Extract the archive at `archive` into `dest` (a directory of the step's layer tree,
/// created with its missing parents when absent; create it first when its parents need the
/// stage's metadata). On error `dest` may hold part of the archive: the caller discards the
/// layer tree. Nothing outside `dest` is ever written.
pub fn extract(archive: &Path, dest: &Path, opts: &ExtractOptions) -> Result<(), BuildError> {
    let file = File::open(archive).map_err(|e| BuildError::io(archive, e))?;
    let reader = open(file).map_err(|e| BuildError::io(archive, e))?;
    extract_from(reader, archive, dest, opts)
}

/// Extract an uncompressed tar stream into `dest`, as [`extract`] does; `archive` names it
/// in errors.
pub fn extract_from(
    reader: impl Read,
    archive: &Path,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<(), BuildError> {
    if !dest.is_dir() {
        std::fs::create_dir_all(dest).map_err(|e| BuildError::io(dest, e))?;
    }
    let apply = ApplyOptions {
        whiteouts: Whiteouts::Keep,
        preserve_owners: opts.preserve_owners,
        owner: opts.owner,
        paths: Paths::Rooted,
    };
    let name = archive.to_string_lossy();
    apply_stream(reader, dest, &apply, &name).map_err(|e| archive_error(archive, dest, e))
}

/// A decompressing reader over `file`, by its first bytes.
fn open(mut file: File) -> io::Result<Box<dyn Read>> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    file.rewind()?;
    let kind = Compression::sniff(&head[..n]);
    decoder(kind, BufReader::with_capacity(1 << 16, file))
}

/// A reader decompressing `kind`; every decoder reads concatenated streams to the end, as
/// docker's do (pigz output, `cat a.gz b.gz`, pbzip2, multi-frame zstd).
fn decoder(kind: Compression, reader: impl BufRead + 'static) -> io::Result<Box<dyn Read>> {
    Ok(match kind {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(reader)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    })
}

/// The store speaks of layers; say archive, with paths relative to the destination.
fn archive_error(archive: &Path, dest: &Path, err: StoreError) -> BuildError {
    let problem = match err {
        StoreError::BadLayer { entry, problem, .. } if entry.is_empty() => problem,
        StoreError::BadLayer { entry, problem, .. } => format!("entry {entry:?}: {problem}"),
        StoreError::Io { op, path, source } => {
            let shown = path.strip_prefix(dest).unwrap_or(&path);
            format!("{op} {}: {source}", Path::new("/").join(shown).display())
        }
        other => other.to_string(),
    };
    BuildError::Archive {
        archive: archive.to_path_buf(),
        problem,
    }
}

#[cfg(test)]
mod tests;
