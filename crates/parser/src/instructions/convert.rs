//! Raw nodes → typed instructions → stages, with BuildKit's validation and messages.

use super::duration::parse_go_duration;
use super::flags::{Flags, Kind};
use super::mount::parse_mount;
use super::*;
use crate::ast::{self, Node};
use crate::error::{ErrorKind, ParseError};

/// An error plus the text to point the column at (a flag, a word), when known.
type Failure = (ErrorKind, Option<String>);

const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Parse Dockerfile text all the way to typed stages.
pub fn parse_dockerfile(text: &str) -> Result<Dockerfile, ParseError> {
    let tree = ast::parse(text)?;
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &tree.children {
        let locate = |(kind, needle): Failure| locate(kind, needle, node, text);
        let instruction = instruction_from_node(node).map_err(locate)?;
        match instruction {
            Instruction::From(from) => {
                if let Some(name) = &from.name
                    && stages.iter().any(|s| s.name.as_deref() == Some(name))
                {
                    let kind = invalid("FROM", format!("duplicate stage name {name:?}"));
                    return Err(locate((kind, Some(name.clone()))));
                }
                stages.push(Stage {
                    name: from.name.clone(),
                    from: located(node, from),
                    instructions: Vec::new(),
                });
            }
            Instruction::Arg(arg) if stages.is_empty() => meta_args.push(located(node, arg)),
            other => match stages.last_mut() {
                Some(stage) => stage.instructions.push(located(node, other)),
                None => {
                    let kind = invalid(
                        other.keyword(),
                        "no build stage in current context (only ARG may come before the first FROM)".into(),
                    );
                    return Err(locate((kind, None)));
                }
            },
        }
    }
    if stages.is_empty() {
        let line = tree.children.last().map_or(1, |n| n.end_line);
        let kind = ErrorKind::MissingArguments {
            keyword: "Dockerfile".into(),
            expected: "at least one FROM".into(),
        };
        return Err(ParseError::at(kind, line));
    }
    Ok(Dockerfile {
        directives: tree.directives,
        meta_args,
        stages,
        warnings: tree.warnings,
    })
}

fn located<T>(node: &Node, instruction: T) -> Located<T> {
    Located {
        instruction,
        start_line: node.start_line,
        end_line: node.end_line,
        original: node.original.clone(),
    }
}

/// Attach the node's location; point the column at `needle` on its first line when found.
fn locate(kind: ErrorKind, needle: Option<String>, node: &Node, text: &str) -> ParseError {
    let source = text.split('\n').nth(node.start_line - 1).unwrap_or("");
    let column = needle
        .as_deref()
        .and_then(|n| source.find(n))
        .or_else(|| source.find(|c: char| !c.is_whitespace()))
        .map_or(1, |byte| source[..byte].chars().count() + 1);
    ParseError {
        kind,
        line: node.start_line,
        column,
        end_line: node.end_line,
    }
}

fn invalid(keyword: &str, reason: String) -> ErrorKind {
    ErrorKind::InvalidInstruction {
        keyword: keyword.to_string(),
        reason,
    }
}

fn missing(keyword: &str, expected: &str) -> Failure {
    (
        ErrorKind::MissingArguments {
            keyword: keyword.to_string(),
            expected: expected.to_string(),
        },
        None,
    )
}

fn flags(node: &Node, declared: &[(&'static str, Kind)]) -> Result<Flags, Failure> {
    Flags::parse(&node.keyword, &node.flags, declared).map_err(|(k, word)| (k, Some(word)))
}

fn command_line(node: &Node) -> CommandLine {
    if node.json {
        CommandLine::Exec(node.args.clone())
    } else {
        CommandLine::Shell(node.args.join(" "))
    }
}

fn one_arg(node: &Node, keyword: &str) -> Result<String, Failure> {
    node.args
        .first()
        .cloned()
        .ok_or_else(|| missing(keyword, "exactly one argument"))
}

fn key_values(node: &Node, keyword: &str) -> Result<Vec<KeyValue>, Failure> {
    if node.args.is_empty() {
        return Err(missing(keyword, "at least one argument"));
    }
    let pairs: Vec<KeyValue> = node
        .args
        .chunks(3)
        .map(|c| KeyValue {
            key: c[0].clone(),
            value: c.get(1).cloned().unwrap_or_default(),
        })
        .collect();
    if keyword == "ENV" && pairs.iter().any(|p| p.key.is_empty()) {
        return Err((invalid(keyword, "ENV names can not be blank".into()), None));
    }
    Ok(pairs)
}

/// Type one raw node. Unknown keywords, missing arguments and bad flags are errors.
pub fn instruction_from_node(node: &Node) -> Result<Instruction, (ErrorKind, Option<String>)> {
    let no_flags = |node: &Node| flags(node, &[]).map(|_| ());
    Ok(match node.keyword.as_str() {
        "from" => {
            let mut f = flags(node, &[("platform", Kind::Str)])?;
            let (image, name) = match node.args.as_slice() {
                [image] => (image.clone(), None),
                [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    let name = name.to_ascii_lowercase();
                    if !valid_stage_name(&name) {
                        let reason = format!(
                            "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                        );
                        return Err((invalid("FROM", reason), Some(node.args[2].clone())));
                    }
                    (image.clone(), Some(name))
                }
                _ => {
                    return Err(missing(
                        "FROM",
                        "either one or three arguments (FROM IMAGE [AS NAME])",
                    ));
                }
            };
            Instruction::From(From {
                image,
                name,
                platform: f.string("platform"),
            })
        }
        "run" => {
            let mut f = flags(
                node,
                &[
                    ("mount", Kind::List),
                    ("network", Kind::Str),
                    ("security", Kind::Str),
                ],
            )?;
            if node.args.is_empty() && !node.json {
                return Err(missing("RUN", "at least one argument"));
            }
            let mount_specs = f.list("mount");
            let mut mounts = Vec::with_capacity(mount_specs.len());
            for spec in &mount_specs {
                let m = parse_mount(spec).map_err(|reason| {
                    (
                        ErrorKind::InvalidFlag {
                            flag: "mount".into(),
                            reason,
                        },
                        Some(spec.clone()),
                    )
                })?;
                mounts.push(m);
            }
            let network = f.string("network");
            if let Some(n) = &network
                && !matches!(n.as_str(), "default" | "none" | "host")
                && !n.contains('$')
            {
                let reason = format!("unsupported network mode {n:?} (use default, none or host)");
                return Err((
                    ErrorKind::InvalidFlag {
                        flag: "network".into(),
                        reason,
                    },
                    Some(n.clone()),
                ));
            }
            let security = f.string("security");
            if let Some(s) = &security
                && !matches!(s.as_str(), "sandbox" | "insecure")
            {
                let reason = format!("unsupported security mode {s:?} (use sandbox or insecure)");
                return Err((
                    ErrorKind::InvalidFlag {
                        flag: "security".into(),
                        reason,
                    },
                    Some(s.clone()),
                ));
            }
            Instruction::Run(Run {
                command: command_line(node),
                heredocs: node.heredocs.clone(),
                mounts,
                mount_specs,
                network,
                security,
            })
        }
        "cmd" => {
            no_flags(node)?;
            Instruction::Cmd(Cmd {
                command: command_line(node),
            })
        }
        "entrypoint" => {
            no_flags(node)?;
            Instruction::Entrypoint(Entrypoint {
                command: command_line(node),
            })
        }
        "shell" => {
            no_flags(node)?;
            if !node.json {
                return Err((
                    invalid("SHELL", "requires the arguments to be in JSON form".into()),
                    None,
                ));
            }
            if node.args.is_empty() {
                return Err(missing("SHELL", "at least one argument"));
            }
            Instruction::Shell(Shell {
                shell: node.args.clone(),
            })
        }
        "env" => {
            no_flags(node)?;
            Instruction::Env(Env {
                vars: key_values(node, "ENV")?,
            })
        }
        "label" => {
            no_flags(node)?;
            Instruction::Label(Label {
                labels: key_values(node, "LABEL")?,
            })
        }
        "maintainer" => {
            no_flags(node)?;
            Instruction::Maintainer(Maintainer {
                name: one_arg(node, "MAINTAINER")?,
            })
        }
        "expose" => {
            no_flags(node)?;
            if node.args.is_empty() {
                return Err(missing("EXPOSE", "at least one argument"));
            }
            Instruction::Expose(Expose {
                ports: node.args.clone(),
            })
        }
        "copy" => {
            let mut f = flags(
                node,
                &[
                    ("from", Kind::Str),
                    ("chown", Kind::Str),
                    ("chmod", Kind::Str),
                    ("link", Kind::Bool),
                    ("parents", Kind::Bool),
                    ("exclude", Kind::List),
                ],
            )?;
            let (sources, dest) = sources_and_dest(node, "COPY")?;
            Instruction::Copy(Copy {
                sources,
                dest,
                from: f.string("from"),
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                link: f.bool("link"),
                parents: f.bool("parents"),
                exclude: f.list("exclude"),
                heredocs: node.heredocs.clone(),
            })
        }
        "add" => {
            let mut f = flags(
                node,
                &[
                    ("chown", Kind::Str),
                    ("chmod", Kind::Str),
                    ("link", Kind::Bool),
                    ("keep-git-dir", Kind::Bool),
                    ("checksum", Kind::Str),
                    ("exclude", Kind::List),
                    ("unpack", Kind::Bool),
                ],
            )?;
            let (sources, dest) = sources_and_dest(node, "ADD")?;
            Instruction::Add(Add {
                sources,
                dest,
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                link: f.bool("link"),
                keep_git_dir: f.bool("keep-git-dir"),
                checksum: f.string("checksum"),
                exclude: f.list("exclude"),
                unpack: f.opt_bool("unpack"),
                heredocs: node.heredocs.clone(),
            })
        }
        "volume" => {
            no_flags(node)?;
            if node.args.is_empty() {
                return Err(missing("VOLUME", "at least one argument"));
            }
            if node.args.iter().any(|p| p.trim().is_empty()) {
                return Err((
                    invalid("VOLUME", "specified can not be an empty string".into()),
                    None,
                ));
            }
            Instruction::Volume(Volume {
                paths: node.args.clone(),
            })
        }
        "user" => {
            no_flags(node)?;
            Instruction::User(User {
                user: one_arg(node, "USER")?,
            })
        }
        "workdir" => {
            no_flags(node)?;
            Instruction::Workdir(Workdir {
                path: one_arg(node, "WORKDIR")?,
            })
        }
        "arg" => {
            no_flags(node)?;
            if node.args.is_empty() {
                return Err(missing("ARG", "at least one argument"));
            }
            let mut args = Vec::with_capacity(node.args.len());
            for word in &node.args {
                let (name, default) = match word.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (word.clone(), None),
                };
                if name.is_empty() {
                    return Err((
                        invalid("ARG", "names can not be blank".into()),
                        Some(word.clone()),
                    ));
                }
                args.push(ArgDef { name, default });
            }
            Instruction::Arg(Arg { args })
        }
        "onbuild" => {
            no_flags(node)?;
            let Some(nested) = &node.nested else {
                return Err(missing("ONBUILD", "at least one argument"));
            };
            match nested.keyword.as_str() {
                "onbuild" => {
                    return Err((
                        invalid(
                            "ONBUILD",
                            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                        ),
                        None,
                    ));
                }
                "from" | "maintainer" => {
                    let reason = format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        nested.keyword.to_uppercase()
                    );
                    return Err((invalid("ONBUILD", reason), None));
                }
                _ => {}
            }
            let trigger = instruction_from_node(nested)?;
            Instruction::Onbuild(Onbuild {
                expression: nested.original.trim().to_string(),
                trigger: Box::new(trigger),
            })
        }
        "stopsignal" => {
            no_flags(node)?;
            Instruction::Stopsignal(StopSignal {
                signal: one_arg(node, "STOPSIGNAL")?,
            })
        }
        "healthcheck" => healthcheck(node)?,
        _ => {
            let mut message = node.keyword.to_uppercase();
            if let Some(s) = suggest(&message) {
                message.push_str(&format!(" (did you mean {s}?)"));
            }
            let word = node.original.split_whitespace().next().map(str::to_string);
            return Err((ErrorKind::UnknownInstruction(message), word));
        }
    })
}

fn sources_and_dest(node: &Node, keyword: &str) -> Result<(Vec<String>, String), Failure> {
    match node.args.split_last() {
        Some((dest, sources)) if !sources.is_empty() => Ok((sources.to_vec(), dest.clone())),
        _ => Err(missing(
            keyword,
            "at least two arguments (source and destination)",
        )),
    }
}

fn healthcheck(node: &Node) -> Result<Instruction, Failure> {
    let Some(typ) = node.args.first() else {
        return Err(missing("HEALTHCHECK", "at least one argument"));
    };
    match typ.to_uppercase().as_str() {
        "NONE" => {
            if node.args.len() > 1 {
                return Err((
                    invalid("HEALTHCHECK", "HEALTHCHECK NONE takes no arguments".into()),
                    None,
                ));
            }
            if !node.flags.is_empty() {
                return Err((
                    invalid("HEALTHCHECK", "HEALTHCHECK NONE takes no options".into()),
                    node.flags.first().cloned(),
                ));
            }
            Ok(Instruction::Healthcheck(Healthcheck::None))
        }
        "CMD" => {
            let mut f = flags(
                node,
                &[
                    ("interval", Kind::Str),
                    ("timeout", Kind::Str),
                    ("start-period", Kind::Str),
                    ("start-interval", Kind::Str),
                    ("retries", Kind::Str),
                ],
            )?;
            let rest = &node.args[1..];
            if rest.is_empty() || (!node.json && rest.iter().all(|a| a.trim().is_empty())) {
                return Err(missing("HEALTHCHECK CMD", "a command"));
            }
            let test = if node.json {
                CommandLine::Exec(rest.to_vec())
            } else {
                CommandLine::Shell(rest.join(" "))
            };
            let mut duration = |name: &str| -> Result<Option<Duration>, Failure> {
                let Some(v) = f.string(name) else {
                    return Ok(None);
                };
                let bad = |reason: String| {
                    (
                        ErrorKind::InvalidFlag {
                            flag: name.to_string(),
                            reason,
                        },
                        Some(v.clone()),
                    )
                };
                let d = parse_go_duration(&v).map_err(bad)?;
                if !d.is_zero() && d < Duration::from_millis(1) {
                    return Err(bad("cannot be less than 1ms".into()));
                }
                Ok(Some(d))
            };
            let interval = duration("interval")?;
            let timeout = duration("timeout")?;
            let start_period = duration("start-period")?;
            let start_interval = duration("start-interval")?;
            let retries = match f.string("retries") {
                None => None,
                Some(v) => Some(v.parse::<u32>().map_err(|_| {
                    let reason = format!("{v:?} is not a non-negative number of retries");
                    (
                        ErrorKind::InvalidFlag {
                            flag: "retries".into(),
                            reason,
                        },
                        Some(v.clone()),
                    )
                })?),
            };
            Ok(Instruction::Healthcheck(Healthcheck::Cmd {
                test,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            }))
        }
        other => Err((
            invalid(
                "HEALTHCHECK",
                format!("unknown type {other:?} in HEALTHCHECK (try CMD)"),
            ),
            Some(typ.clone()),
        )),
    }
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// The closest known keyword within edit distance 2, for "did you mean" hints.
fn suggest(word: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .map(|k| (levenshtein(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Instruction {
        let df = parse_dockerfile(&format!("FROM scratch\n{text}\n")).unwrap();
        df.stages[0].instructions[0].instruction.clone()
    }

    fn error(text: &str) -> String {
        parse_dockerfile(text).unwrap_err().to_string()
    }

    #[test]
    fn stages_and_meta_args() {
        let df = parse_dockerfile("ARG A\nFROM x AS Build\nRUN a\nFROM build\nARG B\n").unwrap();
        assert_eq!(df.meta_args[0].instruction.args[0].name, "A");
        assert_eq!(df.stages.len(), 2);
        assert_eq!(df.stages[0].name.as_deref(), Some("build"));
        assert_eq!(df.stage("BUILD").map(|(i, _)| i), Some(0));
        assert_eq!(df.stage("1").map(|(i, _)| i), Some(1));
        assert_eq!(df.stages[1].instructions.len(), 1);
    }

    #[test]
    fn typed_fields() {
        match one("COPY --from=b --chown=1:2 --chmod=644 --link a b /d/") {
            Instruction::Copy(c) => {
                assert_eq!(
                    (c.sources, c.dest),
                    (vec!["a".into(), "b".into()], "/d/".into())
                );
                assert_eq!(
                    (
                        c.from.as_deref(),
                        c.chown.as_deref(),
                        c.chmod.as_deref(),
                        c.link
                    ),
                    (Some("b"), Some("1:2"), Some("644"), true)
                );
            }
            other => panic!("{other:?}"),
        }
        match one("HEALTHCHECK --interval=5s --retries=3 CMD [\"true\"]") {
            Instruction::Healthcheck(Healthcheck::Cmd {
                test,
                interval,
                retries,
                ..
            }) => {
                assert_eq!(test, CommandLine::Exec(vec!["true".into()]));
                assert_eq!((interval, retries), (Some(Duration::from_secs(5)), Some(3)));
            }
            other => panic!("{other:?}"),
        }
        match one("ENV A=1 B=\"x y\"") {
            Instruction::Env(e) => assert_eq!(
                e.vars[1],
                KeyValue {
                    key: "B".into(),
                    value: "\"x y\"".into()
                }
            ),
            other => panic!("{other:?}"),
        }
        match one("ONBUILD RUN echo hi") {
            Instruction::Onbuild(o) => {
                assert_eq!(o.expression, "RUN echo hi");
                assert!(matches!(*o.trigger, Instruction::Run(_)));
            }
            other => panic!("{other:?}"),
        }
        match one("arg a=1 b") {
            Instruction::Arg(a) => assert_eq!(
                a.args[1],
                ArgDef {
                    name: "b".into(),
                    default: None
                }
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            one("healthcheck none"),
            Instruction::Healthcheck(Healthcheck::None)
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(
            error("FROM a\nFORM b\n"),
            "2:1: unknown instruction: FORM (did you mean FROM?)"
        );
        assert_eq!(
            error("FROM a\nCOPY --form=x a b\n"),
            "2:6: unknown flag: --form (not accepted by COPY)"
        );
        assert_eq!(
            error("FROM a\nCOPY onlyone\n"),
            "2:1: COPY requires at least two arguments (source and destination)"
        );
        assert_eq!(
            error("RUN x\n"),
            "1:1: RUN: no build stage in current context (only ARG may come before the first FROM)"
        );
        assert_eq!(
            error("FROM a b\n"),
            "1:1: FROM requires either one or three arguments (FROM IMAGE [AS NAME])"
        );
        assert_eq!(
            error("FROM a AS 1x\n"),
            "1:11: FROM: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
        );
        assert_eq!(
            error("FROM a AS x\nFROM b AS x\n"),
            "2:11: FROM: duplicate stage name \"x\""
        );
        assert_eq!(
            error("FROM a\nONBUILD ONBUILD RUN x\n"),
            "2:1: ONBUILD: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!(
            error("FROM a\nONBUILD FROM x\n"),
            "2:1: ONBUILD: FROM isn't allowed as an ONBUILD trigger"
        );
        assert_eq!(
            error("FROM a\nSHELL sh -c\n"),
            "2:1: SHELL: requires the arguments to be in JSON form"
        );
        assert_eq!(
            error("FROM a\nHEALTHCHECK --interval=1us CMD x\n"),
            "2:24: invalid flag --interval: cannot be less than 1ms"
        );
        assert_eq!(
            error("FROM a\nHEALTHCHECK CMD\n"),
            "2:1: HEALTHCHECK CMD requires a command"
        );
        assert_eq!(
            error("FROM a\nRUN --mount=type=nfs,target=/x a\n"),
            "2:13: invalid flag --mount: unsupported mount type \"nfs\""
        );
        assert_eq!(
            error("FROM a\nRUN --network=bridge a\n"),
            "2:15: invalid flag --network: unsupported network mode \"bridge\" (use default, none or host)"
        );
        assert_eq!(
            error("FROM a\nWORKDIR\n"),
            "2:1: WORKDIR requires exactly one argument"
        );
        assert_eq!(
            error("ARG x\n"),
            "1:1: Dockerfile requires at least one FROM"
        );
    }
}
