//! BuildKit conformance of word expansion.
//!
//! Runs the upstream vector files `shell-words/envVarTest` and `shell-words/wordsTest` from the
//! shared conformance corpus (see its README, section 2, for the formats), and this
//! repository's own table `testdata/shell/expansions.txt` (format documented at its top).
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rbuild_parser::shell::{Lexer, ShellError};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn conformance_dir() -> PathBuf {
    workspace_root().join("../shared/conformance")
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `PLATFORM|INPUT|EXPECTED` lines, expanded with `process_word` (Unix: `A` and `U` lines).
fn run_env_var_test(text: &str, failures: &mut String) -> (usize, usize) {
    let lexer = Lexer::new('\\');
    let env = pairs(&[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]);
    let (mut passed, mut total) = (0, 0);
    for (index, raw) in text.lines().enumerate() {
        if raw.starts_with('#') {
            continue;
        }
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [platform, input, expected] = fields[..] else {
            panic!("envVarTest:{}: expected 3 fields in {raw:?}", index + 1);
        };
        match platform {
            "A" | "U" => {}
            "W" => continue,
            other => panic!("envVarTest:{}: unknown platform {other:?}", index + 1),
        }
        total += 1;
        let got = lexer.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(value), expected) => expected != "error" && value == expected,
            (Err(_), _) => false,
        };
        if ok {
            passed += 1;
        } else {
            let _ = writeln!(
                failures,
                "envVarTest:{}: {input:?}: expected {expected:?}, got {got:?}",
                index + 1
            );
        }
    }
    (passed, total)
}

/// `ENV NAME=VALUE` lines and `INPUT|WORD,WORD,...` lines, expanded with `process_words`.
fn run_words_test(text: &str, failures: &mut String) -> (usize, usize) {
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut passed, mut total) = (0, 0);
    for (index, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.starts_with('#') {
            continue;
        }
        if let Some(rest) = raw.strip_prefix("ENV ") {
            let rest = rest.trim_start_matches(' ');
            let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
            env.push((name.to_owned(), value.to_owned()));
            continue;
        }
        let fields: Vec<&str> = raw.split('|').collect();
        let [input, expected] = fields[..] else {
            panic!("wordsTest:{}: expected exactly one | in {raw:?}", index + 1);
        };
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        total += 1;
        let got = match lexer.process_words(input, &env) {
            Ok(words) => words,
            Err(_) => vec!["error".to_owned()],
        };
        if got == expected {
            passed += 1;
        } else {
            let _ = writeln!(
                failures,
                "wordsTest:{}: {input:?}: expected {expected:?}, got {got:?}",
                index + 1
            );
        }
    }
    (passed, total)
}

#[test]
fn buildkit_shell_vectors() {
    let dir = conformance_dir().join("shell-words");
    if !dir.is_dir() {
        println!("shell conformance: skipped, {} is absent", dir.display());
        return;
    }
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
    };
    let mut failures = String::new();
    let (env_passed, env_total) = run_env_var_test(&read("envVarTest"), &mut failures);
    let (words_passed, words_total) = run_words_test(&read("wordsTest"), &mut failures);
    println!(
        "shell conformance: envVarTest {env_passed}/{env_total} passed, wordsTest {words_passed}/{words_total} passed"
    );
    assert!(
        env_total > 0 && words_total > 0,
        "no vectors found in {}",
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "shell conformance mismatches:\n{failures}"
    );
}

/// One line of `testdata/shell/expansions.txt` after directives are applied.
struct Case<'a> {
    line: usize,
    input: String,
    expected: String,
    matched: Option<&'a str>,
    unmatched: Option<&'a str>,
}

/// A field as written: trimmed, or verbatim between `«` and `»` (where `␤` is a newline).
fn field(raw: &str) -> String {
    let trimmed = raw.trim();
    match trimmed.strip_prefix('«').and_then(|f| f.strip_suffix('»')) {
        Some(verbatim) => verbatim.replace('␤', "\n"),
        None => trimmed.to_owned(),
    }
}

fn name_set(list: &str) -> BTreeSet<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn check_case(
    lexer: &Lexer,
    words: bool,
    env: &[(String, String)],
    case: &Case<'_>,
    failures: &mut String,
) -> bool {
    let (line, input, expected) = (case.line, case.input.as_str(), case.expected.as_str());
    let mut problems = Vec::new();
    let got: Result<String, ShellError> = if words {
        lexer.process_words(input, &env).map(|w| w.join(","))
    } else {
        lexer
            .process_word_with_matches(input, &env)
            .map(|expansion| {
                if let Some(m) = case.matched
                    && expansion.matched != name_set(m)
                {
                    problems.push(format!("matched {:?}, expected {m:?}", expansion.matched));
                }
                if let Some(u) = case.unmatched
                    && expansion.unmatched != name_set(u)
                {
                    problems.push(format!(
                        "unmatched {:?}, expected {u:?}",
                        expansion.unmatched
                    ));
                }
                expansion.value
            })
    };
    match (&got, expected.strip_prefix("error")) {
        (Err(err), Some(rest)) => {
            let want = rest.strip_prefix(':').map(str::trim).unwrap_or("");
            if !err.to_string().contains(want) {
                problems.push(format!(
                    "error {:?} does not contain {want:?}",
                    err.to_string()
                ));
            }
        }
        (Ok(value), _) if value == expected => {}
        _ => problems.push(format!("expected {expected:?}, got {got:?}")),
    }
    for problem in &problems {
        let _ = writeln!(failures, "expansions.txt:{line}: {input:?}: {problem}");
    }
    problems.is_empty()
}

#[test]
fn own_expansion_vectors() {
    let path = workspace_root().join("testdata/shell/expansions.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    let mut lexer = Lexer::new('\\');
    let mut words = false;
    let mut separator = '|';
    let mut env: Vec<(String, String)> = Vec::new();
    let mut failures = String::new();
    let (mut passed, mut total) = (0, 0);
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || raw.starts_with('#') {
            continue;
        }
        if let Some(rest) = raw.strip_prefix("@env ") {
            let (name, value) = rest
                .split_once('=')
                .unwrap_or_else(|| panic!("expansions.txt:{line}: @env needs NAME=VALUE"));
            env.push((name.trim().to_owned(), field(value)));
            continue;
        }
        match trimmed.split_once(' ').unwrap_or((trimmed, "")) {
            ("@clear", _) => {
                env.clear();
                continue;
            }
            ("@escape", arg) => {
                let mut chars = arg.trim().chars();
                let (Some(escape), None) = (chars.next(), chars.next()) else {
                    panic!("expansions.txt:{line}: @escape needs one character");
                };
                lexer = Lexer::new(escape);
                continue;
            }
            ("@mode", "word") => {
                words = false;
                continue;
            }
            ("@mode", "words") => {
                words = true;
                continue;
            }
            ("@separator", arg) => {
                let mut chars = arg.trim().chars();
                let (Some(sep), None) = (chars.next(), chars.next()) else {
                    panic!("expansions.txt:{line}: @separator needs one character");
                };
                separator = sep;
                continue;
            }
            (directive, _) if directive.starts_with('@') => {
                panic!("expansions.txt:{line}: unknown directive {directive}")
            }
            _ => {}
        }
        let fields: Vec<&str> = raw.split(separator).collect();
        let case = match fields[..] {
            [input, expected] => Case {
                line,
                input: field(input),
                expected: field(expected),
                matched: None,
                unmatched: None,
            },
            [input, expected, matched, unmatched] => Case {
                line,
                input: field(input),
                expected: field(expected),
                matched: Some(matched),
                unmatched: Some(unmatched),
            },
            _ => panic!(
                "expansions.txt:{line}: expected 2 or 4 fields separated by {separator:?} in {raw:?}"
            ),
        };
        total += 1;
        if check_case(&lexer, words, &env, &case, &mut failures) {
            passed += 1;
        }
    }
    println!("shell expansions.txt: {passed}/{total} passed");
    assert!(total > 0, "no vectors in {}", path.display());
    assert!(
        failures.is_empty(),
        "expansions.txt mismatches:\n{failures}"
    );
}
