//! Interoperability with the real peers: `docker save`/`docker load` and skopeo's OCI archives,
//! in both directions. Needs dockerd and skopeo (scripts/test starts them).

mod common;

use std::path::Path;
use std::process::Command;

use common::{busybox_image, have_peer, rbuild_ok};
use serde_json::Value;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Two docker-style tables are the same: identical cells, and identical bytes when the relative
/// times (the only cells that may differ by the second) have the same width.
fn assert_same_table(theirs: &str, mine: &str) {
    let ago = |s: &str| {
        let mut out = String::new();
        for line in s.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            out.push_str(&words.join(" "));
            out.push('\n');
        }
        // The two tables are taken moments apart: within the first minute only the count of
        // seconds may differ, across docker's "Less than a second" / "1 second" boundary too.
        out.replace("About a minute ago", "N ago")
            .replace("Less than a second ago", "N seconds ago")
            .replace(" second ago", " seconds ago")
            .split(' ')
            .map(|w| {
                if w.chars().all(|c| c.is_ascii_digit()) {
                    "N"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(ago(theirs), ago(mine), "docker:\n{theirs}\nrbuild:\n{mine}");
    if theirs.len() == mine.len() {
        assert_eq!(theirs, mine, "same layout, byte for byte");
    }
}

fn docker_inspect(name: &str) -> Value {
    serde_json::from_str::<Value>(&run("docker", &["image", "inspect", name])).unwrap()[0].clone()
}

fn rbuild_inspect(root: &Path, name: &str) -> Value {
    serde_json::from_str::<Value>(&rbuild_ok(root, &["inspect", name])).unwrap()[0].clone()
}

#[test]
fn rbuild_save_loads_into_docker_with_the_same_id_layers_and_config() {
    if !have_peer("docker", &["version"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let name = "rbuild-interop/to-docker:1";
    let Some(id) = busybox_image(r, name) else {
        return;
    };
    let archive = r.join("out.tar");
    rbuild_ok(r, &["save", "-o", archive.to_str().unwrap(), name]);
    let loaded = run("docker", &["load", "-i", archive.to_str().unwrap()]);
    assert!(
        loaded.contains(&format!("Loaded image: {name}")),
        "{loaded}"
    );
    let d = docker_inspect(name);
    let ours = rbuild_inspect(r, name);
    assert_eq!(d["Id"], id.as_str());
    assert_eq!(d["RootFS"]["Layers"], ours["RootFS"]["Layers"]);
    assert_eq!(d["Config"]["Cmd"], ours["Config"]["Cmd"]);
    assert_eq!(d["Size"], ours["Size"]);
    // `images` and `history` print what docker prints for the same image.
    for args in [vec!["images", name], vec!["history", name]] {
        let theirs = run("docker", &args);
        let mine = rbuild_ok(r, &args);
        assert_same_table(&theirs, &mine);
    }
    // And docker can run it.
    let hello = run(
        "docker",
        &[
            "run",
            "--rm",
            "--network",
            "none",
            name,
            "echo",
            "hello from rbuild",
        ],
    );
    assert_eq!(hello, "hello from rbuild\n");
    run("docker", &["rmi", name]);
}

#[test]
fn docker_save_archive_loads_into_rbuild() {
    if !have_peer("docker", &["version"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    // Put an image into docker (built by docker from the busybox rootfs, so docker wrote it).
    let work = tempfile::tempdir().unwrap();
    let Some(rootfs) = common::busybox_rootfs(work.path()) else {
        return;
    };
    std::fs::write(
        work.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nRUN echo layer2 > /two\nCMD [\"/bin/sh\"]\n",
    )
    .unwrap();
    let _ = rootfs;
    let name = "rbuild-interop/from-docker:1";
    let out = Command::new("docker")
        .args([
            "build",
            "--network",
            "none",
            "-q",
            "-t",
            name,
            work.path().to_str().unwrap(),
        ])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = r.join("docker-save.tar");
    run("docker", &["save", "-o", archive.to_str().unwrap(), name]);
    let loaded = rbuild_ok(r, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded, format!("Loaded image: {name}\n"));
    let d = docker_inspect(name);
    let ours = rbuild_inspect(r, name);
    assert_eq!(ours["Id"], d["Id"]);
    assert_eq!(ours["RootFS"]["Layers"], d["RootFS"]["Layers"]);
    assert_eq!(ours["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(ours["Size"], d["Size"], "sizes computed as docker does");
    // And back: rbuild's save of docker's image loads into docker again unchanged.
    let again = r.join("again.tar");
    rbuild_ok(r, &["save", "-o", again.to_str().unwrap(), name]);
    run("docker", &["rmi", name]);
    run("docker", &["load", "-i", again.to_str().unwrap()]);
    assert_eq!(docker_inspect(name)["Id"], d["Id"]);
    run("docker", &["rmi", name]);
}

#[test]
fn skopeo_oci_archives_load_and_rbuild_oci_output_is_readable_by_skopeo() {
    if !have_peer("skopeo", &["--version"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let name = "localhost/rbuild-interop/oci:1";
    let Some(id) = busybox_image(r, name) else {
        return;
    };
    // rbuild → skopeo
    let ours = r.join("ours-oci.tar");
    rbuild_ok(
        r,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            ours.to_str().unwrap(),
            name,
        ],
    );
    let inspect: Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", ours.display())],
    ))
    .unwrap();
    let ri = rbuild_inspect(r, name);
    let manifest_digest = ri["RepoDigests"][0]
        .as_str()
        .unwrap()
        .split('@')
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(inspect["Digest"], manifest_digest.as_str());
    let config: Value = serde_json::from_str(&run(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci-archive:{}", ours.display()),
        ],
    ))
    .unwrap();
    assert_eq!(config["rootfs"]["diff_ids"], ri["RootFS"]["Layers"]);
    // skopeo → rbuild: skopeo rewrites it as its own OCI archive (gzip layers, new config).
    let theirs = r.join("skopeo-oci.tar");
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci-archive:{}", ours.display()),
            &format!(
                "oci-archive:{}:docker.io/library/copied:skopeo",
                theirs.display()
            ),
        ],
    );
    let other = tempfile::tempdir().unwrap();
    let loaded = rbuild_ok(other.path(), &["load", "-i", theirs.to_str().unwrap()]);
    assert_eq!(loaded, "Loaded image: copied:skopeo\n");
    let copied = rbuild_inspect(other.path(), "copied:skopeo");
    assert_eq!(
        copied["RootFS"]["Layers"], ri["RootFS"]["Layers"],
        "same uncompressed layers"
    );
    // skopeo's OCI layout directory (bare tag as ref.name) loads by directory.
    let layout = r.join("layout");
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci-archive:{}", ours.display()),
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    let third = tempfile::tempdir().unwrap();
    let loaded = rbuild_ok(third.path(), &["load", "-i", layout.to_str().unwrap()]);
    assert!(loaded.starts_with("Loaded image ID: sha256:"), "{loaded}");
    let _ = id;
    if have_peer("docker", &["version"]) {
        // docker-archive written by skopeo (docker's legacy layout) loads too.
        let da = r.join("skopeo-docker.tar");
        run(
            "skopeo",
            &[
                "copy",
                "-q",
                &format!("oci-archive:{}", ours.display()),
                &format!("docker-archive:{}:sk/da:1", da.display()),
            ],
        );
        let fourth = tempfile::tempdir().unwrap();
        assert_eq!(
            rbuild_ok(fourth.path(), &["load", "-i", da.to_str().unwrap()]),
            "Loaded image: sk/da:1\n"
        );
    }
}

/// `rbuild copy` into an OCI layout that holds images already adds to its index, as skopeo
/// does: skopeo's image stays readable, a second image gets its own tag, and copying to a tag
/// again replaces only that tag's entry.
#[test]
fn copy_into_an_existing_oci_layout_keeps_its_images() {
    if !have_peer("skopeo", &["--version"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    if busybox_image(r, "localhost/layout/a:1").is_none() {
        return;
    }
    // A second, different image: the first with a label.
    let ctx = r.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/layout/a:1\nLABEL second=yes\n",
    )
    .unwrap();
    rbuild_ok(
        r,
        &[
            "build",
            "-q",
            "-t",
            "localhost/layout/b:1",
            ctx.to_str().unwrap(),
        ],
    );
    let archive = r.join("a.tar");
    rbuild_ok(
        r,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            archive.to_str().unwrap(),
            "localhost/layout/a:1",
        ],
    );
    let layout = r.join("layout");
    let oci = |tag: &str| format!("oci:{}:{tag}", layout.display());
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci-archive:{}", archive.display()),
            &oci("v1"),
        ],
    );
    rbuild_ok(r, &["copy", "rbuild:localhost/layout/b:1", &oci("v2")]);
    let label = |tag: &str| -> Value {
        let config: Value =
            serde_json::from_str(&run("skopeo", &["inspect", "--config", &oci(tag)])).unwrap();
        config["config"]["Labels"]["second"].clone()
    };
    assert_eq!(label("v1"), Value::Null, "skopeo's image is still there");
    assert_eq!(label("v2"), "yes");
    // Again to v2, now the first image: v2 is replaced, v1 kept, two entries in all.
    rbuild_ok(r, &["copy", "rbuild:localhost/layout/a:1", &oci("v2")]);
    assert_eq!(label("v2"), Value::Null);
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names.len(), 2, "{index}");
    assert!(names.iter().any(|n| n.ends_with("v1")) && names.iter().any(|n| n.ends_with("v2")));
}
