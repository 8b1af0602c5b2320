//! Fuzz `ADD`'s archive extraction: random bytes are sniffed for a compression, decompressed
//! and extracted into a fresh directory. It must never panic, and never write outside the
//! destination: a sibling directory with a sentinel file is checked after every input.
//! Run with `cargo +nightly fuzz run tar_extract` from `fuzz/`, with TMPDIR on a small tmpfs
//! (a tar can declare huge sparse files).
#![no_main]

use std::fs;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rbuild_builder::archive::{ExtractOptions, extract, is_archive};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    let dest = layer.join("dest");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&dest).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), "original").unwrap();
    let archive = dir.path().join("input");
    fs::write(&archive, data).unwrap();

    let _ = is_archive(&archive);
    let _ = extract(&archive, &dest, &ExtractOptions::default());

    assert_eq!(
        names(&outside),
        ["victim"],
        "written outside the destination"
    );
    assert_eq!(
        fs::read_to_string(outside.join("victim")).unwrap(),
        "original"
    );
    assert_eq!(names(&layer), ["dest"], "written beside the destination");
    let mut top = names(dir.path());
    top.retain(|n| n != "input");
    assert_eq!(top, ["layer", "outside"], "written above the destination");
});
