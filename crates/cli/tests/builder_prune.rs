//! The build cache seen and pruned, end to end: `rbuild system df` (the Build Cache row and
//! `-v`'s objects), `rbuild builder prune` without `-a` (only what no image shares), with
//! `-a`, with `--keep-storage` and `--filter until=`, its prompt, its bad input; and the
//! docker CLI's `builder prune` / `system df` against `rbuild system service`.
#![allow(clippy::print_stderr)]

mod api_support;
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{busybox_image, rbuild, rbuild_ok};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A two-stage build: stage `b`'s layer is only the cache's (the final image copies one of
/// its two files), the final stage's `RUN echo final` is an image layer, and a cache mount.
fn context(dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS b\n\
         RUN echo built > /artifact && echo junk > /junk\n\
         FROM busybox\n\
         COPY f /f\n\
         RUN echo final > /final\n\
         COPY --from=b /artifact /artifact\n\
         RUN --mount=type=cache,target=/cache dd if=/dev/zero of=/cache/blob bs=1k count=64 \
             && cat /artifact\n",
    )
    .unwrap();
    std::fs::write(ctx.join("f"), "f\n").unwrap();
    ctx
}

fn build(root: &Path, ctx: &Path) -> String {
    let out = rbuild(
        root,
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            "app",
            ctx.to_str().unwrap(),
        ],
    );
    let log = text(&out);
    assert!(out.status.success(), "build failed:\n{log}");
    log
}

/// Whether the step whose header contains `step` was CACHED in a plain progress log.
fn cached(log: &str, step: &str) -> bool {
    let lines: Vec<&str> = log.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains(step))
        .unwrap_or_else(|| panic!("no step {step:?} in:\n{log}"));
    let id = lines[i].split_whitespace().next().unwrap();
    lines[i + 1..]
        .iter()
        .any(|l| l.starts_with(id) && l.ends_with("CACHED"))
}

/// `system df`'s Build Cache row: (TOTAL, SIZE in bytes).
fn build_cache_row(root: &Path) -> (usize, u64) {
    let df = rbuild_ok(root, &["system", "df"]);
    let row = df
        .lines()
        .find(|l| l.starts_with("Build Cache"))
        .unwrap_or_else(|| panic!("no Build Cache row:\n{df}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    (cols[2].parse().unwrap(), bytes(cols[4]))
}

/// Docker's human size (`12.3kB`) in bytes.
fn bytes(s: &str) -> u64 {
    let at = s.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let n: f64 = s[..at].parse().unwrap();
    let mult = match &s[at..] {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        u => panic!("unit {u}"),
    };
    (n * mult) as u64
}

/// `system df -v`'s build cache objects: (CACHE ID, CACHE TYPE, SHARED).
fn objects(root: &Path) -> Vec<(String, String, bool)> {
    let df = rbuild_ok(root, &["system", "df", "-v"]);
    let table = df
        .split("Build cache usage:")
        .nth(1)
        .unwrap_or_else(|| panic!("no build cache section:\n{df}"));
    table
        .lines()
        .skip_while(|l| !l.starts_with("CACHE ID"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (
                c[0].to_owned(),
                c[1].to_owned(),
                c.last().unwrap() == &"true",
            )
        })
        .collect()
}

/// The IDs under "Deleted build cache objects:".
fn deleted(out: &str) -> Vec<String> {
    out.split("Deleted build cache objects:")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .skip(1)
                .take_while(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn prune_with_stdin(root: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn builder_prune_removes_unshared_then_all_cache_and_images_keep_working() {
    if !common::can_run_as_root(
        "builder_prune_removes_unshared_then_all_cache_and_images_keep_working",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    if busybox_image(&root, "busybox").is_none() {
        return;
    }
    let ctx = context(dir.path());
    build(&root, &ctx);
    let log = build(&root, &ctx);
    assert!(
        cached(&log, "RUN echo final"),
        "second build cached:\n{log}"
    );

    let (total, size) = build_cache_row(&root);
    assert!(total >= 6, "records, the cache mount, the context: {total}");
    assert!(size >= 64 * 1024, "the cache mount's 64 KiB count: {size}");
    let before = objects(&root);
    let usage = rbuild_ok(&root, &["system", "df", "-v"]);
    let counts: Vec<u64> = usage
        .lines()
        .skip_while(|l| !l.starts_with("CACHE ID"))
        .skip(1)
        .filter(|l| l.contains("regular"))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            c[c.len() - 2].parse().unwrap()
        })
        .collect();
    assert!(
        counts.iter().all(|&n| n == 2),
        "each record made, then hit once: {usage}"
    );
    let kinds: Vec<&str> = before.iter().map(|o| o.1.as_str()).collect();
    for k in ["regular", "exec.cachemount", "source.local"] {
        assert!(kinds.contains(&k), "{k} in {before:?}");
    }
    let unshared: Vec<String> = before
        .iter()
        .filter(|o| !o.2)
        .map(|o| o.0.clone())
        .collect();
    assert!(
        before.iter().any(|o| o.1 == "regular" && !o.2),
        "stage b's record is the cache's alone: {before:?}"
    );

    // No -f and nothing on stdin: docker's prompt, no answer is no, exit 0.
    let out = prune_with_stdin(&root, &["builder", "prune"], b"");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N]"
        ),
        "{}",
        text(&out)
    );
    assert!(deleted(&text(&out)).is_empty());
    assert_eq!(objects(&root).len(), before.len(), "nothing removed");

    // A recent-use filter spares everything just used.
    let out = rbuild_ok(&root, &["builder", "prune", "-af", "--filter", "until=1h"]);
    assert!(deleted(&out).is_empty(), "{out}");
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");

    // Without -a: what no image shares, exactly.
    let out = rbuild_ok(&root, &["builder", "prune", "-f"]);
    let mut gone = deleted(&out);
    gone.sort();
    let mut want = unshared.clone();
    want.sort();
    assert_eq!(gone, want, "{out}");
    let reclaimed = out
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .map(bytes)
        .unwrap();
    assert!(reclaimed >= 64 * 1024, "{out}");
    let left = objects(&root);
    assert!(
        left.iter().all(|o| o.2),
        "only shared objects stay: {left:?}"
    );
    assert_eq!(left.len(), before.len() - unshared.len());

    let log = build(&root, &ctx);
    assert!(!cached(&log, "[b 2/2] RUN"), "stage b runs again:\n{log}");
    assert!(
        cached(&log, "RUN echo final"),
        "the image's steps hit:\n{log}"
    );

    // --keep-storage: the least recently used go until the cache fits.
    let (total, size) = build_cache_row(&root);
    let out = rbuild_ok(&root, &["builder", "prune", "-af", "--keep-storage", "1GB"]);
    assert!(deleted(&out).is_empty(), "all fits in 1GB: {out}");
    // A tenth less than the cache takes (df's sizes are rounded to 3 digits): the least
    // recently used objects go, the rest stay.
    let keep = (size * 9 / 10).to_string();
    let out = rbuild_ok(&root, &["builder", "prune", "-af", "--keep-storage", &keep]);
    let (after, after_size) = build_cache_row(&root);
    assert!(!deleted(&out).is_empty(), "{out}");
    assert!(after >= 1 && after < total, "{total} -> {after}: {out}");
    assert!(
        after_size <= size * 9 / 10 + size / 200,
        "{size} -> {after_size}"
    );

    // -a: everything; the image still runs and inspects.
    let out = rbuild_ok(&root, &["builder", "prune", "-a", "-f"]);
    assert!(!deleted(&out).is_empty(), "{out}");
    assert_eq!(build_cache_row(&root), (0, 0));
    let run = rbuild_ok(&root, &["run", "--rm", "app", "cat", "/artifact", "/final"]);
    assert_eq!(run, "built\nfinal\n");
    rbuild_ok(&root, &["inspect", "app"]);
    let log = build(&root, &ctx);
    assert!(!cached(&log, "RUN echo final"), "re-run after -a:\n{log}");
    assert!(!cached(&log, "[b 2/2] RUN"), "re-run after -a:\n{log}");

    // system prune takes the unused build cache along, and with -a all of it.
    let (total, _) = build_cache_row(&root);
    let out = rbuild_ok(&root, &["system", "prune", "-f"]);
    let shared = objects(&root).iter().filter(|o| o.2).count();
    assert_eq!(deleted(&out).len(), total - shared, "{out}");
    assert!(shared > 0, "the image's records stay");
    let out = rbuild_ok(&root, &["system", "prune", "-af"]);
    assert_eq!(deleted(&out).len(), shared, "{out}");
    assert_eq!(build_cache_row(&root), (0, 0));
}

#[test]
fn builder_prune_refuses_bad_input_and_system_prune_names_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for (args, says) in [
        (&["--filter", "until=soon"][..], "until=soon"),
        (&["--filter", "label=x"][..], "invalid filter 'label'"),
        (&["--filter", "until"][..], "expected KEY=VALUE"),
        (&["--keep-storage", "lots"][..], "keep-storage \"lots\""),
    ] {
        let mut all = vec!["builder", "prune", "-f"];
        all.extend_from_slice(args);
        let out = rbuild(&root, &all);
        assert!(!out.status.success(), "{args:?} accepted: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    let out = prune_with_stdin(&root, &["system", "prune"], b"\n");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("  - unused build cache"),
        "{}",
        text(&out)
    );
    let out = prune_with_stdin(&root, &["system", "prune", "-a"], b"n\n");
    assert!(text(&out).contains("  - all build cache"), "{}", text(&out));
    assert!(!text(&out).contains("Total reclaimed"), "{}", text(&out));
}

#[test]
fn docker_builder_prune_and_system_df_through_the_api() {
    if !common::can_run_as_root("docker_builder_prune_and_system_df_through_the_api") {
        return;
    }
    let Some(s) = api_support::Service::start() else {
        return;
    };
    let ctx = context(s.dir.path());
    build(&s.root(), &ctx);
    let ours = objects(&s.root());
    let df = s.ok(&["system", "df"]);
    let row = df
        .lines()
        .find(|l| l.starts_with("Build Cache"))
        .unwrap_or_else(|| panic!("{df}"));
    let total: usize = row.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(total, ours.len(), "{df}");
    let verbose = s.ok(&["system", "df", "-v"]);
    assert!(verbose.contains("exec.cachemount"), "{verbose}");

    let out = s.ok(&["builder", "prune", "-f"]);
    let mut gone = deleted(&out);
    gone.sort();
    let mut want: Vec<String> = ours.iter().filter(|o| !o.2).map(|o| o.0.clone()).collect();
    want.sort();
    assert_eq!(gone, want, "{out}");
    let bad = s.docker(&["builder", "prune", "-f", "--filter", "until=soon"]);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(text(&bad).contains("until=soon"), "{}", text(&bad));
    let out = s.ok(&["builder", "prune", "-af"]);
    assert!(!deleted(&out).is_empty(), "{out}");
    assert!(objects(&s.root()).is_empty());
    let out = s.ok(&["run", "--rm", "app", "cat", "/artifact"]);
    assert_eq!(out, "built\n");
}

/// A prune started while a build runs waits for it (the store's gc lock), so it never removes
/// a record half-way through the build nor misses the ones the build writes.
#[test]
fn builder_prune_waits_for_a_running_build() {
    if !common::can_run_as_root("builder_prune_waits_for_a_running_build") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    if busybox_image(&root, "busybox").is_none() {
        return;
    }
    let ctx = dir.path().join("slow");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN sleep 2 && echo slow > /slow\nRUN echo after > /after\n",
    )
    .unwrap();
    let build = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(&root)
        .args(["build", "-q", "-t", "slow"])
        .arg(&ctx)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let out = rbuild_ok(&root, &["builder", "prune", "-af"]);
    let built = build.wait_with_output().unwrap();
    assert!(built.status.success(), "{}", text(&built));
    // Had the prune not waited, the records the build wrote after it would remain.
    assert_eq!(deleted(&out).len(), 2, "the two RUN steps' records: {out}");
    assert_eq!(build_cache_row(&root), (0, 0));
    assert_eq!(
        rbuild_ok(&root, &["run", "--rm", "slow", "cat", "/after"]),
        "after\n"
    );
}
