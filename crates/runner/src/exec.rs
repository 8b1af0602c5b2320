//! A new process in a running container (`rbuild exec`): the child joins the container's
//! IPC, UTS, network, cgroup and mount namespaces with `setns` (planned as [`Op::Setns`]
//! steps), is placed in its cgroups by the parent before it goes on, then takes the
//! process steps of a container start (ids, capabilities, seccomp, working directory) and
//! `execve`s. The PID namespace is entered by the parent for the clone only (`setns` on a
//! PID namespace changes where the caller's children go), so the new process gets a PID
//! inside the container.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::libc;
use oci_spec::runtime::{LinuxSeccomp, Process};

use crate::child::{self, ChildContext};
use crate::container::{Running, Stdio, cstrings, exec_candidates, pipe, pointers};
use crate::error::Error;
use crate::handshake::{read_report, reap, receive_console, report_error};
use crate::plan::Op;
use crate::process::{ProcessSpec, process_ops};
use crate::{caps, seccomp};

/// What to run where.
#[derive(Debug)]
pub struct ExecConfig {
    /// The container's first process on the host.
    pub pid: i32,
    /// The container's cgroup directories.
    pub cgroups: Vec<PathBuf>,
    /// The process: args, env, cwd, user, capabilities, rlimits, `no_new_privs`.
    pub process: Process,
    /// The container's seccomp profile.
    pub seccomp: Option<LinuxSeccomp>,
    /// Standard streams (a console is allocated in the container's `/dev/pts`).
    pub stdio: Stdio,
}

/// The namespaces joined, in order (the mount namespace last: the others are found
/// through `/proc` before it).
const NAMESPACES: [(&str, libc::c_int); 5] = [
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

fn ns_file(pid: i32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{name}"))
}

/// Open `pid`'s namespace `name` if it differs from ours.
fn open_ns(pid: i32, name: &str) -> Result<Option<OwnedFd>, Error> {
    let theirs = ns_file(pid, name);
    let their_ino = fs::metadata(&theirs).map_err(Error::io(&theirs))?.ino();
    let ours = fs::metadata(format!("/proc/self/ns/{name}")).map(|m| m.ino());
    if ours.is_ok_and(|i| i == their_ino) {
        return Ok(None);
    }
    fs::File::open(&theirs)
        .map(|f| Some(f.into()))
        .map_err(Error::io(&theirs))
}

fn setns(fd: &OwnedFd, nstype: libc::c_int) -> Result<(), Error> {
    // SAFETY: setns on an open namespace descriptor.
    if unsafe { libc::setns(fd.as_raw_fd(), nstype) } < 0 {
        return Err(Error::Sys {
            call: "setns",
            errno: Errno::last(),
        });
    }
    Ok(())
}

/// Start a process in the running container; the returned handle must be waited for.
pub fn exec(mut config: ExecConfig) -> Result<Running, Error> {
    let pid = config.pid;
    let mut held = Vec::new();
    let mut ops = Vec::new();
    for (name, nstype) in NAMESPACES {
        if let Some(fd) = open_ns(pid, name)? {
            ops.push(Op::Setns {
                fd: fd.as_raw_fd(),
                nstype,
            });
            held.push(fd);
        }
    }
    let process = config.process.clone();
    let filter = config
        .seccomp
        .as_ref()
        .map(|s| seccomp::compile(s, &process))
        .transpose()?;
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
            ops.push(Op::Console {
                socket: child_end.as_raw_fd(),
                uid: process.user().uid(),
                gid: process.user().gid(),
                rows: size.rows,
                cols: size.cols,
            });
            Some((parent_end, child_end))
        }
        None => None,
    };
    ops.extend(process_ops(&ProcessSpec {
        process: &process,
        hostname: None,
        last_cap: caps::last_cap(),
        seccomp: filter.as_deref(),
    })?);
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::InvalidSpec("the process has no command".into()))?
        .clone();
    let env = process.env().clone().unwrap_or_default();
    let candidates = exec_candidates(&arg0, &env)?;
    let argv_c = cstrings(&args, "an argument")?;
    let env_c = cstrings(&env, "an environment variable")?;
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
        init: false,
        tty: config.stdio.tty || console.is_some(),
    };
    let pid_ns = open_ns(pid, "pid")?;
    let child = match &pid_ns {
        // Rootless: there is no way back into our own PID namespace (the host's user
        // namespace owns it); a helper joins theirs and clones the child for us.
        Some(ns) if crate::rootless::active() => crate::rootless::spawn::clone_in_pid_ns(ns, &ctx)?,
        _ => {
            // Children of ours go into the container's PID namespace from now until we switch back.
            let own_pid_ns = match &pid_ns {
                Some(_) => Some(
                    fs::File::open("/proc/self/ns/pid_for_children")
                        .map(OwnedFd::from)
                        .map_err(Error::io("/proc/self/ns/pid_for_children"))?,
                ),
                None => None,
            };
            if let Some(ns) = &pid_ns {
                setns(ns, libc::CLONE_NEWPID)?;
            }
            // SAFETY: a fork-like clone; the child only runs child_main on the prepared context.
            let child = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
            if child == 0 {
                // SAFETY: we are the freshly cloned child.
                unsafe { child::child_main(&ctx) }
            }
            let cloned = Errno::last();
            if let Some(own) = &own_pid_ns {
                setns(own, libc::CLONE_NEWPID)?;
            }
            if child < 0 {
                return Err(Error::Sys {
                    call: "clone",
                    errno: cloned,
                });
            }
            child as libc::pid_t
        }
    };
    drop(sync_r);
    drop(err_w);
    config.stdio = Stdio::default();
    let console = console.map(|(parent_end, child_end)| {
        drop(child_end);
        parent_end
    });
    let go = (|| {
        for dir in &config.cgroups {
            let procs = dir.join("cgroup.procs");
            fs::write(&procs, child.to_string()).map_err(|source| Error::Cgroup {
                path: procs.clone(),
                source,
            })?;
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
    drop(held);
    match report {
        Ok((None, master)) => Ok(Running::joined(child, master)),
        Ok((Some(r), _)) => {
            reap(child);
            Err(report_error(&r, &ctx, &arg0))
        }
        Err(e) => {
            // SAFETY: killing our own unreaped child.
            unsafe { libc::kill(child, libc::SIGKILL) };
            reap(child);
            Err(e)
        }
    }
}
