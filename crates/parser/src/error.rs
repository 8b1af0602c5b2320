//! Parse errors: every error carries the source location it belongs to, attached in one
//! place (the instruction's line range), and renders as `Dockerfile:LINE:COL: message`
//! followed by the offending line.

use std::fmt;

/// What went wrong, independent of where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file has no instruction at all (empty, or only comments and blank lines).
    #[error("file with no instructions")]
    NoInstructions,
    /// A physical line is longer than the parser accepts.
    #[error("dockerfile line greater than max allowed size of {max}")]
    LineTooLong {
        /// The largest accepted line length in bytes.
        max: usize,
    },
    /// A parser directive (`# escape=`, `# syntax=`, `# check=`) appears twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// The `# escape=` directive names something other than `\` or a backtick.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// A heredoc body has no terminating line.
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    /// A JSON (exec form) array holds something other than strings.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStringArray,
    /// Legacy `ENV KEY VALUE` / `LABEL KEY VALUE` with only a key.
    #[error("{0} must have two arguments")]
    MissingValue(String),
    /// `KEY=VALUE` form where one word lacks the `=`.
    #[error("Syntax error - can't find = in {word:?}. Must be of the form: name=value")]
    MissingEquals {
        /// The word without `=`.
        word: String,
    },
    /// The keyword is not a Dockerfile instruction.
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    /// The instruction needs arguments and has none (or too few).
    #[error("{keyword} requires {expected}")]
    MissingArguments {
        /// The instruction, upper case.
        keyword: String,
        /// What it requires, e.g. "at least two arguments".
        expected: String,
    },
    /// A `--flag` this instruction does not accept.
    #[error("unknown flag: --{flag} (not accepted by {keyword})")]
    UnknownFlag {
        /// The instruction, upper case.
        keyword: String,
        /// The flag name without dashes.
        flag: String,
    },
    /// A flag is malformed: missing value, bad boolean, repeated, bad option.
    #[error("invalid flag --{flag}: {reason}")]
    InvalidFlag {
        /// The flag name without dashes.
        flag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The instruction's arguments are malformed in an instruction-specific way.
    #[error("{keyword}: {reason}")]
    InvalidInstruction {
        /// The instruction, upper case.
        keyword: String,
        /// What is wrong.
        reason: String,
    },
    /// Word expansion (`$VAR`, `${VAR:?msg}`, …) failed.
    #[error("{0}")]
    Expansion(String),
}

/// A parse error at a place in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// 1-based line where the problem is (the instruction's first line when no finer place is known).
    pub line: usize,
    /// 1-based column on `line` (1 when no finer place is known).
    pub column: usize,
    /// Last line of the instruction the error belongs to (same as `line` for one-line instructions).
    pub end_line: usize,
}

impl ParseError {
    /// An error at the start of `line`.
    pub fn at(kind: ErrorKind, line: usize) -> Self {
        ParseError {
            kind,
            line,
            column: 1,
            end_line: line,
        }
    }

    /// Render as `NAME:LINE:COL: message` followed by the offending source line with a caret,
    /// the way rbuild shows errors to a user.
    pub fn render(&self, name: &str, source: &str) -> String {
        let mut out = format!("{name}:{}:{}: {}", self.line, self.column, self.kind);
        if let Some(text) = source.split('\n').nth(self.line.saturating_sub(1)) {
            let text = text.trim_end_matches('\r');
            let width = self.line.to_string().len();
            out.push_str(&format!("\n {} | {text}", self.line));
            let pad: String = text
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("\n {:width$} | {pad}^", ""));
        }
        out
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.kind)
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_points_at_column() {
        let err = ParseError {
            kind: ErrorKind::UnknownInstruction("FORM".into()),
            line: 2,
            column: 3,
            end_line: 2,
        };
        let text = err.render("Dockerfile", "# c\n  FORM x\n");
        assert_eq!(
            text,
            "Dockerfile:2:3: unknown instruction: FORM\n 2 |   FORM x\n   |   ^"
        );
    }
}
