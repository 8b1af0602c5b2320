//! Materialising a COPY/ADD: the selected context files are written into a staging tree
//! (what becomes the step's layer) at the destination, with Docker's rules: a directory
//! destination (trailing `/`, several sources, a directory source, a wildcard, or an existing
//! directory in the stage) receives the entries under it, otherwise a single file becomes the
//! destination path; new files are owned by root unless `--chown`, keep their mode unless
//! `--chmod`, keep their mtime; parent directories that already exist in the stage keep their
//! metadata in the layer, new ones are 0755 and owned like the files.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use crate::context::{EntryKind, Selection};
use crate::error::BuildError;
use crate::lower;

/// How to write a selection.
#[derive(Debug, Clone)]
pub struct CopyOptions<'a> {
    /// Absolute destination in the image (already resolved against WORKDIR).
    pub dest: &'a str,
    /// `--chown` as numeric ids.
    pub owner: Option<(u32, u32)>,
    /// `--chmod` bits.
    pub chmod: Option<u32>,
    /// The stage's layers (bottom first), to find existing directories.
    pub lower: &'a [PathBuf],
}

/// Write `selection` into `staging` (the new layer's tree). Returns the image paths written.
pub fn materialize(
    selection: &Selection,
    opts: &CopyOptions<'_>,
    staging: &Path,
) -> Result<Vec<String>, BuildError> {
    let dest = opts.dest.trim_end_matches('/');
    let into_dir =
        selection.dest_is_dir || opts.dest.ends_with('/') || lower::is_dir(opts.lower, dest);
    let (uid, gid) = opts.owner.unwrap_or((0, 0));
    let mut written = Vec::with_capacity(selection.entries.len());
    let mut dirs: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
    // Regular files are copied after the tree's directories exist, on several threads (a
    // large COPY is bound by the kernel's page copying, one core each); a later entry for
    // the same path replaces an earlier one, as copying in order would.
    let mut files: Vec<Option<FileJob<'_>>> = Vec::new();
    let mut queued: std::collections::HashMap<PathBuf, usize> = Default::default();
    for e in &selection.entries {
        let target = if into_dir {
            format!("{dest}/{}", e.dest_path)
        } else {
            dest.to_string()
        };
        let target = if target.is_empty() {
            "/".to_string()
        } else {
            target
        };
        let parent = Path::new(&target)
            .parent()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        ensure_parents(staging, &parent, opts, &mut dirs)?;
        let out = staging.join(target.trim_start_matches('/'));
        let meta =
            std::fs::symlink_metadata(&e.path).map_err(|err| BuildError::io(&e.path, err))?;
        let mode = opts.chmod.unwrap_or(meta.permissions().mode() & 0o7777);
        match e.kind {
            EntryKind::Dir => {
                if let Some(i) = queued.remove(&out) {
                    files[i] = None;
                }
                if !out.is_dir() {
                    std::fs::create_dir(&out).map_err(|err| BuildError::io(&out, err))?;
                }
                set_owner_mode(&out, uid, gid, Some(mode))?;
                dirs.push((out.clone(), meta));
            }
            EntryKind::File => {
                let job = FileJob {
                    src: &e.path,
                    out: out.clone(),
                    mode,
                    meta,
                };
                match queued.get(&out) {
                    Some(&i) => files[i] = Some(job),
                    None => {
                        queued.insert(out, files.len());
                        files.push(Some(job));
                    }
                }
            }
            EntryKind::Symlink => {
                if let Some(i) = queued.remove(&out) {
                    files[i] = None;
                }
                let link =
                    std::fs::read_link(&e.path).map_err(|err| BuildError::io(&e.path, err))?;
                let _ = std::fs::remove_file(&out);
                std::os::unix::fs::symlink(&link, &out).map_err(|err| BuildError::io(&out, err))?;
                set_owner_mode(&out, uid, gid, None)?;
                set_times(&out, &meta)?;
            }
        }
        written.push(target);
    }
    copy_files(&files, uid, gid)?;
    // Directory times last: writing their entries changed them.
    for (dir, meta) in dirs.iter().rev() {
        set_times(dir, meta)?;
    }
    Ok(written)
}

/// A COPY of at least this many bytes copies its files on several threads.
const PARALLEL_COPY_BYTES: u64 = 32 << 20;

/// One regular file of a COPY: from `src` to `out` with `mode`, the source's times.
struct FileJob<'a> {
    src: &'a Path,
    out: PathBuf,
    mode: u32,
    meta: std::fs::Metadata,
}

/// Copy `jobs` (holes skipped) on up to four threads; the first failure is returned.
fn copy_files(jobs: &[Option<FileJob<'_>>], uid: u32, gid: u32) -> Result<(), BuildError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let copy = |j: &FileJob<'_>| -> Result<(), BuildError> {
        let _ = std::fs::remove_file(&j.out);
        std::fs::copy(j.src, &j.out).map_err(|err| BuildError::io(&j.out, err))?;
        set_owner_mode(&j.out, uid, gid, Some(j.mode))?;
        set_times(&j.out, &j.meta)
    };
    // Small files stay on this thread: creating many in one directory from several threads
    // contends on the directory's lock and costs more than it saves.
    let bytes: u64 = jobs.iter().flatten().map(|j| j.meta.len()).sum();
    let workers = if bytes < PARALLEL_COPY_BYTES {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4)
            .min(jobs.len())
    };
    if workers <= 1 {
        return jobs.iter().flatten().try_for_each(copy);
    }
    let next = AtomicUsize::new(0);
    let work = || -> Result<(), BuildError> {
        while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
            if let Some(j) = job {
                copy(j)?;
            }
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..workers).map(|_| s.spawn(work)).collect();
        let mine = work();
        helpers
            .into_iter()
            .map(|h| h.join().expect("a copy thread does not panic"))
            .fold(mine, Result::and)
    })
}

/// Create directory `dir` (an absolute image path) and its ancestors in `staging` as
/// [`materialize`] does: directories the stage already has keep its metadata, new ones are
/// 0755 and owned like the copied files (`opts.owner`).
pub fn ensure_dir(staging: &Path, dir: &str, opts: &CopyOptions<'_>) -> Result<(), BuildError> {
    let mut dirs = Vec::new();
    ensure_parents(staging, dir, opts, &mut dirs)?;
    for (d, meta) in dirs.iter().rev() {
        set_times(d, meta)?;
    }
    Ok(())
}

/// Create `dir`'s ancestors (and itself) in `staging`, copying metadata from the stage when
/// the directory already exists there.
fn ensure_parents(
    staging: &Path,
    dir: &str,
    opts: &CopyOptions<'_>,
    dirs: &mut Vec<(PathBuf, std::fs::Metadata)>,
) -> Result<(), BuildError> {
    let mut path = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        path.push('/');
        path.push_str(part);
        let out = staging.join(path.trim_start_matches('/'));
        if out.is_dir() {
            continue;
        }
        std::fs::create_dir(&out).map_err(|err| BuildError::io(&out, err))?;
        match lower::lookup(opts.lower, &path) {
            Some((_, meta)) if meta.is_dir() => {
                set_owner_mode(
                    &out,
                    meta.uid(),
                    meta.gid(),
                    Some(meta.permissions().mode() & 0o7777),
                )?;
                dirs.push((out, meta));
            }
            _ => {
                let (uid, gid) = opts.owner.unwrap_or((0, 0));
                set_owner_mode(&out, uid, gid, Some(0o755))?;
            }
        }
    }
    Ok(())
}

fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: Option<u32>) -> Result<(), BuildError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|err| BuildError::io(path, err))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|err| BuildError::io(path, err))?;
    }
    Ok(())
}

fn set_times(path: &Path, meta: &std::fs::Metadata) -> Result<(), BuildError> {
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &mtime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|errno| BuildError::io(path, std::io::Error::from(errno)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::context::BuildContext;

    fn setup() -> (tempfile::TempDir, BuildContext, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ctx_dir = dir.path().join("ctx");
        std::fs::create_dir_all(ctx_dir.join("src/sub")).unwrap();
        std::fs::write(ctx_dir.join("src/a.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            ctx_dir.join("src/a.sh"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::fs::write(ctx_dir.join("src/sub/b.txt"), "b").unwrap();
        std::os::unix::fs::symlink("a.sh", ctx_dir.join("src/link")).unwrap();
        let lower = dir.path().join("lower");
        std::fs::create_dir_all(lower.join("tmp")).unwrap();
        std::fs::set_permissions(lower.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let ctx = BuildContext::open(&ctx_dir, None).unwrap();
        (dir, ctx, lower, staging)
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn directory_contents_with_chown_and_kept_modes() {
        let (_d, ctx, lower, staging) = setup();
        let sel = ctx
            .select("COPY", &["src".to_string()], "/app", &[], false)
            .unwrap();
        let lowers = vec![lower];
        let opts = CopyOptions {
            dest: "/app",
            owner: Some((1000, 1000)),
            chmod: None,
            lower: &lowers,
        };
        let written = materialize(&sel, &opts, &staging).unwrap();
        assert_eq!(
            written,
            ["/app/a.sh", "/app/link", "/app/sub", "/app/sub/b.txt"]
        );
        assert_eq!(mode(&staging.join("app/a.sh")), 0o750);
        assert_eq!(
            std::fs::read_link(staging.join("app/link")).unwrap(),
            Path::new("a.sh")
        );
        let meta = std::fs::metadata(staging.join("app/sub/b.txt")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
        assert_eq!(
            std::fs::metadata(staging.join("app")).unwrap().uid(),
            1000,
            "new parents are owned like the files"
        );
    }

    #[test]
    fn single_file_and_existing_parent_metadata() {
        let (_d, ctx, lower, staging) = setup();
        let lowers = vec![lower];
        let sel = ctx
            .select(
                "COPY",
                &["src/sub/b.txt".to_string()],
                "/tmp/x/renamed",
                &[],
                false,
            )
            .unwrap();
        let opts = CopyOptions {
            dest: "/tmp/x/renamed",
            owner: None,
            chmod: Some(0o600),
            lower: &lowers,
        };
        materialize(&sel, &opts, &staging).unwrap();
        assert_eq!(
            std::fs::read_to_string(staging.join("tmp/x/renamed")).unwrap(),
            "b"
        );
        assert_eq!(mode(&staging.join("tmp/x/renamed")), 0o600);
        assert_eq!(
            mode(&staging.join("tmp")),
            0o1777,
            "an existing parent keeps its mode in the layer"
        );
        assert_eq!(mode(&staging.join("tmp/x")), 0o755);
        // An existing directory in the stage receives the file under its own name.
        let sel = ctx
            .select("COPY", &["src/a.sh".to_string()], "/tmp", &[], false)
            .unwrap();
        let opts = CopyOptions {
            dest: "/tmp",
            owner: None,
            chmod: None,
            lower: &lowers,
        };
        assert_eq!(materialize(&sel, &opts, &staging).unwrap(), ["/tmp/a.sh"]);
    }

    #[test]
    fn mtimes_are_kept() {
        let (d, ctx, lower, staging) = setup();
        let f = std::fs::File::options()
            .write(true)
            .open(d.path().join("ctx/src/sub/b.txt"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
        let lowers = vec![lower];
        let sel = ctx
            .select("COPY", &["src/sub".to_string()], "/d/", &[], false)
            .unwrap();
        let opts = CopyOptions {
            dest: "/d/",
            owner: None,
            chmod: None,
            lower: &lowers,
        };
        materialize(&sel, &opts, &staging).unwrap();
        assert_eq!(
            std::fs::metadata(staging.join("d/b.txt")).unwrap().mtime(),
            1_000_000
        );
    }
}
