//! Errors of word expansion.
//!
//! The messages are BuildKit's own (`syntax error: bad substitution`, `VAR: message`, ...), so a
//! user who knows `docker build` recognises them. BuildKit prefixes them with
//! `failed to process "<word>": `; here that context, and the Dockerfile line and column, are
//! added by the caller, which knows where the word came from. Every variant carries the byte
//! offset in the processed word of the construct that failed (the `$`, the opening quote, ...).

use thiserror::Error;

/// Why a `${VAR#pattern}`, `${VAR%pattern}` or `${VAR/pattern/replacement}` pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PatternError {
    /// A `\` in a pattern may only escape `*`, `?`, `\`, `}` or `/`.
    #[error("invalid escape '\\{0}'")]
    InvalidEscape(char),
    /// A `\` ended the pattern, with nothing after it to escape.
    #[error("invalid escape '\\' at the end of the pattern")]
    TrailingEscape,
}

/// A word that could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShellError {
    /// A `'` was opened and never closed.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote {
        /// Byte offset of the opening quote.
        offset: usize,
    },
    /// A `"` was opened and never closed.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote {
        /// Byte offset of the opening quote.
        offset: usize,
    },
    /// A `${` was opened and the word ended before its `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace {
        /// Byte offset of the `$` of the unterminated `${`.
        offset: usize,
    },
    /// A `${VAR/pattern` ended before the `/` that starts the replacement.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash {
        /// Byte offset of the `$` of the unterminated `${`.
        offset: usize,
    },
    /// A nested word ended before the character that closes it.
    #[error("unexpected end of statement while looking for matching {expected}")]
    UnexpectedEnd {
        /// The closing character that was looked for (`}` or `/`).
        expected: char,
        /// Byte offset where the word ended.
        offset: usize,
    },
    /// `${}`, `${{...}`, `${:...}` and the like: no variable name where one is required.
    #[error("syntax error: bad substitution")]
    BadSubstitution {
        /// Byte offset of the `$`.
        offset: usize,
    },
    /// `${VAR<op>...}` with an operator BuildKit does not know, such as `:=` or `=`.
    #[error("unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier {
        /// The operator as written, e.g. `:=`.
        modifier: String,
        /// Byte offset of the `$`.
        offset: usize,
    },
    /// `${VAR?message}` or `${VAR:?message}` with `VAR` unset.
    #[error("{name}: {}", message.as_deref().unwrap_or("is not allowed to be unset"))]
    Unset {
        /// The variable's name.
        name: String,
        /// The expanded message, if one was written.
        message: Option<String>,
        /// Byte offset of the `$`.
        offset: usize,
    },
    /// `${VAR:?message}` with `VAR` set to the empty string.
    #[error("{name}: {}", message.as_deref().unwrap_or("is not allowed to be empty"))]
    Empty {
        /// The variable's name.
        name: String,
        /// The expanded message, if one was written.
        message: Option<String>,
        /// Byte offset of the `$`.
        offset: usize,
    },
    /// The pattern of `#`, `%` or `/` (after expansion) is not a valid pattern.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        /// The pattern after expansion, as BuildKit prints it.
        pattern: String,
        /// What is wrong with it.
        reason: PatternError,
        /// Byte offset of the `$`.
        offset: usize,
    },
    /// `${...}` nested deeper than the lexer allows (a guard against stack exhaustion; BuildKit
    /// has no such limit, but no real Dockerfile comes near it).
    #[error("substitutions nested deeper than {limit} levels")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
        /// Byte offset of the `$` that went past it.
        offset: usize,
    },
}

impl ShellError {
    /// Byte offset in the processed word of the construct that failed.
    pub fn offset(&self) -> usize {
        match self {
            Self::UnterminatedSingleQuote { offset }
            | Self::UnterminatedDoubleQuote { offset }
            | Self::MissingBrace { offset }
            | Self::MissingSlash { offset }
            | Self::UnexpectedEnd { offset, .. }
            | Self::BadSubstitution { offset }
            | Self::UnsupportedModifier { offset, .. }
            | Self::Unset { offset, .. }
            | Self::Empty { offset, .. }
            | Self::InvalidPattern { offset, .. }
            | Self::TooDeep { offset, .. } => *offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_variable_messages_match_buildkit() {
        let unset = ShellError::Unset {
            name: "VAR".into(),
            message: None,
            offset: 0,
        };
        assert_eq!(unset.to_string(), "VAR: is not allowed to be unset");
        let empty = ShellError::Empty {
            name: "VAR".into(),
            message: None,
            offset: 0,
        };
        assert_eq!(empty.to_string(), "VAR: is not allowed to be empty");
        let custom = ShellError::Unset {
            name: "A".into(),
            message: Some("need A".into()),
            offset: 3,
        };
        assert_eq!(custom.to_string(), "A: need A");
        assert_eq!(custom.offset(), 3);
    }

    #[test]
    fn syntax_messages_match_buildkit() {
        assert_eq!(
            ShellError::MissingBrace { offset: 0 }.to_string(),
            "syntax error: missing '}'"
        );
        assert_eq!(
            ShellError::MissingSlash { offset: 0 }.to_string(),
            "syntax error: missing '/' in ${}"
        );
        let invalid = ShellError::InvalidPattern {
            pattern: "\\x".into(),
            reason: PatternError::InvalidEscape('x'),
            offset: 0,
        };
        assert_eq!(
            invalid.to_string(),
            "invalid pattern (\\x) in substitution: invalid escape '\\x'"
        );
    }
}
