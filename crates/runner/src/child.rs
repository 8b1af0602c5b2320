//! The container side of `clone`: everything here runs in a copy of a possibly multithreaded
//! parent, so it only makes raw system calls on memory prepared beforehand — no allocation,
//! no locks, no glibc `fork` (whose atfork handlers take malloc's locks).

use std::ffi::{CString, c_char, c_int};
use std::os::fd::RawFd;

use nix::libc;

use crate::plan::{self, Op};
use crate::syscall::LinuxSyscall;

/// What went wrong in the child, sent to the parent over the error pipe.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Report {
    /// One of the `STAGE_*` constants.
    pub stage: u32,
    /// Index of the failed plan step.
    pub index: u32,
    /// The errno.
    pub errno: i32,
}

pub(crate) const STAGE_SETUP: u32 = 1;
pub(crate) const STAGE_EXEC: u32 = 2;
pub(crate) const STAGE_STDIO: u32 = 3;
pub(crate) const STAGE_FORK: u32 = 4;

/// Everything the child needs, prepared by the parent.
pub(crate) struct ChildContext {
    pub ops: Vec<Op>,
    /// Absolute paths to try in order (the command, or PATH candidates).
    pub candidates: Vec<CString>,
    pub argv: Vec<*const c_char>,
    pub envp: Vec<*const c_char>,
    pub sync_read: RawFd,
    pub sync_write: RawFd,
    pub error_read: RawFd,
    pub error_write: RawFd,
    /// Descriptors to install as 0, 1, 2 (`-1`: keep the inherited one).
    pub stdio: [RawFd; 3],
    pub init: bool,
    pub tty: bool,
}

fn report(fd: RawFd, stage: u32, index: u32, errno: i32) -> ! {
    let r = Report {
        stage,
        index,
        errno,
    };
    // SAFETY: writing a plain repr(C) struct to a pipe, then exiting without unwinding.
    unsafe {
        libc::write(
            fd,
            (&r as *const Report).cast(),
            std::mem::size_of::<Report>(),
        );
        libc::_exit(125)
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The child's life: wait for the parent, set up, exec (through a minimal init if asked).
///
/// # Safety
/// Must only be called in the child right after `clone`, with `ctx` fully prepared.
pub(crate) unsafe fn child_main(ctx: &ChildContext) -> ! {
    // SAFETY: plain system calls on descriptors and memory the parent prepared.
    unsafe {
        // Signal dispositions are inherited, and an ignored signal stays ignored across
        // exec (Rust ignores SIGPIPE; a monitor may ignore SIGHUP): a shell could then not
        // even trap it. Start the container with every signal at its default, unblocked.
        for sig in 1..65 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::close(ctx.sync_write);
        libc::close(ctx.error_read);
        // The container does not outlive the thread that started it (rbuild is daemonless:
        // nothing else would wait for it and remove its cgroup).
        // (If the parent died before this, the read below sees EOF and we exit.)
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        // Wait until the parent has put us in our cgroup (and written id maps).
        let mut byte = 0u8;
        loop {
            let n = libc::read(ctx.sync_read, (&mut byte as *mut u8).cast(), 1);
            if n == 1 {
                break;
            }
            if n == 0 || errno() != libc::EINTR {
                libc::_exit(125);
            }
        }
        libc::close(ctx.sync_read);
        for (target, &fd) in ctx.stdio.iter().enumerate() {
            if fd >= 0 && libc::dup2(fd, target as c_int) < 0 {
                report(ctx.error_write, STAGE_STDIO, target as u32, errno());
            }
        }
        // Nothing of the parent's leaks into the container past exec.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if let Err(f) = plan::apply(&ctx.ops, &mut LinuxSyscall) {
            report(ctx.error_write, STAGE_SETUP, f.index as u32, f.errno as i32);
        }
        // Changing credentials cleared the parent-death signal: set it again.
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if !ctx.init {
            exec(ctx);
        }
        // A minimal init as PID 1: the command runs as its child; we reap and forward.
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, &mut old);
        let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
        if pid < 0 {
            report(ctx.error_write, STAGE_FORK, 0, errno());
        }
        if pid == 0 {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            exec(ctx);
        }
        libc::close(ctx.error_write);
        init_loop(pid as libc::pid_t, &all)
    }
}

/// Start the command: new session, controlling terminal, then each candidate path.
unsafe fn exec(ctx: &ChildContext) -> ! {
    // SAFETY: the argv/envp arrays are NULL-terminated and point into live CStrings.
    unsafe {
        libc::setsid();
        if ctx.tty {
            libc::ioctl(0, libc::TIOCSCTTY, 0);
        }
        let mut best = libc::ENOENT;
        for path in &ctx.candidates {
            libc::execve(path.as_ptr(), ctx.argv.as_ptr(), ctx.envp.as_ptr());
            let e = errno();
            // Keep looking past missing entries; remember a more telling error.
            if e != libc::ENOENT && e != libc::ENOTDIR {
                best = e;
            }
        }
        report(ctx.error_write, STAGE_EXEC, 0, best)
    }
}

/// Reap every child; forward every other signal to the command; exit with its status.
unsafe fn init_loop(child: libc::pid_t, all: &libc::sigset_t) -> ! {
    // SAFETY: signal and wait system calls on our own children.
    unsafe {
        loop {
            let sig = libc::sigwaitinfo(all, std::ptr::null_mut());
            if sig < 0 {
                continue;
            }
            if sig != libc::SIGCHLD {
                libc::kill(child, sig);
                continue;
            }
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    };
                    libc::_exit(code);
                }
            }
        }
    }
}
