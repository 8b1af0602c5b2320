//! Word splitting as BuildKit does it while expanding (`ProcessWords`).
//!
//! Characters are fed in as they are produced. Text that came from an unquoted `$VAR` is fed
//! with [`Splitter::push_expanded`] and splits at whitespace; quoted text and escaped characters
//! go in raw and never split. Empty quotes do not make a word.

/// Accumulates the words of one expansion.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Splitter {
    /// An unquoted, unescaped character: whitespace ends the current word.
    pub(crate) fn push_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.push_raw_char(ch);
        }
    }

    /// A character that is part of the word whatever it is (escaped or quoted).
    pub(crate) fn push_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    /// The value of an unquoted `$VAR`: split at whitespace.
    pub(crate) fn push_expanded(&mut self, text: &str) {
        for ch in text.chars() {
            self.push_char(ch);
        }
    }

    /// Quoted text: never split, even when empty.
    pub(crate) fn push_raw_str(&mut self, text: &str) {
        self.word.push_str(text);
        self.in_word = true;
    }

    /// Drops the text of the word being built, but not the fact that one was started (BuildKit's
    /// shared word buffer being reset by a nested expansion).
    pub(crate) fn discard_partial_word(&mut self) {
        self.word.clear();
    }

    /// The finished list of words.
    pub(crate) fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_whitespace_splits_and_raw_text_does_not() {
        let mut s = Splitter::default();
        s.push_expanded("  a b ");
        s.push_raw_str(" c ");
        s.push_char('d');
        s.push_char(' ');
        s.push_raw_char(' ');
        assert_eq!(s.finish(), vec!["a", "b", " c d", " "]);
    }

    #[test]
    fn empty_quotes_make_no_word() {
        let mut s = Splitter::default();
        s.push_raw_str("");
        s.push_char(' ');
        s.push_raw_str("");
        assert_eq!(s.finish(), Vec::<String>::new());
    }
}
