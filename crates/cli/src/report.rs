//! Error rendering: `error: …` followed by one `caused by: …` line per source,
//! and a `hint: …` line where the error carries one.

use std::fmt;

use rbuild_engine::EngineError;

/// A hint attached to an error with `anyhow::Context`-style wrapping; printed after the causes.
#[derive(Debug)]
pub struct Hint(pub String);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Hint {}

/// An exit status chosen by a command for its failure (docker's 125/126/127 conventions).
#[derive(Debug)]
pub struct ExitStatus(pub u8);

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for ExitStatus {}

/// Print an error chain to stderr in rbuild's format.
pub fn print_error(err: &anyhow::Error) {
    let mut hints = Vec::new();
    let mut first = true;
    // Attached with `.context(...)`, a hint or status is only reachable through the error
    // itself (anyhow's chain shows context layers as plain messages): skip those lines.
    let context_hint = err.downcast_ref::<Hint>().map(|h| h.0.clone());
    let context_status = err.downcast_ref::<ExitStatus>().map(ToString::to_string);
    hints.extend(context_hint.clone());
    for cause in err.chain() {
        // The engine's advice rides on the error it explains, which is still printed.
        if let Some(h) = EngineError::downcast(cause).and_then(EngineError::hint) {
            hints.push(h.to_owned());
        }
        let runner = cause.downcast_ref::<rbuild_runner::Error>().or_else(|| {
            match EngineError::downcast(cause)? {
                EngineError::Runner(e) => Some(e),
                _ => None,
            }
        });
        if let Some(rbuild_runner::Error::Rootless(e)) = runner
            && let Some(h) = e.hint()
        {
            hints.push(h);
        }
        if let Some(h) = cause.downcast_ref::<Hint>() {
            hints.push(h.0.clone());
            continue;
        }
        if cause.downcast_ref::<ExitStatus>().is_some() {
            continue;
        }
        let text = cause.to_string();
        if Some(&text) == context_hint.as_ref() || Some(&text) == context_status.as_ref() {
            continue;
        }
        if first {
            eprintln!("error: {cause}");
            first = false;
        } else {
            eprintln!("  caused by: {cause}");
        }
    }
    for h in hints {
        eprintln!("  hint: {h}");
    }
}

/// The process exit code for an error: the one it carries (a command's [`ExitStatus`], or
/// the status of a container's failed start), or 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(s) = err.downcast_ref::<ExitStatus>() {
        return s.0;
    }
    err.chain()
        .find_map(|c| {
            c.downcast_ref::<ExitStatus>().map(|s| s.0).or_else(|| {
                match EngineError::downcast(c)? {
                    EngineError::Start { status, .. } => Some(*status),
                    EngineError::Hinted(h) => match h.error {
                        EngineError::Start { status, .. } => Some(status),
                        _ => None,
                    },
                    _ => None,
                }
            })
        })
        .unwrap_or(1)
}
