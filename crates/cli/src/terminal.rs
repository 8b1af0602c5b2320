//! `rbuild run -t`: a pseudo-terminal allocated inside the container (its own `/dev/pts`), as
//! its standard streams and controlling terminal; this process puts its own terminal in raw
//! mode, copies bytes both ways, and passes window size changes on (SIGWINCH).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;
use nix::pty::Winsize;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::termios::{self, SetArg, Termios};
use rbuild_runner::{ConsoleSize, Running, Stdio};

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
pub struct RawMode(Option<Termios>);

impl RawMode {
    /// Put standard input's terminal, if it is one, in raw mode until dropped.
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }

    /// The terminal's settings before raw mode, if it is a terminal.
    pub fn saved(&self) -> Option<Termios> {
        self.0.clone()
    }

    /// Put standard input's terminal back to `saved` (before exiting without dropping).
    pub fn restore(saved: &Termios) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, saved);
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

/// Start the container with `start`, attached to a new pseudo-terminal allocated in its own
/// `/dev/pts`, and copy its output here until it closes its terminal; returns it unwaited.
/// With `interactive` (`-i`), the keyboard goes to it too, in raw mode, as `docker run -it`;
/// otherwise only its output is shown.
pub fn run_with_pty(
    start: impl FnOnce(Stdio) -> Result<Running, rbuild_runner::Error>,
    interactive: bool,
) -> Result<Running, rbuild_runner::Error> {
    let size = window_size(std::io::stdin().as_fd());
    let mut running = start(Stdio {
        console: Some(ConsoleSize {
            rows: size.map_or(0, |s| s.ws_row),
            cols: size.map_or(0, |s| s.ws_col),
        }),
        ..Stdio::default()
    })?;
    let Some(master) = running.take_console() else {
        return Ok(running);
    };
    MASTER.store(master.as_raw_fd(), Ordering::SeqCst);
    let winch = SigAction::new(
        SigHandler::Handler(resize),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only makes ioctls on descriptors.
    let _ = unsafe { sigaction(Signal::SIGWINCH, &winch) };
    let raw = interactive.then(RawMode::enter);
    if interactive {
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
    }
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
    Ok(running)
}
