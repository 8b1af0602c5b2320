//! Multi-platform images end to end: a two-platform build (amd64 natively, arm64 under Debian's
//! qemu-user-static), its index pushed to the Distribution registry and read back by skopeo,
//! rbuild and dockerd. Needs root, binfmt_misc's qemu-aarch64 handler and an arm64 busybox
//! (`RBUILD_BUSYBOX_ARM64`, which `peers_start` fetches from Debian's arm64 busybox-static).

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
    let refused = rbuild(&fresh, &["run", "--rm", "--platform", "linux/arm64", &tag]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("wanted linux/arm64, actual: linux/amd64"),
        "{err}"
    );
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
