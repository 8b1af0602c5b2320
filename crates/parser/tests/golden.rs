//! The project's own golden cases in `testdata/dockerfiles/<case>/`, for what BuildKit's
//! corpus does not cover. Each case has a `Dockerfile` and one or more expected outputs:
//!
//! - `result`: the parse tree dump (`(keyword ["--flags"] "arg" …)` lines, as the corpus);
//! - `error`: the rendered error (`Dockerfile:LINE:COL: message` and the source line);
//! - `heredocs`: one block per heredoc: `LINE KEYWORD name=… expand=… chomp=… fd=…` and its
//!   body as a Go-quoted string;
//! - `expanded`: the stages after ARG/ENV scoping and expansion with the `build-args` file's
//!   `NAME=VALUE` lines as `--build-arg`s (target and build platform `linux/amd64`):
//!   `stage N NAME: FROM image [platform]`, then `LINE {json}` per instruction, then the
//!   `env:` and `run-env:` the stage ends with, and `unused-build-args:`.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use rbuild_parser::ast::{self, go_quote};
use rbuild_parser::instructions::{
    MetaScope, Platforms, StageScope, parse_dockerfile, unused_build_args,
};

fn render_heredocs(text: &str) -> String {
    let tree = ast::parse(text).expect("heredoc cases must parse");
    let mut out = String::new();
    for node in &tree.children {
        for h in &node.heredocs {
            let kw = node.keyword.to_uppercase();
            let (n, e, c, fd) = (&h.name, h.expand, h.chomp, h.file_descriptor);
            writeln!(
                out,
                "{} {kw} name={n} expand={e} chomp={c} fd={fd}",
                node.start_line
            )
            .unwrap();
            writeln!(out, "{}", go_quote(&h.body())).unwrap();
        }
    }
    out
}

fn render_expanded(text: &str, build_args: &BTreeMap<String, String>) -> String {
    let df = match parse_dockerfile(text) {
        Ok(df) => df,
        Err(e) => return format!("{}\n", e.render("Dockerfile", text)),
    };
    let platforms = Platforms {
        build: "linux/amd64".into(),
        target: "linux/amd64".into(),
    };
    let meta = match MetaScope::resolve(&df, build_args, &platforms) {
        Ok(m) => m,
        Err(e) => return format!("{}\n", e.render("Dockerfile", text)),
    };
    let mut out = String::new();
    for (i, stage) in df.stages.iter().enumerate() {
        let from = match meta.expand_from(&stage.from) {
            Ok(f) => f,
            Err(e) => return format!("{out}{}\n", e.render("Dockerfile", text)),
        };
        let name = stage.name.as_deref().unwrap_or("-");
        let platform = from.platform.map(|p| format!(" [{p}]")).unwrap_or_default();
        writeln!(out, "stage {i} {name}: FROM {}{platform}", from.image).unwrap();
        let mut scope = StageScope::new(&df, &meta, build_args, Vec::new());
        for ins in &stage.instructions {
            match scope.expand(ins) {
                Ok(expanded) => {
                    writeln!(
                        out,
                        "  {} {}",
                        ins.start_line,
                        serde_json::to_string(&expanded).unwrap()
                    )
                    .unwrap();
                    scope.apply(&expanded);
                }
                Err(e) => return format!("{out}{}\n", e.render("Dockerfile", text)),
            }
        }
        let pairs = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        writeln!(out, "  env: {}", pairs(scope.env())).unwrap();
        writeln!(out, "  run-env: {}", pairs(&scope.run_env())).unwrap();
    }
    writeln!(
        out,
        "unused-build-args: {}",
        unused_build_args(&df, build_args).join(" ")
    )
    .unwrap();
    out
}

fn check(case: &Path, file: &str, got: String, failures: &mut Vec<String>) -> bool {
    let path = case.join(file);
    let Ok(want) = fs::read_to_string(&path) else {
        return false;
    };
    if want != got {
        failures.push(format!(
            "{}:\n--- want\n{want}--- got\n{got}",
            path.display()
        ));
    }
    true
}

#[test]
fn own_dockerfile_cases() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dockerfiles");
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    let mut checks = 0;
    let mut failed_cases = 0;
    for case in &cases {
        let text = fs::read_to_string(case.join("Dockerfile")).unwrap();
        let before = failures.len();
        let mut any = false;
        let tree = ast::parse(&text);
        if let Ok(tree) = &tree {
            any |= check(case, "result", tree.dump(), &mut failures);
        }
        let failure = match &tree {
            Err(e) => Some(e.clone()),
            Ok(_) => parse_dockerfile(&text).err(),
        };
        let rendered = failure.map(|e| format!("{}\n", e.render("Dockerfile", &text)));
        if let Some(r) = rendered {
            any |= check(case, "error", r, &mut failures);
        } else if case.join("error").exists() {
            failures.push(format!(
                "{}: expected an error, parsed fine",
                case.display()
            ));
            any = true;
        }
        if case.join("heredocs").exists() {
            any |= check(case, "heredocs", render_heredocs(&text), &mut failures);
        }
        if case.join("expanded").exists() {
            let args: BTreeMap<String, String> = fs::read_to_string(case.join("build-args"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    l.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            any |= check(
                case,
                "expanded",
                render_expanded(&text, &args),
                &mut failures,
            );
        }
        assert!(any, "{}: no expected output file", case.display());
        checks += 1;
        failed_cases += usize::from(failures.len() > before);
    }
    println!(
        "own dockerfile cases: {}/{checks} pass",
        checks - failed_cases
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checks >= 10, "expected at least 10 cases, found {checks}");
}
