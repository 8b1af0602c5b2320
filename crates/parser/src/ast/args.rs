//! Splitting one logical line into keyword, flags and arguments, per instruction,
//! exactly as BuildKit's parser dispatch table does.

use super::Node;
use crate::error::ErrorKind;

/// BuildKit's `reWhitespace`: `[\t\v\f\r ]+`.
fn is_sep(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

fn split_ws(s: &str) -> Vec<String> {
    s.split(is_sep)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Build a node from a logical line (keyword, flags, arguments).
pub(crate) fn node_from_line(line: &str, escape: char) -> Result<Node, ErrorKind> {
    let trimmed = line.trim();
    let (cmd, rest) = match trimmed.find(is_sep) {
        Some(i) => (&trimmed[..i], trimmed[i..].trim_start_matches(is_sep)),
        None => (trimmed, ""),
    };
    let (flags, rest) = if rest.is_empty() {
        (Vec::new(), "")
    } else {
        extract_flags(rest)
    };
    let rest = rest.trim();
    let keyword = cmd.to_lowercase();
    let mut node = Node {
        keyword,
        flags,
        args: Vec::new(),
        nested: None,
        json: false,
        heredocs: Vec::new(),
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
    };
    match node.keyword.as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => maybe_json(rest, &mut node)?,
        "add" | "copy" | "volume" => {
            if !try_json(rest, &mut node)? {
                node.args = split_ws(rest);
            }
        }
        "from" | "expose" => node.args = split_ws(rest),
        "user" | "workdir" | "maintainer" | "stopsignal" => {
            if !rest.is_empty() {
                node.args = vec![rest.to_string()];
            }
        }
        "arg" => node.args = parse_words(rest, escape),
        "env" => node.args = name_values(rest, "ENV", escape)?,
        "label" => node.args = name_values(rest, "LABEL", escape)?,
        "healthcheck" => healthcheck(rest, &mut node)?,
        "onbuild" => {
            if !rest.is_empty() {
                node.nested = Some(Box::new(node_from_line(rest, escape)?));
            }
        }
        _ => node.args = vec![String::new()],
    }
    Ok(node)
}

/// `parseMaybeJSON`: a JSON string array, or the whole rest as one argument.
fn maybe_json(rest: &str, node: &mut Node) -> Result<(), ErrorKind> {
    if !rest.is_empty() && !try_json(rest, node)? {
        node.args = vec![rest.to_string()];
    }
    Ok(())
}

/// `parseJSON`: Ok(true) when `rest` is a JSON array of strings; a non-string element is a
/// hard error; anything else that is not valid JSON falls back (Ok(false)).
fn try_json(rest: &str, node: &mut Node) -> Result<bool, ErrorKind> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(false);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(rest)
    else {
        return Ok(false);
    };
    let mut args = Vec::with_capacity(items.len());
    for item in items {
        match item {
            serde_json::Value::String(s) => args.push(s),
            _ => return Err(ErrorKind::JsonNotStringArray),
        }
    }
    node.args = args;
    node.json = true;
    Ok(true)
}

/// `parseHealthConfig`: the first token, then the rest like CMD.
fn healthcheck(rest: &str, node: &mut Node) -> Result<(), ErrorKind> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok(());
    }
    let cmd = rest[sep..].trim_start();
    maybe_json(cmd, node)?;
    node.args.insert(0, rest[..sep].to_string());
    Ok(())
}

/// `parseNameVal` for ENV and LABEL: legacy `KEY VALUE` or `K=V …`, dumped as triples.
fn name_values(rest: &str, keyword: &str, escape: char) -> Result<Vec<String>, ErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let Some(i) = rest.find(is_sep) else {
            return Err(ErrorKind::MissingValue(keyword.to_string()));
        };
        let value = rest[i..].trim_start_matches(is_sep);
        return Ok(vec![
            rest[..i].to_string(),
            value.to_string(),
            String::new(),
        ]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(ErrorKind::MissingEquals { word });
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

/// `extractBuilderFlags`: leading `--flag` words (quotes removed, `\` escapes applied);
/// returns the flags and the rest of the line. A bare `--` ends the flags.
pub(crate) fn extract_flags(line: &str) -> (Vec<String>, &str) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut chars = line.char_indices().peekable();
    loop {
        let Some((pos, ch)) = chars.next() else {
            if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            return (words, "");
        };
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            if !(ch == '-' && line[pos + 1..].starts_with('-')) {
                return (words, &line[pos..]);
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    if word == "--" {
                        return (words, &line[pos..]);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    phase = Phase::Spaces;
                } else if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(ch);
                } else if ch == '\\' {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                } else if ch == '\\' {
                    match chars.next() {
                        Some((_, n)) => word.push(n),
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Spaces => unreachable!("handled above"),
        }
    }
}

/// `parseWords` (ARG, ENV, LABEL): split on whitespace outside quotes, keeping quotes and
/// escape characters in the words; an escape at the very end of the line is dropped.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    loop {
        let Some(mut ch) = chars.next() else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            return words;
        };
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(ch);
                }
                if ch == escape {
                    match chars.next() {
                        None => continue,
                        Some(n) => {
                            word.push(ch);
                            ch = n;
                        }
                    }
                }
                word.push(ch);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                }
                if ch == escape && q != '\'' {
                    match chars.next() {
                        None => {
                            phase = Phase::Word;
                            continue;
                        }
                        Some(n) => {
                            word.push(ch);
                            ch = n;
                        }
                    }
                }
                word.push(ch);
            }
            Phase::Spaces => unreachable!("handled above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_end_at_first_plain_word() {
        assert_eq!(
            extract_flags("--a=1 --b=\"x y\" foo --c"),
            (vec!["--a=1".into(), "--b=x y".into()], "foo --c")
        );
        assert_eq!(
            extract_flags("--doit -- [ ]"),
            (vec!["--doit".into()], " [ ]")
        );
        assert_eq!(extract_flags("-- foo"), (vec![], " foo"));
        assert_eq!(extract_flags("--x=a\\ b"), (vec!["--x=a b".into()], ""));
        assert_eq!(extract_flags("-x"), (vec![], "-x"));
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words(r#"abc="123 456" def"#, '\\'),
            [r#"abc="123 456""#, "def"]
        );
        assert_eq!(parse_words(r"foo\ bar", '\\'), [r"foo\ bar"]);
        assert_eq!(parse_words(r"a\", '\\'), ["a"]);
        assert_eq!(parse_words(r"'a\' b", '\\'), [r"'a\'", "b"]);
    }

    #[test]
    fn json_errors_and_fallbacks() {
        let n = node_from_line(r#"CMD ["a", 1]"#, '\\');
        assert_eq!(n.unwrap_err(), ErrorKind::JsonNotStringArray);
        let n = node_from_line(r#"CMD ["a" "b"]"#, '\\').unwrap();
        assert_eq!((n.json, n.args), (false, vec![r#"["a" "b"]"#.to_string()]));
        let n = node_from_line("CMD []", '\\').unwrap();
        assert!(n.json && n.args.is_empty());
    }

    #[test]
    fn onbuild_nests() {
        let n = node_from_line("ONBUILD COPY --from=x a b", '\\').unwrap();
        assert_eq!(n.dump(), r#"onbuild (copy ["--from=x"] "a" "b")"#);
        assert_eq!(node_from_line("FOO bar", '\\').unwrap().dump(), r#"foo """#);
    }
}
