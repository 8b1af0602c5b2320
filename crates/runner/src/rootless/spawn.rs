//! Starting a process in another PID namespace without entering it: in rootless mode this
//! process could join a container's PID namespace for its children but never return to its
//! own (owned by the host's user namespace), so a short-lived helper joins it instead and
//! clones the child with `CLONE_PARENT`: the child is still ours to wait for.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;

use crate::child::{ChildContext, child_main};
use crate::error::Error;

/// Clone a child running `ctx` (as `child_main`) in the PID namespace `ns`; returns its PID
/// (in this process's namespace), or the raw `clone` result's errno.
pub(crate) fn clone_in_pid_ns(ns: &OwnedFd, ctx: &ChildContext) -> Result<libc::pid_t, Error> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::Sys {
        call: "pipe2",
        errno,
    })?;
    // SAFETY: a fork-like clone; the helper only makes raw system calls and runs child_main
    // (made for a freshly cloned child) in its own clone, then exits.
    let helper = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
    if helper == 0 {
        // SAFETY: as above; every call gets valid descriptors and buffers.
        unsafe {
            let mut result: i64 = if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWPID) == 0 {
                libc::syscall(libc::SYS_clone, libc::CLONE_PARENT, 0, 0, 0, 0)
            } else {
                -1
            };
            if result == 0 {
                child_main(ctx)
            }
            if result < 0 {
                result = -i64::from(Errno::last_raw());
            }
            libc::write(w.as_raw_fd(), (&raw const result).cast(), 8);
            libc::_exit(0);
        }
    }
    if helper < 0 {
        return Err(Error::Sys {
            call: "clone",
            errno: Errno::last(),
        });
    }
    drop(w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(helper as i32), None);
    let mut buf = [0u8; 8];
    let got = nix::unistd::read(&r, &mut buf).unwrap_or(0);
    let result = i64::from_ne_bytes(buf);
    if got != 8 || result <= 0 {
        return Err(Error::Sys {
            call: "clone into the container's PID namespace",
            errno: Errno::from_raw(if got == 8 { -result as i32 } else { libc::EIO }),
        });
    }
    Ok(result as libc::pid_t)
}
