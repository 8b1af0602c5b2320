//! Forwarding the signals `rbuild run` receives to the container's first process, like
//! `docker run`'s signal proxy. The handler only calls `kill(2)`, which is async-signal-safe.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

static TARGET: AtomicI32 = AtomicI32::new(0);

const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
];

extern "C" fn forward(sig: i32) {
    let pid = TARGET.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { nix::libc::kill(pid, sig) };
    }
}

/// Restores the default handlers when dropped.
pub struct Forwarding(());

/// Forward the usual termination and user signals to `pid` until the guard is dropped.
pub fn forward_to(pid: i32) -> Forwarding {
    TARGET.store(pid, Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in FORWARDED {
        // SAFETY: the handler only reads an atomic and calls kill.
        let _ = unsafe { sigaction(sig, &action) };
    }
    Forwarding(())
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        for sig in FORWARDED {
            // SAFETY: restoring the default disposition.
            let _ = unsafe { sigaction(sig, &default) };
        }
        TARGET.store(0, Ordering::SeqCst);
    }
}
