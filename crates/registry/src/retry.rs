//! When a blob transfer retries and when it gives up. A failure after which the blob got
//! further than ever before (more bytes received, a higher offset held by the registry) was
//! progress: it resets the count, and the next attempt follows after the first backoff step.
//! The transfer ends after `retries` failures in a row without progress, or at the first
//! failure past the retry deadline. Starting an upload over is not progress: only a new
//! high-water mark is.

use std::time::{Duration, Instant};

use crate::client::ClientOptions;
use crate::error::RegistryError;
use crate::transport::exponential_backoff;

/// The retry state of one blob transfer.
pub(crate) struct Attempts {
    retries: u32,
    backoff: Duration,
    /// The configured deadline and when it passes.
    deadline: Option<(Duration, Instant)>,
    /// The furthest the blob has been (bytes received, or the registry's offset).
    reached: u64,
    /// Failures since the blob last passed `reached`.
    stalled: u32,
}

impl Attempts {
    /// A transfer starting now, from byte 0.
    pub(crate) fn new(opts: &ClientOptions) -> Attempts {
        Attempts {
            retries: opts.retries,
            backoff: opts.backoff,
            deadline: opts.retry_deadline.map(|d| (d, Instant::now() + d)),
            reached: 0,
            stalled: 0,
        }
    }

    /// Note that the blob is at byte `at` (e.g. after a chunk was accepted).
    pub(crate) fn advanced(&mut self, at: u64) {
        if at > self.reached {
            self.reached = at;
            self.stalled = 0;
        }
    }

    /// An attempt at `what` failed with `err`, the blob being at byte `at`: how long to wait
    /// before the next attempt, or the error that ends the transfer.
    pub(crate) fn failed(
        &mut self,
        what: &str,
        at: u64,
        err: RegistryError,
    ) -> Result<Duration, RegistryError> {
        self.advanced(at);
        self.stalled += 1;
        let why = if self.stalled > self.retries {
            format!("no progress in {} retries", self.retries)
        } else if let Some((d, _)) = self.deadline.filter(|(_, end)| Instant::now() >= *end) {
            format!("still failing after the retry deadline ({d:?})")
        } else {
            return Ok(exponential_backoff(self.backoff, self.stalled - 1));
        };
        Err(RegistryError::GaveUp {
            what: what.to_string(),
            reached: self.reached,
            why,
            source: Box::new(err),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(retries: u32, retry_deadline: Option<Duration>) -> ClientOptions {
        ClientOptions {
            retries,
            backoff: Duration::from_millis(100),
            retry_deadline,
            ..ClientOptions::default()
        }
    }

    fn cut() -> RegistryError {
        RegistryError::Config("cut".into())
    }

    #[test]
    fn failures_without_progress_give_up_after_the_retries() {
        let mut a = Attempts::new(&options(3, None));
        let waits: Vec<Duration> = (0..3).map(|_| a.failed("b", 0, cut()).unwrap()).collect();
        assert_eq!(
            waits,
            [100, 200, 400].map(Duration::from_millis),
            "backoff doubles while nothing moves"
        );
        let e = a.failed("b", 0, cut()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b: gave up at byte 0: no progress in 3 retries"
        );
    }

    #[test]
    fn progress_resets_the_count_and_the_backoff() {
        let mut a = Attempts::new(&options(2, None));
        for i in 1..=50 {
            assert_eq!(
                a.failed("b", i * 10, cut()).unwrap(),
                Duration::from_millis(100)
            );
        }
        a.failed("b", 500, cut()).unwrap();
        let e = a.failed("b", 500, cut()).unwrap_err();
        assert!(e.to_string().contains("gave up at byte 500"), "{e}");
    }

    #[test]
    fn starting_over_is_not_progress() {
        let mut a = Attempts::new(&options(2, None));
        // An upload reaches 30 and is cut; the session is lost, it starts over and gets to
        // 30 again (chunks accepted after the restart), and again.
        a.advanced(30);
        a.failed("b", 30, cut()).unwrap();
        a.advanced(10);
        a.advanced(30);
        a.failed("b", 30, cut()).unwrap();
        a.advanced(20);
        assert!(a.failed("b", 20, cut()).is_err());
    }

    #[test]
    fn no_retry_past_the_deadline() {
        let mut a = Attempts::new(&options(5, Some(Duration::ZERO)));
        let e = a.failed("b", 10, cut()).unwrap_err();
        assert!(e.to_string().contains("retry deadline"), "{e}");
        let mut a = Attempts::new(&options(5, Some(Duration::from_secs(3600))));
        assert!(a.failed("b", 10, cut()).is_ok());
    }
}
