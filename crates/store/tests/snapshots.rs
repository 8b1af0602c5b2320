//! The runner's contract: snapshots stacked as overlay lower dirs show the image's filesystem,
//! whiteouts and opaque directories included. Needs root (mknod, trusted.* xattrs, mount).
#![allow(clippy::print_stderr)]

use std::fs;
use std::path::Path;
use std::process::Command;

use rbuild_store::layer::CreateOptions;
use rbuild_store::{LayerSource, Store};

fn mount_overlay(lower: &str, upper: &Path, work: &Path, merged: &Path) -> bool {
    Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={lower},upperdir={},workdir={}",
            upper.display(),
            work.display()
        ))
        .arg(merged)
        .status()
        .unwrap()
        .success()
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn snapshots_stack_as_overlay_lower_dirs_and_commit_an_upper_dir_as_a_layer() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: overlay mounts need root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let _hold = store.hold().unwrap();
    // Layer 1: a base tree.
    let base = tempfile::tempdir().unwrap();
    fs::create_dir_all(base.path().join("etc/conf.d")).unwrap();
    fs::write(base.path().join("etc/conf.d/a"), "a").unwrap();
    fs::write(base.path().join("etc/keep"), "k").unwrap();
    fs::write(base.path().join("etc/drop"), "d").unwrap();
    let l1 = store
        .add_layer(
            &LayerSource::Tree(base.path().into()),
            &CreateOptions::default(),
        )
        .unwrap();
    // Layer 2: deletes etc/drop, makes etc/conf.d opaque with a new file.
    let changed = tempfile::tempdir().unwrap();
    assert!(
        Command::new("cp")
            .args([
                "-a",
                &format!("{}/.", base.path().display()),
                &changed.path().display().to_string()
            ])
            .status()
            .unwrap()
            .success()
    );
    fs::remove_file(changed.path().join("etc/drop")).unwrap();
    fs::remove_dir_all(changed.path().join("etc/conf.d")).unwrap();
    fs::create_dir(changed.path().join("etc/conf.d")).unwrap();
    fs::write(changed.path().join("etc/conf.d/b"), "b").unwrap();
    let l2 = store
        .add_layer(
            &LayerSource::Diff {
                base: base.path().into(),
                changed: changed.path().into(),
            },
            &CreateOptions::default(),
        )
        .unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [l1.diff_id.to_string(), l2.diff_id.to_string()]},
    });
    store
        .commit_image(
            &serde_json::to_vec(&config).unwrap(),
            &["snap:1".parse().unwrap()],
        )
        .unwrap();

    // What the runner does: resolve, list diffIDs, stack snapshots top-first.
    let img = store.resolve("snap:1").unwrap();
    let snaps: Vec<String> = img
        .diff_ids()
        .unwrap()
        .iter()
        .rev()
        .map(|d| store.snapshot(d).unwrap().display().to_string())
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    let (upper, work, merged) = (
        scratch.path().join("upper"),
        scratch.path().join("work"),
        scratch.path().join("merged"),
    );
    for d in [&upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    assert!(
        mount_overlay(&snaps.join(":"), &upper, &work, &merged),
        "overlay mount failed"
    );
    let _guard = Unmount(&merged);
    assert_eq!(fs::read_to_string(merged.join("etc/keep")).unwrap(), "k");
    assert!(
        !merged.join("etc/drop").exists(),
        "whiteout hides the deleted file"
    );
    assert_eq!(
        fs::read_to_string(merged.join("etc/conf.d/b")).unwrap(),
        "b"
    );
    // conf.d was replaced (removed and re-created): with a Diff source the old entry `a` gets a
    // whiteout since it is gone from the changed tree.
    assert!(!merged.join("etc/conf.d/a").exists());

    // What the builder does after a RUN step: the upper dir becomes a layer.
    fs::write(merged.join("etc/new"), "n").unwrap();
    fs::remove_file(merged.join("etc/keep")).unwrap();
    let l3 = store
        .add_layer(
            &LayerSource::OverlayUpper(upper.clone()),
            &CreateOptions::default(),
        )
        .unwrap();
    let mut names: Vec<String> = Vec::new();
    let mut ar = tar::Archive::new(store.layer_reader(&l3.diff_id).unwrap());
    for e in ar.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert_eq!(names, vec!["etc/", "etc/.wh.keep", "etc/new"]);
}
