//! `rbuild pull/push/copy/login/logout/tags/catalog/manifest` end to end against real
//! `docker-registry` processes, and interoperability with skopeo and docker.
#![allow(clippy::print_stderr)]

mod common;
#[path = "../../registry/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{busybox_image, have_peer, rbuild, rbuild_ok};
use support::{Auth, RegistryProcess};

/// A registry and a store holding busybox as `bb:1`; `None` (the test skips) without the
/// peers.
fn registry_and_busybox(what: &str) -> Option<(RegistryProcess, tempfile::TempDir)> {
    let reg = RegistryProcess::start(Auth::Open, what)?;
    let root = tempfile::tempdir().unwrap();
    busybox_image(root.path(), "bb:1")?;
    Some((reg, root))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The digest `rbuild push` reports (`TAG: digest: D size: N`).
fn pushed_digest(out: &str) -> String {
    out.split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in {out:?}"))
        .to_string()
}

fn skopeo_inspect(r: &str) -> serde_json::Value {
    serde_json::from_str(&tool("skopeo", &["inspect", "--tls-verify=false", r])).unwrap()
}

#[test]
fn push_pull_round_trip_and_skopeo_reads_what_rbuild_pushed() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "cli push/pull") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let Some(id) = busybox_image(root.path(), "bb:1") else {
        return;
    };
    let dest = format!("{}/cli/bb:1", reg.addr);
    let out = rbuild_ok(root.path(), &["push", "bb:1", &dest]);
    let digest = pushed_digest(&out);
    // A second push finds everything there and reports the same digest.
    let started = std::time::Instant::now();
    let again = rbuild(root.path(), &["push", "bb:1", &dest]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        pushed_digest(&String::from_utf8_lossy(&again.stdout)),
        digest
    );
    eprintln!("no-change re-push took {:?}", started.elapsed());
    assert!(!text(&again).contains("Pushed"), "{}", text(&again));

    // Pull into an empty store: same image ID (config) and manifest digest.
    let other = tempfile::tempdir().unwrap();
    let pulled = rbuild(other.path(), &["pull", &dest]);
    assert!(pulled.status.success(), "{}", text(&pulled));
    assert!(
        text(&pulled).contains(&format!("Digest: {digest}")),
        "{}",
        text(&pulled)
    );
    let images = rbuild_ok(other.path(), &["images", "--no-trunc", "-q"]);
    assert_eq!(images.trim(), id);

    if !have_peer("skopeo", &["--version"]) {
        return;
    }
    let info = skopeo_inspect(&format!("docker://{dest}"));
    assert_eq!(info["Digest"], digest.as_str());
    let layout = tempfile::tempdir().unwrap();
    let oci = format!("oci:{}:x", layout.path().display());
    tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{dest}"),
            &oci,
        ],
    );
    // skopeo verified every blob while copying; the layout holds the same manifest.
    let raw = tool("skopeo", &["inspect", "--raw", &oci]);
    let from_registry = rbuild_ok(root.path(), &["manifest", "inspect", &dest]);
    assert_eq!(raw.trim(), from_registry.trim());
}

#[test]
fn image_pushed_by_skopeo_is_pulled_and_run() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "skopeo push, rbuild pull") else {
        return;
    };
    if !have_peer("skopeo", &["--version"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    if busybox_image(root.path(), "bb:1").is_none() {
        return;
    }
    let archive = root.path().join("bb.tar");
    rbuild_ok(
        root.path(),
        &["save", "-o", archive.to_str().unwrap(), "bb:1"],
    );
    let dest = format!("{}/skopeo/bb:1", reg.addr);
    tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("docker-archive:{}", archive.display()),
            &format!("docker://{dest}"),
        ],
    );
    let other = tempfile::tempdir().unwrap();
    rbuild_ok(other.path(), &["pull", "-q", &dest]);
    // Unpack the pulled image's layers and run busybox from them.
    let store = rbuild_store::Store::open(other.path()).unwrap();
    let image = store.resolve(&dest).unwrap();
    let rootfs = other.path().join("unpacked");
    std::fs::create_dir_all(&rootfs).unwrap();
    store.unpack(&image, &rootfs).unwrap();
    let out = rbuild(
        other.path(),
        &[
            "run",
            "--rm",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "/bin/echo",
            "hello from skopeo's push",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello from skopeo's push"
    );
}

#[test]
fn docker_pulls_what_rbuild_pushed_and_rbuild_pulls_what_docker_pushed() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "docker interop") else {
        return;
    };
    if !have_peer("docker", &["version"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    if busybox_image(root.path(), "bb:1").is_none() {
        return;
    }
    let ours = format!("{}/rbuild/bb:1", reg.addr);
    rbuild_ok(root.path(), &["push", "bb:1", &ours]);
    tool("docker", &["pull", "-q", &ours]);
    let said = tool(
        "docker",
        &[
            "run",
            "--rm",
            "--network=none",
            &ours,
            "echo",
            "docker runs rbuild's push",
        ],
    );
    assert_eq!(said.trim(), "docker runs rbuild's push");

    // docker push of an imported rootfs; rbuild pulls it and finds docker's layer intact.
    let theirs = format!("{}/docker/bb:1", reg.addr);
    tool("docker", &["tag", &ours, &theirs]);
    tool("docker", &["push", "-q", &theirs]);
    let other = tempfile::tempdir().unwrap();
    rbuild_ok(other.path(), &["pull", "-q", &theirs]);
    let store = rbuild_store::Store::open(other.path()).unwrap();
    let image = store.resolve(&theirs).unwrap();
    let rootfs = other.path().join("unpacked");
    std::fs::create_dir_all(&rootfs).unwrap();
    store.unpack(&image, &rootfs).unwrap();
    assert!(rootfs.join("bin/busybox").is_file());
    let _ = Command::new("docker")
        .args(["rmi", &ours, &theirs])
        .output();
}

#[test]
fn copy_between_registry_layout_archive_and_store() {
    let Some((reg, root)) = registry_and_busybox("cli copy") else {
        return;
    };
    let src = format!("{}/copy/src:1", reg.addr);
    let digest = pushed_digest(&rbuild_ok(root.path(), &["push", "bb:1", &src]));

    // registry → registry (same registry: mounted, digest kept)
    let out = rbuild_ok(
        root.path(),
        &[
            "copy",
            &format!("docker://{src}"),
            &format!("docker://{}/copy/dst:2", reg.addr),
        ],
    );
    assert_eq!(out.trim(), digest);

    // registry → OCI layout → registry, digest kept
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let oci = format!("oci:{}:v1", layout.display());
    let out = rbuild_ok(root.path(), &["copy", &format!("docker://{src}"), &oci]);
    assert_eq!(out.trim(), digest);
    assert!(layout.join("index.json").is_file() && layout.join("oci-layout").is_file());
    let back = format!("docker://{}/copy/from-oci:1", reg.addr);
    assert_eq!(
        rbuild_ok(root.path(), &["copy", &oci, &back]).trim(),
        digest
    );

    // registry → docker-archive → store
    let tarball = work.path().join("bb.tar");
    rbuild_ok(
        root.path(),
        &[
            "copy",
            &format!("docker://{src}"),
            &format!("docker-archive:{}:copy/bb:9", tarball.display()),
        ],
    );
    let other = tempfile::tempdir().unwrap();
    rbuild_ok(
        other.path(),
        &[
            "copy",
            &format!("docker-archive:{}", tarball.display()),
            "rbuild:mine:1",
        ],
    );
    let listed = rbuild_ok(other.path(), &["images"]);
    assert!(listed.contains("mine") && listed.contains('1'), "{listed}");

    if have_peer("skopeo", &["--version"]) {
        let info = skopeo_inspect(&oci);
        assert_eq!(info["Digest"], digest.as_str());
    }

    let bad = rbuild(root.path(), &["copy", "ftp://x", &oci]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("unknown transport"), "{}", text(&bad));
}

#[test]
fn tags_catalog_and_manifest_commands() {
    let Some((reg, root)) = registry_and_busybox("cli tags/catalog/manifest") else {
        return;
    };
    for t in ["1", "2"] {
        rbuild_ok(
            root.path(),
            &["push", "-q", "bb:1", &format!("{}/list/bb:{t}", reg.addr)],
        );
    }
    rbuild_ok(
        root.path(),
        &["push", "-q", "bb:1", &format!("{}/list/other:x", reg.addr)],
    );
    let mut tags: Vec<String> = rbuild_ok(root.path(), &["tags", &format!("{}/list/bb", reg.addr)])
        .lines()
        .map(str::to_string)
        .collect();
    tags.sort();
    assert_eq!(tags, ["1", "2"]);
    assert_eq!(
        rbuild_ok(root.path(), &["catalog", &reg.addr]),
        "list/bb\nlist/other\n"
    );

    let r = format!("{}/list/other:x", reg.addr);
    let raw = rbuild_ok(root.path(), &["manifest", "inspect", &r]);
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["schemaVersion"], 2);
    let out = rbuild_ok(root.path(), &["manifest", "rm", &r]);
    assert!(out.starts_with("Deleted: sha256:"), "{out}");
    let gone = rbuild(root.path(), &["manifest", "inspect", &r]);
    assert!(!gone.status.success());
    assert!(text(&gone).contains("not found"), "{}", text(&gone));

    let missing = rbuild(root.path(), &["tags", &format!("{}/no/such", reg.addr)]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("not found"), "{}", text(&missing));
}

fn rbuild_env(root: &Path, config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("DOCKER_CONFIG", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn login_logout_and_a_clear_401() {
    const PASSWORD: &str = "s3cret-pa55word";
    let Some(reg) = RegistryProcess::start(
        Auth::Htpasswd {
            user: "carol".into(),
            password: PASSWORD.into(),
        },
        "cli login",
    ) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    if busybox_image(root.path(), "bb:1").is_none() {
        return;
    }
    let config = tempfile::tempdir().unwrap();
    let dest = format!("{}/private/bb:1", reg.addr);

    let anon = rbuild_env(root.path(), config.path(), &["push", "bb:1", &dest], None);
    assert!(!anon.status.success());
    assert!(
        text(&anon).contains("401") && text(&anon).contains("rbuild login"),
        "{}",
        text(&anon)
    );

    let wrong = rbuild_env(
        root.path(),
        config.path(),
        &["login", "-u", "carol", "--password-stdin", &reg.addr],
        Some("nope-wrong\n"),
    );
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("401"), "{}", text(&wrong));
    assert!(!text(&wrong).contains("nope-wrong"));
    assert!(
        !config.path().join("config.json").exists(),
        "nothing saved on failure"
    );

    let ok = rbuild_env(
        root.path(),
        config.path(),
        &["login", "-u", "carol", "--password-stdin", &reg.addr],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("Login Succeeded"));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config.path().join("config.json")).unwrap()).unwrap();
    assert!(saved["auths"][&reg.addr]["auth"].is_string(), "{saved}");

    let pushed = rbuild_env(root.path(), config.path(), &["push", "bb:1", &dest], None);
    assert!(pushed.status.success(), "{}", text(&pushed));
    assert!(!text(&pushed).contains(PASSWORD));

    let out = rbuild_env(root.path(), config.path(), &["logout", &reg.addr], None);
    assert!(out.status.success(), "{}", text(&out));
    let again = rbuild_env(root.path(), config.path(), &["logout", &reg.addr], None);
    assert!(!again.status.success());
    assert!(text(&again).contains("not logged in"), "{}", text(&again));
    let denied = rbuild_env(root.path(), config.path(), &["pull", &dest], None);
    assert!(!denied.status.success());
    assert!(text(&denied).contains("401"), "{}", text(&denied));
}

#[test]
fn tampered_blob_is_refused_by_the_store_and_nothing_is_kept() {
    let Some((reg, root)) = registry_and_busybox("cli tampered pull") else {
        return;
    };
    let dest = format!("{}/tamper/bb:1", reg.addr);
    rbuild_ok(root.path(), &["push", "-q", "bb:1", &dest]);
    let manifest: serde_json::Value =
        serde_json::from_str(&rbuild_ok(root.path(), &["manifest", "inspect", &dest])).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let file = reg.blob_file(layer.strip_prefix("sha256:").unwrap());
    let mut data = std::fs::read(&file).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    std::fs::write(&file, data).unwrap();

    let other = tempfile::tempdir().unwrap();
    let out = rbuild(other.path(), &["pull", &dest]);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains(&layer) && msg.contains("digest"), "{msg}");
    let blob = other
        .path()
        .join("blobs/sha256")
        .join(layer.strip_prefix("sha256:").unwrap());
    assert!(!blob.exists(), "the bad blob was not kept");
    let tmp: Vec<_> = std::fs::read_dir(other.path().join("tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "no staging leftovers: {tmp:?}");
    assert_eq!(rbuild_ok(other.path(), &["images", "-q"]), "");
}

#[test]
fn incompressible_layers_round_trip_through_push_and_pull() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "cli incompressible layer") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("tree");
    std::fs::create_dir_all(tree.join("data")).unwrap();
    let random = support::image::random_bytes(99, 6 << 20);
    std::fs::write(tree.join("data/random.bin"), &random).unwrap();
    std::fs::write(
        tree.join("data/text.txt"),
        "compressible text\n".repeat(100_000),
    )
    .unwrap();
    let tarball = root.path().join("layer.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    rbuild_ok(
        root.path(),
        &["import", tarball.to_str().unwrap(), "mixed:1"],
    );
    let dest = format!("{}/mixed/img:1", reg.addr);
    rbuild_ok(root.path(), &["push", "-q", "mixed:1", &dest]);
    let manifest: serde_json::Value =
        serde_json::from_str(&rbuild_ok(root.path(), &["manifest", "inspect", &dest])).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    let other = tempfile::tempdir().unwrap();
    rbuild_ok(other.path(), &["pull", "-q", &dest]);
    let store = rbuild_store::Store::open(other.path()).unwrap();
    let image = store.resolve(&dest).unwrap();
    let out = other.path().join("unpacked");
    std::fs::create_dir_all(&out).unwrap();
    store.unpack(&image, &out).unwrap();
    assert_eq!(std::fs::read(out.join("data/random.bin")).unwrap(), random);
    assert_eq!(
        std::fs::read_to_string(out.join("data/text.txt"))
            .unwrap()
            .len(),
        18 * 100_000
    );
}

/// Push an index of two random images (amd64, arm64) with the library; returns the manifest
/// digests (amd64, arm64) and the index digest.
fn push_two_platform_index(addr: &str, repo: &str) -> (String, String, String) {
    use std::sync::Arc;
    let amd = support::image::test_image(31, &[1000], false);
    let arm = support::image::test_image(32, &[2000], false);
    let blobs = rbuild_registry::MemoryBlobs::new();
    for img in [&amd, &arm] {
        for d in img.layers.iter().chain([&img.config, &img.manifest]) {
            blobs.insert(img.blobs.get(d).unwrap());
        }
    }
    let entry = |img: &support::image::TestImage, arch: &str| {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"{arch}"}}}}"#,
            img.manifest,
            img.manifest_bytes.len()
        )
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{}]}}"#,
        entry(&amd, "amd64"),
        entry(&arm, "arm64")
    );
    let index_digest = blobs.insert(index.into_bytes());
    let client = rbuild_registry::Client::new(rbuild_registry::ClientOptions::default());
    let r = format!("{addr}/{repo}").parse().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(rbuild_registry::push(
            &client,
            &r,
            &index_digest,
            Arc::new(blobs),
            &rbuild_registry::PushOptions::default(),
            Arc::new(rbuild_registry::Silent),
        ))
        .unwrap();
    (
        amd.manifest.to_string(),
        arm.manifest.to_string(),
        index_digest.to_string(),
    )
}

#[test]
fn pull_picks_a_platform_or_keeps_them_all() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "cli multi-platform pull") else {
        return;
    };
    let (amd, arm, index) = push_two_platform_index(&reg.addr, "multi/img:1");
    let r = format!("{}/multi/img:1", reg.addr);

    let root = tempfile::tempdir().unwrap();
    let out = rbuild(root.path(), &["pull", "--platform", "linux/arm64", &r]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("Digest: {arm}")),
        "{}",
        text(&out)
    );
    let store = rbuild_store::Store::open(root.path()).unwrap();
    let arm64: rbuild_oci::Platform = "linux/arm64".parse().unwrap();
    assert_eq!(
        store
            .resolve_platform(&r, &arm64)
            .unwrap()
            .manifest_digest
            .to_string(),
        arm
    );
    // The tag names the index (as containerd's store keeps it), which lists the one image
    // pulled; the other platform is not there.
    let list = store
        .resolve_index(&r)
        .unwrap()
        .expect("the tag names the index");
    assert_eq!(list.digest.to_string(), index);
    let amd64: rbuild_oci::Platform = "linux/amd64".parse().unwrap();
    let missing = store.resolve_platform(&r, &amd64).unwrap_err().to_string();
    assert!(missing.contains("linux/amd64 (not pulled)"), "{missing}");

    let all = tempfile::tempdir().unwrap();
    let out = rbuild(
        all.path(),
        &["pull", "--all-platforms", "--platform", "linux/amd64", &r],
    );
    assert!(out.status.success(), "{}", text(&out));
    let store = rbuild_store::Store::open(all.path()).unwrap();
    assert_eq!(store.resolve(&r).unwrap().manifest_digest.to_string(), amd);
    assert!(
        store.blobs().contains(&index.parse().unwrap()),
        "index kept"
    );
    // Both images are in the store; the other one is found by its digest.
    let by_digest = format!("{}/multi/img@{arm}", reg.addr);
    assert_eq!(
        store
            .resolve(&by_digest)
            .unwrap()
            .manifest_digest
            .to_string(),
        arm
    );

    let none = rbuild(root.path(), &["pull", "--platform", "linux/s390x", &r]);
    assert!(!none.status.success());
    assert!(
        text(&none).contains("no image for platform linux/s390x"),
        "{}",
        text(&none)
    );
}

#[test]
fn insecure_registries_from_flag_env_and_config_file() {
    use std::net::ToSocketAddrs;
    let Some((reg, root)) = registry_and_busybox("cli insecure registries") else {
        return;
    };
    rbuild_ok(
        root.path(),
        &["push", "-q", "bb:1", &format!("{}/ins/bb:1", reg.addr)],
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let port = reg.addr.rsplit(':').next().unwrap();
    let named = format!("{}:{port}", host.trim());
    if !named
        .to_socket_addrs()
        .is_ok_and(|mut a| a.any(|a| a.ip().is_loopback()))
        || host.trim() == "localhost"
    {
        eprintln!("skipped: hostname does not resolve to loopback");
        return;
    }
    let repo = format!("{named}/ins/bb");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rbuild"));
        c.arg("--root").arg(root.path()).args(args);
        c.env("RBUILD_REGISTRIES_CONF", root.path().join("absent.json"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let refused = run(&["tags", &repo], &[]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("https://"), "{}", text(&refused));
    let flag = run(&["tags", "--insecure-registry", &named, &repo], &[]);
    assert_eq!(
        String::from_utf8_lossy(&flag.stdout),
        "1\n",
        "{}",
        text(&flag)
    );
    let env = run(
        &["tags", &repo],
        &[("RBUILD_INSECURE_REGISTRIES", &format!("other:1,{named}"))],
    );
    assert_eq!(
        String::from_utf8_lossy(&env.stdout),
        "1\n",
        "{}",
        text(&env)
    );
    let conf = root.path().join("registries.json");
    std::fs::write(&conf, format!(r#"{{"insecure-registries": ["{named}"]}}"#)).unwrap();
    let file = run(
        &["tags", &repo],
        &[("RBUILD_REGISTRIES_CONF", conf.to_str().unwrap())],
    );
    assert_eq!(
        String::from_utf8_lossy(&file.stdout),
        "1\n",
        "{}",
        text(&file)
    );
}

#[test]
fn interrupted_pull_leaves_nothing_behind() {
    use support::proxy::{Direction, DroppingProxy};
    let Some(reg) = RegistryProcess::start(Auth::Open, "cli interrupted pull") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(
        tree.join("big.bin"),
        support::image::random_bytes(7, 8 << 20),
    )
    .unwrap();
    let tarball = root.path().join("layer.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&tree)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    rbuild_ok(root.path(), &["import", tarball.to_str().unwrap(), "big:1"]);
    rbuild_ok(
        root.path(),
        &["push", "-q", "big:1", &format!("{}/big/img:1", reg.addr)],
    );

    // The registry hangs after 2 MB of the layer; the user presses Ctrl-C.
    let proxy = DroppingProxy::start_stalling(&reg.addr, Direction::Download, 2 << 20);
    let other = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(other.path())
        .args(["pull", &format!("{}/big/img:1", proxy.addr)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while proxy.cuts.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pull never reached the stall"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(text(&out).contains("interrupted"), "{}", text(&out));
    let leftovers: Vec<_> = std::fs::read_dir(other.path().join("tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "staging files left: {leftovers:?}");
    assert_eq!(rbuild_ok(other.path(), &["images", "-q"]), "");
}

#[test]
fn run_pulls_a_missing_image_as_docker_run_does() {
    let Some((reg, src)) = registry_and_busybox("run pulls a missing image") else {
        return;
    };
    let name = format!("{}/run/bb:1", reg.addr);
    rbuild_ok(src.path(), &["tag", "bb:1", &name]);
    rbuild_ok(src.path(), &["push", "-q", &name]);

    let fresh = tempfile::tempdir().unwrap();
    let said_pulling = |o: &Output| text(o).contains("Unable to find image");
    // --pull never: the store lacks it, nothing is fetched, docker's create status.
    let out = rbuild(
        fresh.path(),
        &["run", "--rm", "--pull", "never", &name, "true"],
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(
        text(&out).contains("unable to find image"),
        "{}",
        text(&out)
    );
    assert!(!said_pulling(&out), "{}", text(&out));
    // The default (missing): said on stderr, pulled, run; stdout is the command's alone.
    let out = rbuild(
        fresh.path(),
        &["run", "--rm", &name, "echo", "pulled and ran"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pulled and ran\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("Unable to find image '{name}' locally")),
        "{err}"
    );
    let images = rbuild_ok(
        fresh.path(),
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
    );
    assert_eq!(images.trim(), name);
    // Now present: no pull (nothing said), also with the registry gone.
    drop(reg);
    let out = rbuild(fresh.path(), &["run", "--rm", &name, "echo", "again"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!said_pulling(&out), "{}", text(&out));
    // --pull always must reach the registry, which is gone now.
    let out = rbuild(
        fresh.path(),
        &["run", "--rm", "--pull", "always", &name, "true"],
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    // A bad policy is refused by name.
    let out = rbuild(
        fresh.path(),
        &["run", "--rm", "--pull", "sometimes", &name, "true"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("sometimes"), "{}", text(&out));
}
