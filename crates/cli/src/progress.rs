//! Transfer progress for pull, push and copy: indicatif bars per blob (bytes, rate, ETA) on a
//! terminal, one plain line per finished blob otherwise, nothing with `-q`. Written to stderr.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rbuild_oci::Digest;
use rbuild_registry::{Outcome, Reporter};

use crate::commands::common::human_size;

/// Which way blobs move, for the words shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Registry → here.
    Pull,
    /// Here → registry (or registry → registry).
    Push,
}

enum Mode {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

/// A [`Reporter`] drawing progress for the user.
pub struct Progress {
    mode: Mode,
    direction: Direction,
    bars: Mutex<HashMap<Digest, (ProgressBar, u64)>>,
}

impl Progress {
    /// Bars on a terminal, lines otherwise; nothing when `quiet`.
    pub fn new(direction: Direction, quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            direction,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Print a line above the bars (or plainly).
    pub fn line(&self, text: &str) {
        match &self.mode {
            Mode::Bars(m) => {
                let _ = m.println(text);
            }
            Mode::Lines => eprintln!("{text}"),
            Mode::Quiet => {}
        }
    }

    fn words(&self, outcome: Outcome) -> &'static str {
        match (self.direction, outcome) {
            (Direction::Pull, Outcome::Transferred) => "Pull complete",
            (Direction::Push, Outcome::Transferred) => "Pushed",
            (_, Outcome::Present) => "Already exists",
            (_, Outcome::Mounted) => "Mounted",
        }
    }
}

impl Reporter for Progress {
    fn on_start(&self, digest: &Digest, size: u64) {
        let Mode::Bars(multi) = &self.mode else {
            self.bars
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(digest.clone(), (ProgressBar::hidden(), size));
            return;
        };
        let bar = multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix}: {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(digest.short().to_string());
        self.bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.clone(), (bar, size));
    }

    fn on_progress(&self, digest: &Digest, done: u64) {
        if let Some((bar, _)) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
        {
            bar.set_position(done);
        }
    }

    fn on_retry(&self, digest: &Digest, message: &str) {
        self.line(&format!("{}: retrying: {message}", digest.short()));
    }

    fn on_done(&self, digest: &Digest, outcome: Outcome) {
        let entry = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest);
        let words = self.words(outcome);
        match (&self.mode, entry) {
            (Mode::Bars(multi), Some((bar, _))) => {
                bar.finish_and_clear();
                multi.remove(&bar);
                let _ = multi.println(format!("{}: {words}", digest.short()));
            }
            (Mode::Lines, entry) => {
                let size = entry.map_or(String::new(), |(_, s)| format!(" ({})", human_size(s)));
                eprintln!("{}: {words}{size}", digest.short());
            }
            _ => {}
        }
    }
}
