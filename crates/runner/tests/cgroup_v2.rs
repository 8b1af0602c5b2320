//! The cgroup v2 code path on a real v2 hierarchy: the host's own when it is v2, or the empty
//! v2 hierarchy a hybrid host mounts at /sys/fs/cgroup/unified (no controllers there, but
//! creating, joining, freezing, thawing and removing cgroups work as on a v2 host). Needs
//! root; skipped when neither exists.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rbuild_runner::cgroup::{Cgroup, Version, detect, freeze};

/// A writable v2 hierarchy and this process's place in it (`/proc/self/cgroup` text).
fn v2_hierarchy() -> Option<(PathBuf, String)> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: cgroups need root");
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let root = if detect() == Version::V2 {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup/unified")
    };
    if !root.join("cgroup.procs").exists() {
        eprintln!("skipped: no cgroup v2 hierarchy");
        return None;
    }
    Some((root, own))
}

/// The number a shell loop has written to `file` (it counts every 10 ms).
fn count(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn v2_cgroups_hold_freeze_thaw_and_go_away() {
    let Some((root, own)) = v2_hierarchy() else {
        return;
    };
    let id = format!("v2-test-{}", std::process::id());
    let mut cg = Cgroup::create_at(&root, Version::V2, &own, &id, None).unwrap();
    let dirs: Vec<PathBuf> = cg.paths().map(Path::to_path_buf).collect();
    assert_eq!(dirs.len(), 1, "one directory on v2");
    assert!(dirs[0].starts_with(&root) && dirs[0].ends_with(format!("rbuild-{id}")));

    let work = tempfile::tempdir().unwrap();
    let counter = work.path().join("n");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "i=0; while true; do i=$((i+1)); echo $i > {}; sleep 0.01; done",
            counter.display()
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    cg.add(child.id() as i32).unwrap();
    let procs = std::fs::read_to_string(dirs[0].join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == child.id().to_string()),
        "{procs}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(count(&counter) > 0, "the loop runs");

    freeze(&dirs, true).unwrap();
    let events = std::fs::read_to_string(dirs[0].join("cgroup.events")).unwrap();
    assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    let frozen_at = count(&counter);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(&counter), frozen_at, "a frozen loop does not count");

    freeze(&dirs, false).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(count(&counter) > frozen_at, "a thawed loop counts again");

    // Removing kills what is left in it, and the directory goes.
    cg.remove().unwrap();
    assert!(!dirs[0].exists());
    let status = child.wait().unwrap();
    assert!(!status.success(), "the loop was killed: {status:?}");
}
