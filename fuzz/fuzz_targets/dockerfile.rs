//! Fuzz the whole Dockerfile front end: raw parse, typed stages, ARG/ENV scoping and
//! expansion. Run with `cargo +nightly fuzz run dockerfile` from `fuzz/`.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rbuild_parser::instructions::{MetaScope, Platforms, StageScope, parse_dockerfile};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(tree) = rbuild_parser::ast::parse(&text) {
        let _ = tree.dump();
    }
    let Ok(dockerfile) = parse_dockerfile(&text) else { return };
    let no_args = BTreeMap::new();
    let Ok(meta) = MetaScope::resolve(&dockerfile, &no_args, &Platforms::host()) else { return };
    for stage in &dockerfile.stages {
        let _ = meta.expand_from(&stage.from);
        let mut scope = StageScope::new(&dockerfile, &meta, &no_args, Vec::new());
        for instruction in &stage.instructions {
            if let Ok(expanded) = scope.expand(instruction) {
                scope.apply(&expanded);
            }
        }
    }
});
