//! Safe layer application: a changeset tar onto a directory, never writing outside it.
//! The same engine extracts the archives of a Dockerfile `ADD` ([`Paths::Rooted`],
//! [`Whiteouts::Keep`], [`apply_stream`]), where docker's looser but still confined rules apply.
//!
//! The rule is simple and strict: an entry is rejected when a host `tar -x` of it could touch
//! anything outside the target — an absolute path or `..` in a name or hardlink target, or a
//! parent directory reached through a symlink that is absolute or climbs out of the target.
//! Symlinks that stay inside the target are followed (relative `lib -> usr/lib` layouts work);
//! the final component of an entry is never followed: an existing symlink there is replaced.
//! Names (absolute, `..`) and the tar stream itself (truncation) are checked for the whole layer
//! before anything is written; symlink escapes are caught when the entry is reached. Either way
//! nothing outside the target is ever touched (the store unpacks into a temporary directory and
//! discards it on error).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag};

use crate::error::{IoContext, Result, StoreError};
use crate::layer::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX, is_overlay_xattr};

/// How whiteout entries are honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Not at all: `.wh.*` entries are written as the plain files they are named, as docker's
    /// `ADD` of a local archive does (it is not a layer).
    Keep,
    /// Delete what they name (flattening layers into one rootfs).
    Delete,
    /// Convert them to overlayfs form (char 0/0 devices, `trusted.overlay.opaque=y`), for a
    /// snapshot used as an overlay lower directory.
    Overlay,
}

/// How entry names, and symlinks met on the way to an entry, are confined to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paths {
    /// Layer rules: an absolute name, `..` anywhere in a name, or an absolute symlink on the
    /// way is refused.
    Strict,
    /// Archive rules (docker's and BuildKit's `ADD`): the target acts as `/`. A leading `/` is
    /// dropped, `..` is resolved by name and refused only when it climbs above the target, and
    /// an absolute symlink on the way resolves against the target, as inside a chroot. A
    /// relative symlink that climbs out is still refused.
    Rooted,
}

/// Options for [`apply_layer`] and [`apply_stream`].
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// How whiteouts are honoured.
    pub whiteouts: Whiteouts,
    /// Set owners from the tar (needs root); otherwise files belong to the caller.
    pub preserve_owners: bool,
    /// Own every entry by these ids instead of the tar's (`ADD --chown`); directories the tar
    /// only implies belong to the caller. Takes precedence over `preserve_owners`.
    pub owner: Option<(u32, u32)>,
    /// How names and symlinks are confined.
    pub paths: Paths,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            whiteouts: Whiteouts::Delete,
            preserve_owners: crate::userns::can_chown(),
            owner: None,
            paths: Paths::Strict,
        }
    }
}

/// Apply the uncompressed layer tar read from `reader` onto `target`.
///
/// `layer` names the layer in errors. The tar is buffered to a temporary file in `scratch`
/// first, checked completely, then applied; any problem leaves `target` untouched except for
/// I/O errors in the middle of writing (a full disk), which are reported with the path.
pub fn apply_layer(
    reader: impl Read,
    target: &Path,
    opts: &ApplyOptions,
    layer: &str,
    scratch: &Path,
) -> Result<()> {
    let mut spool = tempfile::tempfile_in(scratch).at("creating temporary file in", scratch)?;
    crate::blobs::copy(&mut { reader }, &mut spool).map_err(|source| StoreError::Io {
        op: "reading layer",
        path: PathBuf::from(layer),
        source,
    })?;
    apply_layer_file(&mut spool, target, opts, layer)
}

/// Apply an uncompressed layer tar that is a seekable file (no spooling): checked in a first
/// pass, applied in a second; see [`apply_layer`].
pub fn apply_layer_file(
    file: &mut fs::File,
    target: &Path,
    opts: &ApplyOptions,
    layer: &str,
) -> Result<()> {
    io::Seek::rewind(file).at("rewinding", layer)?;
    // Pass 1: check every entry name and the whole stream, without touching the target.
    check(file, layer, opts.paths)?;
    io::Seek::rewind(file).at("rewinding", layer)?;
    // Pass 2: apply.
    Applier::new(target, opts, layer).run(file)
}

/// Apply an uncompressed tar read from `reader` onto `target` in one pass, without buffering
/// or checking it first: entries are written as they come, so an error (a dangerous entry, a
/// truncated stream) can leave the entries before it written. For callers that discard the
/// target on error (a build step's layer tree); the confinement rules are the same, so
/// nothing outside `target` is ever touched.
pub fn apply_stream(
    reader: impl Read,
    target: &Path,
    opts: &ApplyOptions,
    name: &str,
) -> Result<()> {
    Applier::new(target, opts, name).run(reader)
}

fn bad(layer: &str, entry: &str, problem: impl Into<String>) -> StoreError {
    StoreError::BadLayer {
        layer: layer.to_string(),
        entry: entry.to_string(),
        problem: problem.into(),
    }
}

/// Split an entry name into safe components: [`Paths::Strict`] rejects absolute paths and
/// `..`; [`Paths::Rooted`] drops the leading `/` and resolves `..` by name, rejecting it only
/// above the root.
fn components(raw: &[u8], layer: &str, paths: Paths) -> Result<Vec<OsString>> {
    let shown = String::from_utf8_lossy(raw);
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out: Vec<OsString> = Vec::new();
    for c in p.components() {
        match (c, paths) {
            (Component::RootDir | Component::Prefix(_), Paths::Strict) => {
                return Err(bad(
                    layer,
                    &shown,
                    "absolute path is not allowed in a layer",
                ));
            }
            (Component::ParentDir, Paths::Strict) => {
                return Err(bad(layer, &shown, "`..` is not allowed in a layer path"));
            }
            (Component::ParentDir, Paths::Rooted) => {
                if out.pop().is_none() {
                    return Err(bad(
                        layer,
                        &shown,
                        "`..` leads outside the target directory",
                    ));
                }
            }
            (Component::RootDir | Component::Prefix(_) | Component::CurDir, _) => {}
            (Component::Normal(n), _) => out.push(n.to_owned()),
        }
    }
    Ok(out)
}

fn check(spool: &mut fs::File, layer: &str, paths: Paths) -> Result<()> {
    let mut ar = tar::Archive::new(spool);
    let entries = ar.entries().map_err(|e| bad(layer, "", e.to_string()))?;
    for e in entries {
        let mut e = e.map_err(|e| bad(layer, "", format!("corrupt or truncated tar: {e}")))?;
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        components(&raw, layer, paths)?;
        if e.header().entry_type() == tar::EntryType::Link {
            let target = e
                .link_name_bytes()
                .ok_or_else(|| bad(layer, &shown, "hardlink without target"))?;
            components(&target, layer, paths)
                .map_err(|_| bad(layer, &shown, "hardlink target leaves the layer"))?;
        }
        // Read the data so a truncated tar is caught before anything is written.
        io::copy(&mut e, &mut io::sink())
            .map_err(|err| bad(layer, &shown, format!("corrupt or truncated tar: {err}")))?;
    }
    Ok(())
}

struct Applier {
    root: PathBuf,
    opts: ApplyOptions,
    layer: String,
    /// Paths created by this layer (kept by an opaque whiteout).
    written: HashSet<PathBuf>,
    /// Directories whose mtime is set last, after their children are written.
    dirs: Vec<(PathBuf, i64)>,
    /// The buffer big files are written direct from (made for the first one).
    direct_buf: Option<crate::direct::AlignedBuf>,
}

impl Applier {
    fn new(target: &Path, opts: &ApplyOptions, layer: &str) -> Applier {
        Applier {
            root: target.to_path_buf(),
            opts: *opts,
            layer: layer.to_string(),
            written: HashSet::new(),
            dirs: Vec::new(),
            direct_buf: None,
        }
    }

    fn run(mut self, reader: impl Read) -> Result<()> {
        let mut ar = tar::Archive::new(reader);
        let entries = ar
            .entries()
            .map_err(|e| bad(&self.layer, "", e.to_string()))?;
        for e in entries {
            let mut e = e.map_err(|e| bad(&self.layer, "", format!("corrupt tar: {e}")))?;
            self.entry(&mut e)?;
        }
        for (dir, mtime) in self.dirs.iter().rev() {
            set_mtime(dir, *mtime, false)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let comps = components(&raw, &self.layer, self.opts.paths)?;
        let Some((name, parents)) = comps.split_last() else {
            return Ok(()); // the root itself
        };
        let parent = self.resolve(parents, &shown, true)?;
        let name_bytes = name.as_bytes();
        if self.opts.whiteouts != Whiteouts::Keep {
            if name_bytes == OPAQUE_WHITEOUT.as_bytes() {
                return self.opaque(&parent);
            }
            if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
                return self.whiteout(&parent, OsStr::from_bytes(hidden));
            }
        }
        let path = parent.join(name);
        let h = e.header().clone();
        let kind = h.entry_type();
        let mode = h
            .mode()
            .map_err(|err| bad(&self.layer, &shown, err.to_string()))?;
        let existing = fs::symlink_metadata(&path).ok();
        match &existing {
            Some(md) if md.is_dir() && kind.is_dir() => {}
            Some(md) if md.is_dir() => fs::remove_dir_all(&path).at("removing", &path)?,
            Some(_) => fs::remove_file(&path).at("removing", &path)?,
            None => {}
        }
        match kind {
            tar::EntryType::Directory => {
                if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                    fs::create_dir(&path).at("creating directory", &path)?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc_o_nofollow())
                    .mode(0o600)
                    .open(&path)
                    .at("creating", &path)?;
                if h.size().unwrap_or(0) >= crate::direct::MIN_FILE {
                    // A big file: written around the page cache (see `direct`).
                    let buf = self.direct_buf.get_or_insert_with(|| {
                        crate::direct::AlignedBuf::new(crate::direct::CHUNK)
                    });
                    let mut out = crate::direct::DirectFile::new(f);
                    crate::direct::copy(e, &mut out, buf).at("writing", &path)?;
                } else {
                    crate::blobs::copy(e, &mut f).at("writing", &path)?;
                }
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| bad(&self.layer, &shown, "symlink without target"))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .at("creating symlink", &path)?;
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| bad(&self.layer, &shown, "hardlink without target"))?;
                let tcomps = components(&target, &self.layer, self.opts.paths)?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(bad(&self.layer, &shown, "hardlink to the root"));
                };
                let tpath = self.resolve(tparents, &shown, false)?.join(tname);
                let tmd = fs::symlink_metadata(&tpath).map_err(|_| {
                    bad(
                        &self.layer,
                        &shown,
                        format!(
                            "hardlink target {} does not exist",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
                if tmd.is_dir() {
                    return Err(bad(&self.layer, &shown, "hardlink to a directory"));
                }
                // link(2) does not follow a symlink target: the link is to the symlink itself.
                fs::hard_link(&tpath, &path).at("creating hardlink", &path)?;
                self.written.insert(path);
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    k => {
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let flag = if k == tar::EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (flag, nix::sys::stat::makedev(major.into(), minor.into()))
                    }
                };
                nix::sys::stat::mknod(&path, sflag, Mode::from_bits_truncate(0o600), dev)
                    .at("creating device node", &path)?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => return Ok(()),
            other => {
                return Err(bad(
                    &self.layer,
                    &shown,
                    format!("unsupported tar entry type {other:?}"),
                ));
            }
        }
        self.metadata(e, &path, kind, mode)?;
        self.written.insert(path);
        Ok(())
    }

    fn metadata<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        path: &Path,
        kind: tar::EntryType,
        mode: u32,
    ) -> Result<()> {
        let h = e.header().clone();
        let is_link = kind == tar::EntryType::Symlink;
        let owner = self.opts.owner.or_else(|| {
            self.opts
                .preserve_owners
                .then(|| (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32))
        });
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid)).at("changing owner of", path)?;
        }
        if let Ok(Some(exts)) = e.pax_extensions() {
            for ext in exts.flatten() {
                let Ok(key) = ext.key() else { continue };
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    // A layer must never fake overlay whiteouts through xattrs.
                    if is_overlay_xattr(name) {
                        continue;
                    }
                    match xattr::set(path, name, ext.value_bytes()) {
                        Ok(()) => {}
                        // Filesystems without xattr support (or user.* on symlinks) are tolerated.
                        Err(err) if matches!(err.raw_os_error(), Some(95) | Some(1)) => {}
                        Err(err) => return Err(err).at("setting extended attribute on", path),
                    }
                }
            }
        }
        if !is_link {
            fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
                .at("changing mode of", path)?;
        }
        let mtime = h.mtime().unwrap_or(0) as i64;
        if kind.is_dir() {
            self.dirs.push((path.to_path_buf(), mtime));
        } else {
            set_mtime(path, mtime, is_link)?;
        }
        Ok(())
    }

    fn whiteout(&mut self, parent: &Path, hidden: &OsStr) -> Result<()> {
        let path = parent.join(hidden);
        match self.opts.whiteouts {
            Whiteouts::Keep => Ok(()),
            Whiteouts::Delete => match fs::symlink_metadata(&path) {
                Ok(md) if md.is_dir() => fs::remove_dir_all(&path).at("removing", &path),
                Ok(_) => fs::remove_file(&path).at("removing", &path),
                Err(_) => Ok(()),
            },
            Whiteouts::Overlay => {
                if fs::symlink_metadata(&path).is_ok() {
                    remove_any(&path)?;
                }
                crate::userns::make_whiteout(&path).at("creating whiteout device", &path)
            }
        }
    }

    fn opaque(&mut self, dir: &Path) -> Result<()> {
        match self.opts.whiteouts {
            Whiteouts::Keep => Ok(()),
            Whiteouts::Delete => {
                for e in fs::read_dir(dir).at("reading", dir)? {
                    let p = e.at("reading", dir)?.path();
                    if !self.written.contains(&p) {
                        remove_any(&p)?;
                    }
                }
                Ok(())
            }
            Whiteouts::Overlay => {
                match xattr::set(dir, crate::userns::opaque_xattr(), b"y") {
                    // trusted.* needs the host's CAP_SYS_ADMIN (not given to an unprivileged
                    // container): the user.* form, which chroot isolation's copies read.
                    Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => {
                        xattr::set(dir, "user.overlay.opaque", b"y")
                    }
                    r => r,
                }
                .at("marking opaque", dir)
            }
        }
    }

    /// Resolve parent components inside the root, following in-root symlinks, creating missing
    /// directories (0755) when `create`. Errors when a symlink climbs out of the root, or is
    /// absolute under [`Paths::Strict`] (under [`Paths::Rooted`] it restarts from the root).
    fn resolve(&self, comps: &[OsString], entry: &str, create: bool) -> Result<PathBuf> {
        let mut resolved: Vec<OsString> = Vec::new();
        let mut queue: std::collections::VecDeque<OsString> = comps.iter().cloned().collect();
        let mut hops = 0;
        while let Some(c) = queue.pop_front() {
            if c.is_empty() || c == "." {
                continue;
            }
            if c == ".." {
                if resolved.pop().is_none() {
                    return Err(bad(
                        &self.layer,
                        entry,
                        "a symlink in its path leads outside the target directory",
                    ));
                }
                continue;
            }
            let mut p = self.root.clone();
            p.extend(&resolved);
            p.push(&c);
            match fs::symlink_metadata(&p) {
                Ok(md) if md.file_type().is_symlink() => {
                    hops += 1;
                    if hops > 40 {
                        return Err(bad(&self.layer, entry, "too many levels of symbolic links"));
                    }
                    let target = fs::read_link(&p).at("reading link", &p)?;
                    if target.is_absolute() && self.opts.paths == Paths::Rooted {
                        resolved.clear();
                    } else if target.is_absolute() {
                        return Err(bad(
                            &self.layer,
                            entry,
                            format!(
                                "its path goes through absolute symlink {} -> {}",
                                p.display(),
                                target.display()
                            ),
                        ));
                    }
                    let mut next: Vec<OsString> = target
                        .components()
                        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
                        .map(|c| c.as_os_str().to_owned())
                        .collect();
                    next.extend(queue.drain(..));
                    queue = next.into();
                }
                Ok(md) if md.is_dir() => resolved.push(c),
                Ok(_) => {
                    return Err(bad(
                        &self.layer,
                        entry,
                        format!("{} is not a directory", p.display()),
                    ));
                }
                Err(_) if create => {
                    fs::create_dir(&p).at("creating directory", &p)?;
                    // Implied directories are 0755 whatever the umask, as docker makes them.
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                        .at("changing mode of", &p)?;
                    resolved.push(c);
                }
                Err(_) => {
                    return Err(bad(
                        &self.layer,
                        entry,
                        format!("{} does not exist", p.display()),
                    ));
                }
            }
        }
        let mut p = self.root.clone();
        p.extend(&resolved);
        Ok(p)
    }
}

fn remove_any(p: &Path) -> Result<()> {
    let md = fs::symlink_metadata(p).at("reading", p)?;
    if md.is_dir() {
        fs::remove_dir_all(p).at("removing", p)
    } else {
        fs::remove_file(p).at("removing", p)
    }
}

fn set_mtime(path: &Path, mtime: i64, symlink: bool) -> Result<()> {
    use nix::sys::time::TimeSpec;
    let t = TimeSpec::new(mtime, 0);
    let flag = if symlink {
        nix::sys::stat::UtimensatFlags::NoFollowSymlink
    } else {
        nix::sys::stat::UtimensatFlags::FollowSymlink
    };
    nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, path, &t, &t, flag).at("setting times of", path)
}

fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}
