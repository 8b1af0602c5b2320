//! Heredoc declarations (`<<EOF`, `<<-EOF`, `3<<'EOF'`) found on an instruction line.

use super::Heredoc;

/// The heredocs a logical line declares, in order (bodies still empty).
pub(crate) fn heredocs_from_line(line: &str) -> Vec<Heredoc> {
    let Some(words) = raw_words(line) else {
        return Vec::new();
    };
    words.iter().filter_map(|w| parse_heredoc(w)).collect()
}

/// `^(\d*)<<(-?)([^<]*)$`, then the name must be exactly one shell word.
fn parse_heredoc(word: &str) -> Option<Heredoc> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = unquote(rest)?;
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    Some(Heredoc {
        expand: quotes(&name) == quotes(rest),
        name,
        content: String::new(),
        chomp,
        file_descriptor: word[..digits].parse().unwrap_or(0),
    })
}

/// Split a line into words keeping quotes and escapes as written (the lexer's raw mode).
/// `None` when a quote is left open.
fn raw_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = line.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                word.push(c);
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            '\'' | '"' => {
                in_word = true;
                word.push(c);
                let mut closed = false;
                while let Some(n) = chars.next() {
                    word.push(n);
                    if n == c {
                        closed = true;
                        break;
                    }
                    if c == '"' && n == '\\' {
                        word.extend(chars.next());
                    }
                }
                if !closed {
                    return None;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// Quote removal and escapes of one word; `None` unless it is exactly one word.
fn unquote(word: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    n => out.push(n),
                }
            },
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => {
                        let n = chars.next()?;
                        if !matches!(n, '"' | '\\' | '$' | '`') {
                            out.push('\\');
                        }
                        out.push(n);
                    }
                    n => out.push(n),
                }
            },
            c if c.is_whitespace() => return None,
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, bool, bool, u32)> {
        heredocs_from_line(line)
            .into_iter()
            .map(|h| (h.name, h.expand, h.chomp, h.file_descriptor))
            .collect()
    }

    #[test]
    fn heredoc_words() {
        assert_eq!(names("RUN <<EOF"), [("EOF".into(), true, false, 0)]);
        assert_eq!(names("RUN 3<<-EOF"), [("EOF".into(), true, true, 3)]);
        assert_eq!(names("RUN <<'EOF'"), [("EOF".into(), false, false, 0)]);
        assert_eq!(names("RUN <<eo'f'"), [("eof".into(), false, false, 0)]);
        assert_eq!(names(r"RUN <<eo\'f"), [("eo'f".into(), true, false, 0)]);
        assert_eq!(
            names("RUN <<'one two'"),
            [("one two".into(), false, false, 0)]
        );
        assert_eq!(names("COPY <<A <<B /dest").len(), 2);
        assert!(names(r#"RUN "<<NOHEREDOC""#).is_empty());
        assert!(names("RUN <<'EOF").is_empty());
        assert!(names("RUN a << b").is_empty());
    }
}
