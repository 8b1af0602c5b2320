//! Shared test helpers: tiny images built from directories.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

use rbuild_store::layer::CreateOptions;
use rbuild_store::{Image, LayerSource, Store};

/// An image of one or more layers made from small trees, named `name`.
pub fn make_image(store: &Store, name: &str, layers: &[&[(&str, &str)]]) -> Image {
    let _hold = store.hold().unwrap();
    let mut diff_ids = Vec::new();
    for files in layers {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in *files {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        let info = store
            .add_layer(
                &LayerSource::Tree(dir.path().into()),
                &CreateOptions {
                    source_date_epoch: Some(0),
                },
            )
            .unwrap();
        diff_ids.push(info.diff_id.to_string());
    }
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| serde_json::json!({"created_by": "test"})).collect::<Vec<_>>(),
    });
    store
        .commit_image(
            &serde_json::to_vec(&config).unwrap(),
            &[name.parse().unwrap()],
        )
        .unwrap()
}

/// Files of a directory tree, relative path → content, for comparisons.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        if e.file_type().is_file() {
            out.push((
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                fs::read(e.path()).unwrap(),
            ));
        }
    }
    out
}
