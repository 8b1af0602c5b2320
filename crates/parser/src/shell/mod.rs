//! Word expansion exactly as BuildKit's Dockerfile frontend does it (`frontend/dockerfile/shell`).
//!
//! [`Lexer::process_word`] expands one word without splitting (what `ENV`, `ARG`, `WORKDIR`,
//! `USER`, `COPY`, ... use); [`Lexer::process_words`] also splits the result into words (what
//! BuildKit uses for `EXPOSE`, so that `EXPOSE $PORTS` can expose several ports);
//! [`Lexer::process_word_with_matches`] also reports which variables were referenced, and which
//! of those were unset, so a builder can warn about unused build arguments.
//!
//! Supported, with BuildKit's semantics: `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`,
//! `${VAR:+w}`, `${VAR+w}`, `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`,
//! `${VAR%pat}`, `${VAR%%pat}`, `${VAR/pat/rep}`, `${VAR//pat/rep}` (glob rules: see the
//! `pattern` module), nesting inside the words, `'...'`, `"..."`, the escape character (`\`
//! or the `` ` `` chosen by `# escape=`), and positional and special parameters (`$1`, `$@`,
//! `$$`, ...), which are never set.

mod categories;
mod error;
mod expand;
mod lookup;
pub(crate) mod pattern;
mod split;

use std::collections::BTreeSet;

pub use error::{PatternError, ShellError};
pub use lookup::VarLookup;

use expand::Expander;

/// A word expander, configured like BuildKit's `shell.Lex`.
///
/// The defaults (all options off) are what Dockerfile instructions use: quotes removed, escape
/// characters consumed, unset variables expanded to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    /// Keep quote characters in the output (BuildKit's `RawQuotes`).
    pub raw_quotes: bool,
    /// Keep escape characters in the output (BuildKit's `RawEscapes`).
    pub raw_escapes: bool,
    /// Leave references to unset variables as written, e.g. `$UNSET` or `${UNSET:-x}`
    /// (BuildKit's `SkipUnsetEnv`).
    pub skip_unset_env: bool,
    /// Treat `'` and `"` as ordinary characters (BuildKit's `SkipProcessQuotes`).
    pub skip_process_quotes: bool,
}

/// The result of [`Lexer::process_word_with_matches`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    /// The expanded word.
    pub value: String,
    /// Names of referenced variables that were set (possibly to the empty string).
    pub matched: BTreeSet<String>,
    /// Names of referenced variables that were unset.
    pub unmatched: BTreeSet<String>,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new('\\')
    }
}

impl Lexer {
    /// A lexer with the given escape character (`\`, or `` ` `` after `# escape=``) and every
    /// option off.
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// This lexer with [`Lexer::raw_quotes`] set to `on`.
    #[must_use]
    pub fn with_raw_quotes(self, on: bool) -> Self {
        Self {
            raw_quotes: on,
            ..self
        }
    }

    /// This lexer with [`Lexer::raw_escapes`] set to `on`.
    #[must_use]
    pub fn with_raw_escapes(self, on: bool) -> Self {
        Self {
            raw_escapes: on,
            ..self
        }
    }

    /// This lexer with [`Lexer::skip_unset_env`] set to `on`.
    #[must_use]
    pub fn with_skip_unset_env(self, on: bool) -> Self {
        Self {
            skip_unset_env: on,
            ..self
        }
    }

    /// This lexer with [`Lexer::skip_process_quotes`] set to `on`.
    #[must_use]
    pub fn with_skip_process_quotes(self, on: bool) -> Self {
        Self {
            skip_process_quotes: on,
            ..self
        }
    }

    /// Expands `input` as one word: whitespace is kept, nothing is split.
    pub fn process_word(&self, input: &str, env: &dyn VarLookup) -> Result<String, ShellError> {
        Ok(Expander::new(self, env, input).run(false)?.value)
    }

    /// Expands `input`, then splits it into words: text from an unquoted `$VAR` splits at
    /// whitespace, quoted text and escaped characters never split, empty quotes make no word,
    /// and `<<` keeps the blanks after it (`<< EOF` is one word).
    ///
    /// BuildKit quirk, reproduced: expanding a `${VAR<op>...}` form (anything but `$VAR` and
    /// `${VAR}`) drops the text of the word being built before it, so `a${B:-c} d` gives
    /// `["c", "d"]` (the unsplit value is still `ac d`).
    pub fn process_words(
        &self,
        input: &str,
        env: &dyn VarLookup,
    ) -> Result<Vec<String>, ShellError> {
        Ok(Expander::new(self, env, input)
            .run(true)?
            .words
            .unwrap_or_default())
    }

    /// Like [`Lexer::process_word`], and also reports which variables were referenced.
    pub fn process_word_with_matches(
        &self,
        input: &str,
        env: &dyn VarLookup,
    ) -> Result<Expansion, ShellError> {
        let outcome = Expander::new(self, env, input).run(false)?;
        Ok(Expansion {
            value: outcome.value,
            matched: outcome.matched,
            unmatched: outcome.unmatched,
        })
    }
}

#[cfg(test)]
mod tests;
