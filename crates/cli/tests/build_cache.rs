//! Build cache that travels, end to end as root: `rbuild build --cache-to/--cache-from`
//! through a real `docker-registry` and through an OCI layout directory, between stores that
//! stand for different machines (fresh roots, context copies made at other times); `mode=min`
//! against `max`; miss explanations in plain progress and `--explain`; bad cache sources
//! (missing, foreign, unreachable, a tampered layer) as warnings with the build going on.
#![allow(clippy::print_stderr)]

mod common;
#[path = "../../registry/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{busybox_image, rbuild, rbuild_ok};
use support::{Auth, RegistryProcess};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn is_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        !common::peers_required(),
        "{test}: needs root under scripts/test"
    );
    eprintln!("skipping {test}: needs root");
    false
}

/// A multi-stage Dockerfile: a builder stage with a slow RUN, then a final stage copying its
/// artifact, a context directory and running over them.
fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base} AS builder\n\
         ARG VERSION=1\n\
         RUN echo \"artifact $VERSION\" > /artifact && sleep 1\n\
         FROM {base}\n\
         COPY --from=builder /artifact /artifact\n\
         COPY src/ /app/\n\
         RUN --mount=type=cache,id=deps,target=/cache cat /app/app.py /artifact > /out \
             && (cat /cache/seen 2>/dev/null || true) > /seen-before \
             && echo run >> /cache/seen && sleep 1\n\
         CMD [\"cat\", \"/out\"]\n"
    )
}

/// A context written now at `dir` (a fresh copy: new inodes and times).
fn context(dir: &Path, base: &str, app: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("src/lib")).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile(base)).unwrap();
    std::fs::write(dir.join("src/app.py"), app).unwrap();
    std::fs::write(dir.join("src/lib/util.py"), "def util(): pass\n").unwrap();
    dir.to_path_buf()
}

/// `rbuild --root ROOT build --progress plain --iidfile … ARGS CTX`: (log, image ID).
fn build(root: &Path, args: &[&str], ctx: &Path) -> (String, String) {
    let iid = root.with_extension("iid");
    let mut all = vec![
        "build",
        "--progress",
        "plain",
        "--iidfile",
        iid.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    all.push(ctx.to_str().unwrap());
    let out = rbuild(root, &all);
    let log = text(&out);
    assert!(out.status.success(), "build {args:?} failed:\n{log}");
    (log, std::fs::read_to_string(&iid).unwrap())
}

/// The numbers of the summary line `(N steps, C cached, …)`.
fn steps_cached(log: &str) -> (usize, usize) {
    let line = log
        .lines()
        .find(|l| l.starts_with("writing image"))
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    let nums: Vec<usize> = line[line.rfind('(').unwrap()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// The `cache miss:` reason printed for the step whose label contains `step`.
fn miss_reason(log: &str, step: &str) -> Option<String> {
    let id = log
        .lines()
        .find(|l| l.starts_with('#') && l.contains(step) && l.contains(']'))?
        .split_whitespace()
        .next()?
        .to_string();
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("{id} cache miss: ")))
        .map(str::to_string)
}

/// Whether the step whose label contains `step` was CACHED.
fn was_cached(log: &str, step: &str) -> bool {
    let Some(id) = log
        .lines()
        .find(|l| l.starts_with('#') && l.contains(step) && l.contains(']'))
        .and_then(|l| l.split_whitespace().next())
    else {
        panic!("no step {step:?} in:\n{log}");
    };
    log.lines().any(|l| l == format!("{id} CACHED"))
}

/// Steps exported, from `exporting cache to … done (N steps, …)`.
fn exported(log: &str, location: &str) -> usize {
    let line = log
        .lines()
        .find(|l| l.starts_with("exporting cache to") && l.contains(location))
        .unwrap_or_else(|| panic!("no export to {location} in:\n{log}"));
    line[line.rfind('(').unwrap() + 1..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn registry_cache_round_trip_between_fresh_stores() {
    if !is_root("registry_cache_round_trip_between_fresh_stores") {
        return;
    }
    let Some(reg) = RegistryProcess::start(Auth::Open, "build cache") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a");
    if busybox_image(&a, "bb:1").is_none() {
        return;
    }
    // The base image comes from the registry on every "machine", as in CI.
    let base = format!("{}/base/bb:1", reg.addr);
    rbuild_ok(&a, &["push", "-q", "bb:1", &base]);
    let max = format!("{}/cache/app:max", reg.addr);
    let min = format!("{}/cache/app:min", reg.addr);
    let to_max = format!("type=registry,ref={max},mode=max");
    let to_min = format!("type=registry,ref={min}");

    // Machine A: cold, exporting both modes.
    let ctx_a = context(&work.path().join("ctx-a"), &base, "print('v1')\n");
    let (log, id_a) = build(&a, &["--cache-to", &to_max, "--cache-to", &to_min], &ctx_a);
    assert_eq!(steps_cached(&log), (6, 0), "{log}");
    assert_eq!(
        miss_reason(&log, "COPY --from").as_deref(),
        Some("no cache record for this parent"),
        "{log}"
    );
    assert_eq!(
        miss_reason(&log, "COPY src/").as_deref(),
        Some("the previous step was rebuilt"),
        "{log}"
    );
    // max: builder RUN + COPY --from + COPY + RUN; min: the final stage's three.
    assert_eq!(exported(&log, &max), 4, "{log}");
    assert_eq!(exported(&log, &min), 3, "{log}");

    // Machine B: a fresh store and a fresh copy of the context, made later elsewhere.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = work.path().join("b");
    let ctx_b = context(&work.path().join("elsewhere/ctx-b"), &base, "print('v1')\n");
    let (log, id_b) = build(&b, &["--cache-from", &max], &ctx_b);
    assert_eq!(steps_cached(&log), (6, 4), "every step CACHED:\n{log}");
    assert_eq!(id_b, id_a, "the same image");
    assert!(!log.contains("cache miss"), "{log}");
    // The imported layers of the image are now the store's own: no import needed any more
    // for them. The builder stage's layer was never needed, so never fetched (lazy import):
    // without the import that step runs.
    let (log, id) = build(&b, &[], &ctx_b);
    assert_eq!((steps_cached(&log), id), ((6, 3), id_a.clone()), "{log}");
    assert!(!was_cached(&log, "RUN echo"), "{log}");

    // Re-exporting an imported cache fetches the layers the build did not need (lazy import)
    // and carries them on: a store importing that export hits every step.
    let i = work.path().join("i");
    let relay = work.path().join("relay");
    let to_relay = format!("type=local,dest={},mode=max", relay.display());
    let (log, id_i) = build(&i, &["--cache-from", &max, "--cache-to", &to_relay], &ctx_b);
    assert_eq!(
        (steps_cached(&log), exported(&log, "relay")),
        ((6, 4), 4),
        "{log}"
    );
    let j = work.path().join("j");
    let from_relay = format!("type=local,src={}", relay.display());
    let (log, id_j) = build(&j, &["--cache-from", &from_relay], &ctx_b);
    assert_eq!(steps_cached(&log), (6, 4), "{log}");
    assert_eq!((&id_i, &id_j), (&id_a, &id_a));

    // Machine C: one COPY source changed: only the steps from it on run, and why is said.
    let c = work.path().join("c");
    let ctx_c = context(&work.path().join("ctx-c"), &base, "print('v2')\n");
    let (log, id_c) = build(&c, &["--cache-from", &max, "--cache-from", &min], &ctx_c);
    assert_eq!(steps_cached(&log), (6, 2), "{log}");
    assert!(was_cached(&log, "RUN echo") && was_cached(&log, "COPY --from"));
    assert_eq!(
        miss_reason(&log, "COPY src/").as_deref(),
        Some("COPY src/app.py changed"),
        "{log}"
    );
    assert_eq!(
        miss_reason(&log, "--mount=type=cache").as_deref(),
        Some("the previous step was rebuilt"),
        "{log}"
    );
    assert_ne!(id_c, id_a);
    let run = rbuild_ok(&c, &["run", "--rm", id_c.trim(), "cat", "/out"]);
    assert_eq!(run, "print('v2')\nartifact 1\n");
    // The cache mount's content came from machine A.
    let seen = rbuild_ok(&c, &["run", "--rm", id_c.trim(), "cat", "/seen-before"]);
    assert_eq!(seen, "run\n");

    // An ARG's new value is named.
    let (log, _) = build(
        &c,
        &["--build-arg", "VERSION=2", "--cache-from", &max],
        &ctx_c,
    );
    assert_eq!(
        miss_reason(&log, "RUN echo").as_deref(),
        Some("ARG VERSION changed"),
        "{log}"
    );

    // Machine D: mode=min holds the final stage only: the builder stage runs again, the
    // final stage's steps still hit (COPY --from is keyed by the stage's inputs).
    let d = work.path().join("d");
    let (log, id_d) = build(&d, &["--cache-from", &min], &ctx_b);
    assert_eq!(steps_cached(&log), (6, 3), "{log}");
    assert!(!was_cached(&log, "RUN echo"));
    assert_eq!(id_d, id_a);

    // --explain on a fresh store: the table, nothing built.
    let e = work.path().join("e");
    let out = rbuild(
        &e,
        &[
            "build",
            "--explain",
            "--cache-from",
            &max,
            ctx_c.to_str().unwrap(),
        ],
    );
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    assert!(table.starts_with("STEP"), "{table}");
    let row = |needle: &str| {
        table
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} row in:\n{table}"))
            .to_string()
    };
    assert!(
        row("COPY src/").contains("no") && row("COPY src/").contains("COPY src/app.py changed")
    );
    assert!(row("RUN echo").contains("yes"), "{table}");
    assert!(
        row("--mount=type=cache").contains("the previous step was rebuilt"),
        "{table}"
    );
    let images = rbuild_ok(&e, &["images", "-q", "--no-trunc"]);
    assert_eq!(
        images.lines().count(),
        1,
        "only the base was pulled: {images}"
    );

    // Inline: the records of the image's own layers ride in its config through a push;
    // another store imports them from the image (the builder stage, not in the image, runs).
    let pushed = format!("{}/app/inline:1", reg.addr);
    let (log, id_inline) = build(
        &a,
        &["--cache-to", "type=inline", "-t", &pushed, "--push"],
        &ctx_a,
    );
    assert!(
        log.contains("writing inline cache into the image config done (3 steps)"),
        "{log}"
    );
    assert_ne!(id_inline, id_a, "the inline cache is part of the config");
    let h = work.path().join("h");
    let (log, id_h) = build(
        &h,
        &["--cache-from", &pushed, "--cache-to", "type=inline"],
        &ctx_b,
    );
    assert_eq!(steps_cached(&log), (6, 3), "{log}");
    assert!(!was_cached(&log, "RUN echo"), "{log}");
    assert_eq!(id_h, id_inline);

    // Bad sources: a missing tag, an image that is no cache, an unreachable registry — each a
    // warning, and the build goes on cold.
    let f = work.path().join("f");
    let nope = format!("{}/cache/nope:1", reg.addr);
    let (log, id_f) = build(
        &f,
        &[
            "--cache-from",
            &nope,
            "--cache-from",
            &base,
            "--cache-from",
            "127.0.0.1:9/x/y:z",
        ],
        &ctx_b,
    );
    assert_eq!(steps_cached(&log), (6, 0), "{log}");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("WARNING: cache import"))
        .collect();
    assert_eq!(warnings.len(), 3, "{log}");
    assert!(warnings[0].contains("nope"), "{log}");
    assert!(warnings[1].contains("not an rbuild build cache"), "{log}");
    assert_ne!(id_f, "");

    // A tampered layer in the registry is refused (its digest), the step runs instead.
    let manifest: serde_json::Value =
        serde_json::from_str(&rbuild_ok(&a, &["manifest", "inspect", &max])).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    // Four steps, three blobs (COPY --from makes the same layer as the RUN that wrote the
    // file: one blob, listed once), and the cache mount's.
    assert_eq!(layers.len(), 4, "{manifest}");
    for l in layers {
        let hex = l["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        let file = reg.blob_file(hex);
        let mut data = std::fs::read(&file).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0x55;
        std::fs::write(&file, data).unwrap();
    }
    // Import is lazy: a fully cached build commits its image without downloading a layer,
    // so it does not read the tampered blobs (any download would have been refused)...
    let g = work.path().join("g");
    let (log, id_g) = build(&g, &["--cache-from", &max], &ctx_b);
    assert_eq!(steps_cached(&log), (6, 4), "{log}");
    assert_eq!(id_g, id_a);
    assert!(!log.contains("WARNING"), "{log}");
    // ...and whatever needs the bytes fetches them, and refuses them: nothing is stored.
    let out = rbuild(&g, &["run", "--rm", id_g.trim(), "cat", "/out"]);
    let err = text(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("fetching layer sha256:")
            && err.contains(&format!("registry {}/cache/app", reg.addr))
            && err.contains("digest"),
        "{err}"
    );
    assert!(rbuild_ok(&g, &["images", "-q"]).lines().count() == 2);
    let tmp_left = std::fs::read_dir(g.join("tmp")).unwrap().count();
    assert_eq!(tmp_left, 0, "nothing half-written is left in the store");
    // A build whose steps need the bytes (a changed COPY source under the tampered layers)
    // finds out the same way; it is made again without the refused records.
    let g2 = work.path().join("g2");
    let (log, id_g2) = build(&g2, &["--cache-from", &max], &ctx_c);
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("WARNING: cache import: ignoring layer"))
        .collect();
    assert!(!refused.is_empty(), "{log}");
    assert!(
        refused
            .iter()
            .all(|l| l.contains("digest mismatch") && l.ends_with("building again without it")),
        "{log}"
    );
    assert!(
        miss_reason(&log, "RUN echo")
            .is_some_and(|r| r.starts_with("the imported layer could not be used")),
        "{log}"
    );
    let run = rbuild_ok(&g2, &["run", "--rm", id_g2.trim(), "cat", "/out"]);
    assert_eq!(run, "print('v2')\nartifact 1\n");
    assert!(
        log.contains("cache mount \"deps\"") && log.contains("not restored"),
        "{log}"
    );
    let seen = rbuild_ok(&g2, &["run", "--rm", id_g2.trim(), "cat", "/seen-before"]);
    assert_eq!(seen, "", "the tampered cache mount was not used");
}

#[test]
fn local_cache_round_trip_and_what_is_not_supported() {
    if !is_root("local_cache_round_trip_and_what_is_not_supported") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a");
    if busybox_image(&a, "bb:1").is_none() {
        return;
    }
    // The base travels as an archive (same image ID on the other store).
    let archive = work.path().join("bb.tar");
    rbuild_ok(&a, &["save", "-o", archive.to_str().unwrap(), "bb:1"]);
    let b = work.path().join("b");
    rbuild_ok(&b, &["load", "-i", archive.to_str().unwrap()]);

    let dir = work.path().join("cache-dir");
    let ctx_a = context(&work.path().join("ctx-a"), "bb:1", "print('local')\n");
    // Data that does not compress (xorshift noise): its layer travels uncompressed.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..2_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(ctx_a.join("src/noise.bin"), &noise).unwrap();
    let to = format!("type=local,dest={}", dir.display());
    // A second export with a cache-mount size limit the mount's 4 bytes exceed.
    let small = work.path().join("cache-small");
    let to_small = format!(
        "type=local,dest={},mode=max,cache-mount-max-size=2",
        small.display()
    );
    let (log, id_a) = build(
        &a,
        &[
            "--cache-to",
            &format!("{to},mode=max"),
            "--cache-to",
            &to_small,
        ],
        &ctx_a,
    );
    assert_eq!(exported(&log, &dir.display().to_string()), 4, "{log}");
    assert!(log.contains("4 steps, 1 cache mounts"), "{log}");
    assert!(log.contains("4 steps, 0 cache mounts"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("WARNING: cache mount \"deps\" not exported")),
        "{log}"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    assert!(dir.join("oci-layout").is_file());
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.join("blobs/sha256")
                .join(digest.strip_prefix("sha256:").unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"application/vnd.oci.image.layer.v1.tar")
            && types.contains(&"application/vnd.oci.image.layer.v1.tar+gzip"),
        "{manifest}"
    );

    let ctx_b = context(&work.path().join("ctx-b"), "bb:1", "print('local')\n");
    std::fs::write(ctx_b.join("src/noise.bin"), &noise).unwrap();
    let from = format!("type=local,src={}", dir.display());
    let (log, id_b) = build(&b, &["--cache-from", &from], &ctx_b);
    assert_eq!(steps_cached(&log), (6, 4), "{log}");
    assert_eq!(id_b, id_a);

    // Not done yet: refused by name, before anything is built.
    for (flag, spec, want) in [
        (
            "--cache-to",
            "type=inline,mode=max",
            "type=inline supports mode=min only",
        ),
        ("--cache-from", "type=gha", "type=gha is not supported yet"),
        (
            "--cache-to",
            "type=registry,ref=localhost:5000/x:y,compression=zstd",
            "compression=zstd is not supported yet",
        ),
        (
            "--cache-to",
            "type=registry,ref=localhost:5000/x:y,mode=all",
            "expected min or max",
        ),
    ] {
        let out = rbuild(&b, &["build", flag, spec, ctx_b.to_str().unwrap()]);
        assert!(!out.status.success(), "{spec}");
        assert!(text(&out).contains(want), "{spec}: {}", text(&out));
    }
    let out = rbuild(
        &b,
        &[
            "build",
            "--explain",
            "--cache-to",
            &to,
            ctx_b.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--explain builds nothing"),
        "{}",
        text(&out)
    );
}

/// A two-platform build (`FROM scratch`, COPY only: nothing to emulate) exports one cache
/// holding both platforms' records; a fresh store imports it and builds the same index with
/// every step cached; `--explain` of several platforms explains each platform's steps; an
/// inline cache of several platforms is refused as not supported yet.
#[test]
fn multi_platform_build_exports_and_imports_every_platforms_records() {
    if !is_root("multi_platform_build_exports_and_imports_every_platforms_records") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // The final stage's ARG comes after its first layer: a config step of a scratch stage
    // before any layer is stamped with the build's time, which would differ between stores.
    let write_ctx = |dir: &Path, app: &str| -> PathBuf {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(
            dir.join("Dockerfile"),
            "FROM --platform=$BUILDPLATFORM scratch AS build\nARG BUILDARCH\n\
             COPY tool.txt /tool-$BUILDARCH\n\
             FROM scratch\nCOPY --from=build / /\nARG TARGETARCH\n\
             COPY src/ /app-$TARGETARCH/\n",
        )
        .unwrap();
        std::fs::write(dir.join("tool.txt"), "tool\n").unwrap();
        std::fs::write(dir.join("src/app.txt"), app).unwrap();
        dir.to_path_buf()
    };
    let platforms = "linux/amd64,linux/arm64";
    let dir = work.path().join("cache-dir");
    let a = work.path().join("a");
    let ctx_a = write_ctx(&work.path().join("ctx-a"), "app 1\n");
    let to = format!("type=local,dest={},mode=max", dir.display());
    let (log, index_a) = build(&a, &["--platform", platforms, "--cache-to", &to], &ctx_a);
    assert!(log.contains("writing image index"), "{log}");
    // The shared stage's COPY once, the final stage's leading COPY --from once (the same
    // layer for both platforms), each platform's COPY src/.
    assert_eq!(exported(&log, &dir.display().to_string()), 4, "{log}");

    // Another machine: a fresh store and a fresh copy of the context.
    let b = work.path().join("b");
    let ctx_b = write_ctx(&work.path().join("ctx-b"), "app 1\n");
    let from = format!("type=local,src={}", dir.display());
    let (log, index_b) = build(
        &b,
        &["--platform", platforms, "--cache-from", &from],
        &ctx_b,
    );
    assert!(!log.contains("cache miss:"), "{log}");
    for step in [
        "linux/amd64 3/3] COPY src/",
        "linux/arm64 3/3] COPY src/",
        "2/3] COPY --from=build",
    ] {
        assert!(was_cached(&log, step), "{step} not cached:\n{log}");
    }
    assert_eq!(index_b, index_a, "the same index on both stores");

    // --explain of both platforms on a third store whose src/app.txt changed.
    let c = work.path().join("c");
    let ctx_c = write_ctx(&work.path().join("ctx-c"), "app 2\n");
    let out = rbuild(
        &c,
        &[
            "build",
            "--explain",
            "--platform",
            platforms,
            "--cache-from",
            &from,
            ctx_c.to_str().unwrap(),
        ],
    );
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    for arch in ["amd64", "arm64"] {
        let row = |needle: &str| {
            table
                .lines()
                .find(|l| l.contains(&format!("linux/{arch} {needle}")))
                .unwrap_or_else(|| panic!("no {arch} {needle} row in:\n{table}"))
                .to_string()
        };
        assert!(
            row("3/3] COPY src/").contains("COPY src/app.txt changed"),
            "{table}"
        );
    }
    // The leading COPY --from, shared by the platforms, is explained once.
    let shared: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("2/3] COPY --from"))
        .collect();
    assert_eq!(shared.len(), 1, "{table}");
    assert!(shared[0].contains("yes"), "{table}");

    // An inline cache of several platforms: not supported yet, nothing built.
    let out = rbuild(
        &c,
        &[
            "build",
            "--platform",
            platforms,
            "--cache-to",
            "type=inline",
            ctx_c.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("not supported yet"), "{}", text(&out));
}

/// Blob GETs (downloads) of any of `blobs` in a registry's access log.
fn blob_gets(log: &str, blobs: &[String]) -> usize {
    log.lines()
        .filter(|l| {
            l.contains("\"GET /v2/") && blobs.iter().any(|b| l.contains(&format!("/blobs/{b} ")))
        })
        .count()
}

/// The layer blobs of the cache artifact `reference`.
fn cache_layers(root: &Path, reference: &str) -> Vec<String> {
    let manifest: serde_json::Value =
        serde_json::from_str(&rbuild_ok(root, &["manifest", "inspect", reference])).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn imported_layers_are_downloaded_only_when_their_bytes_are_needed() {
    if !is_root("imported_layers_are_downloaded_only_when_their_bytes_are_needed") {
        return;
    }
    let Some(reg) = RegistryProcess::start(Auth::Open, "lazy import") else {
        return;
    };
    let Some(other) = RegistryProcess::start(Auth::Open, "lazy import") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a");
    if busybox_image(&a, "bb:1").is_none() {
        return;
    }
    let base = format!("{}/base/bb:1", reg.addr);
    rbuild_ok(&a, &["push", "-q", "bb:1", &base]);
    let cache = format!("{}/cache/lazy:max", reg.addr);
    let dir = work.path().join("dir-cache");
    let ctx = context(&work.path().join("ctx-a"), &base, "print('v1')\n");
    let (_, id_a) = build(
        &a,
        &[
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
            "--cache-to",
            &format!("type=local,dest={},mode=max", dir.display()),
        ],
        &ctx,
    );
    let layers = cache_layers(&a, &cache);
    assert_eq!(layers.len(), 4, "{layers:?}");
    let expected = "print('v1')\nartifact 1\n";

    // A fresh store: every step CACHED, the same image, and no layer blob downloaded.
    let b = work.path().join("b");
    let ctx_b = context(&work.path().join("elsewhere/ctx-b"), &base, "print('v1')\n");
    let before = reg.log().len();
    let (log, id_b) = build(&b, &["--cache-from", &cache, "-t", "app:lazy"], &ctx_b);
    assert_eq!((steps_cached(&log), &id_b), ((6, 4), &id_a), "{log}");
    assert_eq!(
        blob_gets(&reg.log()[before..], &layers),
        0,
        "a layer was downloaded"
    );
    // Listed, with a size, and rebuilt from the store's own records.
    let images = rbuild_ok(
        &b,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"],
    );
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("app:lazy ") && !l.ends_with(" 0B")),
        "{images}"
    );
    // The image's steps hit; the builder stage's step, whose layer nothing needed, runs.
    let before = reg.log().len();
    let (log, id) = build(&b, &["-t", "app:lazy"], &ctx_b);
    assert_eq!((steps_cached(&log), &id), ((6, 3), &id_a), "{log}");
    assert!(!was_cached(&log, "RUN echo"), "{log}");
    assert_eq!(
        blob_gets(&reg.log()[before..], &layers),
        0,
        "a layer was downloaded"
    );

    // A push to the registry holding the layers downloads none (they are mounted from the
    // cache's repository), and the pushed image is whole: another store pulls and runs it.
    let pushed = format!("{}/app/lazy:1", reg.addr);
    let before = reg.log().len();
    rbuild_ok(&b, &["push", "-q", "app:lazy", &pushed]);
    assert_eq!(
        blob_gets(&reg.log()[before..], &layers),
        0,
        "the push downloaded a layer"
    );
    let c = work.path().join("c");
    rbuild_ok(&c, &["pull", "-q", &pushed]);
    assert_eq!(
        rbuild_ok(&c, &["run", "--rm", &pushed, "cat", "/out"]),
        expected
    );

    // CI's pattern, importing and exporting the same cache (and a copy in another repository
    // of that registry): the layers stay where they are, nothing is downloaded, and the
    // export imports whole.
    let r = work.path().join("r");
    let copy = format!("{}/cache/lazy-copy:max", reg.addr);
    let before = reg.log().len();
    let (log, _) = build(
        &r,
        &[
            "--cache-from",
            &cache,
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
            "--cache-to",
            &format!("type=registry,ref={copy},mode=max"),
        ],
        &ctx_b,
    );
    assert_eq!(
        (exported(&log, &cache), exported(&log, &copy)),
        (4, 4),
        "{log}"
    );
    assert_eq!(
        blob_gets(&reg.log()[before..], &layers),
        0,
        "the export downloaded a layer"
    );
    let r2 = work.path().join("r2");
    let (log, id) = build(&r2, &["--cache-from", &copy], &ctx_b);
    assert_eq!((steps_cached(&log), &id), ((6, 4), &id_a), "{log}");
    assert_eq!(
        rbuild_ok(&r2, &["run", "--rm", id.trim(), "cat", "/out"]),
        expected
    );

    // Running it needs the bytes: fetched (downloaded now), verified, then run.
    let before = reg.log().len();
    assert_eq!(
        rbuild_ok(&b, &["run", "--rm", "app:lazy", "cat", "/out"]),
        expected
    );
    assert!(
        blob_gets(&reg.log()[before..], &layers) > 0,
        "nothing was downloaded to run"
    );

    // A push to another registry needs the bytes too; `save` writes a loadable archive.
    let d = work.path().join("d");
    build(&d, &["--cache-from", &cache, "-t", "app:lazy"], &ctx_b);
    let elsewhere = format!("{}/app/lazy:1", other.addr);
    rbuild_ok(&d, &["push", "-q", "app:lazy", &elsewhere]);
    let e = work.path().join("e");
    rbuild_ok(&e, &["pull", "-q", &elsewhere]);
    assert_eq!(
        rbuild_ok(&e, &["run", "--rm", &elsewhere, "cat", "/out"]),
        expected
    );
    let s = work.path().join("s");
    build(&s, &["--cache-from", &cache, "-t", "app:lazy"], &ctx_b);
    let archive = work.path().join("lazy.tar");
    rbuild_ok(&s, &["save", "-o", archive.to_str().unwrap(), "app:lazy"]);
    let l = work.path().join("l");
    rbuild_ok(&l, &["load", "-q", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        rbuild_ok(&l, &["run", "--rm", "app:lazy", "cat", "/out"]),
        expected
    );

    // A local cache is lazy too: the directory moved away, running fails naming it; back in
    // place, it runs.
    let h = work.path().join("h");
    let from_dir = format!("type=local,src={}", dir.display());
    let (log, id_h) = build(&h, &["--cache-from", &from_dir, "-t", "app:lazy"], &ctx_b);
    assert_eq!((steps_cached(&log), &id_h), ((6, 4), &id_a), "{log}");
    // Exported on to another directory: the blobs go from one layout to the other, not
    // through the store; that export imports whole.
    let dir2 = work.path().join("dir-cache-2");
    let (log, _) = build(
        &h,
        &[
            "--cache-from",
            &from_dir,
            "--cache-to",
            &format!("type=local,dest={},mode=max", dir2.display()),
        ],
        &ctx_b,
    );
    assert_eq!(exported(&log, "dir-cache-2"), 4, "{log}");
    for l in &layers {
        let hex = l.strip_prefix("sha256:").unwrap();
        assert!(
            !h.join("blobs/sha256").join(hex).exists(),
            "{l} went through the store"
        );
    }
    let h2 = work.path().join("h2");
    let from_dir2 = format!("type=local,src={}", dir2.display());
    let (log, id) = build(&h2, &["--cache-from", &from_dir2], &ctx_b);
    assert_eq!((steps_cached(&log), &id), ((6, 4), &id_a), "{log}");
    assert_eq!(
        rbuild_ok(&h2, &["run", "--rm", id.trim(), "cat", "/out"]),
        expected
    );
    let moved = work.path().join("dir-moved");
    std::fs::rename(&dir, &moved).unwrap();
    let out = rbuild(&h, &["run", "--rm", "app:lazy", "cat", "/out"]);
    let err = text(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains(&format!("OCI layout {}", dir.display())),
        "{err}"
    );
    std::fs::rename(&moved, &dir).unwrap();
    assert_eq!(
        rbuild_ok(&h, &["run", "--rm", "app:lazy", "cat", "/out"]),
        expected
    );

    // The registry gone after the import: running fails with an error naming the layer and
    // the registry; the store is intact (the image listed, nothing half-written), and
    // removing the image works.
    let f = work.path().join("f");
    build(&f, &["--cache-from", &cache, "-t", "app:lazy"], &ctx_b);
    let addr = reg.addr.clone();
    drop(reg);
    let out = rbuild(&f, &["run", "--rm", "app:lazy", "cat", "/out"]);
    let err = text(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("fetching layer sha256:")
            && err.contains(&format!("registry {addr}/cache/lazy")),
        "{err}"
    );
    assert!(
        rbuild_ok(&f, &["images"]).contains("app"),
        "the image is still listed"
    );
    assert_eq!(std::fs::read_dir(f.join("tmp")).unwrap().count(), 0);
    rbuild_ok(&f, &["rmi", "app:lazy"]);
    rbuild_ok(&f, &["image", "prune", "-f"]);
    assert!(!rbuild_ok(&f, &["images"]).contains("app"));
}

/// A context at `dir` holding only `dockerfile`.
fn dockerfile_context(dir: &Path, dockerfile: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir.to_path_buf()
}

/// For `test` (as root): an open registry, a work directory, and in it a store `a` holding
/// busybox, pushed to the registry as the base image `base/bb:1`.
fn registry_and_base(test: &str) -> Option<(RegistryProcess, tempfile::TempDir, PathBuf, String)> {
    if !is_root(test) {
        return None;
    }
    let reg = RegistryProcess::start(Auth::Open, test)?;
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a");
    busybox_image(&a, "bb:1")?;
    let base = format!("{}/base/bb:1", reg.addr);
    rbuild_ok(&a, &["push", "-q", "bb:1", &base]);
    Some((reg, work, a, base))
}

#[test]
fn a_build_from_a_lazily_held_image_downloads_its_layers_only_when_a_step_needs_them() {
    let Some((reg, work, a, base)) = registry_and_base(
        "a_build_from_a_lazily_held_image_downloads_its_layers_only_when_a_step_needs_them",
    ) else {
        return;
    };
    // `app:1`, then images built FROM it: one whose steps store B will find cached (with a
    // COPY --from of it), one whose RUN is new there.
    let app = dockerfile_context(
        &work.path().join("ctx-app"),
        &format!("FROM {base}\nRUN echo one > /one\n"),
    );
    let on_app = dockerfile_context(
        &work.path().join("ctx-on-app"),
        "FROM app:1\nRUN cat /one > /two\nCOPY --from=app:1 /one /copied\nCOPY --link Dockerfile /linked\n",
    );
    let new_run = dockerfile_context(
        &work.path().join("ctx-new-run"),
        "FROM app:1\nRUN cat /one /one > /three\n",
    );
    let app_cache = format!("{}/cache/app:max", reg.addr);
    let on_app_cache = format!("{}/cache/on-app:max", reg.addr);
    let (_, id_app) = build(
        &a,
        &[
            "-t",
            "app:1",
            "--cache-to",
            &format!("type=registry,ref={app_cache},mode=max"),
        ],
        &app,
    );
    let (_, id_on_app) = build(
        &a,
        &[
            "--cache-to",
            &format!("type=registry,ref={on_app_cache},mode=max"),
        ],
        &on_app,
    );
    let app_layers = cache_layers(&a, &app_cache);
    assert_eq!(app_layers.len(), 1, "{app_layers:?}");

    // Store B builds `app:1` from the cache without its RUN layer, then an image FROM it
    // (and COPY --from it) whose steps all hit: the same image, and still nothing downloaded.
    let b = work.path().join("b");
    let before = reg.log().len();
    let (log, id) = build(&b, &["--cache-from", &app_cache, "-t", "app:1"], &app);
    assert_eq!((steps_cached(&log), &id), ((2, 1), &id_app), "{log}");
    let (log, id) = build(&b, &["--cache-from", &on_app_cache], &on_app);
    assert_eq!((steps_cached(&log), &id), ((4, 3), &id_on_app), "{log}");
    // Again from store B's own records of those steps, without the import.
    let (log, id) = build(&b, &[], &on_app);
    assert_eq!((steps_cached(&log), &id), ((4, 3), &id_on_app), "{log}");
    assert_eq!(
        blob_gets(&reg.log()[before..], &app_layers),
        0,
        "a layer of the base was downloaded"
    );

    // A RUN that misses needs the base's files: its layers are fetched, and the step sees them.
    let before = reg.log().len();
    let (log, id) = build(&b, &[], &new_run);
    assert_eq!(steps_cached(&log), (2, 0), "{log}");
    assert!(
        blob_gets(&reg.log()[before..], &app_layers) > 0,
        "the base's layer was not downloaded for the RUN"
    );
    assert_eq!(
        rbuild_ok(&b, &["run", "--rm", id.trim(), "cat", "/three"]),
        "one\none\n"
    );

    // The registry gone: a fully cached build FROM a lazily held image still works (it needs
    // no bytes); one whose RUN needs them fails naming the image and where its layer was, and
    // records nothing for the step.
    let c = work.path().join("c");
    build(&c, &["--cache-from", &app_cache, "-t", "app:1"], &app);
    build(&c, &["--cache-from", &on_app_cache], &on_app);
    let addr = reg.addr.clone();
    drop(reg);
    let (log, id) = build(&c, &[], &on_app);
    assert_eq!((steps_cached(&log), &id), ((4, 3), &id_on_app), "{log}");
    let records = || {
        std::fs::read_dir(c.join("buildcache/records"))
            .unwrap()
            .count()
    };
    let before = records();
    let out = rbuild(
        &c,
        &["build", "--progress", "plain", new_run.to_str().unwrap()],
    );
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("image \"app:1\"") && err.contains(&format!("registry {addr}/cache/app")),
        "{err}"
    );
    assert_eq!(records(), before, "{err}");
}

#[test]
fn lazily_held_layers_are_fetched_with_the_commands_registry_settings() {
    let test = "lazily_held_layers_are_fetched_with_the_commands_registry_settings";
    if !is_root(test) {
        return;
    }
    const PASSWORD: &str = "lazy-pa55word";
    let Some(reg) = RegistryProcess::start(
        Auth::Htpasswd {
            user: "dora".into(),
            password: PASSWORD.into(),
        },
        "lazy settings",
    ) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    // The registry answers only with the credentials of this file (`--authfile`).
    let authfile = work.path().join("auth.json");
    let token = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("dora:{PASSWORD}"))
    };
    std::fs::write(
        &authfile,
        format!(r#"{{"auths": {{"{}": {{"auth": "{token}"}}}}}}"#, reg.addr),
    )
    .unwrap();
    let auth = authfile.to_str().unwrap();
    let a = work.path().join("a");
    if busybox_image(&a, "bb:1").is_none() {
        return;
    }
    let base = format!("{}/base/bb:1", reg.addr);
    rbuild_ok(&a, &["push", "-q", "--authfile", auth, "bb:1", &base]);
    let ctx = dockerfile_context(
        &work.path().join("ctx"),
        &format!("FROM {base}\nRUN echo lazy > /out\n"),
    );
    let cache = format!("{}/cache/settings:max", reg.addr);
    let to = format!("type=registry,ref={cache},mode=max");
    build(&a, &["--authfile", auth, "--cache-to", &to], &ctx);

    // Fresh stores import the cache lazily; what the output needs is fetched with the
    // build's credentials.
    for (store, output) in [("docker", "type=docker"), ("local", "type=local")] {
        let root = work.path().join(store);
        let dest = work.path().join(format!("out-{store}"));
        let spec = format!("{output},dest={}", dest.display());
        let (log, _) = build(
            &root,
            &[
                "--authfile",
                auth,
                "--cache-from",
                &cache,
                "--output",
                &spec,
            ],
            &ctx,
        );
        assert_eq!(steps_cached(&log), (2, 1), "{log}");
        if store == "local" {
            assert_eq!(std::fs::read_to_string(dest.join("out")).unwrap(), "lazy\n");
        } else {
            let l = work.path().join("loaded");
            rbuild_ok(&l, &["load", "-q", "-i", dest.to_str().unwrap()]);
            let id = rbuild_ok(&l, &["images", "-q"]);
            assert_eq!(
                rbuild_ok(&l, &["run", "--rm", id.trim(), "cat", "/out"]),
                "lazy\n"
            );
        }
    }

    // A command without registry flags fetches with the environment's settings.
    let r = work.path().join("run");
    build(
        &r,
        &["--authfile", auth, "--cache-from", &cache, "-t", "app:1"],
        &ctx,
    );
    let run = |env: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rbuild"));
        cmd.arg("--root")
            .arg(&r)
            .args(["run", "--rm", "app:1", "cat", "/out"]);
        if let Some(file) = env {
            cmd.env("RBUILD_AUTH_FILE", file);
        }
        cmd.output().unwrap()
    };
    let out = run(None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("401"), "{}", text(&out));
    let out = run(Some(auth));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "lazy\n");
}

/// The manifest digest the store gives image `name` (`inspect`'s `RepoDigests`).
fn manifest_digest(root: &Path, name: &str) -> String {
    let doc: serde_json::Value =
        serde_json::from_str(&rbuild_ok(root, &["inspect", "--type", "image", name])).unwrap();
    let digests = doc[0]["RepoDigests"].as_array().unwrap();
    let d = digests[0].as_str().unwrap();
    d[d.find('@').unwrap() + 1..].to_string()
}

#[test]
fn an_inline_cache_imported_lazily_gives_the_same_manifest() {
    let Some((reg, work, a, base)) =
        registry_and_base("an_inline_cache_imported_lazily_gives_the_same_manifest")
    else {
        return;
    };
    let ctx = dockerfile_context(
        &work.path().join("ctx"),
        &format!("FROM {base}\nRUN echo inline > /out\nCOPY Dockerfile /df\n"),
    );
    let pushed = format!("{}/app/inline:1", reg.addr);
    let (_, id_a) = build(
        &a,
        &["--cache-to", "type=inline", "-t", &pushed, "--push"],
        &ctx,
    );
    // Another store imports the inline cache: every step hits, nothing of the image's own
    // layers is fetched, and the image is the same, its manifest too.
    let own_layers = cache_layers(&a, &pushed)[1..].to_vec();
    let b = work.path().join("b");
    let before = reg.log().len();
    let (log, id_b) = build(
        &b,
        &[
            "--cache-from",
            &pushed,
            "--cache-to",
            "type=inline",
            "-t",
            &pushed,
        ],
        &ctx,
    );
    assert_eq!((steps_cached(&log), &id_b), ((3, 2), &id_a), "{log}");
    assert_eq!(blob_gets(&reg.log()[before..], &own_layers), 0);
    assert_eq!(manifest_digest(&b, &pushed), manifest_digest(&a, &pushed));
    // And a third, from the second's re-export (sizes travel on).
    let pushed_b = format!("{}/app/inline:2", reg.addr);
    rbuild_ok(&b, &["push", "-q", &pushed, &pushed_b]);
    let c = work.path().join("c");
    let (log, id_c) = build(
        &c,
        &[
            "--cache-from",
            &pushed_b,
            "--cache-to",
            "type=inline",
            "-t",
            &pushed,
        ],
        &ctx,
    );
    assert_eq!((steps_cached(&log), &id_c), ((3, 2), &id_a), "{log}");
    assert_eq!(manifest_digest(&c, &pushed), manifest_digest(&a, &pushed));
}
