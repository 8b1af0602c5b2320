//! Shared by the CLI tests: running `rbuild`, building the busybox base image, finding peers.
#![allow(dead_code, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `rbuild --root ROOT ARGS...`, asserting success; returns stdout.
pub fn rbuild_ok(root: &Path, args: &[&str]) -> String {
    let out = rbuild(root, args);
    assert!(
        out.status.success(),
        "rbuild {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `rbuild --root ROOT ARGS...`.
pub fn rbuild(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

/// Whether a test that needs root can run: true as root; otherwise it is skipped with a
/// message, or fails under scripts/test (`RBUILD_TEST_PEERS`), which runs as root.
pub fn can_run_as_root(test: &str) -> bool {
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

/// Whether the peers are required (`RBUILD_TEST_PEERS=1`, set by scripts/test).
pub fn peers_required() -> bool {
    std::env::var("RBUILD_TEST_PEERS").as_deref() == Ok("1")
}

/// Whether `tool` can be used: skip (false, with a message) when peers are not set up, panic
/// when they are required but the tool is missing.
pub fn have_peer(tool: &str, probe: &[&str]) -> bool {
    let works = Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if works && (peers_required() || tool != "docker") {
        return true;
    }
    if peers_required() {
        panic!("RBUILD_TEST_PEERS=1 but {tool} is not usable ({tool} {probe:?} failed)");
    }
    eprintln!(
        "skipped: {tool} not set up (run scripts/test, or source scripts/lib/peers.sh; peers_start)"
    );
    false
}

/// A busybox root filesystem made by `scripts/busybox-rootfs` (from Debian's busybox-static;
/// nothing is downloaded). `None` (skip) when busybox is missing and peers are not required.
pub fn busybox_rootfs(dir: &Path) -> Option<PathBuf> {
    let rootfs = dir.join("rootfs");
    let out = Command::new(repo_root().join("scripts/busybox-rootfs"))
        .arg(&rootfs)
        .output()
        .unwrap();
    if out.status.success() {
        return Some(rootfs);
    }
    if peers_required() {
        panic!(
            "busybox-rootfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "skipped: no busybox ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    None
}

/// `dir`'s content as the tar file `tarball` (made by tar(1), as a user would).
pub fn tar_dir(dir: &Path, tarball: &Path) {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar of {}", dir.display());
}

/// The busybox root filesystem (see [`busybox_rootfs`]) made under `dir` and packed as
/// `dir/busybox.tar`; returns the tarball. `None` (skip) as [`busybox_rootfs`].
pub fn busybox_tarball(dir: &Path) -> Option<PathBuf> {
    let rootfs = busybox_rootfs(dir)?;
    let tarball = dir.join("busybox.tar");
    tar_dir(&rootfs, &tarball);
    Some(tarball)
}

/// Import the busybox rootfs into the store at `root` as `name`; returns the image ID.
pub fn busybox_image(root: &Path, name: &str) -> Option<String> {
    let work = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(work.path())?;
    let tarball = work.path().join("rootfs.tar");
    tar_dir(&rootfs, &tarball);
    let id = rbuild_ok(
        root,
        &[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            tarball.to_str().unwrap(),
            name,
        ],
    );
    Some(id.trim().to_string())
}
