//! `rbuild run IMAGE` with images from the store: the image's CMD, ENTRYPOINT, Env,
//! WorkingDir and User apply, unknown images fail with 125, and snapshots stay untouched.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use rbuild_store::{LayerSource, Store};

fn can_run(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("RBUILD_TEST_PEERS").is_err(),
        "{test}: needs root under scripts/test"
    );
    eprintln!("skipping {test}: needs root");
    false
}

/// Store a one-layer busybox image named `name` with the given config section.
fn import_busybox(root: &Path, name: &str, config: serde_json::Value) {
    let rootfs = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs");
    assert!(
        Command::new(script)
            .arg(rootfs.path())
            .status()
            .unwrap()
            .success()
    );
    let store = Store::open(root).unwrap();
    let _hold = store.hold().unwrap();
    let layer = store
        .add_layer(
            &LayerSource::Tree(rootfs.path().to_path_buf()),
            &Default::default(),
        )
        .unwrap();
    let cfg = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
    });
    let name: rbuild_oci::Reference = name.parse().unwrap();
    store
        .commit_image(&serde_json::to_vec(&cfg).unwrap(), &[name])
        .unwrap();
}

fn rbuild(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .arg("run")
        .arg("--rm")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_images_config_applies_and_flags_override_it() {
    if !can_run("rbuild run IMAGE") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    import_busybox(
        root.path(),
        "test/busybox:1",
        serde_json::json!({
            "Cmd": ["sh", "-c", "echo from-cmd $FROM_IMAGE; pwd; id -un"],
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FROM_IMAGE=yes"],
            "WorkingDir": "/home/user",
            "User": "user",
        }),
    );
    let o = rbuild(root.path(), &["test/busybox:1"]);
    assert_eq!(
        out(&o),
        "from-cmd yes\n/home/user\nuser\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = rbuild(
        root.path(),
        &[
            "-u",
            "root",
            "-w",
            "/",
            "-e",
            "FROM_IMAGE=flag",
            "test/busybox:1",
            "sh",
            "-c",
            "echo $FROM_IMAGE; pwd; id -un",
        ],
    );
    assert_eq!(out(&o), "flag\n/\nroot\n");
    let o = rbuild(
        root.path(),
        &["--entrypoint", "echo", "test/busybox:1", "entry", "point"],
    );
    assert_eq!(out(&o), "entry point\n");
    // Writes land in the container's upper dir, never in the shared snapshot.
    let o = rbuild(
        root.path(),
        &[
            "-u",
            "0",
            "test/busybox:1",
            "sh",
            "-c",
            "echo x > /etc/passwd && rm /bin/ls && echo changed",
        ],
    );
    assert_eq!(out(&o), "changed\n");
    let o = rbuild(
        root.path(),
        &[
            "test/busybox:1",
            "sh",
            "-c",
            "test -e /bin/ls && head -c 4 /etc/passwd",
        ],
    );
    assert_eq!(out(&o), "root");
    assert_eq!(
        std::fs::read_dir(root.path().join("containers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn unknown_images_and_missing_commands_are_reported() {
    if !can_run("rbuild run unknown image") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // (--pull never: by default a missing image is pulled, and tests reach no Docker Hub.)
    let o = rbuild(root.path(), &["--pull", "never", "no/such:image", "true"]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unable to find image \"no/such:image\"") && err.contains("hint:"),
        "{err}"
    );
    import_busybox(root.path(), "test/nocmd:1", serde_json::json!({}));
    let o = rbuild(root.path(), &["test/nocmd:1"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no command specified"));
}
