//! `RUN --mount`: cache directories kept across builds under the store root, secrets bound
//! read-only (or passed as environment variables) and never part of a layer or key, tmpfs, and
//! bind mounts from the context or another stage/image. Mount points the runtime creates are
//! removed from the step's layer by [`crate::run::run_step`].

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use oci_spec::runtime::{Mount as OciMount, MountBuilder};
use rbuild_oci::Digest;
use rbuild_parser::instructions::{CacheSharing, Mount, MountType, Run};
use rbuild_runner::spec::bind_mount;
use rbuild_store::Lock;

use super::steps::mount_from;
use super::view::View;
use super::{Secret, Shared};
use crate::error::BuildError;

/// The mounts of one RUN, ready for the runner; views and locks are released on drop.
pub(crate) struct Prepared {
    /// Mounts for the container.
    pub mounts: Vec<OciMount>,
    /// Variables from `type=secret,env=`.
    pub env: Vec<(String, String)>,
    _views: Vec<View>,
    _overlays: Vec<Unmount>,
    _locks: Vec<Lock>,
}

/// Unmounts a host-side mount on drop.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

/// What the RUN's key depends on besides the instruction: the content of bind-mounted context
/// paths and the identity of stages/images mounted `from=`.
pub(crate) fn inputs(shared: &Shared<'_>, r: &Run) -> Result<Vec<Digest>, BuildError> {
    let mut out = Vec::new();
    for m in r.mounts.iter().filter(|m| m.kind == MountType::Bind) {
        let source = m.source.clone().unwrap_or_else(|| ".".into());
        match &m.from {
            Some(from) => out.push(super::steps::from_identity(shared, from)?),
            None => {
                let sel = shared
                    .context
                    .select("RUN --mount", &[source], "/", &[], false)?;
                let mut cache = shared.digests.lock();
                out.push(crate::cache_key::selection_digest(&sel, &mut cache)?);
            }
        }
    }
    Ok(out)
}

/// Where a bind, cache or tmpfs mount appears: its target made absolute against the step's
/// working directory, which is also where a mount without a target goes (BuildKit's rule);
/// `/` itself cannot be a mount target.
fn mount_target(target: Option<&str>, workdir: &str, line: usize) -> Result<String, BuildError> {
    let target = target.unwrap_or_default();
    let joined = if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{}/{target}", workdir.trim_end_matches('/'))
    };
    let clean = super::steps::clean_path(&joined);
    if clean == "/" {
        return Err(BuildError::Invalid {
            line,
            message: format!("RUN --mount: invalid mount target {clean:?}"),
        });
    }
    Ok(clean)
}

/// Set up every `--mount` of `r` for a container whose step directory is `dir` and whose
/// working directory is `workdir`; `line` is the RUN's, for errors.
pub(crate) fn prepare(
    shared: &Shared<'_>,
    r: &Run,
    dir: &Path,
    workdir: &str,
    line: usize,
) -> Result<Prepared, BuildError> {
    let mut p = Prepared {
        mounts: Vec::new(),
        env: Vec::new(),
        _views: Vec::new(),
        _overlays: Vec::new(),
        _locks: Vec::new(),
    };
    for (i, m) in r.mounts.iter().enumerate() {
        let target = match m.kind {
            MountType::Bind | MountType::Cache | MountType::Tmpfs => {
                mount_target(m.target.as_deref(), workdir, line)?
            }
            MountType::Secret | MountType::Ssh => m.target.clone().unwrap_or_default(),
        };
        match m.kind {
            MountType::Cache => {
                // BuildKit's default id is the target as written, cleaned.
                let id = m.id.clone().unwrap_or_else(|| {
                    let written = m.target.as_deref().unwrap_or_default();
                    if written.starts_with('/') {
                        super::steps::clean_path(written)
                    } else {
                        let rel = super::steps::clean_path(written);
                        let rel = rel.trim_start_matches('/');
                        if rel.is_empty() {
                            ".".into()
                        } else {
                            rel.to_string()
                        }
                    }
                });
                let host = cache_dir(shared, &id);
                if !host.is_dir() {
                    restore_or_create(shared, &id, &host, m.mode.unwrap_or(0o755), m.uid, m.gid)?;
                }
                super::cache_usage::note_use(&host);
                shared
                    .cache_mounts
                    .lock()
                    .expect("cache mounts")
                    .insert(id.clone(), host.clone());
                if m.sharing == CacheSharing::Locked {
                    let lock =
                        Lock::exclusive(&host.with_extension("lock")).map_err(super::store_err)?;
                    p._locks.push(lock);
                }
                p.mounts.push(bind_mount(&host, &target, m.read_only));
            }
            MountType::Tmpfs => {
                let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
                if let Some(size) = m.size {
                    opts.push(format!("size={size}"));
                }
                p.mounts.push(
                    MountBuilder::default()
                        .destination(&target)
                        .typ("tmpfs")
                        .source("tmpfs")
                        .options(opts)
                        .build()
                        .map_err(|e| BuildError::Container(e.to_string()))?,
                );
            }
            MountType::Secret => secret(shared, m, i, dir, &mut p)?,
            MountType::Bind => {
                let source = m.source.clone().unwrap_or_else(|| ".".into());
                let root = match &m.from {
                    Some(from) => {
                        let (view, _) = mount_from(shared, from, &dir.join(format!("bind-{i}")))?;
                        let root = view.path().to_path_buf();
                        p._views.push(view);
                        root
                    }
                    None => shared.context.root().to_path_buf(),
                };
                let host = inside(&root, &source)?;
                let host = if m.read_only {
                    host
                } else {
                    writable_copy(&host, &dir.join(format!("bind-rw-{i}")), &mut p)?
                };
                p.mounts.push(bind_mount(&host, &target, m.read_only));
            }
            MountType::Ssh => {
                if m.required {
                    return Err(BuildError::Invalid {
                        line: 0,
                        message: "RUN --mount=type=ssh: SSH agent forwarding is not supported"
                            .into(),
                    });
                }
            }
        }
    }
    Ok(p)
}

/// The persistent directory of cache mount `id`.
fn cache_dir(shared: &Shared<'_>, id: &str) -> PathBuf {
    let hex = Digest::sha256_of(id.as_bytes()).hex()[..32].to_string();
    shared
        .store
        .root()
        .join("buildcache")
        .join("mounts")
        .join(hex)
}

/// A cache mount this store does not have yet: its content from an imported cache when one
/// has it (the layer fetched and verified, then unpacked), else empty. A content that cannot
/// be fetched is a warning; the mount then starts empty.
fn restore_or_create(
    shared: &Shared<'_>,
    id: &str,
    dir: &Path,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), BuildError> {
    let Some((import, entry)) = shared.imported.mount(id) else {
        return create_owned(dir, mode, uid, gid);
    };
    let restored = (|| -> Result<(), String> {
        if !shared.store.has_blob(&entry.diff_id) {
            import.layers.fetch(shared.store, &entry.as_entry())?;
        }
        let parent = dir.parent().expect("cache dirs have a parent");
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        let tmp = tempfile::Builder::new()
            .prefix(".restore-")
            .tempdir_in(parent)
            .map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(|e| e.to_string())?;
        std::os::unix::fs::chown(tmp.path(), uid.or(Some(0)), gid.or(Some(0)))
            .map_err(|e| e.to_string())?;
        let opts = rbuild_store::layer::ApplyOptions {
            preserve_owners: true,
            ..Default::default()
        };
        shared
            .store
            .apply(&entry.diff_id, tmp.path(), &opts)
            .map_err(|e| e.to_string())?;
        let kept = tmp.keep();
        if std::fs::rename(&kept, dir).is_err() {
            // Another build created it first.
            let _ = std::fs::remove_dir_all(&kept);
        }
        Ok(())
    })();
    if let Err(e) = restored {
        shared.reporter.warning(&format!(
            "cache import: cache mount {id:?} from {} not restored: {e}",
            import.name
        ));
        return create_owned(dir, mode, uid, gid);
    }
    Ok(())
}

fn create_owned(
    dir: &Path,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let parent = dir.parent().expect("cache dirs have a parent");
    std::fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".new-")
        .tempdir_in(parent)
        .map_err(|e| BuildError::io(parent, e))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
        .map_err(|e| BuildError::io(tmp.path(), e))?;
    std::os::unix::fs::chown(tmp.path(), uid.or(Some(0)), gid.or(Some(0)))
        .map_err(|e| BuildError::io(tmp.path(), e))?;
    let kept = tmp.keep();
    if std::fs::rename(&kept, dir).is_err() {
        // Another build created it first.
        let _ = std::fs::remove_dir_all(&kept);
    }
    Ok(())
}

fn secret(
    shared: &Shared<'_>,
    m: &Mount,
    i: usize,
    dir: &Path,
    p: &mut Prepared,
) -> Result<(), BuildError> {
    let id = m.id.clone().unwrap_or_default();
    let Some(value) = shared.opts.secrets.get(&id) else {
        if m.required {
            return Err(BuildError::SecretNotFound(id));
        }
        return Ok(());
    };
    if let Some(var) = &m.env {
        let bytes = match value {
            Secret::Value(v) => v.clone(),
            Secret::File(f) => std::fs::read(f).map_err(|e| BuildError::io(f, e))?,
        };
        p.env
            .push((var.clone(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    let Some(target) = &m.target else {
        return Ok(());
    };
    // A private copy, so mode and owner can be set without touching the user's file.
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).map_err(|e| BuildError::io(&secrets, e))?;
    let file = secrets.join(i.to_string());
    match value {
        Secret::Value(v) => std::fs::write(&file, v),
        Secret::File(f) => std::fs::copy(f, &file).map(|_| ()),
    }
    .map_err(|e| BuildError::io(&file, e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        &file,
        std::fs::Permissions::from_mode(m.mode.unwrap_or(0o400)),
    )
    .map_err(|e| BuildError::io(&file, e))?;
    std::os::unix::fs::chown(&file, m.uid.or(Some(0)), m.gid.or(Some(0)))
        .map_err(|e| BuildError::io(&file, e))?;
    p.mounts.push(bind_mount(&file, target, true));
    Ok(())
}

/// `source` under `root`, refusing paths (and symlinks) that leave it.
fn inside(root: &Path, source: &str) -> Result<PathBuf, BuildError> {
    let joined = root.join(source.trim_start_matches('/'));
    let real = joined
        .canonicalize()
        .map_err(|_| BuildError::SourceNotFound {
            path: source.to_string(),
            ignored: false,
        })?;
    let root = root.canonicalize().map_err(|e| BuildError::io(root, e))?;
    if !real.starts_with(&root) {
        return Err(BuildError::OutsideContext {
            path: source.to_string(),
        });
    }
    Ok(real)
}

/// A writable stand-in for a `rw` bind: writes go to a scratch copy, never to the source.
fn writable_copy(source: &Path, at: &Path, p: &mut Prepared) -> Result<PathBuf, BuildError> {
    std::fs::create_dir_all(at).map_err(|e| BuildError::io(at, e))?;
    if source.is_dir() {
        let (upper, work, merged) = (at.join("upper"), at.join("work"), at.join("merged"));
        for d in [&upper, &work, &merged] {
            std::fs::create_dir_all(d).map_err(|e| BuildError::io(d, e))?;
        }
        let data = format!(
            "lowerdir={},upperdir={},workdir={}{}",
            source.display(),
            upper.display(),
            work.display(),
            rbuild_store::userns::overlay_options()
        );
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| BuildError::io(&merged, std::io::Error::other(e.to_string())))?;
        p._overlays.push(Unmount(merged.clone()));
        Ok(merged)
    } else {
        let copy = at.join("file");
        std::fs::copy(source, &copy).map_err(|e| BuildError::io(&copy, e))?;
        Ok(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::mount_target;

    #[test]
    fn targets_resolve_against_the_working_directory() {
        assert_eq!(mount_target(None, "/src", 1).unwrap(), "/src");
        assert_eq!(mount_target(Some("out"), "/src/", 1).unwrap(), "/src/out");
        assert_eq!(mount_target(Some("./a/../b"), "/w", 1).unwrap(), "/w/b");
        assert_eq!(mount_target(Some("/abs/"), "/w", 1).unwrap(), "/abs");
        let err = mount_target(None, "/", 7).unwrap_err().to_string();
        assert!(err.contains("invalid mount target \"/\""), "{err}");
    }
}
