//! BuildKit's Dockerfile parser corpus (`../shared/conformance/dockerfile-parser`):
//! every positive case must dump byte for byte like its `result`, every negative case must
//! be rejected, and the line-number fixture must give BuildKit's ranges.
#![allow(clippy::print_stdout)]

use std::fs;
use std::path::PathBuf;

use rbuild_parser::ast;

fn corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/dockerfile-parser");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("parser conformance: skipped, {} is absent", dir.display());
        None
    }
}

fn cases(dir: PathBuf) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn buildkit_parser_corpus() {
    let Some(root) = corpus() else { return };
    let mut failures = Vec::new();
    let positive = cases(root.join("testfiles"));
    let mut passed = 0;
    for case in &positive {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let text = String::from_utf8_lossy(&fs::read(case.join("Dockerfile")).unwrap()).to_string();
        let want = fs::read_to_string(case.join("result"))
            .unwrap()
            .replace("\r\n", "\n");
        match ast::parse(&text) {
            Ok(tree) if tree.dump() == want => passed += 1,
            Ok(tree) => failures.push(format!(
                "{name}: dump differs\n--- want\n{want}--- got\n{}",
                tree.dump()
            )),
            Err(e) => failures.push(format!("{name}: unexpected error {e}")),
        }
    }
    let negative = cases(root.join("testfiles-negative"));
    let mut rejected = 0;
    for case in &negative {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let text = String::from_utf8_lossy(&fs::read(case.join("Dockerfile")).unwrap()).to_string();
        match ast::parse(&text) {
            Err(e) => {
                println!("  negative {name}: rejected: {e}");
                rejected += 1
            }
            Ok(tree) => failures.push(format!("{name}: negative case parsed:\n{}", tree.dump())),
        }
    }
    println!(
        "parser conformance: {passed}/{} positive cases match, {rejected}/{} negative cases rejected",
        positive.len(),
        negative.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(positive.len(), 33, "corpus should have 33 positive cases");
    assert_eq!(negative.len(), 4, "corpus should have 4 negative cases");
}

#[test]
fn buildkit_line_numbers() {
    let Some(root) = corpus() else { return };
    let text = fs::read_to_string(root.join("testfile-line/Dockerfile")).unwrap();
    let tree = ast::parse(&text).unwrap();
    let got: Vec<(String, usize, usize)> = tree
        .children
        .iter()
        .map(|n| (n.keyword.clone(), n.start_line, n.end_line))
        .collect();
    let want = [("from", 5, 5), ("env", 11, 12), ("run", 17, 31)];
    let want: Vec<(String, usize, usize)> = want
        .iter()
        .map(|(k, s, e)| (k.to_string(), *s, *e))
        .collect();
    assert_eq!(got, want);
    println!("parser conformance: line numbers match (root spans 5-31)");
}
