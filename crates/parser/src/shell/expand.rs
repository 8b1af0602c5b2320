//! The expansion itself: a port of the behaviour of BuildKit's `shellWord` (quotes, escapes,
//! `$VAR`, `${VAR<op>word}`), written as a recursive-descent pass over the word.

use std::collections::BTreeSet;

use super::categories::{is_digit, is_letter};
use super::error::ShellError;
use super::pattern;
use super::split::Splitter;
use super::{Lexer, VarLookup};

/// How deeply `${...}` may nest before expansion gives up (see [`ShellError::TooDeep`]).
pub(crate) const MAX_NESTING: usize = 256;

/// What one pass over a word produced.
pub(crate) struct Outcome {
    pub(crate) value: String,
    pub(crate) words: Option<Vec<String>>,
    pub(crate) matched: BTreeSet<String>,
    pub(crate) unmatched: BTreeSet<String>,
}

/// The state of one pass over one word.
pub(crate) struct Expander<'a> {
    lexer: &'a Lexer,
    env: &'a dyn VarLookup,
    src: &'a str,
    pos: usize,
    depth: usize,
    /// Word splitting of the top-level word, when asked for.
    splitter: Option<Splitter>,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl<'a> Expander<'a> {
    pub(crate) fn new(lexer: &'a Lexer, env: &'a dyn VarLookup, src: &'a str) -> Self {
        // Go's text/scanner skips a byte-order mark at the very start of the input.
        let pos = if src.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        Self {
            lexer,
            env,
            src,
            pos,
            depth: 0,
            splitter: None,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        }
    }

    /// Expands the whole word; with `split`, also splits it into words.
    pub(crate) fn run(mut self, split: bool) -> Result<Outcome, ShellError> {
        self.splitter = split.then(Splitter::default);
        let value = self.process_until(None, self.lexer.raw_escapes)?;
        Ok(Outcome {
            value,
            words: self.splitter.map(Splitter::finish),
            matched: self.matched,
            unmatched: self.unmatched,
        })
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }

    fn lookup(&mut self, name: &str) -> Option<&'a str> {
        let value = self.env.lookup(name);
        let set = if value.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        if !set.contains(name) {
            set.insert(name.to_owned());
        }
        value
    }

    /// Processes characters up to `stop` (consumed) or, with `stop` `None`, the whole word (the
    /// top level, the only one whose words are kept). `raw_escapes` keeps escape characters in
    /// the output (BuildKit does this for patterns).
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<String, ShellError> {
        // BuildKit's lexer shares one buffer for the word being split between all levels and
        // every nested word starts by resetting it: the top-level text since the last word break
        // is lost whenever a `${VAR<op>...}` is expanded (`a${B:-c}` splits to `c`).
        // Reproduced because it decides what `EXPOSE` sees.
        if stop.is_some()
            && let Some(splitter) = self.splitter.as_mut()
        {
            splitter.discard_partial_word();
        }
        self.process_chars(stop, raw_escapes)
    }

    /// The splitter to feed: only the top level's text is split.
    fn words(&mut self, top_level: bool) -> Option<&mut Splitter> {
        if top_level {
            self.splitter.as_mut()
        } else {
            None
        }
    }

    fn process_chars(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<String, ShellError> {
        let top = stop.is_none();
        let mut result = String::new();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.bump();
                return Ok(result);
            }
            match ch {
                '$' => {
                    let text = self.process_dollar()?;
                    if let Some(w) = self.words(top) {
                        w.push_expanded(&text);
                    }
                    result.push_str(&text);
                }
                '<' => {
                    let text = self.process_possible_heredoc();
                    if let Some(w) = self.words(top) {
                        w.push_raw_str(&text);
                    }
                    result.push_str(&text);
                }
                '\'' | '"' if quotes => {
                    let text = if ch == '\'' {
                        self.process_single_quote()?
                    } else {
                        self.process_double_quote(raw_escapes)?
                    };
                    if let Some(w) = self.words(top) {
                        w.push_raw_str(&text);
                    }
                    result.push_str(&text);
                }
                _ => {
                    self.bump();
                    if ch == self.lexer.escape {
                        if raw_escapes {
                            if let Some(w) = self.words(top) {
                                w.push_raw_char(ch);
                            }
                            result.push(ch);
                        }
                        // An escape character at the very end is dropped.
                        let Some(escaped) = self.bump() else { break };
                        if let Some(w) = self.words(top) {
                            w.push_raw_char(escaped);
                        }
                        result.push(escaped);
                    } else {
                        if let Some(w) = self.words(top) {
                            w.push_char(ch);
                        }
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(expected) => Err(ShellError::UnexpectedEnd {
                expected,
                offset: self.pos,
            }),
            None => Ok(result),
        }
    }

    /// `<`, or `<<` and the blanks after it, which stay with the heredoc name in one word.
    fn process_possible_heredoc(&mut self) -> String {
        let start = self.pos;
        self.bump();
        if self.peek() == Some('<') {
            self.bump();
            while matches!(self.peek(), Some('\t' | '\r' | ' ')) {
                self.bump();
            }
        }
        self.src[start..self.pos].to_owned()
    }

    /// `'...'`: everything literal up to the next `'`; nothing escapes.
    fn process_single_quote(&mut self) -> Result<String, ShellError> {
        let offset = self.pos;
        let mut result = String::new();
        let quote = self.bump();
        if self.lexer.raw_quotes {
            result.extend(quote);
        }
        loop {
            match self.bump() {
                None => return Err(ShellError::UnterminatedSingleQuote { offset }),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    /// `"..."`: `$` expands; the escape character escapes only `"`, `$` and itself.
    fn process_double_quote(&mut self, raw_escapes: bool) -> Result<String, ShellError> {
        let offset = self.pos;
        let mut result = String::new();
        let quote = self.bump();
        if self.lexer.raw_quotes {
            result.extend(quote);
        }
        loop {
            match self.peek() {
                None => return Err(ShellError::UnterminatedDoubleQuote { offset }),
                Some('"') => {
                    self.bump();
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let text = self.process_dollar()?;
                    result.push_str(&text);
                }
                Some(ch) => {
                    self.bump();
                    let mut ch = ch;
                    if ch == self.lexer.escape {
                        if raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // A trailing escape is dropped (the quote is unterminated anyway).
                            None => continue,
                            Some(next)
                                if next == '"' || next == '$' || next == self.lexer.escape =>
                            {
                                self.bump();
                                ch = next;
                            }
                            // Any other escape stays as it is (so twice with raw escapes, as in
                            // BuildKit).
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    /// Reads a parameter name: a run of digits, one special parameter character, or letters,
    /// digits and `_`. Empty when none is there.
    fn process_name(&mut self) -> &'a str {
        let src = self.src;
        let start = self.pos;
        match self.peek() {
            Some(c) if is_digit(c) => {
                while self.peek().is_some_and(is_digit) {
                    self.bump();
                }
            }
            Some('@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') => {
                self.bump();
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|c| is_letter(c) || is_digit(c) || c == '_')
                {
                    self.bump();
                }
            }
        }
        &src[start..self.pos]
    }

    /// `$NAME`, `${NAME}` and `${NAME<op>word}`.
    fn process_dollar(&mut self) -> Result<String, ShellError> {
        let offset = self.pos;
        if self.depth >= MAX_NESTING {
            return Err(ShellError::TooDeep {
                limit: MAX_NESTING,
                offset,
            });
        }
        self.depth += 1;
        let result = self.expand_dollar(offset);
        self.depth -= 1;
        result
    }

    fn expand_dollar(&mut self, offset: usize) -> Result<String, ShellError> {
        self.bump(); // `$`
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(name) {
                Some(value) => value.to_owned(),
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.bump(); // `{`
        match self.peek() {
            None => return Err(ShellError::MissingBrace { offset }),
            Some('{' | '}' | ':') => return Err(ShellError::BadSubstitution { offset }),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(op) = self.bump() else {
            return Err(ShellError::MissingBrace { offset });
        };
        match op {
            '}' => Ok(match self.lookup(name) {
                Some(value) => value.to_owned(),
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.expand_operator(name, op, offset),
            '/' => self.expand_replace(name, offset),
            other => Err(ShellError::UnsupportedModifier {
                modifier: other.to_string(),
                offset,
            }),
        }
    }

    /// `${NAME<op>word}` for `-`, `+`, `?`, `#`, `##`, `%`, `%%`, each optionally after `:`.
    fn expand_operator(
        &mut self,
        name: &'a str,
        first: char,
        offset: usize,
    ) -> Result<String, ShellError> {
        let mut modifier = String::from(first);
        let (null_is_unset, op) = if first == ':' {
            let op = self.bump();
            modifier.extend(op);
            (true, op)
        } else {
            (false, Some(first))
        };
        let raw_escapes = matches!(op, Some('#' | '%'));
        if null_is_unset && raw_escapes {
            // BuildKit rejects `${VAR:#pat}` and `${VAR:%pat}` before reading the pattern.
            return Err(ShellError::UnsupportedModifier { modifier, offset });
        }
        let mut word = self
            .process_until(Some('}'), raw_escapes)
            .map_err(|err| self.at_end(err, offset))?;
        let value = self.lookup(name);
        let Some(op) = op else {
            return Err(ShellError::MissingBrace { offset });
        };
        if value.is_none() && self.lexer.skip_unset_env {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let unset_or_null = value.is_none() || (null_is_unset && value == Some(""));
        match op {
            '-' => Ok(if unset_or_null {
                word
            } else {
                value.unwrap_or_default().to_owned()
            }),
            '+' => Ok(if unset_or_null { String::new() } else { word }),
            '?' => {
                let message = (!word.is_empty()).then_some(word);
                match value {
                    None => Err(ShellError::Unset {
                        name: name.to_owned(),
                        message,
                        offset,
                    }),
                    Some("") if null_is_unset => Err(ShellError::Empty {
                        name: name.to_owned(),
                        message,
                        offset,
                    }),
                    Some(value) => Ok(value.to_owned()),
                }
            }
            '#' | '%' => {
                // `#`/`%` remove the shortest match, `##`/`%%` the longest.
                let greedy = word.starts_with(op);
                if greedy {
                    word.remove(0);
                }
                let value = value.unwrap_or_default();
                let trimmed = if op == '%' {
                    pattern::trim_suffix(&word, value, greedy)
                } else {
                    pattern::trim_prefix(&word, value, greedy)
                };
                trimmed.map_err(|reason| ShellError::InvalidPattern {
                    pattern: word,
                    reason,
                    offset,
                })
            }
            _ => Err(ShellError::UnsupportedModifier { modifier, offset }),
        }
    }

    /// `${NAME/pattern/replacement}` and `${NAME//pattern/replacement}`.
    fn expand_replace(&mut self, name: &'a str, offset: usize) -> Result<String, ShellError> {
        let all = self.peek() == Some('/');
        if all {
            self.bump();
        }
        let pattern = self.process_until(Some('/'), true).map_err(|err| {
            if self.peek().is_none() {
                ShellError::MissingSlash { offset }
            } else {
                err
            }
        })?;
        let replacement = self
            .process_until(Some('}'), true)
            .map_err(|err| self.at_end(err, offset))?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.skip_unset_env {
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        pattern::replace(value.unwrap_or_default(), &pattern, &replacement, all).map_err(|reason| {
            ShellError::InvalidPattern {
                pattern,
                reason,
                offset,
            }
        })
    }

    /// BuildKit reports any failure inside `${...}` that ran into the end of the word as a
    /// missing `}` of that `${`.
    fn at_end(&self, err: ShellError, offset: usize) -> ShellError {
        if self.peek().is_none() {
            ShellError::MissingBrace { offset }
        } else {
            err
        }
    }
}
