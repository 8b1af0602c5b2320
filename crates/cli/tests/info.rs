//! `rbuild info`: the store's counts and the machine's facts, the lines docker's `info` has
//! reading as docker's do (compared with the test dockerd when it is up).

mod common;

use std::process::Command;

use common::{busybox_image, have_peer, rbuild_ok};

#[test]
fn info_counts_the_store_and_describes_the_machine_as_docker_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let empty = rbuild_ok(&root, &["info"]);
    assert!(empty.contains("Images: 0\n"), "{empty}");
    if busybox_image(&root, "bb:1").is_some() {
        let text = rbuild_ok(&root, &["info"]);
        assert!(text.contains("Images: 1\n"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&rbuild_ok(&root, &["info", "--format", "json"])).unwrap();
        assert_eq!(json["Images"], 1);
        assert_eq!(json["DockerRootDir"], root.display().to_string());
    }
    let ours = rbuild_ok(&root, &["info"]);
    assert!(ours.contains("Platforms: linux/"), "{ours}");
    if !have_peer("docker", &["version"]) {
        return;
    }
    let out = Command::new("docker").arg("info").output().unwrap();
    let theirs = String::from_utf8_lossy(&out.stdout);
    for key in [
        "Kernel Version:",
        "Operating System:",
        "OSType:",
        "Architecture:",
        "CPUs:",
        "Total Memory:",
        "Cgroup Version:",
        "Name:",
    ] {
        let line = |text: &str| {
            text.lines()
                .map(str::trim)
                .find(|l| l.starts_with(key))
                .map(str::to_string)
        };
        assert_eq!(line(&ours), line(&theirs), "{key}");
    }
}
