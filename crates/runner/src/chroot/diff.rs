//! A step's changes to its root filesystem copy, as an overlay upper directory: entries added
//! or changed since the record taken before the command ran, whiteouts (character devices
//! 0/0) for entries removed.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

use crate::error::Error;

/// What is compared of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    kind: u32,
    ino: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Entry {
    fn of(m: &fs::Metadata) -> Entry {
        Entry {
            kind: m.mode() & libc::S_IFMT,
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
            size: m.size(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
        }
    }

    fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }

    /// Whether the entry changed: a directory by its own metadata (its change time moves with
    /// every entry made in it), anything else also by inode and change time.
    fn changed(&self, before: &Entry) -> bool {
        if self.kind != before.kind {
            return true;
        }
        let meta = self.mode != before.mode
            || self.uid != before.uid
            || self.gid != before.gid
            || self.mtime != before.mtime;
        if self.is_dir() {
            meta
        } else {
            meta || self.ino != before.ino || self.ctime != before.ctime || self.size != before.size
        }
    }
}

/// Every entry below `root` by relative path (sorted, parents first).
pub(super) fn scan(root: &Path) -> Result<BTreeMap<PathBuf, Entry>, Error> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.map_err(|e| Error::Io {
            path: e.path().unwrap_or(root).to_path_buf(),
            source: e.into(),
        })?;
        let meta = e.metadata().map_err(|err| Error::Io {
            path: e.path().to_path_buf(),
            source: err.into(),
        })?;
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap_or(e.path())
            .to_path_buf();
        out.insert(rel, Entry::of(&meta));
    }
    Ok(out)
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

fn set_times(path: &Path, m: &fs::Metadata) {
    let times = [
        libc::timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        libc::timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    ];
    let c = cpath(path);
    // SAFETY: utimensat on a NUL-terminated path with two timespecs.
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
}

/// Put a directory's access and modification times back as `m` recorded them.
pub(super) fn restore_times(path: &Path, m: &fs::Metadata) {
    set_times(path, m);
}

fn owner(path: &Path, m: &fs::Metadata) -> Result<(), Error> {
    std::os::unix::fs::lchown(path, Some(m.uid()), Some(m.gid())).map_err(Error::io(path))
}

/// Copy one entry of the rootfs (`src`) to `dst` in the upper directory, with its metadata
/// (directory times are set later, once their contents are written). `links` maps inodes of
/// regular files already copied, to keep hard links.
fn copy_entry(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<u64, PathBuf>,
) -> Result<fs::Metadata, Error> {
    let m = fs::symlink_metadata(src).map_err(Error::io(src))?;
    let ft = m.file_type();
    if ft.is_dir() {
        if !dst.is_dir() {
            fs::create_dir(dst).map_err(Error::io(dst))?;
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(Error::io(dst))?;
        owner(dst, &m)?;
        return Ok(m);
    }
    if ft.is_file() && m.nlink() > 1 {
        if let Some(first) = links.get(&m.ino()) {
            fs::hard_link(first, dst).map_err(Error::io(dst))?;
            return Ok(m);
        }
        links.insert(m.ino(), dst.to_path_buf());
    }
    if ft.is_file() {
        fs::copy(src, dst).map_err(Error::io(dst))?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(Error::io(src))?;
        std::os::unix::fs::symlink(target, dst).map_err(Error::io(dst))?;
    } else {
        let c = cpath(dst);
        // SAFETY: mknod on a NUL-terminated path (fifo, socket or device, as the source).
        if unsafe { libc::mknod(c.as_ptr(), m.mode(), m.rdev()) } != 0 {
            return Err(Error::io(dst)(std::io::Error::last_os_error()));
        }
    }
    owner(dst, &m)?;
    if !ft.is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(Error::io(dst))?;
    }
    set_times(dst, &m);
    Ok(m)
}

/// Write the upper directory `upper` for the changes of `root` from `before` to `after`.
pub(super) fn write_upper(
    root: &Path,
    before: &BTreeMap<PathBuf, Entry>,
    after: &BTreeMap<PathBuf, Entry>,
    upper: &Path,
) -> Result<(), Error> {
    fs::create_dir_all(upper).map_err(Error::io(upper))?;
    let mut links = HashMap::new();
    let mut dirs: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    // Parents of a written entry are written too (with their own metadata), as overlay's
    // copy-up does.
    let ensure_parents = |rel: &Path,
                          links: &mut HashMap<u64, PathBuf>,
                          dirs: &mut Vec<(PathBuf, fs::Metadata)>|
     -> Result<(), Error> {
        let mut chain: Vec<&Path> = rel.ancestors().skip(1).collect();
        chain.pop(); // the empty path: `upper` itself
        for p in chain.into_iter().rev() {
            let dst = upper.join(p);
            if !dst.exists() {
                let m = copy_entry(&root.join(p), &dst, links)?;
                dirs.push((dst, m));
            }
        }
        Ok(())
    };
    for (rel, now) in after {
        let changed = before.get(rel).is_none_or(|b| now.changed(b));
        if !changed {
            continue;
        }
        ensure_parents(rel, &mut links, &mut dirs)?;
        let dst = upper.join(rel);
        if dst.exists() {
            continue;
        }
        let m = copy_entry(&root.join(rel), &dst, &mut links)?;
        if m.is_dir() {
            dirs.push((dst, m));
        }
    }
    for (rel, was) in before {
        if after.contains_key(rel) {
            // Still there; but a directory turned into something else hides its old children
            // by itself.
            continue;
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let parent_is_dir =
            parent.as_os_str().is_empty() || after.get(parent).is_some_and(Entry::is_dir);
        if !parent_is_dir {
            continue;
        }
        // Under a removed directory (whited out itself) nothing more is needed.
        if before
            .get(parent)
            .is_some_and(|p| p.is_dir() && !after.contains_key(parent))
        {
            continue;
        }
        let _ = was;
        ensure_parents(rel, &mut links, &mut dirs)?;
        let dst = upper.join(rel);
        let c = cpath(&dst);
        // SAFETY: mknod of a whiteout (character device 0/0) on a NUL-terminated path.
        if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EPERM) {
                return Err(Error::io(&dst)(err));
            }
            // An overlayfs root (an unprivileged container's) refuses 0/0 devices: overlay's
            // other whiteout form, an empty file marked with an xattr (the store reads both).
            fs::File::create(&dst).map_err(Error::io(&dst))?;
            xattr::set(&dst, "user.overlay.whiteout", b"y").map_err(Error::io(&dst))?;
        }
    }
    for (dst, m) in dirs.iter().rev() {
        set_times(dst, m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    #[allow(clippy::print_stderr)]
    fn upper_holds_changes_and_whiteouts() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping upper_holds_changes_and_whiteouts: whiteouts need mknod (root)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/keep"), "k").unwrap();
        fs::write(root.join("a/gone"), "g").unwrap();
        fs::create_dir_all(root.join("d/sub")).unwrap();
        fs::write(root.join("d/sub/x"), "x").unwrap();
        fs::write(root.join("same"), "s").unwrap();
        let before = scan(&root).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::remove_file(root.join("a/gone")).unwrap();
        fs::write(root.join("a/b/new"), "n").unwrap();
        fs::remove_dir_all(root.join("d")).unwrap();
        fs::write(root.join("same"), "S").unwrap();
        let after = scan(&root).unwrap();
        let upper = t.path().join("upper");
        write_upper(&root, &before, &after, &upper).unwrap();
        let mut got: Vec<String> = walkdir::WalkDir::new(&upper)
            .min_depth(1)
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(&upper).unwrap().display().to_string();
                if e.file_type().is_char_device() {
                    format!("{rel} (whiteout)")
                } else {
                    rel
                }
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "a",
                "a/b",
                "a/b/new",
                "a/gone (whiteout)",
                "d (whiteout)",
                "same"
            ]
        );
    }
}
