//! `--flag` parsing for one instruction, with BuildKit's rules: every flag must be declared
//! by the instruction, string flags need `=value`, booleans take `true`/`false` or nothing,
//! and only list flags may repeat.

use std::collections::BTreeMap;

use crate::error::ErrorKind;

/// The kind of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Bool,
    List,
}

/// Parsed flag values of one instruction.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    strings: BTreeMap<&'static str, String>,
    bools: BTreeMap<&'static str, bool>,
    lists: BTreeMap<&'static str, Vec<String>>,
}

impl Flags {
    /// Parse `words` (each `--name[=value]`) against the declared `(name, kind)` table.
    pub(crate) fn parse(
        keyword: &str,
        words: &[String],
        declared: &[(&'static str, Kind)],
    ) -> Result<Self, (ErrorKind, String)> {
        let mut flags = Flags::default();
        for word in words {
            let body = word.strip_prefix("--").unwrap_or(word);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let bad = |reason: String| {
                (
                    ErrorKind::InvalidFlag {
                        flag: name.to_string(),
                        reason,
                    },
                    word.clone(),
                )
            };
            let Some(&(name, kind)) = declared.iter().find(|(n, _)| *n == name) else {
                return Err((
                    ErrorKind::UnknownFlag {
                        keyword: keyword.to_uppercase(),
                        flag: name.to_string(),
                    },
                    word.clone(),
                ));
            };
            match kind {
                Kind::Str => {
                    let Some(v) = value else {
                        return Err(bad("missing a value (use --name=value)".into()));
                    };
                    if flags.strings.insert(name, v.to_string()).is_some() {
                        return Err(bad("specified more than once".into()));
                    }
                }
                Kind::Bool => {
                    let v = match value.map(str::to_ascii_lowercase).as_deref() {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(other) => {
                            return Err(bad(format!("expecting a boolean value, not {other:?}")));
                        }
                    };
                    if flags.bools.insert(name, v).is_some() {
                        return Err(bad("specified more than once".into()));
                    }
                }
                Kind::List => {
                    let Some(v) = value else {
                        return Err(bad("missing a value (use --name=value)".into()));
                    };
                    flags.lists.entry(name).or_default().push(v.to_string());
                }
            }
        }
        Ok(flags)
    }

    /// A string flag's value.
    pub(crate) fn string(&mut self, name: &str) -> Option<String> {
        self.strings.remove(name)
    }

    /// A boolean flag's value (false when absent).
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.bools.get(name).copied().unwrap_or(false)
    }

    /// A boolean flag's value, `None` when absent.
    pub(crate) fn opt_bool(&self, name: &str) -> Option<bool> {
        self.bools.get(name).copied()
    }

    /// A list flag's values in order.
    pub(crate) fn list(&mut self, name: &str) -> Vec<String> {
        self.lists.remove(name).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &[(&str, Kind)] = &[
        ("from", Kind::Str),
        ("link", Kind::Bool),
        ("exclude", Kind::List),
    ];

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_declared_flags() {
        let mut f = Flags::parse(
            "copy",
            &words(&["--from=a", "--link", "--exclude=x", "--exclude=y"]),
            DECL,
        )
        .unwrap();
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert!(f.bool("link"));
        assert_eq!(f.list("exclude"), ["x", "y"]);
    }

    #[test]
    fn rejects_bad_flags() {
        let err = |w: &[&str]| {
            Flags::parse("copy", &words(w), DECL)
                .unwrap_err()
                .0
                .to_string()
        };
        assert_eq!(
            err(&["--chown=1"]),
            "unknown flag: --chown (not accepted by COPY)"
        );
        assert_eq!(
            err(&["--from"]),
            "invalid flag --from: missing a value (use --name=value)"
        );
        assert_eq!(
            err(&["--link=maybe"]),
            "invalid flag --link: expecting a boolean value, not \"maybe\""
        );
        assert_eq!(
            err(&["--from=a", "--from=b"]),
            "invalid flag --from: specified more than once"
        );
    }
}
