//! Parser directives (`# syntax=`, `# escape=`, `# check=`) at the top of a Dockerfile.

use serde::Serialize;

use crate::error::ErrorKind;

/// The directives of a Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// `# syntax=` frontend image, if given.
    pub syntax: Option<String>,
    /// `# escape=` value (`\` or a backtick), if given.
    pub escape: Option<String>,
    /// `# check=` linter configuration, if given.
    pub check: Option<String>,
}

impl Directives {
    /// The escape character in force.
    pub fn escape_char(&self) -> char {
        match self.escape.as_deref() {
            Some("`") => '`',
            _ => '\\',
        }
    }
}

/// Feeds lines to the directive grammar until the first line that is not a directive.
#[derive(Debug, Default)]
pub(crate) struct DirectiveParser {
    pub(crate) directives: Directives,
    line: usize,
    done: bool,
}

impl DirectiveParser {
    /// Look at one physical line (newline removed). Returns an error for a repeated
    /// directive or a bad escape token.
    pub(crate) fn feed(&mut self, line: &str) -> Result<(), ErrorKind> {
        self.line += 1;
        if self.done {
            return Ok(());
        }
        if self.line == 1 && line.starts_with("#!") {
            return Ok(());
        }
        let Some((key, value)) = match_directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        let slot = match key.as_str() {
            "syntax" => &mut self.directives.syntax,
            "escape" => &mut self.directives.escape,
            "check" => &mut self.directives.check,
            _ => {
                self.done = true;
                return Ok(());
            }
        };
        if slot.is_some() {
            return Err(ErrorKind::DuplicateDirective(key));
        }
        if key == "escape" && value != "`" && value != "\\" {
            return Err(ErrorKind::InvalidEscape(value.to_string()));
        }
        *slot = Some(value.to_string());
        Ok(())
    }

    /// The escape character in force so far.
    pub(crate) fn escape(&self) -> char {
        self.directives.escape_char()
    }
}

/// `^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$`
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches([' ', '\t']);
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    let rest = rest.trim_start_matches([' ', '\t']).strip_prefix('=')?;
    let value = rest.trim_matches([' ', '\t']);
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_grammar() {
        assert_eq!(match_directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(match_directive("#ESCAPE = \\ "), Some(("ESCAPE", "\\")));
        assert_eq!(
            match_directive("# syntax=docker/dockerfile:1"),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(match_directive("# escape="), None);
        assert_eq!(match_directive("# 1x=y"), None);
        assert_eq!(match_directive("# just a comment"), None);
    }

    #[test]
    fn repeated_and_bad_directives() {
        let mut p = DirectiveParser::default();
        p.feed("# escape=`").unwrap();
        assert_eq!(
            p.feed("# Escape=`"),
            Err(ErrorKind::DuplicateDirective("escape".into()))
        );
        let mut p = DirectiveParser::default();
        assert_eq!(
            p.feed("# escape=x"),
            Err(ErrorKind::InvalidEscape("x".into()))
        );
    }

    #[test]
    fn block_ends_at_first_other_line() {
        let mut p = DirectiveParser::default();
        p.feed("# syntax=a").unwrap();
        p.feed("# hello").unwrap();
        p.feed("# escape=`").unwrap();
        assert_eq!(p.escape(), '\\');
        assert_eq!(p.directives.syntax.as_deref(), Some("a"));
    }
}
