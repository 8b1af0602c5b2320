//! Progress reporting: libraries never print, they call a [`Reporter`] (the CLI draws bars).

use rbuild_oci::Digest;

/// How a blob ended up at its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its bytes were transferred.
    Transferred,
    /// The destination already had it; nothing was sent.
    Present,
    /// The registry mounted it from another repository; nothing was sent.
    Mounted,
}

/// Receives transfer events. Every method has an empty default.
pub trait Reporter: Send + Sync {
    /// A blob transfer starts; `size` is its full size.
    fn on_start(&self, digest: &Digest, size: u64) {
        let _ = (digest, size);
    }

    /// `done` bytes of the blob are through (monotonic, except restarting from 0 after a
    /// server ignored a resume request).
    fn on_progress(&self, digest: &Digest, done: u64) {
        let _ = (digest, done);
    }

    /// A transient failure is being retried (the message never carries credentials).
    fn on_retry(&self, digest: &Digest, message: &str) {
        let _ = (digest, message);
    }

    /// The blob is done.
    fn on_done(&self, digest: &Digest, outcome: Outcome) {
        let _ = (digest, outcome);
    }
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {}
