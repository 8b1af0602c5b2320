//! `.env` files (and `--env-file`) as docker compose reads them: `KEY=VALUE` lines, an optional
//! `export ` prefix, `#` comments (whole lines, or after a space in an unquoted value), single
//! quotes taken literally, double quotes with `\n`, `\t`, `\"` and `\\` escapes, and `${VAR}`
//! references (to earlier lines or the process environment) in unquoted and double-quoted
//! values.

use indexmap::IndexMap;

use crate::interpolate::interpolate_str;

/// A malformed line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EnvFileError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parse an env file's text; `outer` looks up variables not defined in the file (the process
/// environment), which also win over the file's own values when the caller merges them.
pub fn parse_env_file(
    text: &str,
    outer: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, EnvFileError> {
    let mut vars: IndexMap<String, String> = IndexMap::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, raw)) = lines.next() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let err = |message: String| EnvFileError {
            line: n + 1,
            message,
        };
        let (key, rest) = match line.split_once('=') {
            Some((k, v)) => (k.trim_end(), v),
            // `KEY` alone: the variable from the environment, if any.
            None => {
                let key = line.trim_end();
                if let Some(v) = outer(key) {
                    vars.insert(key.to_string(), v);
                }
                continue;
            }
        };
        if key.is_empty() || key.chars().any(|c| c.is_whitespace()) {
            return Err(err(format!("invalid variable name {key:?}")));
        }
        let lookup = |name: &str| vars.get(name).cloned().or_else(|| outer(name));
        let value = if let Some(body) = rest.strip_prefix('\'') {
            let mut body = body.to_string();
            // A quoted value may run over several lines.
            while !body.contains('\'') {
                let Some((_, more)) = lines.next() else {
                    return Err(err("unterminated single-quoted value".into()));
                };
                body.push('\n');
                body.push_str(more);
            }
            body[..body.find('\'').unwrap_or(body.len())].to_string()
        } else if let Some(body) = rest.strip_prefix('"') {
            let mut body = body.to_string();
            let end = loop {
                if let Some(end) = closing_quote(&body) {
                    break end;
                }
                let Some((_, more)) = lines.next() else {
                    return Err(err("unterminated double-quoted value".into()));
                };
                body.push('\n');
                body.push_str(more);
            };
            let unescaped = unescape(&body[..end]);
            interpolate_str(&unescaped, &lookup).map_err(|e| err(e.to_string()))?
        } else {
            let value = match rest.find(" #") {
                Some(at) => &rest[..at],
                None => rest,
            };
            interpolate_str(value.trim(), &lookup).map_err(|e| err(e.to_string()))?
        };
        vars.insert(key.to_string(), value);
    }
    Ok(vars)
}

/// The index of the first unescaped `"`.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outer(name: &str) -> Option<String> {
        (name == "HOME").then(|| "/root".to_string())
    }

    #[test]
    fn docker_compose_env_file_forms() {
        let text = "# comment\nA=1\nexport B = two words # trailing\nC='lit ${A} #x'\nD=\"q\\n${A}\\\"\"\nE=${HOME}/x\nF=\nHOME\nG=\"multi\nline\"\n";
        let v = parse_env_file(text, &outer).unwrap();
        assert_eq!(v["A"], "1");
        assert_eq!(v["B"], "two words");
        assert_eq!(v["C"], "lit ${A} #x");
        assert_eq!(v["D"], "q\n1\"");
        assert_eq!(v["E"], "/root/x");
        assert_eq!(v["F"], "");
        assert_eq!(v["HOME"], "/root");
        assert_eq!(v["G"], "multi\nline");
    }

    #[test]
    fn bad_lines_name_their_number() {
        let e = parse_env_file("A=1\nBAD KEY=2\n", &outer).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse_env_file("A='open\n", &outer).is_err());
    }
}
