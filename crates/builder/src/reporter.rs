//! Progress reporting: the builder never prints; it tells a [`Reporter`], which the CLI
//! implements (plain lines, a tty view, or nothing).

use std::time::Duration;

/// One step of the build as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// Build-wide step number (1-based), stable for the whole build.
    pub id: usize,
    /// Stage name, or its index when unnamed.
    pub stage: String,
    /// Position within the stage (1-based; the `FROM` is step 1).
    pub index: usize,
    /// Steps in the stage.
    pub total: usize,
    /// The instruction as written (`RUN make`), or `FROM image` for the base.
    pub text: String,
    /// The line of the instruction in the Dockerfile.
    pub line: usize,
}

impl StepInfo {
    /// BuildKit-style label: `[build 2/7] RUN make`, or `[2/7] RUN make` for an unnamed
    /// final stage (an empty `stage`).
    pub fn label(&self) -> String {
        if self.stage.is_empty() {
            return format!("[{}/{}] {}", self.index, self.total, self.text);
        }
        format!(
            "[{} {}/{}] {}",
            self.stage, self.index, self.total, self.text
        )
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// It ran (or had nothing to run) and succeeded.
    Done(Duration),
    /// Its result came from the cache.
    Cached,
    /// It failed.
    Failed(String),
}

/// Receives progress from a build. Implementations must be cheap and thread-safe: stages
/// that do not depend on each other run at the same time.
pub trait Reporter: Sync {
    /// A step starts.
    fn step_started(&self, step: &StepInfo);
    /// A step wrote output (a RUN's stdout/stderr), in chunks as they come.
    fn step_output(&self, step: &StepInfo, chunk: &[u8]);
    /// A step ended.
    fn step_finished(&self, step: &StepInfo, outcome: &StepOutcome);
    /// Something the user should know (unused build args, deprecated syntax, …).
    fn warning(&self, message: &str);
    /// Why a step that was looked up in the cache missed it (`COPY src/app.py changed`),
    /// before it runs.
    fn step_explained(&self, _step: &StepInfo, _reason: &str) {}
}

/// A reporter that drops everything (`--progress quiet`, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn step_started(&self, _: &StepInfo) {}
    fn step_output(&self, _: &StepInfo, _: &[u8]) {}
    fn step_finished(&self, _: &StepInfo, _: &StepOutcome) {}
    fn warning(&self, _: &str) {}
}
