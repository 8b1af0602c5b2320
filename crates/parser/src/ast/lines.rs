//! The line loop: physical lines → logical instructions, as BuildKit's `parser.Parse`.

use super::directive::DirectiveParser;
use super::heredoc::heredocs_from_line;
use super::{Ast, Node, Warning, args};
use crate::error::{ErrorKind, ParseError};

/// Longest physical line accepted (BuildKit's scanner limit).
pub const MAX_LINE: usize = 65535;

/// Parse Dockerfile text into the raw tree.
///
/// Fails with a located [`ParseError`] on what BuildKit's parser rejects: no instructions,
/// a non-string JSON array, legacy `ENV`/`LABEL` without a value, repeated or invalid
/// directives, unterminated heredocs and over-long lines.
pub fn parse(text: &str) -> Result<Ast, ParseError> {
    let mut lines = physical_lines(text);
    let mut directives = DirectiveParser::default();
    let mut children = Vec::new();
    let mut warnings = Vec::new();
    let mut current = 0usize;

    while let Some(raw) = lines.next() {
        let raw = if current == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        check_length(raw, current + 1)?;
        let token = trim_newline(raw).trim_start();
        directives
            .feed(token)
            .map_err(|k| ParseError::at(k, current + 1))?;
        let token = if is_comment(token) { "" } else { token };
        current += 1;
        let start = current;

        let (first, mut end) = trim_continuation(token, directives.escape());
        if end && first.is_empty() {
            continue;
        }
        let mut logical = first.to_string();
        let mut empty_continuation = false;
        while !end {
            let Some(raw) = lines.next() else { break };
            check_length(raw, current + 1)?;
            let token = trim_newline(raw);
            directives
                .feed(token)
                .map_err(|k| ParseError::at(k, current + 1))?;
            current += 1;
            if is_comment(token.trim_start()) {
                continue;
            }
            if token.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (rest, e) = trim_continuation(token, directives.escape());
            end = e;
            logical.push_str(rest);
        }
        if empty_continuation {
            warnings.push(Warning {
                line: start,
                message: format!("Empty continuation line found in: {logical}"),
            });
        }

        let located = |kind| ParseError {
            kind,
            line: start,
            column: 1,
            end_line: current,
        };
        let mut node = args::node_from_line(&logical, directives.escape()).map_err(located)?;
        if can_contain_heredoc(&node) && logical.contains("<<") {
            for mut doc in heredocs_from_line(&logical) {
                let mut terminated = false;
                for raw in lines.by_ref() {
                    current += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                    doc.content.push('\n');
                }
                if !terminated {
                    return Err(ParseError {
                        kind: ErrorKind::UnterminatedHeredoc(doc.name),
                        line: start,
                        column: 1,
                        end_line: current,
                    });
                }
                node.heredocs.push(doc);
            }
        }
        node.start_line = start;
        node.end_line = current;
        children.push(node);
    }

    if children.is_empty() {
        return Err(ParseError::at(ErrorKind::NoInstructions, current.max(1)));
    }
    Ok(Ast {
        directives: directives.directives,
        children,
        warnings,
    })
}

/// Split at LF; like Go's line scanner, drop one CR before each LF and don't yield an
/// empty line after a final LF.
fn physical_lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let empty = text.is_empty();
    body.split('\n')
        .filter(move |_| !empty)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}

fn check_length(raw: &str, line: usize) -> Result<(), ParseError> {
    if raw.len() > MAX_LINE {
        return Err(ParseError::at(
            ErrorKind::LineTooLong { max: MAX_LINE },
            line,
        ));
    }
    Ok(())
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(trimmed: &str) -> bool {
    trimmed.starts_with('#')
}

/// `(^|[^E])E[ \t]*$` → drop the escape and trailing blanks; returns (line, is_end_of_line).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before, false);
    }
    (line, true)
}

fn can_contain_heredoc(node: &Node) -> bool {
    let node = match (&node.keyword[..], &node.nested) {
        ("onbuild", Some(nested)) => nested,
        _ => node,
    };
    matches!(&node.keyword[..], "run" | "copy" | "add") && !node.json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rules() {
        assert_eq!(trim_continuation("a \\  ", '\\'), ("a ", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a\\\\", '\\'), ("a\\\\", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
    }

    #[test]
    fn line_numbers_count_everything() {
        let ast = parse("# syntax=x\n\nFROM a\n# c\nRUN a \\\n\n  # x\n  b\nCMD c").unwrap();
        let ranges: Vec<_> = ast
            .children
            .iter()
            .map(|n| (n.start_line, n.end_line))
            .collect();
        assert_eq!(ranges, [(3, 3), (5, 8), (9, 9)]);
        assert_eq!(ast.children[1].args, ["a   b"]);
        assert_eq!(ast.warnings.len(), 1);
    }

    #[test]
    fn crlf_and_bom() {
        let ast = parse("\u{feff}FROM a\r\nRUN b \\\r\n c\r\n").unwrap();
        assert_eq!(ast.dump(), "(from \"a\")\n(run \"b  c\")\n");
    }

    #[test]
    fn heredocs_read_bodies() {
        let ast = parse("FROM a\nRUN <<EOF <<-'END'\necho $x\nEOF\n\tcat\n\tEND\nCMD x\n").unwrap();
        let run = &ast.children[1];
        assert_eq!((run.start_line, run.end_line), (2, 6));
        assert_eq!(run.heredocs.len(), 2);
        assert_eq!(run.heredocs[0].content, "echo $x\n");
        assert!(run.heredocs[0].expand);
        assert_eq!(run.heredocs[1].name, "END");
        assert!(!run.heredocs[1].expand && run.heredocs[1].chomp);
        assert_eq!(run.heredocs[1].body(), "cat\n");
        assert_eq!(ast.children[2].start_line, 7);
    }

    #[test]
    fn errors_are_located() {
        let err = parse("FROM a\nRUN <<EOF\nnever ends\n").unwrap_err();
        assert_eq!(
            (err.line, &err.kind),
            (2, &ErrorKind::UnterminatedHeredoc("EOF".into()))
        );
        let err = parse("# only\n\n").unwrap_err();
        assert_eq!(err.kind, ErrorKind::NoInstructions);
        let err = parse("FROM a\n\nENV PATH\n").unwrap_err();
        assert_eq!(
            (err.line, err.kind),
            (3, ErrorKind::MissingValue("ENV".into()))
        );
        let long = format!("FROM a\nRUN {}\n", "x".repeat(MAX_LINE));
        assert_eq!(parse(&long).unwrap_err().line, 2);
    }
}
