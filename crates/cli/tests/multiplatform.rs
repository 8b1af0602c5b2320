//! Multi-platform images end to end: a two-platform build (amd64 natively, arm64 under Debian's
//! qemu-user-static), its index pushed to the Distribution registry and read back by skopeo,
//! rbuild and dockerd. Needs root, binfmt_misc's qemu-aarch64 handler and an arm64 busybox
//! (`RBUILD_BUSYBOX_ARM64`, which `peers_start` fetches from Debian's arm64 busybox-static).

#![allow(clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have_peer, peers_required, rbuild, rbuild_ok, repo_root, tar_dir};

/// The arm64 busybox when arm64 binaries run here; `None` (skip) otherwise, a panic when the
/// peers are required.
fn arm64_busybox() -> Option<PathBuf> {
    let bb = std::env::var_os("RBUILD_BUSYBOX_ARM64").map(PathBuf::from);
    let handler = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .is_ok_and(|h| h.starts_with("enabled"));
    match bb {
        Some(bb) if bb.is_file() && handler && nix::unistd::geteuid().is_root() => Some(bb),
        _ if peers_required() => panic!(
            "RBUILD_TEST_PEERS=1 but arm64 emulation is not set up (RBUILD_BUSYBOX_ARM64, \
             binfmt_misc qemu-aarch64; scripts/lib/peers.sh peers_install_emulation)"
        ),
        _ => {
            eprintln!(
                "skipped: no arm64 emulation or arm64 busybox (source scripts/lib/peers.sh; peers_start)"
            );
            None
        }
    }
}

/// A busybox root filesystem for `busybox` (either architecture) as the tar `tarball`.
fn rootfs_tar(work: &Path, busybox: &Path, tarball: &Path) {
    let dir = work.join(format!(
        "rootfs-{}",
        tarball.file_stem().unwrap().to_string_lossy()
    ));
    let out = Command::new(repo_root().join("scripts/busybox-rootfs"))
        .arg(&dir)
        .env("RBUILD_BUSYBOX", busybox)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "busybox-rootfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tar_dir(&dir, tarball);
}

/// The issue's context: a `$BUILDPLATFORM` build stage and a final stage from
/// `rootfs-$TARGETARCH.tar`.
fn context(work: &Path, arm64: &Path) -> PathBuf {
    let ctx = work.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let host_busybox = std::env::var_os("RBUILD_BUSYBOX")
        .map(PathBuf::from)
        .or_else(|| which("busybox"))
        .expect("a busybox for the host");
    rootfs_tar(work, &host_busybox, &ctx.join("rootfs-amd64.tar"));
    rootfs_tar(work, arm64, &ctx.join("rootfs-arm64.tar"));
    std::fs::write(
        ctx.join("Dockerfile"),
        r#"FROM --platform=$BUILDPLATFORM scratch AS build
ARG BUILDARCH
ADD rootfs-${BUILDARCH}.tar /
RUN echo "built on $(uname -m)" > /note

FROM scratch
ARG TARGETARCH TARGETPLATFORM
ADD rootfs-${TARGETARCH}.tar /
COPY --from=build /note /note
RUN echo "$TARGETPLATFORM $(uname -m)" > /target
CMD ["uname", "-m"]
"#,
    )
    .unwrap();
    ctx
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn two_platform_build_pushes_an_index_that_skopeo_rbuild_and_docker_read() {
    if cfg!(not(target_arch = "x86_64")) {
        return;
    }
    let Some(arm64) = arm64_busybox() else {
        return;
    };
    let Ok(registry) = std::env::var("RBUILD_TEST_REGISTRY") else {
        assert!(!peers_required(), "RBUILD_TEST_REGISTRY is not set");
        eprintln!("skipped: no registry");
        return;
    };
    if !have_peer("skopeo", &["--version"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path(), &arm64);
    let store = work.path().join("store");
    let tag = format!("{registry}/multi/app:1");
    let out = rbuild(
        &store,
        &[
            "build",
            "--progress",
            "plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &tag,
            "--push",
            ctx.to_str().unwrap(),
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "build failed:\n{log}");
    // The $BUILDPLATFORM stage ran once for both platforms; the final stage once for each.
    let starts = |text: &str| {
        log.lines()
            .filter(|l| l.starts_with('#') && l.contains(text) && l.contains(']'))
            .count()
    };
    assert_eq!(starts("RUN echo \"built on"), 1, "{log}");
    assert_eq!(starts("[linux/amd64 build 3/3]"), 1, "{log}");
    assert_eq!(
        starts("[linux/amd64 4/4] RUN echo \"$TARGETPLATFORM"),
        1,
        "{log}"
    );
    assert_eq!(
        starts("[linux/arm64 4/4] RUN echo \"$TARGETPLATFORM"),
        1,
        "{log}"
    );

    // skopeo: the tag is an index listing both platforms.
    let docker_ref = format!("docker://{tag}");
    let raw = run_ok(
        "skopeo",
        &["inspect", "--tls-verify=false", "--raw", &docker_ref],
    );
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{raw}"
    );
    let mut archs: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    archs.sort();
    assert_eq!(archs, ["linux/amd64", "linux/arm64"], "{raw}");
    let arm = run_ok(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--override-os",
            "linux",
            "--override-arch",
            "arm64",
            &docker_ref,
        ],
    );
    let arm: serde_json::Value = serde_json::from_str(&arm).unwrap();
    assert_eq!(arm["Architecture"], "arm64", "{arm}");
    let amd = run_ok(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            "amd64",
            &docker_ref,
        ],
    );
    let amd: serde_json::Value = serde_json::from_str(&amd).unwrap();
    assert_eq!(amd["Architecture"], "amd64", "{amd}");

    // rbuild, in the build's store: the arm64 image runs under emulation; its note is the
    // build stage's, which ran natively.
    let arm_run = rbuild_ok(&store, &["run", "--rm", "--platform", "linux/arm64", &tag]);
    assert_eq!(arm_run.trim(), "aarch64");
    let files = rbuild_ok(
        &store,
        &[
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            &tag,
            "cat",
            "/note",
            "/target",
        ],
    );
    assert_eq!(files, "built on x86_64\nlinux/arm64 aarch64\n");
    assert_eq!(rbuild_ok(&store, &["run", "--rm", &tag]).trim(), "x86_64");

    // rbuild, a fresh store: a default pull gets amd64; --all-platforms keeps both.
    let fresh = work.path().join("fresh");
    rbuild_ok(&fresh, &["pull", "-q", &tag]);
    assert_eq!(rbuild_ok(&fresh, &["run", "--rm", &tag]).trim(), "x86_64");
    // The tag names the index (as containerd's store keeps it), with only amd64 pulled.
    // (--pull never: by default `run` pulls the platform's image, as docker does; below.)
    let refused = rbuild(
        &fresh,
        &[
            "run",
            "--rm",
            "--pull",
            "never",
            "--platform",
            "linux/arm64",
            &tag,
        ],
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("no image for platform linux/arm64")
            && err.contains("linux/arm64 (not pulled)")
            && err.contains("rbuild pull --platform linux/arm64"),
        "{err}"
    );

    // Written whole (save/copy --all-platforms), the partly pulled image is refused, naming
    // what is missing and how to get it; nothing is written.
    let out_tar = work.path().join("partial-all.tar");
    let layout = work.path().join("partial-layout");
    for args in [
        vec![
            "save",
            "--all-platforms",
            "-o",
            out_tar.to_str().unwrap(),
            &tag,
        ],
        vec![
            "copy",
            "--all-platforms",
            &format!("rbuild:{tag}"),
            &format!("oci:{}:v1", layout.display()),
        ],
    ] {
        let refused = rbuild(&fresh, &args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            err.contains("a multi-platform image of which this store holds only linux/amd64; not pulled: linux/arm64")
                && err.contains("pull it with --all-platforms first"),
            "{args:?}: {err}"
        );
    }
    assert!(!out_tar.exists() && !layout.join("index.json").exists());

    // Pushed on, the partly pulled image goes as the one image pulled (as docker pushes it).
    let partial = format!("{registry}/multi/partial:1");
    rbuild_ok(&fresh, &["push", "-q", &tag, &partial]);
    let pushed: serde_json::Value = serde_json::from_str(&run_ok(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{partial}"),
        ],
    ))
    .unwrap();
    assert!(pushed["layers"].is_array(), "{pushed}");
    let config: serde_json::Value = serde_json::from_str(&run_ok(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--config",
            &format!("docker://{partial}"),
        ],
    ))
    .unwrap();
    assert_eq!(config["architecture"], "amd64", "{config}");

    // `run` of the platform not pulled pulls it first (--pull missing, the default).
    let pulled = rbuild(&fresh, &["run", "--rm", "--platform", "linux/arm64", &tag]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&pulled.stdout).trim(), "aarch64");
    assert!(String::from_utf8_lossy(&pulled.stderr).contains("Unable to find image"));

    // A base pulled for one platform's FROM, then for another's (one build, then a
    // two-platform build from it): both stay stored under the tag, the host's is the default.
    let bases = work.path().join("bases");
    let derived = work.path().join("derived");
    std::fs::create_dir_all(&derived).unwrap();
    std::fs::write(
        derived.join("Dockerfile"),
        format!("FROM {tag}\nRUN uname -m > /derived\n"),
    )
    .unwrap();
    let derived_dir = derived.to_str().unwrap();
    rbuild_ok(
        &bases,
        &[
            "build",
            "-q",
            "--platform",
            "linux/amd64",
            "-t",
            "d:amd",
            derived_dir,
        ],
    );
    rbuild_ok(
        &bases,
        &[
            "build",
            "-q",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "d:both",
            derived_dir,
        ],
    );
    assert_eq!(rbuild_ok(&bases, &["run", "--rm", &tag]).trim(), "x86_64");
    assert_eq!(
        rbuild_ok(&bases, &["run", "--rm", "--platform", "linux/arm64", &tag]).trim(),
        "aarch64"
    );
    let tree = rbuild_ok(&bases, &["images", "--tree", &tag]);
    assert!(
        tree.contains("└─ linux/amd64") && tree.contains("└─ linux/arm64"),
        "{tree}"
    );
    for (platform, arch) in [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")] {
        let out = rbuild_ok(
            &bases,
            &[
                "run",
                "--rm",
                "--platform",
                platform,
                "d:both",
                "cat",
                "/derived",
            ],
        );
        assert_eq!(out.trim(), arch, "{platform}");
    }
    let all = work.path().join("all");
    rbuild_ok(&all, &["pull", "-q", "--all-platforms", &tag]);
    assert_eq!(rbuild_ok(&all, &["run", "--rm", &tag]).trim(), "x86_64");
    let arm_all = rbuild_ok(
        &all,
        &[
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            &tag,
            "cat",
            "/note",
            "/target",
        ],
    );
    assert_eq!(arm_all, "built on x86_64\nlinux/arm64 aarch64\n");
    let tree = rbuild_ok(&all, &["images", "--tree"]);
    assert!(
        tree.contains("└─ linux/amd64") && tree.contains("└─ linux/arm64"),
        "{tree}"
    );

    // dockerd on this amd64 host pulls the amd64 image of the index.
    if have_peer("docker", &["version"]) {
        run_ok("docker", &["pull", "-q", &tag]);
        let arch = run_ok(
            "docker",
            &["image", "inspect", "--format", "{{.Architecture}}", &tag],
        );
        assert_eq!(arch.trim(), "amd64");
        let uname = run_ok("docker", &["run", "--rm", "--network", "none", &tag]);
        assert_eq!(uname.trim(), "x86_64");
        let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    }
}

#[test]
fn from_of_a_multi_platform_base_picks_the_platform_or_names_the_ones_it_has() {
    if cfg!(not(target_arch = "x86_64")) {
        return;
    }
    let Some(arm64) = arm64_busybox() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path(), &arm64);
    let store = work.path().join("store");
    // The base: a two-platform image in the store.
    rbuild_ok(
        &store,
        &[
            "build",
            "-q",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "base:1",
            ctx.to_str().unwrap(),
        ],
    );
    let derived = work.path().join("derived");
    std::fs::create_dir_all(&derived).unwrap();
    std::fs::write(
        derived.join("Dockerfile"),
        "FROM base:1\nRUN uname -m > /derived\n",
    )
    .unwrap();
    let oci = work.path().join("derived.tar");
    rbuild_ok(
        &store,
        &[
            "build",
            "-q",
            "--platform",
            "linux/arm64,linux/amd64",
            "-t",
            "derived:1",
            "--output",
            &format!("type=oci,dest={}", oci.display()),
            derived.to_str().unwrap(),
        ],
    );
    for (platform, arch) in [("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")] {
        let out = rbuild_ok(
            &store,
            &[
                "run",
                "--rm",
                "--platform",
                platform,
                "derived:1",
                "cat",
                "/derived",
                "/target",
            ],
        );
        assert_eq!(out, format!("{arch}\n{platform} {arch}\n"));
    }
    // rmi of the index's name while a container uses one of its images: a conflict; forced,
    // only the name goes (the container's image stays until it does).
    let created = rbuild_ok(
        &store,
        &["create", "--platform", "linux/arm64", "derived:1", "true"],
    );
    let refused = rbuild(&store, &["rmi", "derived:1"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("must force") && err.contains(&created.trim()[..12]),
        "{err}"
    );
    let forced = rbuild_ok(&store, &["rmi", "-f", "derived:1"]);
    assert!(forced.contains("Untagged"), "{forced}");
    rbuild_ok(&store, &["image", "prune", "-f"]);
    let still = rbuild_ok(&store, &["start", "-a", created.trim()]);
    assert_eq!(still, "");
    rbuild_ok(&store, &["rm", created.trim()]);
    // The OCI archive's index.json names the index, which lists both images.
    let listing = run_ok("tar", &["-xOf", oci.to_str().unwrap(), "index.json"]);
    let top: serde_json::Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(
        top["manifests"][0]["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{listing}"
    );
    assert_eq!(
        top["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/derived:1"
    );
    if have_peer("skopeo", &["--version"]) {
        let raw = run_ok(
            "skopeo",
            &[
                "inspect",
                "--raw",
                &format!("oci-archive:{}", oci.display()),
            ],
        );
        assert!(raw.contains("arm64") && raw.contains("amd64"), "{raw}");
    }
    // A platform the base lacks: the error names the ones it has.
    let out = rbuild(
        &store,
        &[
            "build",
            "--platform",
            "linux/s390x",
            derived.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64, linux/arm64"),
        "{err}"
    );
}

/// A one-file image for `platform` (no RUN: nothing to emulate), named `name`.
fn platform_image(store: &Path, work: &Path, platform: &str, name: &str) {
    let ctx = work.join(format!("ctx-{}", platform.replace('/', "_")));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETPLATFORM\nCOPY Dockerfile /for-$TARGETPLATFORM\n",
    )
    .unwrap();
    rbuild_ok(
        store,
        &[
            "build",
            "-q",
            "--platform",
            platform,
            "-t",
            name,
            ctx.to_str().unwrap(),
        ],
    );
}

#[test]
fn manifest_verbs_assemble_annotate_push_and_remove_a_list() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let Ok(registry) = std::env::var("RBUILD_TEST_REGISTRY") else {
        assert!(!peers_required(), "RBUILD_TEST_REGISTRY is not set");
        eprintln!("skipped: no registry");
        return;
    };
    if !have_peer("skopeo", &["--version"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    platform_image(&store, work.path(), "linux/amd64", "app:amd");
    platform_image(&store, work.path(), "linux/arm64", "app:arm");
    platform_image(&store, work.path(), "linux/s390x", "app:s390x");
    let list = format!("{registry}/lists/app:1");
    let out = rbuild_ok(&store, &["manifest", "create", &list, "app:amd", "app:arm"]);
    assert!(out.contains("Created manifest list"), "{out}");
    let again = rbuild(&store, &["manifest", "create", &list, "app:amd"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    rbuild_ok(&store, &["manifest", "add", &list, "app:s390x"]);
    rbuild_ok(
        &store,
        &["manifest", "annotate", "--variant", "v8", &list, "app:arm"],
    );
    let local: serde_json::Value =
        serde_json::from_str(&rbuild_ok(&store, &["manifest", "inspect", &list])).unwrap();
    let platforms: Vec<String> = local["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                s = format!("{s}/{v}");
            }
            s
        })
        .collect();
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm64/v8", "linux/s390x"],
        "{local}"
    );
    // A name of the list runs this machine's platform's image.
    let tree = rbuild_ok(&store, &["images", "--tree", &list]);
    assert!(tree.contains("└─ linux/arm64/v8"), "{tree}");

    let pushed = rbuild_ok(&store, &["manifest", "push", "--purge", &list]);
    let raw = run_ok(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{list}"),
        ],
    );
    let remote: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(remote["manifests"].as_array().unwrap().len(), 3, "{raw}");
    assert_eq!(remote["manifests"][1]["platform"]["variant"], "v8", "{raw}");
    let s390x = run_ok(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            "s390x",
            &format!("docker://{list}"),
        ],
    );
    assert!(s390x.contains("\"Architecture\": \"s390x\""), "{s390x}");
    assert!(
        raw.len() > 10 && pushed.trim().starts_with("sha256:"),
        "{pushed}"
    );
    // --purge removed the local list; inspect now reads the registry's.
    assert!(
        rbuild_ok(&store, &["images", "-q", &list])
            .trim()
            .is_empty()
    );
    let from_registry = rbuild_ok(&store, &["manifest", "inspect", &list]);
    assert_eq!(from_registry.trim(), raw.trim());
    // create --all from a registry list (in a fresh store) takes every platform of it.
    let fresh = work.path().join("fresh");
    rbuild_ok(&fresh, &["manifest", "create", "--all", "again:1", &list]);
    let again: serde_json::Value =
        serde_json::from_str(&rbuild_ok(&fresh, &["manifest", "inspect", "again:1"])).unwrap();
    assert_eq!(again["manifests"].as_array().unwrap().len(), 3, "{again}");
    // rm of a local list removes it (the images it listed keep their own names).
    rbuild_ok(&store, &["manifest", "create", "local:list", "app:amd"]);
    let rm = rbuild_ok(&store, &["manifest", "rm", "local:list"]);
    assert!(rm.contains("Deleted manifest list"), "{rm}");
    let left = rbuild_ok(&store, &["images"]);
    assert!(!left.contains("local ") && left.contains("app "), "{left}");
}

#[test]
fn save_load_and_copy_with_all_platforms_keep_the_index() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY Dockerfile /for-$TARGETARCH\n",
    )
    .unwrap();
    let iid = work.path().join("iid");
    rbuild_ok(
        &store,
        &[
            "build",
            "-q",
            "--platform",
            "linux/amd64,linux/arm64",
            "--iidfile",
            iid.to_str().unwrap(),
            "-t",
            "multi:1",
            ctx.to_str().unwrap(),
        ],
    );
    let index_digest = std::fs::read_to_string(&iid).unwrap();
    assert!(index_digest.starts_with("sha256:"), "{index_digest}");
    let tree_of = |root: &Path, name: &str| rbuild_ok(root, &["images", "--tree", name]);

    // save --all-platforms writes the index; load --all-platforms keeps it, same digest.
    let oci = work.path().join("multi.tar");
    rbuild_ok(
        &store,
        &[
            "save",
            "--all-platforms",
            "--format",
            "oci",
            "-o",
            oci.to_str().unwrap(),
            "multi:1",
        ],
    );
    let docker = rbuild(
        &store,
        &["save", "--all-platforms", "-o", "/dev/null", "multi:1"],
    );
    assert!(!docker.status.success());
    assert!(
        String::from_utf8_lossy(&docker.stderr).contains("--format oci"),
        "{}",
        String::from_utf8_lossy(&docker.stderr)
    );
    let loaded = work.path().join("loaded");
    rbuild_ok(
        &loaded,
        &["load", "--all-platforms", "-i", oci.to_str().unwrap()],
    );
    let ids = rbuild_ok(&loaded, &["images", "-q", "--no-trunc", "multi:1"]);
    assert_eq!(ids.trim(), index_digest.trim());
    let tree = tree_of(&loaded, "multi:1");
    assert!(
        tree.contains("└─ linux/amd64") && tree.contains("└─ linux/arm64"),
        "{tree}"
    );
    // Without --all-platforms, load takes this machine's platform's image only.
    let host_only = work.path().join("host-only");
    rbuild_ok(&host_only, &["load", "-i", oci.to_str().unwrap()]);
    let tree = tree_of(&host_only, "multi:1");
    assert!(!tree.contains("└─"), "{tree}");
    let s = rbuild_store::Store::open(&host_only).unwrap();
    let host = s.resolve("multi:1").unwrap();
    assert_eq!(
        host.config_json()["architecture"],
        rbuild_oci::Platform::host().architecture
    );

    // copy --all-platforms: store → registry → another store, the index kept all the way.
    let Ok(registry) = std::env::var("RBUILD_TEST_REGISTRY") else {
        assert!(!peers_required(), "RBUILD_TEST_REGISTRY is not set");
        return;
    };
    let remote = format!("{registry}/copied/multi:1");
    rbuild_ok(
        &store,
        &[
            "copy",
            "--all-platforms",
            "rbuild:multi:1",
            &format!("docker://{remote}"),
        ],
    );
    if have_peer("skopeo", &["--version"]) {
        let raw = run_ok(
            "skopeo",
            &[
                "inspect",
                "--tls-verify=false",
                "--raw",
                &format!("docker://{remote}"),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["manifests"].as_array().unwrap().len(), 2, "{raw}");
    }
    let back = work.path().join("back");
    rbuild_ok(
        &back,
        &[
            "copy",
            "--all-platforms",
            &format!("docker://{remote}"),
            "rbuild:back:1",
        ],
    );
    let tree = tree_of(&back, "back:1");
    assert!(
        tree.contains("└─ linux/amd64") && tree.contains("└─ linux/arm64"),
        "{tree}"
    );
    // push of the index tag pushes the index too.
    let pushed = format!("{registry}/pushed/multi:1");
    rbuild_ok(&store, &["tag", "multi:1", &pushed]);
    rbuild_ok(&store, &["push", &pushed]);
    let listed = rbuild_ok(&store, &["manifest", "inspect", &pushed]);
    assert!(
        listed.contains("arm64") && listed.contains("amd64"),
        "{listed}"
    );
}

#[test]
fn build_platform_stages_and_stages_based_on_them_are_built_once() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // No RUN: nothing to emulate. `derived` has no --platform of its own: as in BuildKit, it
    // takes its base stage's platform, so it is shared too.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=$BUILDPLATFORM scratch AS build\nARG BUILDARCH\n\
         COPY Dockerfile /built-for-$BUILDARCH\n\
         FROM build AS derived\nCOPY Dockerfile /again\n\
         FROM scratch\nARG TARGETARCH\nCOPY --from=derived / /\nCOPY Dockerfile /target-$TARGETARCH\n",
    )
    .unwrap();
    let out = rbuild(
        &store,
        &[
            "build",
            "--progress",
            "plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "shared:1",
            ctx.to_str().unwrap(),
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let starts = |text: &str| {
        log.lines()
            .filter(|l| l.starts_with('#') && l.contains(text))
            .count()
    };
    assert_eq!(starts("build 2/2] COPY Dockerfile /built-for"), 1, "{log}");
    assert_eq!(starts("derived 2/2] COPY Dockerfile /again"), 1, "{log}");
    assert_eq!(
        starts("[linux/arm64 3/3] COPY Dockerfile /target"),
        1,
        "{log}"
    );
    let s = rbuild_store::Store::open(&store).unwrap();
    let arm = s
        .resolve_platform("shared:1", &"linux/arm64".parse().unwrap())
        .unwrap();
    assert_eq!(arm.config_json()["architecture"], "arm64");
    let dir = work.path().join("arm");
    std::fs::create_dir_all(&dir).unwrap();
    s.unpack(&arm, &dir).unwrap();
    let host_arch = rbuild_oci::Platform::host().architecture;
    for f in [
        format!("built-for-{host_arch}"),
        "again".into(),
        "target-arm64".into(),
    ] {
        assert!(dir.join(&f).is_file(), "/{f} in the arm64 image");
    }
}

#[test]
fn steps_before_a_target_arg_of_a_build_platform_stage_run_once() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some(rootfs) = common::busybox_rootfs(work.path()) else {
        return;
    };
    let store = work.path().join("store");
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    tar_dir(&rootfs, &ctx.join("rootfs.tar"));
    // The cross-compiling pattern: preparation natively once, then per target.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=$BUILDPLATFORM scratch AS build\n\
         ADD rootfs.tar /\n\
         RUN echo prepared-once > /prep && date +%s%N > /prep-time\n\
         ARG TARGETARCH\n\
         RUN echo \"for $TARGETARCH on $(uname -m)\" > /out\n\
         FROM scratch\nCOPY --from=build /out /prep /prep-time /\n",
    )
    .unwrap();
    let out = rbuild(
        &store,
        &[
            "build",
            "--progress",
            "plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "cross:1",
            ctx.to_str().unwrap(),
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let starts = |text: &str| {
        log.lines()
            .filter(|l| l.starts_with('#') && l.contains(text))
            .count()
    };
    assert_eq!(starts("RUN echo prepared-once"), 1, "{log}");
    assert_eq!(starts("RUN echo \"for $TARGETARCH"), 2, "{log}");
    let s = rbuild_store::Store::open(&store).unwrap();
    let host = rbuild_oci::Platform::host();
    let mut prep_times = Vec::new();
    for arch in ["amd64", "arm64"] {
        let img = s
            .resolve_platform("cross:1", &format!("linux/{arch}").parse().unwrap())
            .unwrap();
        let dir = work.path().join(arch);
        std::fs::create_dir_all(&dir).unwrap();
        s.unpack(&img, &dir).unwrap();
        let uname = if host.architecture == "amd64" {
            "x86_64"
        } else {
            "aarch64"
        };
        assert_eq!(
            std::fs::read_to_string(dir.join("out")).unwrap(),
            format!("for {arch} on {uname}\n")
        );
        prep_times.push(std::fs::read_to_string(dir.join("prep-time")).unwrap());
    }
    // Both images carry the one preparation's output.
    assert_eq!(prep_times[0], prep_times[1]);
}

/// The platforms a raw index lists (`os/arch`), sorted; panics when `raw` is no index.
fn index_platforms(raw: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(raw).unwrap();
    let mut out: Vec<String> = v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {raw}"))
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn copy_all_platforms_between_every_transport_read_and_written_by_skopeo() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let Ok(registry) = std::env::var("RBUILD_TEST_REGISTRY") else {
        assert!(!peers_required(), "RBUILD_TEST_REGISTRY is not set");
        eprintln!("skipped: no registry");
        return;
    };
    if !have_peer("skopeo", &["--version"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str| work.path().join(name).to_str().unwrap().to_string();
    let store = work.path().join("store");
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY Dockerfile /for-$TARGETARCH\n",
    )
    .unwrap();
    let iid = work.path().join("iid");
    rbuild_ok(
        &store,
        &[
            "build",
            "-q",
            "--platform",
            "linux/amd64,linux/arm64",
            "--iidfile",
            iid.to_str().unwrap(),
            "-t",
            "multi:1",
            ctx.to_str().unwrap(),
        ],
    );
    let index_digest = std::fs::read_to_string(&iid).unwrap().trim().to_string();
    let both = ["linux/amd64", "linux/arm64"];
    let skopeo_raw = |what: &str| {
        index_platforms(&run_ok(
            "skopeo",
            &["inspect", "--tls-verify=false", "--raw", what],
        ))
    };
    let skopeo_copy = |from: &str, to: &str| {
        run_ok(
            "skopeo",
            &[
                "copy",
                "--all",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                from,
                to,
            ],
        )
    };
    let copy = |root: &Path, from: &str, to: &str| {
        rbuild_ok(root, &["copy", "-q", "--all-platforms", from, to])
            .trim()
            .to_string()
    };
    let tree_has_both = |root: &Path, name: &str| {
        let tree = rbuild_ok(root, &["images", "--tree", name]);
        assert!(
            tree.contains("└─ linux/amd64") && tree.contains("└─ linux/arm64"),
            "{name}: {tree}"
        );
    };
    let other = work.path().join("other");

    // store → oci dir: the index as built (same digest); skopeo reads it and copies it on.
    let dir1 = format!("oci:{}:v1", w("dir1"));
    assert_eq!(copy(&store, "rbuild:multi:1", &dir1), index_digest);
    assert_eq!(skopeo_raw(&dir1), both);
    let via_skopeo = format!("docker://{registry}/copies/skopeo-from-oci:1");
    skopeo_copy(&dir1, &via_skopeo);
    assert_eq!(skopeo_raw(&via_skopeo), both);

    // oci dir → registry.
    let reg1 = format!("docker://{registry}/copies/from-oci:1");
    copy(&other, &dir1, &reg1);
    assert_eq!(skopeo_raw(&reg1), both);

    // registry → registry (blobs streamed, no store).
    let reg0 = format!("docker://{registry}/copies/from-registry:1");
    copy(&other, &reg1, &reg0);
    assert_eq!(skopeo_raw(&reg0), both);

    // registry → oci dir (a temporary store between), and an oci dir skopeo wrote → store.
    let dir2 = format!("oci:{}", w("dir2"));
    copy(&other, &reg1, &dir2);
    assert_eq!(skopeo_raw(&dir2), both);
    let dir3 = format!("oci:{}:v3", w("dir3"));
    skopeo_copy(&reg1, &dir3);
    copy(&other, &dir3, "rbuild:from-skopeo-dir:1");
    tree_has_both(&other, "from-skopeo-dir:1");

    // registry → oci-archive, read by skopeo; an oci-archive skopeo wrote → registry and store.
    let ar1 = format!("oci-archive:{}", w("a1.tar"));
    copy(&other, &reg1, &ar1);
    assert_eq!(skopeo_raw(&ar1), both);
    let ar2 = format!("oci-archive:{}:v2", w("a2.tar"));
    skopeo_copy(&reg1, &ar2);
    let reg2 = format!("docker://{registry}/copies/from-archive:1");
    copy(&other, &ar2, &reg2);
    assert_eq!(skopeo_raw(&reg2), both);
    copy(&other, &ar2, "rbuild:from-archive:1");
    tree_has_both(&other, "from-archive:1");

    // store → oci-archive, oci dir → oci-archive, oci-archive → oci dir, store → store.
    let ar0 = format!("oci-archive:{}:v0", w("a0.tar"));
    assert_eq!(copy(&store, "rbuild:multi:1", &ar0), index_digest);
    assert_eq!(skopeo_raw(&ar0), both);
    let ar3 = format!("oci-archive:{}", w("a3.tar"));
    assert_eq!(copy(&store, &dir1, &ar3), index_digest);
    assert_eq!(skopeo_raw(&ar3), both);
    let dir4 = format!("oci:{}:v4", w("dir4"));
    assert_eq!(copy(&store, &ar3, &dir4), index_digest);
    assert_eq!(skopeo_raw(&dir4), both);
    assert_eq!(
        copy(&store, "rbuild:multi:1", "rbuild:renamed:1"),
        index_digest
    );
    tree_has_both(&store, "renamed:1");

    // docker-archive holds no index: refused (as skopeo refuses it), nothing written.
    for (root, from) in [
        (&store, "rbuild:multi:1".to_string()),
        (&other, reg1.clone()),
    ] {
        let file = work.path().join("refused.tar");
        let out = rbuild(
            root,
            &[
                "copy",
                "--all-platforms",
                &from,
                &format!("docker-archive:{}", file.display()),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{from}: {err}");
        assert!(
            err.contains("does not support copying multiple images"),
            "{from}: {err}"
        );
        assert!(!file.exists(), "{from}: a file was left");
    }
    let skopeo_refused = Command::new("skopeo")
        .args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            &reg1,
            &format!("docker-archive:{}", w("skopeo-refused.tar")),
        ])
        .output()
        .unwrap();
    assert!(!skopeo_refused.status.success());
    assert!(
        String::from_utf8_lossy(&skopeo_refused.stderr)
            .contains("does not support copying multiple images")
    );

    // A single image with --all-platforms: docker-archive → oci dir → registry, as it is.
    let single = w("single.tar");
    rbuild_ok(&store, &["save", "-o", &single, "multi:1"]);
    let dir5 = format!("oci:{}", w("dir5"));
    copy(&other, &format!("docker-archive:{single}"), &dir5);
    let raw = run_ok("skopeo", &["inspect", "--raw", &dir5]);
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert!(v["layers"].is_array(), "{raw}");
    let config: serde_json::Value =
        serde_json::from_str(&run_ok("skopeo", &["inspect", "--config", &dir5])).unwrap();
    assert_eq!(
        config["architecture"],
        rbuild_oci::Platform::host().architecture,
        "{config}"
    );
}

#[test]
fn leading_copy_steps_of_a_scratch_stage_are_built_once_with_the_same_layers() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("data"), "x".repeat(1 << 20)).unwrap();
    // The final stage's COPY of the build stage's output and of a context file come before
    // anything that depends on the target: the same layers for both platforms.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=$BUILDPLATFORM scratch AS build\nCOPY Dockerfile /built\n\
         FROM scratch\nCOPY --from=build /built /app/built\nCOPY data /app/data\nENV X=1\n\
         ARG TARGETARCH\nCOPY Dockerfile /for-$TARGETARCH\n",
    )
    .unwrap();
    let build = |iid: &Path| {
        let out = rbuild(
            &store,
            &[
                "build",
                "--progress",
                "plain",
                "--platform",
                "linux/amd64,linux/arm64",
                "--iidfile",
                iid.to_str().unwrap(),
                "-t",
                "scratch-copies:1",
                ctx.to_str().unwrap(),
            ],
        );
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{log}");
        log
    };
    let first_iid = work.path().join("iid1");
    let log = build(&first_iid);
    let starts = |text: &str| {
        log.lines()
            .filter(|l| l.starts_with('#') && l.contains(text) && l.contains(']'))
            .count()
    };
    assert_eq!(starts("COPY --from=build /built /app/built"), 1, "{log}");
    assert_eq!(starts("COPY data /app/data"), 1, "{log}");
    assert_eq!(starts("COPY Dockerfile /for-"), 2, "{log}");
    let s = rbuild_store::Store::open(&store).unwrap();
    let image = |arch: &str| {
        s.resolve_platform(
            "scratch-copies:1",
            &format!("linux/{arch}").parse().unwrap(),
        )
        .unwrap()
    };
    let (amd, arm) = (image("amd64"), image("arm64"));
    let (amd_layers, arm_layers) = (amd.diff_ids().unwrap(), arm.diff_ids().unwrap());
    assert_eq!(amd_layers.len(), 3);
    assert_eq!(arm_layers.len(), 3);
    assert_eq!(amd_layers[..2], arm_layers[..2]);
    assert_ne!(amd_layers[2], arm_layers[2]);
    for (img, arch) in [(&amd, "amd64"), (&arm, "arm64")] {
        let config = img.config_json();
        assert_eq!(config["architecture"], arch);
        assert!(
            config["config"]["Env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "X=1"),
            "{config}"
        );
        let dir = work.path().join(format!("fs-{arch}"));
        std::fs::create_dir_all(&dir).unwrap();
        s.unpack(img, &dir).unwrap();
        assert!(dir.join("app/built").is_file() && dir.join("app/data").is_file());
        assert!(dir.join(format!("for-{arch}")).is_file());
    }
    // Again: every step cached, for both platforms, and the same index.
    let second_iid = work.path().join("iid2");
    let again = build(&second_iid);
    let copies: Vec<&str> = again
        .lines()
        .filter(|l| l.starts_with('#') && l.contains("] COPY"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(copies.len(), 5, "{again}");
    for id in copies {
        assert!(
            again.lines().any(|l| l == format!("{id} CACHED")),
            "{id} ran again: {again}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&first_iid).unwrap(),
        std::fs::read_to_string(&second_iid).unwrap()
    );
}

#[test]
fn platform_args_are_buildkits_for_each_platform_of_a_list() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\n\
         ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT\n\
         LABEL tp=$TARGETPLATFORM to=$TARGETOS ta=$TARGETARCH tv=$TARGETVARIANT \
         bp=$BUILDPLATFORM bo=$BUILDOS ba=$BUILDARCH bv=$BUILDVARIANT\n\
         COPY Dockerfile /\n",
    )
    .unwrap();
    let platforms = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"];
    rbuild_ok(
        &store,
        &[
            "build",
            "-q",
            "--platform",
            &platforms.join(","),
            "-t",
            "args:1",
            ctx.to_str().unwrap(),
        ],
    );
    let s = rbuild_store::Store::open(&store).unwrap();
    let ours = |p: &str| {
        let img = s.resolve_platform("args:1", &p.parse().unwrap()).unwrap();
        img.config_json()["config"]["Labels"].clone()
    };
    // The values BuildKit defines, on this machine.
    let host = rbuild_oci::Platform::host();
    let arm64 = ours("linux/arm64");
    assert_eq!(arm64["tp"], "linux/arm64", "{arm64}");
    assert_eq!(arm64["tv"], "", "{arm64}");
    assert_eq!(arm64["bp"], host.to_string(), "{arm64}");
    assert_eq!(arm64["ba"], host.architecture, "{arm64}");
    let arm = ours("linux/arm/v7");
    assert_eq!(
        (&arm["tp"], &arm["ta"], &arm["tv"], &arm["to"]),
        (
            &"linux/arm/v7".into(),
            &"arm".into(),
            &"v7".into(),
            &"linux".into()
        ),
        "{arm}"
    );
    // And BuildKit's own (dockerd's, one platform at a time) are the same.
    if !have_peer("docker", &["version"]) {
        return;
    }
    for p in platforms {
        let out = Command::new("docker")
            .args(["build", "-q", "--platform", p, "-t", "rbuild-args/x:1"])
            .arg(&ctx)
            .env("DOCKER_BUILDKIT", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker build --platform {p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: serde_json::Value = serde_json::from_str(&run_ok(
            "docker",
            &[
                "image",
                "inspect",
                "--format",
                "{{json .Config.Labels}}",
                "rbuild-args/x:1",
            ],
        ))
        .unwrap();
        assert_eq!(ours(p), theirs, "{p}");
    }
    let _ = Command::new("docker")
        .args(["rmi", "-f", "rbuild-args/x:1"])
        .output();
}

#[test]
fn info_lists_the_platforms_binfmt_misc_handlers_run_in_containers() {
    let work = tempfile::tempdir().unwrap();
    let info = rbuild_ok(&work.path().join("store"), &["info"]);
    let line = info
        .lines()
        .find(|l| l.starts_with("Platforms: "))
        .unwrap_or_else(|| panic!("{info}"))
        .to_string();
    // The kernel's own listing: an enabled handler with the F flag makes the platform
    // runnable (and names it); none, a disabled one, or one without F does not.
    let host = rbuild_oci::Platform::host();
    assert!(line.contains(&host.to_string()), "{line}");
    for (arch, handler) in [
        ("arm64", "qemu-aarch64"),
        ("s390x", "qemu-s390x"),
        ("riscv64", "qemu-riscv64"),
        ("ppc64le", "qemu-ppc64le"),
    ] {
        if arch == host.architecture {
            continue;
        }
        let text = std::fs::read_to_string(format!("/proc/sys/fs/binfmt_misc/{handler}"))
            .unwrap_or_default();
        let usable = text.starts_with("enabled")
            && text
                .lines()
                .any(|l| l.starts_with("flags:") && l.contains('F'));
        let listed = line.contains(&format!("linux/{arch} ({handler})"));
        assert_eq!(listed, usable, "{arch}: {line}\n{handler}: {text}");
    }
}

#[test]
fn the_platforms_of_a_list_are_built_at_the_same_time() {
    if cfg!(not(target_arch = "x86_64")) {
        return;
    }
    let Some(arm64) = arm64_busybox() else {
        return;
    };
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: one core");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path(), &arm64);
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nADD rootfs-${TARGETARCH}.tar /\n\
         RUN sleep 2 && uname -m > /slept\n",
    )
    .unwrap();
    let store = work.path().join("store");
    let out = rbuild(
        &store,
        &[
            "build",
            "--progress",
            "plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "parallel:1",
            ctx.to_str().unwrap(),
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let lines: Vec<&str> = log.lines().collect();
    let started = |platform: &str| {
        lines
            .iter()
            .position(|l| l.contains(&format!("[{platform} 3/3] RUN sleep 2")))
            .unwrap_or_else(|| panic!("no RUN for {platform}: {log}"))
    };
    let ids: Vec<String> = ["linux/amd64", "linux/arm64"]
        .iter()
        .map(|p| {
            lines[started(p)]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let first_done = lines
        .iter()
        .position(|l| ids.iter().any(|id| l.starts_with(&format!("{id} DONE"))))
        .unwrap_or_else(|| panic!("no RUN finished: {log}"));
    // Both platforms' RUN started before either ended: they ran side by side.
    assert!(
        started("linux/amd64") < first_done && started("linux/arm64") < first_done,
        "{log}"
    );
}
