//! Starting a container and waiting for it: prepare the directories and the plan in the
//! parent, `clone` into new namespaces, let the child set itself up (see `child`), then wait,
//! collect the exit status and OOM verdict, and remove the cgroup and directories.

use std::ffi::{CString, c_char};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::libc;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroup::Cgroup;
use crate::child::{self, ChildContext};
use crate::error::Error;
use crate::handshake::{read_report, reap, receive_console, report_error, write_id_maps};
use crate::plan::Op;
use crate::process::{ProcessSpec, process_ops};
use crate::rootfs::{RootfsSource, RootfsSpec, rootfs_ops};
use crate::{caps, etc, seccomp};

/// Docker's default `PATH`, used to find the command when the environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The image's filesystem for a container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rootfs {
    /// Unpacked layer directories, bottom layer first: an overlayfs with a per-container
    /// upper dir (or, without overlayfs, a copy).
    Layers(Vec<PathBuf>),
    /// A ready root filesystem directory, used in place (changes land in it).
    Directory(PathBuf),
    /// Unpacked layer directories, bottom first, copied into the container's directory
    /// (what [`Rootfs::Layers`] falls back to without overlayfs).
    Copy(Vec<PathBuf>),
}

/// The container's standard streams; `None` inherits the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    /// Standard input.
    pub stdin: Option<OwnedFd>,
    /// Standard output.
    pub stdout: Option<OwnedFd>,
    /// Standard error.
    pub stderr: Option<OwnedFd>,
    /// The streams are a terminal: make it the controlling terminal.
    pub tty: bool,
    /// Allocate a terminal inside the container (in its own `/dev/pts`) as its standard
    /// streams and controlling terminal; [`Running::take_console`] gives its master side.
    /// The other fields are then ignored.
    pub console: Option<ConsoleSize>,
}

/// The initial size of a container's terminal (0×0: leave it to the kernel's default).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Everything needed to run one container.
#[derive(Debug)]
pub struct ContainerConfig {
    /// Unique id (names the cgroup).
    pub id: String,
    /// The container's own directory (upper/work dirs, /etc files), created if missing.
    pub dir: PathBuf,
    /// The OCI runtime spec: process, mounts, namespaces, resources, seccomp.
    pub spec: Spec,
    /// The root filesystem.
    pub rootfs: Rootfs,
    /// Run a minimal init as PID 1 that reaps zombies and forwards signals.
    pub init: bool,
    /// Standard streams.
    pub stdio: Stdio,
    /// Remove `dir` when the container ends.
    pub remove: bool,
    /// The writable layer's changes need no durability: the container's directory goes when
    /// it ends (`--rm`), or the caller syncs what it keeps (a build syncs the store before it
    /// records a RUN step's layer). Its overlay is then mounted `volatile` (Linux 5.10+), so
    /// the container's end does not sync the whole filesystem its upper directory is on.
    pub volatile: bool,
    /// Which `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` it is given.
    pub etc: crate::etc::EtcFiles,
}

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    /// The shell's view: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// The end of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// How the process ended.
    pub status: ExitStatus,
    /// The memory limit's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

/// What the caller may want to know about how the container was set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notes {
    /// overlayfs was unavailable, so the layers were copied into the container's directory.
    pub rootfs_copied: bool,
}

/// A started container.
#[derive(Debug)]
pub struct Running {
    pid: libc::pid_t,
    cgroup: Option<Cgroup>,
    dir: PathBuf,
    remove: bool,
    notes: Notes,
    console: Option<OwnedFd>,
    waited: bool,
}

/// The clone flags for the spec's new namespaces, whether the container gets its own
/// network and cgroup namespaces, and the existing namespaces it joins (by path: only a
/// network namespace, for `--network container:NAME`).
#[allow(clippy::type_complexity)]
fn clone_flags(
    spec: &Spec,
) -> Result<(libc::c_int, bool, bool, Vec<(PathBuf, libc::c_int)>), Error> {
    let mut flags = 0;
    let (mut net, mut cgroupns) = (false, false);
    let mut joins = Vec::new();
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in &namespaces {
        if let Some(path) = ns.path() {
            if ns.typ() != LinuxNamespaceType::Network {
                return Err(Error::InvalidSpec(format!(
                    "joining an existing {:?} namespace is not supported",
                    ns.typ()
                )));
            }
            joins.push((path.clone(), libc::CLONE_NEWNET));
            continue;
        }
        flags |= match ns.typ() {
            LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
            LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
            LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
            LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
            LinuxNamespaceType::Network => {
                net = true;
                libc::CLONE_NEWNET
            }
            LinuxNamespaceType::User => libc::CLONE_NEWUSER,
            LinuxNamespaceType::Cgroup => {
                cgroupns = true;
                0
            }
            LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
        };
    }
    if flags & libc::CLONE_NEWNS == 0 {
        return Err(Error::InvalidSpec(
            "a container needs its own mount namespace".into(),
        ));
    }
    Ok((flags, net, cgroupns, joins))
}

/// Whether the kernel offers overlayfs (otherwise layers are copied).
pub fn overlay_supported() -> bool {
    fs::read_to_string("/proc/filesystems")
        .is_ok_and(|t| t.lines().any(|l| l.ends_with("\toverlay")))
}

struct Prepared {
    ops: Vec<Op>,
    notes: Notes,
    /// Where the rootfs steps end and the process steps begin.
    rootfs_end: usize,
}

fn prepare(config: &mut ContainerConfig, own_net: bool) -> Result<Prepared, Error> {
    let dir = config.dir.clone();
    let mut notes = Notes::default();
    let merged = dir.join("merged");
    let source = match &config.rootfs {
        Rootfs::Directory(d) => RootfsSource::Directory(d.clone()),
        Rootfs::Layers(layers) if overlay_supported() => {
            for d in ["upper", "work", "merged"] {
                fs::create_dir_all(dir.join(d)).map_err(Error::io(dir.join(d)))?;
            }
            RootfsSource::Overlay {
                lowers: layers.clone(),
                upper: dir.join("upper"),
                work: dir.join("work"),
                volatile: config.volatile && crate::rootfs::volatile_supported(),
            }
        }
        Rootfs::Layers(layers) | Rootfs::Copy(layers) => {
            crate::copy::copy_layers(layers, &dir.join("rootfs"))?;
            notes.rootfs_copied = true;
            RootfsSource::Directory(dir.join("rootfs"))
        }
    };
    fs::create_dir_all(&merged).map_err(Error::io(&merged))?;
    etc::provide(&mut config.spec, &dir, own_net, &config.etc)?;
    let spec = &config.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("the spec has no process".into()))?;
    let mut ops = rootfs_ops(&RootfsSpec {
        merged: &merged,
        source: &source,
        mounts: spec.mounts().as_deref().unwrap_or_default(),
        masked_paths: linux.masked_paths().as_deref().unwrap_or_default(),
        readonly_paths: linux.readonly_paths().as_deref().unwrap_or_default(),
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        own_network: own_net,
    })?;
    let rootfs_end = ops.len();
    let filter = linux
        .seccomp()
        .as_ref()
        .map(|s| seccomp::compile(s, process))
        .transpose()?;
    ops.extend(process_ops(&ProcessSpec {
        process,
        hostname: spec.hostname().as_deref(),
        last_cap: caps::last_cap(),
        seccomp: filter.as_deref(),
    })?);
    Ok(Prepared {
        ops,
        notes,
        rootfs_end,
    })
}

/// The paths `execve` is tried with, inside the container.
pub(crate) fn exec_candidates(arg0: &str, env: &[String]) -> Result<Vec<CString>, Error> {
    let c = |s: String| {
        CString::new(s).map_err(|_| Error::InvalidSpec("command contains a NUL byte".into()))
    };
    if arg0.contains('/') {
        return Ok(vec![c(arg0.to_owned())?]);
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .map(|d| c(format!("{}/{arg0}", d.trim_end_matches('/'))))
        .collect()
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::Sys {
        call: "pipe2",
        errno,
    })
}

pub(crate) fn cstrings(v: &[String], what: &str) -> Result<Vec<CString>, Error> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::InvalidSpec(format!("{what} contains a NUL byte")))
        })
        .collect()
}

pub(crate) fn pointers(v: &[CString]) -> Vec<*const c_char> {
    v.iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Start a container; the returned handle must be waited for.
pub fn spawn(mut config: ContainerConfig) -> Result<Running, Error> {
    let (flags, own_net, cgroupns, joins) = clone_flags(&config.spec)?;
    let created_dir = !config.dir.exists();
    fs::create_dir_all(&config.dir).map_err(Error::io(&config.dir))?;
    let mut cgroup = None;
    let result = start(&mut config, flags, own_net, cgroupns, &joins, &mut cgroup);
    match result {
        Ok((pid, notes, console)) => Ok(Running {
            pid,
            cgroup,
            dir: config.dir,
            remove: config.remove,
            notes,
            console,
            waited: false,
        }),
        Err(e) => {
            if let Some(mut cg) = cgroup {
                let _ = cg.remove();
            }
            if created_dir || config.remove {
                let _ = fs::remove_dir_all(&config.dir);
            }
            Err(e)
        }
    }
}

fn start(
    config: &mut ContainerConfig,
    flags: libc::c_int,
    own_net: bool,
    cgroupns: bool,
    joins: &[(PathBuf, libc::c_int)],
    cgroup_slot: &mut Option<Cgroup>,
) -> Result<(libc::pid_t, Notes, Option<OwnedFd>), Error> {
    let Prepared {
        mut ops,
        notes,
        rootfs_end,
    } = prepare(config, own_net || !joins.is_empty())?;
    // Namespaces joined by path are entered first (held open until the child reported).
    let mut joined = Vec::new();
    for (path, nstype) in joins {
        let fd: OwnedFd = fs::File::open(path).map_err(Error::io(path))?.into();
        ops.insert(
            joined.len(),
            Op::Setns {
                fd: fd.as_raw_fd(),
                nstype: *nstype,
            },
        );
        joined.push(fd);
    }
    let rootfs_end = rootfs_end + joined.len();
    // The terminal is opened after pivot_root (in the container's devpts), before the
    // process steps drop privileges.
    let console = match config.stdio.console {
        Some(size) => {
            let (parent_end, child_end) = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|errno| Error::Sys {
                call: "socketpair",
                errno,
            })?;
            let user = config
                .spec
                .process()
                .as_ref()
                .map(|p| (p.user().uid(), p.user().gid()))
                .unwrap_or_default();
            ops.insert(
                rootfs_end,
                Op::Console {
                    socket: child_end.as_raw_fd(),
                    uid: user.0,
                    gid: user.1,
                    rows: size.rows,
                    cols: size.cols,
                },
            );
            Some((parent_end, child_end))
        }
        None => None,
    };
    if own_net {
        ops.insert(0, Op::LoopbackUp);
    }
    if cgroupns {
        // After the parent has placed us in our cgroup, so it becomes the namespace's root.
        ops.insert(
            0,
            Op::Unshare {
                flags: libc::CLONE_NEWCGROUP,
            },
        );
    }
    let process = config.spec.process().clone().unwrap_or_default();
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::InvalidSpec("the process has no command".into()))?;
    let env = process.env().clone().unwrap_or_default();
    let candidates = exec_candidates(arg0, &env)?;
    let argv_c = cstrings(&args, "an argument")?;
    let env_c = cstrings(&env, "an environment variable")?;
    let resources = config
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone());
    *cgroup_slot = Some(Cgroup::create(&config.id, resources.as_ref())?);
    let (sync_r, sync_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let fd = |o: &Option<OwnedFd>| o.as_ref().map_or(-1, |f| f.as_raw_fd());
    let ctx = ChildContext {
        ops,
        candidates,
        argv: pointers(&argv_c),
        envp: pointers(&env_c),
        sync_read: sync_r.as_raw_fd(),
        sync_write: sync_w.as_raw_fd(),
        error_read: err_r.as_raw_fd(),
        error_write: err_w.as_raw_fd(),
        stdio: [
            fd(&config.stdio.stdin),
            fd(&config.stdio.stdout),
            fd(&config.stdio.stderr),
        ],
        init: config.init,
        tty: config.stdio.tty || console.is_some(),
    };
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack); the child only runs child_main,
    // which makes raw system calls on the context prepared above and never returns.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD, 0, 0, 0, 0) };
    if pid < 0 {
        return Err(Error::Sys {
            call: "clone",
            errno: Errno::last(),
        });
    }
    if pid == 0 {
        // SAFETY: we are the freshly cloned child.
        unsafe { child::child_main(&ctx) }
    }
    let pid = pid as libc::pid_t;
    drop(sync_r);
    drop(err_w);
    config.stdio = Stdio::default();
    let console = console.map(|(parent_end, child_end)| {
        drop(child_end);
        parent_end
    });
    let go = (|| {
        if let Some(cg) = cgroup_slot.as_ref() {
            cg.add(pid)?;
        }
        if flags & libc::CLONE_NEWUSER != 0 {
            write_id_maps(pid, &config.spec)?;
        }
        nix::unistd::write(&sync_w, &[1]).map_err(|errno| Error::Sys {
            call: "write",
            errno,
        })?;
        Ok::<(), Error>(())
    })();
    drop(sync_w);
    let report = go.and_then(|()| read_report(err_r.as_raw_fd()));
    let report = report.and_then(|r| match (r, &console) {
        (None, Some(sock)) => receive_console(sock).map(|m| (None, Some(m))),
        (r, _) => Ok((r, None)),
    });
    match report {
        Ok((None, master)) => Ok((pid, notes, master)),
        Ok((Some(r), _)) => {
            reap(pid);
            Err(report_error(&r, &ctx, arg0))
        }
        Err(e) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            reap(pid);
            Err(e)
        }
    }
}

impl Running {
    /// A process started in an existing container (no cgroup or directory of its own).
    pub(crate) fn joined(pid: libc::pid_t, console: Option<OwnedFd>) -> Running {
        Running {
            pid,
            cgroup: None,
            dir: PathBuf::new(),
            remove: false,
            notes: Notes::default(),
            console,
            waited: false,
        }
    }

    /// The container's first process as seen from the host.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The master side of the container's terminal (with [`Stdio::console`]), once.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    /// How the container was set up.
    pub fn notes(&self) -> Notes {
        self.notes
    }

    /// The container's cgroup directories.
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup
            .iter()
            .flat_map(|c| c.paths().map(Path::to_path_buf))
            .collect()
    }

    /// Send a signal to the container's first process.
    pub fn signal(&self, signal: i32) -> Result<(), Error> {
        // SAFETY: kill with a pid we own and have not reaped yet.
        if unsafe { libc::kill(self.pid, signal) } < 0 {
            return Err(Error::Sys {
                call: "kill",
                errno: Errno::last(),
            });
        }
        Ok(())
    }

    /// Block until the container's first process has ended, without reaping it (its PID
    /// stays reserved until [`Running::wait`]).
    pub fn wait_exit_ready(&self) -> Result<(), Error> {
        loop {
            // SAFETY: a zeroed siginfo is valid; waitid fills it.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: waiting for our own child, leaving it waitable.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if r == 0 {
                return Ok(());
            }
            if Errno::last() != Errno::EINTR {
                return Err(Error::Sys {
                    call: "waitid",
                    errno: Errno::last(),
                });
            }
        }
    }

    /// Wait for the container to end, then remove its cgroup (and directory if asked).
    pub fn wait(mut self) -> Result<Outcome, Error> {
        self.waited = true;
        let status = reap(self.pid).ok_or(Error::Sys {
            call: "waitpid",
            errno: Errno::ECHILD,
        })?;
        let oom_killed = self.cgroup.as_ref().is_some_and(Cgroup::oom_killed);
        self.cleanup()?;
        Ok(Outcome { status, oom_killed })
    }

    fn cleanup(&mut self) -> Result<(), Error> {
        let cg = match self.cgroup.take() {
            Some(mut cg) => cg.remove(),
            None => Ok(()),
        };
        if self.remove {
            fs::remove_dir_all(&self.dir).map_err(Error::io(&self.dir))?;
        }
        cg
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.signal(libc::SIGKILL);
            reap(self.pid);
            let _ = self.cleanup();
        }
    }
}

/// Run a container to its end.
pub fn run(config: ContainerConfig) -> Result<Outcome, Error> {
    spawn(config)?.wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_searched_in_the_containers_path() {
        let env = vec!["PATH=/opt/bin:/bin".to_owned()];
        let c = exec_candidates("sh", &env).unwrap();
        assert_eq!(c, [c"/opt/bin/sh".to_owned(), c"/bin/sh".to_owned()]);
        let d = exec_candidates("ls", &[]).unwrap();
        assert_eq!(d.len(), 6);
        assert_eq!(d[0], c"/usr/local/sbin/ls".to_owned());
        assert_eq!(
            exec_candidates("./run", &env).unwrap(),
            [c"./run".to_owned()]
        );
    }
}
