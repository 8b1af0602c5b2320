//! The same Dockerfile built by rbuild and by BuildKit (dockerd's, through the buildx plugin:
//! `DOCKER_BUILDKIT=1 docker build`), compared: history, config, the files of every layer, and
//! what RUN steps see. One regression test per difference found on real Dockerfiles; the
//! images are built once and shared. Needs the peers (scripts/test starts dockerd and installs
//! buildx).

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{busybox_rootfs, have_peer, rbuild, rbuild_ok, tar_dir};
use serde_json::Value;

/// The compared Dockerfile. Its base has its own /etc/hostname, /etc/hosts and
/// /etc/resolv.conf, as Debian-based images do.
const DOCKERFILE: &str = r#"FROM base AS binaries
RUN mkdir -p /out && echo built > /out/tool && chown -R 1234:5678 /out

FROM base
ARG WITHVALUE=1
ARG NOVALUE
ARG FROMCLI
ENV SHADOWED=env
ARG SHADOWED=arg
RUN { cat /etc/hostname /etc/hosts; hostname; echo "shadowed=$SHADOWED"; } > /etc-view
EXPOSE 8000-8002 53/udp 9000/TCP
WORKDIR /etc
WORKDIR /srv/app
RUN mkdir /real && ln -s /real /linkdir && ln -s real/ /rel
COPY f.txt /linkdir/
COPY f.txt /rel/g.txt
COPY f.txt /linkdir/sub/h.txt
COPY --from=binaries /out/tool /usr/local/bin/
RUN --mount=from=binaries,source=/out ls > /mounted
RUN --mount=type=cache ls -a > /cache-at-workdir
RUN --mount=type=tmpfs,target=../app touch x && ls > /tmpfs-relative
ENV A=b C="d e"
LABEL x=y "two words"=yes
USER 1
VOLUME /data /d2
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-xc"]
ONBUILD RUN echo hi
HEALTHCHECK --interval=5s --retries=3 CMD true
USER 0
RUN true
ENTRYPOINT echo hi
CMD echo there
"#;

/// One built image, read from its docker-archive.
struct Image {
    history: Vec<(bool, String)>,
    config: Value,
    /// Each layer's entry names (no `./`, no trailing `/`), sorted.
    layers: Vec<Vec<String>>,
    /// Regular files of the final filesystem (top-most layer wins), by path.
    files: BTreeMap<String, Vec<u8>>,
    /// Owners (uid, gid) of the final filesystem's entries, by path.
    owners: BTreeMap<String, (u64, u64)>,
}

impl Image {
    fn read(archive: &Path) -> Image {
        let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut a = tar::Archive::new(std::fs::File::open(archive).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            entries.insert(name, bytes);
        }
        let manifest: Value = serde_json::from_slice(&entries["manifest.json"]).unwrap();
        let config_name = manifest[0]["Config"].as_str().unwrap();
        let config: Value = serde_json::from_slice(&entries[config_name]).unwrap();
        let history = config["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["empty_layer"].as_bool().unwrap_or(false),
                    h["created_by"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let mut layers = Vec::new();
        let mut files = BTreeMap::new();
        let mut owners = BTreeMap::new();
        for l in manifest[0]["Layers"].as_array().unwrap() {
            let bytes = &entries[l.as_str().unwrap()];
            let mut names = Vec::new();
            let mut t = tar::Archive::new(&bytes[..]);
            for e in t.entries().unwrap() {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let name = path
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string();
                if name.is_empty() || name == "." {
                    continue;
                }
                owners.insert(
                    name.clone(),
                    (e.header().uid().unwrap(), e.header().gid().unwrap()),
                );
                if e.header().entry_type().is_file() {
                    let mut content = Vec::new();
                    e.read_to_end(&mut content).unwrap();
                    files.insert(name.clone(), content);
                }
                names.push(name);
            }
            names.sort();
            layers.push(names);
        }
        // BuildKit v0.8 writes `"OnBuild": null`; a null field is an absent one.
        let mut config = config["config"].clone();
        if let Some(fields) = config.as_object_mut() {
            fields.retain(|_, v| !v.is_null());
        }
        Image {
            history,
            config,
            layers,
            files,
            owners,
        }
    }

    fn text(&self, path: &str) -> String {
        String::from_utf8_lossy(
            self.files
                .get(path)
                .unwrap_or_else(|| panic!("no file {path} in the image")),
        )
        .into_owned()
    }
}

/// rbuild's and BuildKit's images of `dockerfile` (with `files` in the context), built from
/// the same base.
struct Pair {
    ours: Image,
    theirs: Image,
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The base image: busybox plus the /etc files Debian images carry; `base` in both stores.
fn base_image(work: &Path, store: &Path, tag: &str) -> Option<()> {
    let rootfs = busybox_rootfs(work)?;
    std::fs::write(rootfs.join("etc/hostname"), "imagehost\n").unwrap();
    std::fs::write(rootfs.join("etc/hosts"), "127.0.0.1 localhost image\n").unwrap();
    std::fs::write(rootfs.join("etc/resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
    let tarball = work.join("base.tar");
    tar_dir(&rootfs, &tarball);
    rbuild_ok(
        store,
        &[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            tarball.to_str().unwrap(),
            tag,
        ],
    );
    let saved = work.join("base-saved.tar");
    rbuild_ok(store, &["save", "-o", saved.to_str().unwrap(), tag]);
    docker(&["load", "-q", "-i", saved.to_str().unwrap()]);
    Some(())
}

fn build_pair(name: &str, dockerfile: &str, files: &[(&str, &str)], args: &[&str]) -> Option<Pair> {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let base = format!("rbuild-bk-{name}/base:1");
    base_image(work.path(), &store, &base)?;
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        dockerfile.replace("FROM base", &format!("FROM {base}")),
    )
    .unwrap();
    for (path, content) in files {
        std::fs::write(ctx.join(path), content).unwrap();
    }
    let tag = format!("rbuild-bk-{name}/image:1");
    let mut common_args = vec!["build", "--network", "none", "-q", "-t", tag.as_str()];
    common_args.extend_from_slice(args);
    let ctx_arg = ctx.to_string_lossy().into_owned();
    common_args.push(&ctx_arg);

    docker(&common_args);
    let theirs_tar = work.path().join("theirs.tar");
    docker(&["save", "-o", theirs_tar.to_str().unwrap(), &tag]);
    let _ = Command::new("docker")
        .args(["rmi", "-f", &tag, &base])
        .output();

    rbuild_ok(&store, &common_args);
    let ours_tar = work.path().join("ours.tar");
    rbuild_ok(&store, &["save", "-o", ours_tar.to_str().unwrap(), &tag]);
    Some(Pair {
        ours: Image::read(&ours_tar),
        theirs: Image::read(&theirs_tar),
    })
}

fn peers() -> bool {
    have_peer("docker", &["buildx", "version"]) && nix::unistd::geteuid().is_root()
}

/// The main comparison, built once for every test below.
fn pair() -> Option<&'static Pair> {
    static PAIR: OnceLock<Option<Pair>> = OnceLock::new();
    if !peers() {
        return None;
    }
    PAIR.get_or_init(|| {
        build_pair(
            "main",
            DOCKERFILE,
            &[("f.txt", "hi\n")],
            &["--build-arg", "FROMCLI=cli"],
        )
    })
    .as_ref()
}

#[test]
fn history_matches_buildkit() {
    let Some(p) = pair() else { return };
    // The base's own entry differs (import comments); every entry of the build must match:
    // RUN's '|N K=V' prefix, CMD/ENTRYPOINT wrapped in the SHELL, COPY without --from, no
    // ONBUILD entry, layers for WORKDIR on an existing directory and for no-op steps.
    assert_eq!(p.ours.history[1..], p.theirs.history[1..]);
    assert!(
        p.ours
            .history
            .iter()
            .any(|(_, h)| h.starts_with("RUN |4 WITHVALUE=1 NOVALUE= FROMCLI=cli SHADOWED=arg ")),
        "{:?}",
        p.ours.history
    );
}

#[test]
fn config_matches_buildkit_args_escaped_included() {
    let Some(p) = pair() else { return };
    assert_eq!(p.ours.config, p.theirs.config);
    assert_eq!(p.ours.config["ArgsEscaped"], true);
}

#[test]
fn expose_ranges_expand_to_one_port_each() {
    let Some(p) = pair() else { return };
    let ports = &p.ours.config["ExposedPorts"];
    for port in ["8000/tcp", "8001/tcp", "8002/tcp", "53/udp", "9000/tcp"] {
        assert!(ports.get(port).is_some(), "{port} missing from {ports}");
    }
    assert!(ports.get("8000-8002/tcp").is_none(), "{ports}");
    assert_eq!(ports, &p.theirs.config["ExposedPorts"]);
}

/// `COPY --from` keeps the owners the files have in the source stage (BuildKit; docker's
/// builder since moby#38599); files of the build context become 0:0.
#[test]
fn copy_from_keeps_the_source_stages_owners() {
    let Some(p) = pair() else { return };
    for (path, want) in [("usr/local/bin/tool", (1234, 5678)), ("real/f.txt", (0, 0))] {
        let theirs = p.theirs.owners.get(path).copied();
        assert_eq!(theirs, Some(want), "BuildKit's {path}");
        assert_eq!(p.ours.owners.get(path).copied(), theirs, "{path}");
    }
}

#[test]
fn layers_hold_the_same_files_as_buildkits() {
    let Some(p) = pair() else { return };
    assert_eq!(p.ours.layers.len(), p.theirs.layers.len(), "layer count");
    for (i, (ours, theirs)) in p
        .ours
        .layers
        .iter()
        .zip(&p.theirs.layers)
        .enumerate()
        .skip(1)
    {
        assert_eq!(ours, theirs, "layer {i}");
    }
}

#[test]
fn run_layers_carry_no_unchanged_etc_files() {
    let Some(p) = pair() else { return };
    // regression: 68 of 85 RUN layers carried the image's unchanged etc/hostname and
    // etc/resolv.conf (copied up when the mount point was opened for writing).
    for (i, names) in p.ours.layers.iter().enumerate().skip(1) {
        for f in ["etc/hostname", "etc/hosts", "etc/resolv.conf"] {
            assert!(
                !names.iter().any(|n| n == f),
                "layer {i} carries {f}: {names:?}"
            );
        }
    }
}

#[test]
fn run_steps_see_buildkits_hostname_and_hosts() {
    let Some(p) = pair() else { return };
    let view = p.ours.text("etc-view");
    // The image's own /etc/hostname (not one saying buildkitsandbox), a generated /etc/hosts.
    assert_eq!(
        view,
        "imagehost\n127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\nbuildkitsandbox\nshadowed=arg\n"
    );
    assert_eq!(view, p.theirs.text("etc-view"));
}

#[test]
fn copy_into_a_symlinked_directory_follows_the_link() {
    let Some(p) = pair() else { return };
    for f in ["real/f.txt", "real/g.txt", "real/sub/h.txt"] {
        assert_eq!(p.ours.text(f), "hi\n", "{f}");
        assert_eq!(p.theirs.text(f), "hi\n", "{f}");
    }
    // The links stay links: only the RUN that made them has them (regression: COPY replaced
    // /linkdir with a directory).
    for link in ["linkdir", "rel"] {
        let holding = p
            .ours
            .layers
            .iter()
            .filter(|l| {
                l.iter()
                    .any(|n| n == link || n.starts_with(&format!("{link}/")))
            })
            .count();
        assert_eq!(holding, 1, "{link} in {:?}", p.ours.layers);
    }
}

#[test]
fn run_mounts_without_a_target_mount_at_the_workdir() {
    let Some(p) = pair() else { return };
    assert_eq!(p.ours.text("mounted"), "tool\n");
    assert_eq!(p.ours.text("tmpfs-relative"), "x\n");
    for f in ["mounted", "cache-at-workdir", "tmpfs-relative"] {
        assert_eq!(p.ours.text(f), p.theirs.text(f), "{f}");
    }
}

#[test]
fn scratch_images_have_workingdir_slash() {
    if !peers() {
        return;
    }
    let Some(p) = build_pair(
        "scratch",
        "FROM scratch\nCOPY f.txt /\nCMD [\"/f.txt\"]\n",
        &[("f.txt", "x\n")],
        &[],
    ) else {
        return;
    };
    assert_eq!(p.ours.config["WorkingDir"], "/");
    assert_eq!(p.ours.config, p.theirs.config);
    assert_eq!(p.ours.history, p.theirs.history);
}

#[test]
fn a_platform_list_builds_one_image_per_platform_under_an_index() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let ctx: PathBuf = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // No RUN: nothing needs emulation. TARGETARCH is each platform's own (not "amd64,linux").
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH TARGETPLATFORM TARGETVARIANT\n\
         COPY Dockerfile /$TARGETARCH\nLABEL p=$TARGETPLATFORM v=$TARGETVARIANT\n",
    )
    .unwrap();
    let out = rbuild(
        &store,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64/v8",
            "--platform",
            "linux/arm/v7",
            "-t",
            "multi:1",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = rbuild_store::Store::open(&store).unwrap();
    let list = s
        .resolve_index("multi:1")
        .unwrap()
        .expect("the tag names an index");
    let entries = list.entries();
    let platforms: Vec<String> = entries
        .iter()
        .map(|(_, p)| p.as_ref().unwrap().to_string())
        .collect();
    // BuildKit's normalized forms: arm64's v8 dropped, arm's v7 kept.
    assert_eq!(platforms, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    for ((digest, _), (arch, variant)) in
        entries
            .iter()
            .zip([("amd64", ""), ("arm64", ""), ("arm", "v7")])
    {
        let img = s.image(digest).unwrap();
        let cfg = img.config_json();
        assert_eq!(cfg["architecture"], arch, "{cfg}");
        let label = &cfg["config"]["Labels"];
        let platform = if variant.is_empty() {
            format!("linux/{arch}")
        } else {
            format!("linux/{arch}/{variant}")
        };
        assert_eq!(label["p"], platform.as_str(), "{cfg}");
        assert_eq!(label["v"], variant, "{cfg}");
        let dir = work.path().join(format!("fs-{arch}"));
        std::fs::create_dir_all(&dir).unwrap();
        s.unpack(&img, &dir).unwrap();
        assert!(dir.join(arch).is_file(), "/{arch} in the {arch} image");
    }
    // inspect describes this machine's image and lists every platform.
    let inspected: serde_json::Value =
        serde_json::from_str(&rbuild_ok(&store, &["inspect", "multi:1"])).unwrap();
    let manifests = inspected[0]["Manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3, "{inspected}");
    assert_eq!(manifests[2]["ImageData"]["Platform"]["variant"], "v7");
    assert_eq!(inspected[0]["RepoTags"][0], "multi:1");
    // `images` shows the tag once, with the index's digest as its ID.
    let images = rbuild_ok(&store, &["images", "--no-trunc"]);
    assert_eq!(images.lines().count(), 2, "{images}");
    assert!(images.contains(&list.digest.to_string()), "{images}");
    // A docker archive holds one platform: refused before anything is built.
    let refused = rbuild(
        &store,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "--output",
            &format!("type=docker,dest={}", work.path().join("x.tar").display()),
            ctx.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        err.contains("type=docker") && err.contains("type=oci"),
        "{err}"
    );
    assert!(!work.path().join("x.tar").exists());
    // rmi of the index tag removes the index and the images only it listed.
    let rmi = rbuild_ok(&store, &["rmi", "multi:1"]);
    assert!(rmi.contains("Untagged"), "{rmi}");
    let images = rbuild_ok(&store, &["images", "-q"]);
    assert!(images.trim().is_empty(), "{images}");
    assert!(!s.blobs().contains(&list.digest));
    // type=local writes one directory per platform, as buildx does.
    let local = work.path().join("local");
    rbuild_ok(
        &store,
        &[
            "build",
            "-q",
            "--platform",
            "linux/amd64,linux/arm64",
            "--output",
            &format!("type=local,dest={}", local.display()),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(local.join("linux_amd64/amd64").is_file());
    assert!(local.join("linux_arm64/arm64").is_file());
    assert!(!local.join("linux_arm64/amd64").exists());
}
