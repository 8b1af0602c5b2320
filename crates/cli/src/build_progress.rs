//! Build progress in BuildKit's manner, on stderr: `plain` prints every step, its full output
//! (`#7 …`, never clipped) and how it ended (`#7 DONE 1.2s`, `#7 CACHED`); `tty` keeps a
//! spinner per running step with its latest output line and collapses finished steps into one
//! line each; `quiet` prints nothing.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rbuild_builder::reporter::{Reporter, StepInfo, StepOutcome};

/// `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// Spinners and collapsed steps.
    Tty,
    /// Every line of every step.
    Plain,
    /// Nothing.
    Quiet,
}

enum Mode {
    Tty(MultiProgress),
    Plain,
    Quiet,
}

/// The CLI's build reporter.
pub struct BuildProgress {
    mode: Mode,
    bars: Mutex<HashMap<usize, ProgressBar>>,
    /// Partial output lines per step (plain mode prints whole lines).
    partial: Mutex<HashMap<usize, Vec<u8>>>,
}

impl BuildProgress {
    /// A reporter for `mode`.
    pub fn new(mode: ProgressMode) -> Self {
        let mode = match mode {
            ProgressMode::Quiet => Mode::Quiet,
            ProgressMode::Plain => Mode::Plain,
            ProgressMode::Tty => {
                Mode::Tty(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            }
            ProgressMode::Auto if std::io::stderr().is_terminal() => {
                Mode::Tty(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            }
            ProgressMode::Auto => Mode::Plain,
        };
        BuildProgress {
            mode,
            bars: Mutex::new(HashMap::new()),
            partial: Mutex::new(HashMap::new()),
        }
    }

    /// Print a line (above the spinners on a terminal).
    pub fn line(&self, text: &str) {
        match &self.mode {
            Mode::Tty(m) => {
                let _ = m.println(text);
            }
            Mode::Plain => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{text}");
            }
            Mode::Quiet => {}
        }
    }
}

fn seconds(d: &Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Reporter for BuildProgress {
    fn step_started(&self, step: &StepInfo) {
        match &self.mode {
            Mode::Tty(m) => {
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {wide_msg:.dim} {elapsed}")
                        .expect("static template"),
                );
                bar.set_prefix(step.label());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bars.lock().expect("bars").insert(step.id, bar);
            }
            Mode::Plain => self.line(&format!("#{} {}", step.id, step.label())),
            Mode::Quiet => {}
        }
    }

    fn step_output(&self, step: &StepInfo, chunk: &[u8]) {
        match &self.mode {
            Mode::Tty(_) => {
                let text = String::from_utf8_lossy(chunk);
                if let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty())
                    && let Some(bar) = self.bars.lock().expect("bars").get(&step.id)
                {
                    bar.set_message(last.trim().to_string());
                }
            }
            Mode::Plain => {
                let mut partial = self.partial.lock().expect("partial");
                let buf = partial.entry(step.id).or_default();
                buf.extend_from_slice(chunk);
                let mut err = std::io::stderr().lock();
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let _ = write!(err, "#{} ", step.id);
                    let _ = err.write_all(&line);
                }
            }
            Mode::Quiet => {}
        }
    }

    fn step_finished(&self, step: &StepInfo, outcome: &StepOutcome) {
        let rest = self
            .partial
            .lock()
            .expect("partial")
            .remove(&step.id)
            .filter(|b| !b.is_empty());
        if let Some(rest) = rest {
            self.line(&format!("#{} {}", step.id, String::from_utf8_lossy(&rest)));
        }
        let status = match outcome {
            StepOutcome::Done(d) => format!("DONE {}", seconds(d)),
            StepOutcome::Cached => "CACHED".to_string(),
            StepOutcome::Failed(e) => format!("ERROR: {e}"),
        };
        match &self.mode {
            Mode::Tty(m) => {
                if let Some(bar) = self.bars.lock().expect("bars").remove(&step.id) {
                    bar.finish_and_clear();
                    m.remove(&bar);
                }
                let mark = match outcome {
                    StepOutcome::Failed(_) => "✗",
                    _ => "✔",
                };
                let _ = m.println(format!("{mark} {} {status}", step.label()));
            }
            Mode::Plain => self.line(&format!("#{} {status}", step.id)),
            Mode::Quiet => {}
        }
    }

    fn step_explained(&self, step: &StepInfo, reason: &str) {
        // Plain progress says why each step that was looked up missed the cache.
        if let Mode::Plain = &self.mode {
            self.line(&format!("#{} cache miss: {reason}", step.id));
        }
    }

    fn warning(&self, message: &str) {
        match &self.mode {
            Mode::Quiet => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "WARNING: {message}");
            }
            _ => self.line(&format!("WARNING: {message}")),
        }
    }
}
