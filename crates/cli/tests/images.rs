//! The image commands end to end on a busybox image: import, images, tag, inspect, history,
//! save/load, rmi, prune, and bad input.

mod common;

use common::{busybox_image, rbuild, rbuild_ok};
use serde_json::Value;

#[test]
fn import_images_tag_inspect_history_rmi() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let Some(id) = busybox_image(r, "busybox:test") else {
        return;
    };
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let listing = rbuild_ok(r, &["images"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{listing}"
    );
    assert!(
        lines[1].starts_with("busybox      test      ") && lines[1].contains(&id[7..19]),
        "{listing}"
    );

    rbuild_ok(r, &["tag", "busybox:test", "localhost:5000/a/b:v1"]);
    let json: Vec<Value> = rbuild_ok(r, &["images", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let repos: Vec<&str> = json
        .iter()
        .map(|j| j["Repository"].as_str().unwrap())
        .collect();
    assert_eq!(repos, vec!["busybox", "localhost:5000/a/b"]);
    assert_eq!(rbuild_ok(r, &["images", "-q"]).trim(), &id[7..19]);

    let inspect: Value = serde_json::from_str(&rbuild_ok(r, &["inspect", "busybox:test"])).unwrap();
    let obj = &inspect[0];
    assert_eq!(obj["Id"], id.as_str());
    assert_eq!(
        obj["RepoTags"],
        serde_json::json!(["busybox:test", "localhost:5000/a/b:v1"])
    );
    assert_eq!(obj["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(obj["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(
        obj["RepoDigests"][0]
            .as_str()
            .unwrap()
            .starts_with("busybox@sha256:")
    );
    let missing = rbuild(r, &["inspect", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such object: nope"));

    let history = rbuild_ok(r, &["history", "busybox:test"]);
    assert!(history.starts_with("IMAGE"), "{history}");
    assert!(
        history.lines().nth(1).unwrap().contains("Imported from"),
        "{history}"
    );

    // Removing one of two names untags; by ID with two names needs -f.
    let out = rbuild_ok(r, &["rmi", "localhost:5000/a/b:v1"]);
    assert_eq!(out, "Untagged: localhost:5000/a/b:v1\n");
    rbuild_ok(r, &["tag", "busybox:test", "other:1"]);
    let refused = rbuild(r, &["rmi", &id[7..19]]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("must be forced"));
    let out = rbuild_ok(r, &["rmi", "-f", &id[7..19]]);
    assert!(
        out.contains("Untagged: busybox:test") && out.contains(&format!("Deleted: {id}")),
        "{out}"
    );
    assert_eq!(rbuild_ok(r, &["images", "-q"]), "");
    let gone = rbuild(r, &["rmi", "busybox:test"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no such image: busybox:test"));
}

#[test]
fn save_load_round_trip_both_formats_and_stdin() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let Some(id) = busybox_image(r, "busybox:rt") else {
        return;
    };
    for format in ["docker", "oci"] {
        let file = r.join(format!("{format}.tar"));
        rbuild_ok(
            r,
            &[
                "save",
                "--format",
                format,
                "-o",
                file.to_str().unwrap(),
                "busybox:rt",
            ],
        );
        let other = tempfile::tempdir().unwrap();
        let out = rbuild_ok(other.path(), &["load", "-i", file.to_str().unwrap()]);
        assert_eq!(out, "Loaded image: busybox:rt\n");
        let inspect: Value =
            serde_json::from_str(&rbuild_ok(other.path(), &["inspect", "busybox:rt"])).unwrap();
        assert_eq!(inspect[0]["Id"], id.as_str());
        // From stdin, gzip'd.
        let third = tempfile::tempdir().unwrap();
        let cmd = format!(
            "gzip -c {} | {} --root {} load",
            file.display(),
            env!("CARGO_BIN_EXE_rbuild"),
            third.path().display()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Loaded image: busybox:rt\n"
        );
    }
}

#[test]
fn bad_archives_fail_naming_the_file_and_leave_the_store_alone() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let Some(_) = busybox_image(r, "busybox:bad") else {
        return;
    };
    let file = r.join("good.tar");
    rbuild_ok(r, &["save", "-o", file.to_str().unwrap(), "busybox:bad"]);
    let bytes = std::fs::read(&file).unwrap();
    let truncated = r.join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let not_tar = r.join("random.bin");
    std::fs::write(&not_tar, b"this is not an archive at all").unwrap();
    let target = tempfile::tempdir().unwrap();
    for f in [&truncated, &not_tar] {
        let out = rbuild(target.path(), &["load", "-i", f.to_str().unwrap()]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(f.to_str().unwrap()), "names the file: {err}");
        assert_eq!(rbuild_ok(target.path(), &["images", "-q"]), "");
        assert_eq!(
            std::fs::read_dir(target.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
    }
    let bad_ref = rbuild(r, &["tag", "busybox:bad", "Bad/Name"]);
    assert!(!bad_ref.status.success());
    assert!(String::from_utf8_lossy(&bad_ref.stderr).contains("repository name must be lowercase"));
}

#[test]
fn concurrent_processes_loading_tagging_and_removing_keep_the_index_consistent() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let Some(_) = busybox_image(r, "busybox:c") else {
        return;
    };
    let archive = r.join("c.tar");
    rbuild_ok(r, &["save", "-o", archive.to_str().unwrap(), "busybox:c"]);
    let bin = env!("CARGO_BIN_EXE_rbuild");
    let mut children = Vec::new();
    for i in 0..6 {
        let script = format!(
            "set -e; for j in 1 2 3 4; do {bin} --root {r} load -q -i {a}; {bin} --root {r} tag busybox:c p{i}/x:$j; done; {bin} --root {r} rmi p{i}/x:1 >/dev/null",
            r = r.display(),
            a = archive.display()
        );
        children.push(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .spawn()
                .unwrap(),
        );
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let json: Vec<Value> = rbuild_ok(r, &["images", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // busybox:c plus 6 processes × 3 remaining tags, all on the one image.
    assert_eq!(json.len(), 1 + 6 * 3, "{json:?}");
    let ids: std::collections::HashSet<&str> =
        json.iter().map(|j| j["ID"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1);
    let index: Value =
        serde_json::from_slice(&std::fs::read(r.join("images.json")).unwrap()).unwrap();
    assert_eq!(index["images"].as_object().unwrap().len(), 1);
}

#[test]
fn prune_removes_dangling_images() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let Some(first) = busybox_image(r, "busybox:p") else {
        return;
    };
    // Re-importing under the same name with another CMD leaves the first image dangling.
    let work = tempfile::tempdir().unwrap();
    let tarball = work.path().join("empty.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tarball).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "hello", &b"hi"[..]).unwrap();
    b.into_inner().unwrap();
    rbuild_ok(r, &["import", tarball.to_str().unwrap(), "busybox:p"]);
    let listing = rbuild_ok(r, &["images"]);
    assert!(listing.contains("<none>"), "{listing}");
    let out = rbuild_ok(r, &["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {first}")), "{out}");
    assert!(out.contains("Total reclaimed space: 2."), "{out}");
    assert!(!rbuild_ok(r, &["images"]).contains("<none>"));
}

#[test]
fn a_closed_stdout_ends_the_command_quietly_with_sigpipes_status() {
    let root = tempfile::tempdir().unwrap();
    // `rbuild images | head -0`: the reading end is gone before rbuild prints its table.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root.path())
        .arg("images")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn save_into_a_device_writes_it_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let root = tempfile::tempdir().unwrap();
    if busybox_image(root.path(), "bb:1").is_none() {
        return;
    }
    // A private node of /dev/null's device stands for /dev/null itself: renaming an archive
    // over it (as a save to a new file is written) would replace the device with a file.
    let null = root.path().join("null");
    nix::sys::stat::mknod(
        &null,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    for format in ["docker", "oci"] {
        let out = null.to_str().unwrap();
        rbuild_ok(
            root.path(),
            &["save", "--format", format, "-o", out, "bb:1"],
        );
        let kind = std::fs::symlink_metadata(&null).unwrap().file_type();
        assert!(kind.is_char_device(), "{format}: the device was replaced");
    }
}
