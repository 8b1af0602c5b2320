//! The `created_by` texts of history entries, as BuildKit's Dockerfile frontend writes them
//! (so `rbuild history` and `docker history` of an rbuild image read as they do for an image
//! BuildKit built): Go's `%q`/`%v` formatting of the values it records, `|N K=V` before a RUN
//! that sees build args, ` # buildkit` after the steps that make a layer.

use rbuild_parser::ast::go_quote;
use rbuild_parser::instructions::{Healthcheck, Instruction};

use crate::config::argv;

/// The history text of a RUN whose argv is `args` (shell form already wrapped in the shell),
/// in a stage that declared `args_in_scope` (name, value) so far.
pub(crate) fn run(args: &[String], args_in_scope: &[(String, String)]) -> String {
    let mut words = Vec::new();
    if !args_in_scope.is_empty() {
        words.push(format!("|{}", args_in_scope.len()));
        words.extend(args_in_scope.iter().map(|(k, v)| format!("{k}={v}")));
    }
    words.extend(args.iter().cloned());
    format!("RUN {} # buildkit", words.join(" "))
}

/// The history text of a COPY or ADD: the keyword, `--parents`, `--chown` and `--chmod` when
/// given, the sources and the destination (never `--from`, `--link` or `--exclude`).
pub(crate) fn copy(
    keyword: &str,
    parents: bool,
    chown: Option<&str>,
    chmod: Option<&str>,
    sources: &[String],
    dest: &str,
) -> String {
    let mut words = vec![keyword.to_string()];
    if parents {
        words.push("--parents".into());
    }
    if let Some(c) = chown.filter(|c| !c.is_empty()) {
        words.push(format!("--chown={c}"));
    }
    if let Some(m) = chmod.filter(|m| !m.is_empty()) {
        words.push(format!("--chmod={m}"));
    }
    words.extend(sources.iter().cloned());
    words.push(dest.to_string());
    format!("{} # buildkit", words.join(" "))
}

/// The history text of an instruction that only changes the config. `shell` is the stage's
/// SHELL (shell-form CMD and ENTRYPOINT are recorded wrapped in it); `exposed` the
/// `port/proto` keys an EXPOSE adds. ONBUILD has none (BuildKit records no entry for it).
pub(crate) fn config_step(
    ins: &Instruction,
    shell: &[String],
    exposed: &[String],
) -> Option<String> {
    let pairs = |kvs: &mut dyn Iterator<Item = (&String, &String)>| {
        kvs.map(|(k, v)| format!(" {k}={v}")).collect::<String>()
    };
    Some(match ins {
        Instruction::Env(e) => format!(
            "ENV{}",
            pairs(&mut e.vars.iter().map(|kv| (&kv.key, &kv.value)))
        ),
        Instruction::Label(l) => {
            format!(
                "LABEL{}",
                pairs(&mut l.labels.iter().map(|kv| (&kv.key, &kv.value)))
            )
        }
        Instruction::Expose(_) => {
            // Go prints the map of this instruction's ports with its keys sorted.
            let mut keys: Vec<&String> = exposed.iter().collect();
            keys.sort();
            keys.dedup();
            let body: Vec<String> = keys.iter().map(|k| format!("{k}:{{}}")).collect();
            format!("EXPOSE map[{}]", body.join(" "))
        }
        Instruction::User(u) => format!("USER {}", u.user),
        Instruction::Arg(a) => {
            let words: Vec<String> = a
                .args
                .iter()
                .map(|d| match &d.default {
                    Some(v) => format!("{}={v}", d.name),
                    None => d.name.clone(),
                })
                .collect();
            format!("ARG {}", words.join(" "))
        }
        Instruction::Cmd(c) => format!("CMD {}", go_q_slice(&argv(&c.command, shell))),
        Instruction::Entrypoint(e) => {
            format!("ENTRYPOINT {}", go_q_slice(&argv(&e.command, shell)))
        }
        Instruction::Volume(v) => format!("VOLUME {}", go_v_slice(&v.paths)),
        Instruction::Shell(s) => format!("SHELL {}", go_v_slice(&s.shell)),
        Instruction::Stopsignal(s) => format!("STOPSIGNAL {}", s.signal),
        Instruction::Maintainer(m) => format!("MAINTAINER {}", m.name),
        Instruction::Healthcheck(h) => format!("HEALTHCHECK {}", healthcheck(h, shell)),
        Instruction::Onbuild(_) => return None,
        Instruction::Run(_)
        | Instruction::Copy(_)
        | Instruction::Add(_)
        | Instruction::Workdir(_)
        | Instruction::From(_) => return None,
    })
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_q_slice(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a `[]string`: `[a b]`.
fn go_v_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `%q` of BuildKit's `*HealthConfig{Test, Interval, Timeout, StartPeriod, Retries}`:
/// `&{["CMD-SHELL" "true"] "5s" "0s" "0s" '\x03'}`.
fn healthcheck(h: &Healthcheck, shell: &[String]) -> String {
    let _ = shell;
    let (test, durations, retries) = match h {
        Healthcheck::None => (vec!["NONE".to_string()], [None, None, None], 0),
        Healthcheck::Cmd {
            test,
            interval,
            timeout,
            start_period,
            retries,
            ..
        } => {
            let test = match test {
                rbuild_parser::instructions::CommandLine::Shell(s) => {
                    vec!["CMD-SHELL".to_string(), s.clone()]
                }
                rbuild_parser::instructions::CommandLine::Exec(v) => {
                    std::iter::once("CMD".to_string())
                        .chain(v.iter().cloned())
                        .collect()
                }
            };
            (
                test,
                [*interval, *timeout, *start_period],
                retries.unwrap_or(0),
            )
        }
    };
    let durations: Vec<String> = durations
        .iter()
        .map(|d| go_quote(&go_duration(d.map_or(0, |d| d.as_nanos()))))
        .collect();
    format!(
        "&{{{} {} {}}}",
        go_q_slice(&test),
        durations.join(" "),
        go_quote_rune(retries)
    )
}

/// Go's `time.Duration.String()`: `0s`, `750ms`, `1.5s`, `1m30s`, `1h0m0s`.
fn go_duration(ns: u128) -> String {
    fn fraction(whole: u128, rest: u128, digits: usize) -> String {
        let frac = format!("{rest:0digits$}");
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            whole.to_string()
        } else {
            format!("{whole}.{frac}")
        }
    }
    match ns {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", fraction(n / 1_000, n % 1_000, 3)),
        n if n < 1_000_000_000 => format!("{}ms", fraction(n / 1_000_000, n % 1_000_000, 6)),
        n => {
            let secs = n / 1_000_000_000;
            let s = fraction(secs % 60, n % 1_000_000_000, 9);
            let (h, m) = (secs / 3600, secs % 3600 / 60);
            if h > 0 {
                format!("{h}h{m}m{s}s")
            } else if m > 0 {
                format!("{m}m{s}s")
            } else {
                format!("{s}s")
            }
        }
    }
}

/// Go's `%q` of an integer: a quoted rune (`'\x00'`, `'\n'`, `'A'`).
fn go_quote_rune(n: u32) -> String {
    match n {
        7 => r"'\a'".into(),
        8 => r"'\b'".into(),
        9 => r"'\t'".into(),
        10 => r"'\n'".into(),
        11 => r"'\v'".into(),
        12 => r"'\f'".into(),
        13 => r"'\r'".into(),
        39 => r"'\''".into(),
        92 => r"'\\'".into(),
        0x20..=0x7e => format!("'{}'", char::from_u32(n).unwrap_or('?')),
        n if n < 0x80 => format!("'\\x{n:02x}'"),
        n => match char::from_u32(n) {
            Some(c) if !c.is_control() => format!("'{c}'"),
            _ if n <= 0xffff => format!("'\\u{n:04x}'"),
            _ => format!("'\\U{n:08x}'"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbuild_parser::instructions::parse_dockerfile;

    /// The config instructions of a one-stage Dockerfile, with their history texts.
    fn texts(body: &str) -> Vec<Option<String>> {
        let df = parse_dockerfile(&format!("FROM scratch\n{body}")).unwrap();
        let sh = ["/bin/sh".to_string(), "-c".to_string()];
        df.stages[0]
            .instructions
            .iter()
            .map(|i| config_step(&i.instruction, &sh, &[]))
            .collect()
    }

    #[test]
    fn run_lists_the_args_in_scope_first() {
        let args = ["/bin/sh".to_string(), "-c".into(), "echo $V".into()];
        assert_eq!(run(&args, &[]), "RUN /bin/sh -c echo $V # buildkit");
        let scope = [
            ("V".to_string(), "1".to_string()),
            ("W".into(), String::new()),
        ];
        assert_eq!(
            run(&args, &scope),
            "RUN |2 V=1 W= /bin/sh -c echo $V # buildkit"
        );
    }

    #[test]
    fn copy_names_sources_and_destination_only() {
        let src = ["a".to_string(), "b".into()];
        assert_eq!(
            copy("COPY", false, None, None, &src, "/d/"),
            "COPY a b /d/ # buildkit"
        );
        assert_eq!(
            copy("ADD", false, Some("1:2"), Some("755"), &src, "d"),
            "ADD --chown=1:2 --chmod=755 a b d # buildkit"
        );
        assert_eq!(
            copy("COPY", true, None, None, &src, "/"),
            "COPY --parents a b / # buildkit"
        );
    }

    #[test]
    fn config_steps_are_go_formatted() {
        let got = texts(
            "CMD echo \"hi\"\nENTRYPOINT [\"/bin/app\", \"-x\"]\nVOLUME /a /b\n\
             SHELL [\"/bin/bash\", \"-c\"]\nONBUILD RUN true\nHEALTHCHECK --interval=5s --retries=3 CMD true\n\
             HEALTHCHECK NONE\nSTOPSIGNAL SIGINT\n",
        );
        assert_eq!(
            got,
            [
                Some(r#"CMD ["/bin/sh" "-c" "echo \"hi\""]"#.to_string()),
                Some(r#"ENTRYPOINT ["/bin/app" "-x"]"#.into()),
                Some("VOLUME [/a /b]".into()),
                Some("SHELL [/bin/bash -c]".into()),
                None,
                Some(r#"HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "0s" "0s" '\x03'}"#.into()),
                Some(r#"HEALTHCHECK &{["NONE"] "0s" "0s" "0s" '\x00'}"#.into()),
                Some("STOPSIGNAL SIGINT".into()),
            ]
        );
    }

    #[test]
    fn expose_prints_the_sorted_map() {
        let df = parse_dockerfile("FROM scratch\nEXPOSE 8000-8001 53/udp\n").unwrap();
        let ins = &df.stages[0].instructions[0].instruction;
        let ports = ["8000/tcp".to_string(), "8001/tcp".into(), "53/udp".into()];
        assert_eq!(
            config_step(ins, &[], &ports).unwrap(),
            "EXPOSE map[53/udp:{} 8000/tcp:{} 8001/tcp:{}]"
        );
    }

    #[test]
    fn durations_as_go_prints_them() {
        let s = 1_000_000_000u128;
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(5 * s), "5s");
        assert_eq!(go_duration(90 * s), "1m30s");
        assert_eq!(go_duration(3600 * s), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(250_000_000), "250ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_quote_rune(0), r"'\x00'");
        assert_eq!(go_quote_rune(65), "'A'");
    }
}
