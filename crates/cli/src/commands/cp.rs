//! `rbuild cp [-L] CONTAINER:SRC DEST` and `rbuild cp [-L] SRC CONTAINER:DEST`: copy files out
//! of or into a container, running or not. Paths are resolved inside the container (its
//! symlinks cannot lead to the host); a running container is reached through
//! `/proc/PID/root` (its mounts and volumes included), a stopped one through its layers
//! (reading) or its upper dir (writing).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::Args;
use rbuild_runner::Rootfs;
use rbuild_runner::lifecycle::{Container, Status};
use rbuild_runner::resolve::resolve_in_rootfs;
use rbuild_runner::rootfs::RootfsSource;

use super::Globals;
use super::common::store_root;
use super::containers::find;

/// Arguments of `rbuild cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Follow a symbolic link given as the source
    #[arg(short = 'L', long = "follow-link")]
    pub follow: bool,
    /// Accepted for docker compatibility (ownership is always kept, as with cp -a)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Source: CONTAINER:PATH or a local path
    pub source: String,
    /// Destination: CONTAINER:PATH or a local path
    pub dest: String,
}

/// `CONTAINER:PATH` (a local path with a `:` must start with `/` or `.`).
fn split(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    s.split_once(':')
}

/// The container's filesystem as the resolver sees it, and where its files are on the host.
fn view(c: &Container) -> anyhow::Result<(RootfsSource, Option<PathBuf>)> {
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
            },
            None,
        ),
    })
}

/// `path` resolved in the container: its parent's links followed (and its own with `follow`).
fn resolve(source: &RootfsSource, path: &str, follow: bool) -> anyhow::Result<PathBuf> {
    let p = Path::new(path);
    let name = p.file_name();
    Ok(match (follow, name) {
        (false, Some(name)) => {
            resolve_in_rootfs(source, p.parent().unwrap_or(Path::new("/")))?.join(name)
        }
        _ => resolve_in_rootfs(source, p)?,
    })
}

fn cp(from: &Path, to: &Path) -> anyhow::Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg("--no-dereference")
        .arg(from)
        .arg(to)
        .status()
        .context("running cp")?;
    if !status.success() {
        bail!("copying {} to {} failed", from.display(), to.display());
    }
    Ok(())
}

/// Run `rbuild cp`.
pub fn run(args: CpArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let root = store_root(globals);
    match (split(&args.source), split(&args.dest)) {
        (Some((name, path)), None) => {
            let c = find(&root, name)?;
            let (source, host) = view(&c)?;
            let inside = resolve(&source, path, args.follow)?;
            let rel = inside.strip_prefix("/").unwrap_or(&inside);
            let from = match (host, &source) {
                (Some(h), _) => h.join(rel),
                (None, RootfsSource::Overlay { lowers, upper, .. }) => {
                    let layers: Vec<PathBuf> = lowers.iter().chain([upper]).cloned().collect();
                    let top = layers
                        .iter()
                        .rev()
                        .map(|l| l.join(rel))
                        .find(|p| p.symlink_metadata().is_ok())
                        .with_context(|| {
                            format!("Could not find the file {path} in container {name}")
                        })?;
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
                        cp(&merged, Path::new(&args.dest))?;
                        return Ok(ExitCode::SUCCESS);
                    }
                    top
                }
                (None, RootfsSource::Directory(d)) => d.join(rel),
            };
            if from.symlink_metadata().is_err() {
                bail!("Could not find the file {path} in container {name}");
            }
            cp(&from, Path::new(&args.dest))?;
        }
        (None, Some((name, path))) => {
            let c = find(&root, name)?;
            let (source, host) = view(&c)?;
            let inside = resolve(&source, path, true)?;
            let rel = inside.strip_prefix("/").unwrap_or(&inside);
            let stopped = host.is_none();
            let base = host.unwrap_or_else(|| c.dir().join("upper"));
            let to = base.join(rel);
            if let (true, RootfsSource::Overlay { lowers, .. }) = (stopped, &source)
                && lowers.iter().any(|l| l.join(rel).is_dir())
            {
                // A directory of the image: copy into it (made in the upper dir).
                std::fs::create_dir_all(&to)
                    .with_context(|| format!("creating {}", to.display()))?;
            }
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            if !Path::new(&args.source).exists() {
                bail!("no such file or directory: {}", args.source);
            }
            cp(Path::new(&args.source), &to)?;
        }
        _ => bail!(
            "copying between containers or between local paths is not supported: one of SRC and DEST must be CONTAINER:PATH"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
