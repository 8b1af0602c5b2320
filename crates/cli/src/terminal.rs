//! `rbuild run -t`: a pseudo-terminal for the container. Its slave side becomes the
//! container's standard streams and controlling terminal; this process puts its own terminal
//! in raw mode, copies bytes both ways, and passes window size changes on (SIGWINCH).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;
use nix::pty::{Winsize, openpty};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::termios::{self, SetArg, Termios};
use rbuild_runner::{ContainerConfig, Outcome, Stdio};

use crate::signals;

static MASTER: AtomicI32 = AtomicI32::new(-1);

fn window_size(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into ws.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some(ws)
}

extern "C" fn resize(_: i32) {
    let master = MASTER.load(Ordering::SeqCst);
    if master < 0 {
        return;
    }
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: two ioctls, async-signal-safe.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Puts the terminal back as it was when dropped.
struct RawMode(Option<Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, t);
        }
    }
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, rbuild_runner::Error> {
    fd.try_clone().map_err(|e| rbuild_runner::Error::Io {
        path: "/dev/pts".into(),
        source: e,
    })
}

/// Run the container attached to a new pseudo-terminal.
pub fn run_with_pty(mut config: ContainerConfig) -> Result<Outcome, rbuild_runner::Error> {
    let size = window_size(std::io::stdin().as_fd());
    let pty = openpty(size.as_ref(), None).map_err(|errno| rbuild_runner::Error::Sys {
        call: "openpty",
        errno,
    })?;
    config.stdio = Stdio {
        stdin: Some(dup(&pty.slave)?),
        stdout: Some(dup(&pty.slave)?),
        stderr: Some(pty.slave),
        tty: true,
    };
    let master = pty.master;
    MASTER.store(master.as_raw_fd(), Ordering::SeqCst);
    let winch = SigAction::new(
        SigHandler::Handler(resize),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only makes ioctls on descriptors.
    let _ = unsafe { sigaction(Signal::SIGWINCH, &winch) };
    let running = rbuild_runner::spawn(config)?;
    let _forward = signals::forward_to(running.pid());
    let raw = RawMode::enter();
    let mut to_container = std::fs::File::from(dup(&master)?);
    // Keyboard → container; this thread may stay blocked in read until we exit.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to_container.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    // Container → screen, until every holder of the slave side is gone (EIO).
    let mut from_container = std::fs::File::from(master);
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 4096];
    while let Ok(n) = from_container.read(&mut buf) {
        if n == 0 || out.write_all(&buf[..n]).is_err() {
            break;
        }
        let _ = out.flush();
    }
    MASTER.store(-1, Ordering::SeqCst);
    drop(raw);
    running.wait()
}
