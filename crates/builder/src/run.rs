//! Executing a RUN step: the stage's snapshot layers become an overlay's lower dirs, the
//! command runs in a real container (the runner), its output streams to a callback, and the
//! container's upper directory — what the command changed — is left for the store to turn
//! into the step's layer. Mount-point stubs the runtime had to create (`/etc/hosts`, `/proc`
//! …) are removed from it when the stage did not have them, so they never leak into layers.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rbuild_runner::{ContainerConfig, Network, Rootfs, RunOptions, Stdio};

use crate::error::BuildError;
use crate::lower;

/// What a RUN step executes, fully resolved.
#[derive(Debug, Clone)]
pub struct RunStep {
    /// Unique id for the container (names its cgroup).
    pub id: String,
    /// The stage's layers, bottom first.
    pub lower: Vec<PathBuf>,
    /// argv (shell form already wrapped in the stage's SHELL).
    pub args: Vec<String>,
    /// `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// Working directory (created if missing).
    pub cwd: String,
    /// Who runs it.
    pub user: Option<rbuild_runner::Identity>,
    /// Host network (the build default) or none.
    pub network: Network,
    /// With [`Network::None`]: an existing loopback-only network namespace to join (the
    /// build's shared one, see [`rbuild_runner::LoopbackNetwork`]) instead of creating one.
    pub network_namespace: Option<PathBuf>,
    /// The step's `/etc/resolv.conf` when it is on a network (else the host's).
    pub resolv_conf: Option<String>,
    /// Extra mounts (`RUN --mount`).
    pub mounts: Vec<oci_spec::runtime::Mount>,
    /// The stage's platform (`linux/arm64`), to explain a program this machine cannot run.
    pub platform: String,
}

/// How RUN steps are isolated (buildah's `--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A container: namespaces, overlay root, cgroups, seccomp (the default).
    Oci,
    /// A chroot into a copy of the stage's files, without namespaces (see
    /// [`rbuild_runner::chroot`]): for builds inside unprivileged containers.
    Chroot,
}

static ISOLATION: std::sync::OnceLock<Isolation> = std::sync::OnceLock::new();

/// Choose the isolation of this process's RUN steps (`--isolation`); without a choice it is
/// [`Isolation::Oci`] when namespaces can be created, else [`Isolation::Chroot`]. The first
/// choice (or use) holds for the process.
pub fn set_isolation(isolation: Isolation) {
    let _ = ISOLATION.set(isolation);
}

/// The isolation RUN steps use (chosen, or probed once).
pub fn isolation() -> Isolation {
    *ISOLATION.get_or_init(|| {
        if rbuild_runner::chroot::namespaces_available() {
            Isolation::Oci
        } else {
            Isolation::Chroot
        }
    })
}

/// Run `step` in a container whose directory is `dir`. Output chunks go to `output` as they
/// come. On success returns the upper directory (`dir/upper`); on failure the exit code.
pub fn run_step(
    step: &RunStep,
    dir: &Path,
    mut output: impl FnMut(&[u8]),
) -> Result<Result<PathBuf, i32>, BuildError> {
    if isolation() == Isolation::Chroot {
        return run_chroot(step, dir, output);
    }
    let caps = rbuild_runner::caps::docker_default();
    let seccomp = rbuild_runner::seccomp::docker_default(&caps).map_err(runner_err)?;
    let opts = RunOptions {
        args: step.args.clone(),
        env: step.env.clone(),
        cwd: step.cwd.clone(),
        user: step.user.clone(),
        hostname: "buildkitsandbox".into(),
        network: step.network,
        mounts: step.mounts.clone(),
        seccomp: Some(seccomp),
        ..Default::default()
    };
    let mut spec = rbuild_runner::docker_spec(&opts).map_err(runner_err)?;
    if let (Network::None, Some(path)) = (step.network, &step.network_namespace) {
        rbuild_runner::join_network(&mut spec, path.clone());
    }
    let mount_points: Vec<String> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().to_string_lossy().to_string())
        .chain(["/etc/hosts", "/etc/resolv.conf"].map(String::from))
        .collect();
    let (read_end, write_end) = nix::unistd::pipe().map_err(|e| BuildError::io(dir, e.into()))?;
    let stderr: OwnedFd = write_end.try_clone().map_err(|e| BuildError::io(dir, e))?;
    let stdin: OwnedFd = std::fs::File::open("/dev/null")
        .map_err(|e| BuildError::io("/dev/null", e))?
        .into();
    let config = ContainerConfig {
        id: step.id.clone(),
        dir: dir.to_path_buf(),
        spec,
        rootfs: Rootfs::Layers(step.lower.clone()),
        init: true,
        stdio: Stdio {
            stdin: Some(stdin),
            stdout: Some(write_end),
            stderr: Some(stderr),
            tty: false,
            ..Default::default()
        },
        remove: false,
        // The step's upper directory becomes its layer; the build syncs the store once
        // before recording RUN layers (`sync_store`) instead of each step's end syncing the
        // whole filesystem.
        volatile: true,
        etc: match &step.resolv_conf {
            Some(resolv) => rbuild_runner::EtcFiles::BuildOnNetwork {
                resolv: resolv.clone(),
            },
            None => rbuild_runner::EtcFiles::Build,
        },
    };
    let running = rbuild_runner::spawn(config).map_err(|e| match e {
        // A program of another architecture: say which emulation is missing rather than
        // "exec format error".
        rbuild_runner::Error::NotExecutable {
            errno: nix::errno::Errno::ENOEXEC,
            ..
        } => no_emulation(&step.platform).unwrap_or_else(|| runner_err(e)),
        e => runner_err(e),
    })?;
    if running.notes().rootfs_copied {
        let _ = running.wait();
        return Err(BuildError::io(
            dir,
            std::io::Error::other("RUN steps need overlayfs, which this kernel lacks"),
        ));
    }
    let mut reader = std::fs::File::from(read_end);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => output(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BuildError::io(dir, e)),
        }
    }
    let outcome = running.wait().map_err(runner_err)?;
    let code = outcome.status.code();
    if code != 0 {
        return Ok(Err(code));
    }
    let upper = dir.join("upper");
    remove_mount_stubs(&upper, &step.lower, &mount_points);
    Ok(Ok(upper))
}

/// [`run_step`] under [`Isolation::Chroot`].
fn run_chroot(
    step: &RunStep,
    dir: &Path,
    mut output: impl FnMut(&[u8]),
) -> Result<Result<PathBuf, i32>, BuildError> {
    let unsupported = |what: &str| {
        BuildError::Container(format!("not supported yet with --isolation chroot: {what}"))
    };
    if !step.mounts.is_empty() {
        return Err(unsupported("RUN --mount and heredocs (they need mounts)"));
    }
    if step.network != Network::Host || step.network_namespace.is_some() {
        return Err(unsupported(
            "a RUN network other than the host's (it needs a network namespace)",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
    let (read_end, write_end) = nix::unistd::pipe().map_err(|e| BuildError::io(dir, e.into()))?;
    let chroot_step = rbuild_runner::chroot::ChrootStep {
        lowers: &step.lower,
        dir,
        args: &step.args,
        env: &step.env,
        cwd: &step.cwd,
        user: step.user.as_ref(),
        output: write_end,
    };
    let (result, read) = std::thread::scope(|s| {
        let runner = s.spawn(move || rbuild_runner::chroot::run(&chroot_step));
        let mut reader = std::fs::File::from(read_end);
        let mut buf = [0u8; 16 * 1024];
        let read = loop {
            match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => output(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        (runner.join(), read)
    });
    read.map_err(|e| BuildError::io(dir, e))?;
    let (code, upper) = result
        .map_err(|_| BuildError::Container("the chroot step's thread panicked".into()))?
        .map_err(runner_err)?;
    match upper {
        Some(upper) if code == 0 => Ok(Ok(upper)),
        _ => Ok(Err(code)),
    }
}

/// Remove empty files and directories the runtime created in `upper` as mount points, where
/// the stage had nothing, and then their parents that became empty the same way (a parent
/// the stage had is removed only when it was copied up unchanged). Used for RUN layers and
/// for `rbuild commit`.
pub fn remove_mount_stubs(upper: &Path, lower: &[PathBuf], mount_points: &[String]) {
    for dest in mount_points {
        let mut path = dest.trim_end_matches('/').to_string();
        while !path.is_empty() && path != "/" {
            let full = upper.join(path.trim_start_matches('/'));
            let Ok(meta) = full.symlink_metadata() else {
                break;
            };
            let empty = if meta.is_dir() {
                std::fs::read_dir(&full).is_ok_and(|mut d| d.next().is_none())
            } else {
                meta.is_file() && meta.len() == 0
            };
            if !empty {
                break;
            }
            if let Some((_, below)) = lower::lookup(lower, &path) {
                // Copied up only to hold a stub: drop it when nothing about it changed.
                use std::os::unix::fs::MetadataExt;
                let same = below.is_dir()
                    && meta.is_dir()
                    && below.mode() == meta.mode()
                    && below.uid() == meta.uid()
                    && below.gid() == meta.gid()
                    && !rbuild_store::layer::is_opaque(&full);
                if !same {
                    break;
                }
            }
            let removed = if meta.is_dir() {
                std::fs::remove_dir(&full)
            } else {
                std::fs::remove_file(&full)
            };
            if removed.is_err() {
                break;
            }
            path = Path::new(&path)
                .parent()
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
        }
    }
}

/// Why `platform`'s programs cannot run here, when that is the case.
fn no_emulation(platform: &str) -> Option<BuildError> {
    let arch = platform.split('/').nth(1)?;
    let dir = std::path::Path::new(rbuild_runner::binfmt::BINFMT_DIR);
    let e = rbuild_runner::binfmt::can_run(arch, dir).err()?;
    Some(BuildError::NoEmulation {
        platform: platform.to_string(),
        reason: e.to_string(),
    })
}

fn runner_err(e: rbuild_runner::Error) -> BuildError {
    BuildError::Container(e.to_string())
}
