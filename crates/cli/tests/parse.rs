//! End-to-end tests of `rbuild parse` (the binary, as a user runs it).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn rbuild(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .args(args)
        .output()
        .expect("run rbuild")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn dump_reproduces_every_corpus_result() {
    let dir = workspace().join("../shared/conformance/dockerfile-parser/testfiles");
    if !dir.is_dir() {
        println!("rbuild parse --dump: corpus absent, skipped");
        return;
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let case = entry.unwrap().path();
        let out = rbuild(&["parse", "--dump", case.join("Dockerfile").to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            case.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let want = std::fs::read_to_string(case.join("result"))
            .unwrap()
            .replace("\r\n", "\n");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "{}",
            case.display()
        );
        checked += 1;
    }
    println!("rbuild parse --dump: {checked}/{checked} corpus results reproduced");
    assert_eq!(checked, 33);
}

#[test]
fn json_lists_typed_stages() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Dockerfile");
    std::fs::write(
        &file,
        "ARG BASE=busybox\nFROM $BASE AS build\nCOPY --chmod=755 a /b\nCMD [\"sh\"]\n",
    )
    .unwrap();
    let out = rbuild(&["parse", "--json", file.to_str().unwrap()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["meta_args"][0]["args"][0]["default"], "busybox");
    assert_eq!(v["stages"][0]["name"], "build");
    assert_eq!(v["stages"][0]["from"]["image"], "$BASE");
    assert_eq!(v["stages"][0]["instructions"][0]["instruction"], "COPY");
    assert_eq!(v["stages"][0]["instructions"][0]["chmod"], "755");
    assert_eq!(
        v["stages"][0]["instructions"][1]["command"]["exec"][0],
        "sh"
    );
    assert_eq!(v["stages"][0]["instructions"][1]["start_line"], 4);
}

#[test]
fn errors_show_file_line_column_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Dockerfile");
    std::fs::write(&file, "FROM busybox\n\nRUN --mount=type=nfs echo\n").unwrap();
    let out = rbuild(&["parse", "--json", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let want_head = format!(
        "error: {}:3:13: invalid flag --mount: unsupported mount type \"nfs\"",
        file.display()
    );
    assert!(err.starts_with(&want_head), "{err}");
    assert!(err.contains(" 3 | RUN --mount=type=nfs echo\n"), "{err}");
}

#[test]
fn reads_stdin_and_rejects_missing_files() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .args(["parse", "--dump", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from a\nrun b\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "(from \"a\")\n(run \"b\")\n"
    );

    let out = rbuild(&["parse", "/nonexistent/Dockerfile"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reading Dockerfile /nonexistent/Dockerfile") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn version_and_help() {
    let out = rbuild(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("rbuild {}", env!("CARGO_PKG_VERSION"))
    );
    let out = rbuild(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("parse"));
}
