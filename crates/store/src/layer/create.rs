//! Layer creation: a directory diff → a deterministic OCI changeset tar.
//!
//! Entries are sorted by path and headers normalized (no user/group names, no atime/ctime,
//! mtime clamped to `SOURCE_DATE_EPOCH` when given), so identical content gives an identical
//! digest. Deletions become `.wh.` whiteouts, opaque directories `.wh..wh..opq`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::layer::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX, is_overlay_xattr};

/// Files larger than this are read in 1 MiB chunks.
const LARGE_FILE: u64 = 256 * 1024;

/// What a layer is made from.
#[derive(Debug, Clone)]
pub enum LayerSource {
    /// A whole tree, every entry added (a base layer, `rbuild import` of a directory).
    Tree(PathBuf),
    /// An overlayfs upper directory: whiteout devices (char 0/0) and `trusted.overlay.opaque`
    /// directories are converted to OCI whiteouts.
    OverlayUpper(PathBuf),
    /// A changed tree compared with its base: entries added or changed in `changed`
    /// (and their parent directories), whiteouts for entries gone from `base`.
    Diff {
        /// The tree before.
        base: PathBuf,
        /// The tree after.
        changed: PathBuf,
    },
}

/// Options for layer creation.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Clamp every mtime to at most this many seconds since the epoch (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<u64>,
}

impl CreateOptions {
    /// Options from the environment: `SOURCE_DATE_EPOCH` when set to an integer.
    pub fn from_env() -> CreateOptions {
        CreateOptions {
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.trim().parse().ok()),
        }
    }
}

/// One changeset entry before it is written.
enum Change {
    /// Copy this file system object.
    Add(PathBuf),
    /// A whiteout for a deleted entry.
    Whiteout,
}

/// Supplies the bytes of some regular files while a layer's tar is made, instead of reading
/// them from the directory. A build's COPY uses it to fill its large files as their tar is
/// hashed: each source is read once, and the copy goes to the disk without passing through
/// the page cache a second time (see the builder's `copy` module).
pub trait FileContents {
    /// The content of regular file `path` (exactly `len` bytes, as its size says), or `None`
    /// to read the file itself.
    fn open(&mut self, path: &Path, len: u64) -> Option<io::Result<Box<dyn io::Read + '_>>>;
}

/// [`FileContents`] that reads every file from the directory.
pub struct ReadFiles;

impl FileContents for ReadFiles {
    fn open(&mut self, _: &Path, _: u64) -> Option<io::Result<Box<dyn io::Read + '_>>> {
        None
    }
}

/// Write the changeset of `source` as an uncompressed tar to `out`.
pub fn write_layer(source: &LayerSource, out: impl Write, opts: &CreateOptions) -> Result<()> {
    write_layer_with(source, out, opts, &mut ReadFiles)
}

/// [`write_layer`], with the content of some regular files from `contents`.
pub fn write_layer_with(
    source: &LayerSource,
    out: impl Write,
    opts: &CreateOptions,
    contents: &mut dyn FileContents,
) -> Result<()> {
    let changes = collect(source)?;
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    for (rel, change) in &changes {
        let name = String::from_utf8_lossy(rel.as_bytes()).into_owned();
        match change {
            Change::Whiteout => {
                let mut h = base_header(tar::EntryType::Regular, 0o644, 0, 0, 0, opts);
                builder
                    .append_data(&mut h, &name, io::empty())
                    .at("writing layer entry", &name)?;
            }
            Change::Add(abs) => add_entry(&mut builder, abs, &name, opts, &mut links, contents)?,
        }
    }
    builder
        .into_inner()
        .at("finishing layer", "tar")?
        .flush()
        .at("flushing layer", "tar")?;
    Ok(())
}

fn base_header(
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    opts: &CreateOptions,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(uid);
    h.set_gid(gid);
    let mtime = mtime.max(0) as u64;
    h.set_mtime(match opts.source_date_epoch {
        Some(e) => mtime.min(e),
        None => mtime,
    });
    h.set_size(0);
    h
}

fn add_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    abs: &Path,
    name: &str,
    opts: &CreateOptions,
    links: &mut HashMap<(u64, u64), String>,
    contents: &mut dyn FileContents,
) -> Result<()> {
    let md = fs::symlink_metadata(abs).at("reading", abs)?;
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        tar::EntryType::Directory
    } else if ft.is_symlink() {
        tar::EntryType::Symlink
    } else if ft.is_char_device() {
        tar::EntryType::Char
    } else if ft.is_block_device() {
        tar::EntryType::Block
    } else if ft.is_fifo() {
        tar::EntryType::Fifo
    } else if ft.is_file() {
        tar::EntryType::Regular
    } else {
        // Sockets cannot be represented in a layer; docker skips them too.
        return Ok(());
    };
    let mut h = base_header(
        kind,
        md.mode(),
        md.uid().into(),
        md.gid().into(),
        md.mtime(),
        opts,
    );
    // Extended attributes as PAX SCHILY.xattr records (overlay's own are never exported).
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if let Ok(names) = xattr::list(abs) {
        for n in names {
            let n_str = n.to_string_lossy().into_owned();
            if is_overlay_xattr(&n_str) {
                continue;
            }
            if let Ok(Some(v)) = xattr::get(abs, &n) {
                pax.insert(format!("SCHILY.xattr.{n_str}"), v);
            }
        }
    }
    if !pax.is_empty() {
        builder
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .at("writing layer entry", name)?;
    }
    let path_name = if kind == tar::EntryType::Directory {
        format!("{name}/")
    } else {
        name.to_string()
    };
    match kind {
        tar::EntryType::Regular => {
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    builder
                        .append_link(&mut h, &path_name, first)
                        .at("writing layer entry", name)?;
                    return Ok(());
                }
                links.insert(key, name.to_string());
            }
            h.set_size(md.len());
            let data: Box<dyn io::Read> = match contents.open(abs, md.len()) {
                Some(given) => Box::new(Exact {
                    inner: given.at("reading", abs)?,
                    left: md.len(),
                }),
                None => {
                    let f = fs::File::open(abs).at("reading", abs)?;
                    // Large files in 1 MiB reads (the copy uses the reader's buffer), not
                    // 8 KiB ones.
                    if md.len() > LARGE_FILE {
                        Box::new(io::BufReader::with_capacity(1 << 20, f))
                    } else {
                        Box::new(f)
                    }
                }
            };
            builder
                .append_data(&mut h, &path_name, data)
                .at("writing layer entry", abs)?;
        }
        tar::EntryType::Symlink => {
            let target = fs::read_link(abs).at("reading link", abs)?;
            builder
                .append_link(&mut h, &path_name, &target)
                .at("writing layer entry", abs)?;
        }
        tar::EntryType::Char | tar::EntryType::Block => {
            let rdev = md.rdev();
            h.set_device_major(nix::sys::stat::major(rdev) as u32)
                .at("writing layer entry", abs)?;
            h.set_device_minor(nix::sys::stat::minor(rdev) as u32)
                .at("writing layer entry", abs)?;
            builder
                .append_data(&mut h, &path_name, io::empty())
                .at("writing layer entry", abs)?;
        }
        _ => builder
            .append_data(&mut h, &path_name, io::empty())
            .at("writing layer entry", abs)?,
    }
    Ok(())
}

/// Exactly `left` bytes of `inner`: a tar entry's data must match its header's size, so a
/// supplier that ends early is an error, not a corrupt archive.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: io::Read> io::Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("content ended {} bytes before the file's size", self.left),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Relative path bytes (no leading `./`) → change, sorted.
fn collect(source: &LayerSource) -> Result<BTreeMap<OsString, Change>> {
    let mut out = BTreeMap::new();
    match source {
        LayerSource::Tree(root) => {
            for (rel, abs) in walk(root)? {
                out.insert(rel, Change::Add(abs));
            }
        }
        LayerSource::OverlayUpper(root) => {
            for (rel, abs) in walk(root)? {
                let md = fs::symlink_metadata(&abs).at("reading", &abs)?;
                if crate::userns::is_whiteout(&abs, &md) {
                    out.insert(whiteout_of(&rel, false), Change::Whiteout);
                    continue;
                }
                if md.is_dir() && is_opaque(&abs) {
                    out.insert(whiteout_of(&rel, true), Change::Whiteout);
                }
                out.insert(rel, Change::Add(abs));
            }
        }
        LayerSource::Diff { base, changed } => diff(base, changed, &mut out)?,
    }
    Ok(out)
}

/// Whether `dir` is an overlayfs opaque directory (`trusted.` or `user.overlay.opaque=y`).
pub fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|n| matches!(xattr::get(dir, n), Ok(Some(v)) if v == b"y"))
}

/// `a/b` → `a/.wh.b`; opaque: `a/b` → `a/b/.wh..wh..opq`.
fn whiteout_of(rel: &OsString, opaque: bool) -> OsString {
    let p = Path::new(rel);
    let s = if opaque {
        p.join(OPAQUE_WHITEOUT)
    } else {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        p.with_file_name(format!("{WHITEOUT_PREFIX}{name}"))
    };
    s.into_os_string()
}

/// Every entry under `root` (not `root` itself), relative path and absolute path.
fn walk(root: &Path) -> Result<Vec<(OsString, PathBuf)>> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let e = e.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            crate::StoreError::Io {
                op: "walking",
                path,
                source: e.into(),
            }
        })?;
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("walkdir yields paths under its root")
            .as_os_str()
            .to_owned();
        out.push((rel, e.path().to_path_buf()));
    }
    Ok(out)
}

fn diff(base: &Path, changed: &Path, out: &mut BTreeMap<OsString, Change>) -> Result<()> {
    let after = walk(changed)?;
    for (rel, abs) in &after {
        let before = base.join(rel);
        if !same(&before, abs)? {
            // Include parent directories so their modes and owners travel with the change.
            let mut parent = Path::new(rel).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                out.entry(p.as_os_str().to_owned())
                    .or_insert_with(|| Change::Add(changed.join(p)));
                parent = p.parent();
            }
            out.insert(rel.clone(), Change::Add(abs.clone()));
        }
    }
    let mut it = walkdir::WalkDir::new(base)
        .min_depth(1)
        .follow_links(false)
        .into_iter();
    while let Some(e) = it.next() {
        let e = e.map_err(|e| crate::StoreError::Io {
            op: "walking",
            path: base.to_path_buf(),
            source: e.into(),
        })?;
        let rel = e
            .path()
            .strip_prefix(base)
            .expect("under base")
            .as_os_str()
            .to_owned();
        let now = changed.join(&rel);
        if fs::symlink_metadata(&now).is_err() {
            out.insert(whiteout_of(&rel, false), Change::Whiteout);
            if e.file_type().is_dir() {
                it.skip_current_dir();
            }
        } else if e.file_type().is_dir()
            && !fs::symlink_metadata(&now)
                .map(|m| m.is_dir())
                .unwrap_or(false)
        {
            it.skip_current_dir();
        }
    }
    Ok(())
}

/// Whether two entries are the same for changeset purposes (type, mode, owner, size, mtime,
/// link target, device, xattrs) — content is not re-read, as docker does not either.
fn same(before: &Path, after: &Path) -> Result<bool> {
    let Ok(a) = fs::symlink_metadata(before) else {
        return Ok(false);
    };
    let b = fs::symlink_metadata(after).at("reading", after)?;
    if a.file_type() != b.file_type()
        || a.mode() != b.mode()
        || a.uid() != b.uid()
        || a.gid() != b.gid()
        || a.rdev() != b.rdev()
    {
        return Ok(false);
    }
    if b.is_dir() {
        // A directory's own metadata; its children are compared on their own.
        return Ok(xattrs(before) == xattrs(after));
    }
    if a.len() != b.len() || a.mtime() != b.mtime() || a.mtime_nsec() != b.mtime_nsec() {
        return Ok(false);
    }
    if b.file_type().is_symlink() && fs::read_link(before).ok() != fs::read_link(after).ok() {
        return Ok(false);
    }
    Ok(xattrs(before) == xattrs(after))
}

fn xattrs(p: &Path) -> BTreeMap<OsString, Option<Vec<u8>>> {
    xattr::list(p)
        .map(|names| {
            names
                .map(|n| {
                    let v = xattr::get(p, &n).ok().flatten();
                    (n, v)
                })
                .collect()
        })
        .unwrap_or_default()
}
