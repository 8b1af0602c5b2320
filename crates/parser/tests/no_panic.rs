//! Property tests: no input makes the parser, the typed layer or expansion panic.
//! (The cargo-fuzz target in `fuzz/` explores the same entry point with coverage guidance.)

use std::collections::BTreeMap;

use proptest::prelude::*;
use rbuild_parser::instructions::{MetaScope, Platforms, StageScope, parse_dockerfile};

/// Parse, resolve scopes and expand every instruction; errors are fine, panics are not.
fn exercise(text: &str) {
    let _ = rbuild_parser::ast::parse(text).map(|t| t.dump());
    let Ok(df) = parse_dockerfile(text) else {
        return;
    };
    let build_args = BTreeMap::from([("A".to_string(), "x y".to_string())]);
    let Ok(meta) = MetaScope::resolve(&df, &build_args, &Platforms::host()) else {
        return;
    };
    for stage in &df.stages {
        let _ = meta.expand_from(&stage.from);
        let mut scope = StageScope::new(
            &df,
            &meta,
            &build_args,
            vec![("PATH".into(), "/bin".into())],
        );
        for ins in &stage.instructions {
            if let Ok(expanded) = scope.expand(ins) {
                scope.apply(&expanded);
            }
        }
        let _ = scope.run_env();
    }
}

const TOKENS: &[&str] = &[
    "FROM",
    "from",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "LABEL",
    "ONBUILD",
    "HEALTHCHECK",
    "CMD",
    "SHELL",
    "USER",
    "WORKDIR",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "MAINTAINER",
    "ENTRYPOINT",
    "AS",
    "NONE",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\\",
    "\\\n",
    "`",
    "# escape=`\n",
    "# syntax=x\n",
    "#",
    "\"",
    "'",
    "[",
    "]",
    ",",
    "[\"a\"]",
    "=",
    "a",
    "b=c",
    "--from=x",
    "--mount=type=cache,target=/c",
    "--mount=",
    "--chmod=",
    "--",
    "--interval=1s",
    "$",
    "${",
    "}",
    "${A:-",
    "${A#",
    "${A//",
    "${A:?",
    "$A",
    "<<",
    "<<EOF",
    "<<-EOF",
    "<<'E'",
    "EOF",
    "E",
    "3<<X",
    "\u{feff}",
    "♥",
    "\u{a0}",
    "\0",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn dockerfile_shaped_input_never_panics(picks in proptest::collection::vec(0..TOKENS.len(), 0..80)) {
        let text: String = picks.iter().map(|&i| TOKENS[i]).collect();
        exercise(&text);
        exercise(&format!("FROM a\n{text}"));
    }
}
