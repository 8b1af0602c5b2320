//! Copying files out of and into a container, running or not (`docker cp`). Paths are
//! resolved inside the container (its symlinks cannot lead to the host); a running
//! container is reached through `/proc/PID/root` (its mounts and volumes included), a
//! stopped one through its layers (reading) or its upper dir (writing).

use std::path::{Path, PathBuf};
use std::process::Command;

use rbuild_runner::Rootfs;
use rbuild_runner::lifecycle::{Container, Status};
use rbuild_runner::resolve::resolve_in_rootfs;
use rbuild_runner::rootfs::RootfsSource;

use crate::Engine;
use crate::error::{EngineError, Result, ResultExt};

/// How `c`'s files are seen now, and the host directory that is its root, if one is.
fn view(c: &Container) -> Result<(RootfsSource, Option<PathBuf>)> {
    let st = c.state()?;
    if matches!(st.status, Status::Running | Status::Paused) && st.pid > 0 {
        let root = PathBuf::from(format!("/proc/{}/root", st.pid));
        return Ok((RootfsSource::Directory(root.clone()), Some(root)));
    }
    Ok(match &c.record.rootfs {
        Rootfs::Directory(d) => (RootfsSource::Directory(d.clone()), Some(d.clone())),
        Rootfs::Layers(l) | Rootfs::Copy(l) => (
            RootfsSource::Overlay {
                lowers: l.clone(),
                upper: c.dir().join("upper"),
                work: c.dir().join("work"),
                volatile: false,
            },
            None,
        ),
    })
}

/// `path` resolved in the container; its last component only followed with `follow`.
fn resolve(source: &RootfsSource, path: &str, follow: bool) -> Result<PathBuf> {
    let p = Path::new(path);
    let name = p.file_name();
    Ok(match (follow, name) {
        (false, Some(name)) => {
            resolve_in_rootfs(source, p.parent().unwrap_or(Path::new("/")))?.join(name)
        }
        _ => resolve_in_rootfs(source, p)?,
    })
}

/// `cp -a --no-dereference FROM TO`.
fn cp(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg("--no-dereference")
        .arg(from)
        .arg(to)
        .status()
        .context("running cp")?;
    if !status.success() {
        return Err(EngineError::Failed(format!(
            "copying {} to {} failed",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}

impl Engine {
    /// Copy `path` of the container `container` names to `dest` on the host (a symlink at
    /// `path` itself is followed only with `follow`).
    pub fn copy_from_container(
        &self,
        container: &str,
        path: &str,
        dest: &Path,
        follow: bool,
    ) -> Result<()> {
        let c = self.container(container)?;
        let (source, host) = view(&c)?;
        let inside = resolve(&source, path, follow)?;
        let rel = inside.strip_prefix("/").unwrap_or(&inside);
        let not_found = || format!("Could not find the file {path} in container {container}");
        let from = match (host, &source) {
            (Some(h), _) => h.join(rel),
            (None, RootfsSource::Overlay { lowers, upper, .. }) => {
                let layers: Vec<PathBuf> = lowers.iter().chain([upper]).cloned().collect();
                let top = layers
                    .iter()
                    .rev()
                    .map(|l| l.join(rel))
                    .find(|p| p.symlink_metadata().is_ok())
                    .ok_or_else(|| EngineError::NotFound(not_found()))?;
                if top.is_dir() {
                    // A directory is the merge of every layer's.
                    let staging = tempfile::Builder::new()
                        .prefix(".cp-")
                        .tempdir_in(c.store_root())?;
                    let merged = staging.path().join(top.file_name().unwrap_or_default());
                    let dirs: Vec<PathBuf> = layers
                        .iter()
                        .map(|l| l.join(rel))
                        .filter(|d| d.is_dir())
                        .collect();
                    rbuild_runner::copy::copy_layers(&dirs, &merged)?;
                    return cp(&merged, dest);
                }
                top
            }
            (None, RootfsSource::Directory(d)) => d.join(rel),
        };
        if from.symlink_metadata().is_err() {
            return Err(EngineError::NotFound(not_found()));
        }
        cp(&from, dest)
    }

    /// The metadata of `path` in the container `container` names (its last component not
    /// followed) and, for a symlink, its target: `docker cp`'s stat of a path.
    pub fn stat_in_container(
        &self,
        container: &str,
        path: &str,
    ) -> Result<(std::fs::Metadata, Option<PathBuf>)> {
        let c = self.container(container)?;
        let (source, host) = view(&c)?;
        let inside = resolve(&source, path, false)?;
        let rel = inside.strip_prefix("/").unwrap_or(&inside);
        let not_found = || {
            EngineError::NotFound(format!(
                "Could not find the file {path} in container {container}"
            ))
        };
        let at = match (host, &source) {
            (Some(h), _) => h.join(rel),
            (None, RootfsSource::Overlay { lowers, upper, .. }) => lowers
                .iter()
                .chain([upper])
                .rev()
                .map(|l| l.join(rel))
                .find(|p| p.symlink_metadata().is_ok())
                .ok_or_else(not_found)?,
            (None, RootfsSource::Directory(d)) => d.join(rel),
        };
        let meta = at.symlink_metadata().map_err(|_| not_found())?;
        let target = meta
            .file_type()
            .is_symlink()
            .then(|| std::fs::read_link(&at).ok())
            .flatten();
        Ok((meta, target))
    }

    /// Copy `source` on the host to `path` in the container `container` names (into it when
    /// it is a directory there).
    pub fn copy_to_container(&self, source: &Path, container: &str, path: &str) -> Result<()> {
        let c = self.container(container)?;
        let (view_source, host) = view(&c)?;
        let inside = resolve(&view_source, path, true)?;
        let rel = inside.strip_prefix("/").unwrap_or(&inside);
        let stopped = host.is_none();
        let base = host.unwrap_or_else(|| c.dir().join("upper"));
        let to = base.join(rel);
        if let (true, RootfsSource::Overlay { lowers, .. }) = (stopped, &view_source)
            && lowers.iter().any(|l| l.join(rel).is_dir())
        {
            // A directory of the image: copy into it (made in the upper dir).
            std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        if !source.exists() {
            return Err(EngineError::NotFound(format!(
                "no such file or directory: {}",
                source.display()
            )));
        }
        cp(source, &to)
    }
}
