//! `rbuild build` end to end, as root, on a busybox base made from Debian's busybox-static:
//! every instruction's effect on the filesystem and config, whiteouts, multi-stage and
//! `--target`, .dockerignore, the step cache (hits after `touch`, misses after a change),
//! RUN mounts, failures, outputs and reproducibility; and, with docker present, the same
//! Dockerfiles built by `docker build` compared field by field.
#![allow(clippy::print_stderr)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{busybox_image, have_peer, rbuild, rbuild_ok};
use serde_json::Value;

/// A store with a busybox image `busybox:local` and a build context directory.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(test: &str) -> Option<Fixture> {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                !common::peers_required(),
                "{test}: needs root under scripts/test"
            );
            eprintln!("skipping {test}: needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
        busybox_image(&dir.path().join("store"), "busybox:local")?;
        Some(Fixture { dir })
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.ctx().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn build(&self, extra: &[&str]) -> Output {
        let ctx = self.ctx();
        let mut args = vec!["build", "--progress", "plain"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        rbuild(&self.root(), &args)
    }

    fn build_ok(&self, extra: &[&str]) -> String {
        let out = self.build(extra);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "build failed:\n{err}");
        err
    }

    /// The image's filesystem, written by `--output type=local`.
    fn export(&self, image_args: &[&str], name: &str) -> PathBuf {
        let dest = self.dir.path().join(format!("out-{name}"));
        let spec = format!("type=local,dest={}", dest.display());
        let mut args = image_args.to_vec();
        args.extend(["--output", spec.as_str()]);
        self.build_ok(&args);
        dest
    }

    fn config(&self, image: &str) -> Value {
        let text = rbuild_ok(&self.root(), &["inspect", image]);
        serde_json::from_str::<Value>(&text).unwrap()[0].clone()
    }
}

/// The numbers of the summary line `(N steps, C cached, H files hashed)` of a plain build log.
fn summary(log: &str) -> (usize, usize, usize) {
    let line = log
        .lines()
        .find(|l| l.starts_with("writing image"))
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    let tail = &line[line.rfind('(').expect("summary counts")..];
    let nums: Vec<usize> = tail
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (nums[0], nums[1], nums[2])
}

/// `(cached steps, steps)` of a plain build log.
fn cached_steps(log: &str) -> (usize, usize) {
    let (steps, cached, _) = summary(log);
    (cached, steps)
}

fn image_id(f: &Fixture, name: &str) -> String {
    f.config(name)["Id"].as_str().unwrap().to_string()
}

#[test]
fn every_instruction_shapes_the_filesystem_and_config() {
    let Some(f) = Fixture::new("every_instruction") else {
        return;
    };
    f.write("app/main.sh", "#!/bin/sh\necho main\n");
    f.write("app/lib/util.txt", "util\n");
    f.write("single.txt", "single\n");
    f.write(
        "Dockerfile",
        r#"# syntax=docker/dockerfile:1
ARG BASE=busybox:local
FROM ${BASE}
MAINTAINER someone <s@example.com>
ARG VERSION=1.0
ENV APP_HOME=/srv/app GREETING="hello world"
ENV BIN=$APP_HOME/bin
WORKDIR $APP_HOME
COPY app/ ./
COPY --chown=1000:1000 --chmod=0640 single.txt /opt/single.txt
ADD single.txt relative/
RUN echo "$GREETING v$VERSION" > /srv/app/greeting && mkdir -p $BIN && id -u > /srv/app/uid
USER 1000:1000
RUN id -u > /tmp/uid-at-run
USER root
SHELL ["/bin/sh", "-ec"]
RUN echo shell-form > /shell
LABEL org.example.version=$VERSION "two words"="yes"
EXPOSE 8080 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --retries=2 CMD wget -q -O- localhost:8080 || exit 1
ONBUILD RUN echo triggered > /onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/app/greeting"]
"#,
    );
    let out = f.export(&["-t", "all:1", "--build-arg", "VERSION=2.5"], "all");
    let read =
        |p: &str| std::fs::read_to_string(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("srv/app/greeting"), "hello world v2.5\n");
    assert_eq!(read("srv/app/main.sh"), "#!/bin/sh\necho main\n");
    assert_eq!(read("srv/app/lib/util.txt"), "util\n");
    assert_eq!(read("srv/app/relative/single.txt"), "single\n");
    assert_eq!(read("srv/app/uid"), "0\n");
    assert_eq!(read("tmp/uid-at-run"), "1000\n");
    assert_eq!(read("shell"), "shell-form\n");
    assert!(out.join("srv/app/bin").is_dir());
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::metadata(out.join("opt/single.txt")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.permissions().mode() & 0o7777),
        (1000, 1000, 0o640)
    );

    let c = f.config("all:1");
    let cfg = &c["Config"];
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"APP_HOME=/srv/app"), "{env:?}");
    assert!(env.contains(&"GREETING=hello world"), "{env:?}");
    assert!(env.contains(&"BIN=/srv/app/bin"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("VERSION=")),
        "ARGs are not in the config"
    );
    assert_eq!(cfg["WorkingDir"], "/srv/app");
    assert_eq!(cfg["User"], "root");
    assert_eq!(cfg["Labels"]["org.example.version"], "2.5");
    assert_eq!(cfg["Labels"]["two words"], "yes");
    assert!(cfg["ExposedPorts"].get("8080/tcp").is_some());
    assert!(cfg["ExposedPorts"].get("53/udp").is_some());
    assert!(cfg["Volumes"].get("/data").is_some());
    assert_eq!(cfg["StopSignal"], "SIGQUIT");
    assert_eq!(cfg["Healthcheck"]["Test"][0], "CMD-SHELL");
    assert_eq!(cfg["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(cfg["Healthcheck"]["Retries"], 2);
    assert_eq!(cfg["OnBuild"][0], "RUN echo triggered > /onbuild");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["cat /srv/app/greeting"]));
    assert_eq!(cfg["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(c["Author"], "someone <s@example.com>");
    // History: one entry per instruction after FROM (the base's own first), layers marked.
    let history = c["History"].as_array().unwrap();
    let ours: Vec<&Value> = history.iter().skip(1).collect();
    assert!(ours.iter().any(|h| {
        h["created_by"]
            .as_str()
            .unwrap()
            .starts_with("RUN |1 VERSION=2.5 /bin/sh -c echo \"$GREETING")
    }));
    let empty = ours.iter().filter(|h| h["empty_layer"] == true).count();
    let layers = c["RootFS"]["Layers"].as_array().unwrap().len();
    assert_eq!(
        ours.len() - empty + 1,
        layers,
        "non-empty history entries match the layers"
    );

    // The image runs: ENTRYPOINT + CMD.
    let run = rbuild_ok(&f.root(), &["run", "--rm", "all:1"]);
    assert_eq!(run, "hello world v2.5\n");

    // ONBUILD triggers run in a child build, and are not inherited further.
    f.write("Dockerfile", "FROM all:1\nRUN test -f /onbuild\n");
    f.build_ok(&["-t", "child:1"]);
    let child = f.config("child:1");
    assert!(
        child["Config"].get("OnBuild").is_none_or(Value::is_null),
        "{child}"
    );
    assert_eq!(
        rbuild_ok(&f.root(), &["run", "--rm", "child:1", "cat /onbuild"]),
        "triggered\n"
    );
}

#[test]
fn whiteouts_delete_and_replace_files_of_lower_layers() {
    let Some(f) = Fixture::new("whiteouts") else {
        return;
    };
    f.write(
        "Dockerfile",
        "FROM busybox:local\nRUN mkdir -p /d/sub && echo old > /d/sub/f && echo old > /d/g\nRUN rm /bin/ls && rm -r /d && mkdir /d && echo fresh > /d/only\nRUN echo replaced > /bin/cat2 && rm /bin/cat2 && rm /bin/vi && echo new > /bin/vi\n",
    );
    f.build_ok(&["-t", "wh:1"]);
    let out = f.export(&["-t", "wh:1"], "wh");
    assert!(!out.join("bin/ls").exists(), "deleted file is gone");
    assert!(
        !out.join("d/sub").exists(),
        "opaque directory hides lower content"
    );
    assert!(
        !out.join("d/g").exists(),
        "opaque directory hides lower content"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("d/only")).unwrap(),
        "fresh\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("bin/vi")).unwrap(),
        "new\n"
    );
    assert!(!out.join("bin/cat2").exists());
    // And a container sees the same.
    let seen = rbuild_ok(
        &f.root(),
        &[
            "run",
            "--rm",
            "wh:1",
            "sh",
            "-c",
            "ls /d; test ! -e /bin/ls && echo gone",
        ],
    );
    assert_eq!(seen, "only\ngone\n");
}

#[test]
fn cache_hits_after_touch_and_misses_after_a_change() {
    let Some(f) = Fixture::new("cache") else {
        return;
    };
    f.write("src/a.txt", "one\n");
    f.write("src/b.txt", "two\n");
    f.write(
        "Dockerfile",
        "FROM busybox:local\nRUN echo first > /first\nCOPY src/ /src/\nRUN cat /src/* > /all\nCMD [\"cat\", \"/all\"]\n",
    );
    let log = f.build_ok(&["-t", "c:1"]);
    assert_eq!(cached_steps(&log), (0, 4), "{log}");
    let first = image_id(&f, "c:1");

    // Nothing changed: every step cached, the same image, no file read again.
    let log = f.build_ok(&["-t", "c:1"]);
    assert_eq!(cached_steps(&log), (3, 4), "{log}");
    assert_eq!(summary(&log).2, 0, "a no-op rebuild hashes nothing: {log}");
    assert_eq!(image_id(&f, "c:1"), first);

    // Touched, same content: still hits (content, not mtime, keys the cache).
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    let file = std::fs::File::options()
        .write(true)
        .open(f.ctx().join("src/a.txt"))
        .unwrap();
    file.set_modified(later).unwrap();
    let log = f.build_ok(&["-t", "c:1"]);
    assert_eq!(cached_steps(&log), (3, 4), "{log}");
    assert_eq!(
        summary(&log).2,
        1,
        "only the touched file is hashed again: {log}"
    );

    // A content change: COPY and what follows run again.
    f.write("src/b.txt", "changed\n");
    let log = f.build_ok(&["-t", "c:1"]);
    assert_eq!(cached_steps(&log), (1, 4), "{log}");
    assert_ne!(image_id(&f, "c:1"), first);
    assert_eq!(
        rbuild_ok(&f.root(), &["run", "--rm", "c:1"]),
        "one\nchanged\n"
    );

    // --no-cache runs everything.
    let log = f.build_ok(&["-t", "c:1", "--no-cache"]);
    assert_eq!(cached_steps(&log), (0, 4), "{log}");

    // A build arg the RUN can see changes its key.
    f.write(
        "Dockerfile",
        "FROM busybox:local\nARG X=1\nRUN echo $X > /x\n",
    );
    f.build_ok(&["-t", "c:2"]);
    let log = f.build_ok(&["-t", "c:2", "--build-arg", "X=2"]);
    assert_eq!(cached_steps(&log), (0, 2), "{log}");
}

#[test]
fn copy_link_layers_are_reused_when_earlier_steps_change() {
    let Some(f) = Fixture::new("link") else {
        return;
    };
    f.write("f.txt", "linked\n");
    let layers = |name: &str| -> Vec<Value> {
        let v = f.config(name);
        v["RootFS"]["Layers"]
            .as_array()
            .unwrap_or_else(|| panic!("no layers in {v}"))
            .clone()
    };
    for keyword in ["COPY", "ADD"] {
        let dockerfile = |n: u32, link: &str| {
            format!(
                "FROM busybox:local\nRUN echo {keyword} {n} > /n\n{keyword} {link} f.txt /opt/deep/f.txt\nRUN cat /n /opt/deep/f.txt > /both\n"
            )
        };
        let tag = |n: u32| format!("{}:{n}", keyword.to_lowercase());
        f.write("Dockerfile", &dockerfile(1, "--link"));
        let log = f.build_ok(&["-t", &tag(1)]);
        assert_eq!(cached_steps(&log), (0, 4), "{keyword}: {log}");
        // An earlier step changed: the linked step is still a hit, what follows runs again.
        f.write("Dockerfile", &dockerfile(2, "--link"));
        let log = f.build_ok(&["-t", &tag(2)]);
        assert_eq!(cached_steps(&log), (1, 4), "{keyword}: {log}");
        let (one, two) = (layers(&tag(1)), layers(&tag(2)));
        assert_eq!(
            one[2], two[2],
            "{keyword}: the same linked layer in both images"
        );
        assert_ne!(one[1], two[1]);
        assert_eq!(
            rbuild_ok(&f.root(), &["run", "--rm", &tag(2), "cat", "/both"]),
            format!("{keyword} 2\nlinked\n")
        );
        // Without --link the step depends on the step before it.
        f.write("Dockerfile", &dockerfile(3, ""));
        f.build_ok(&["-t", &tag(3)]);
        f.write("Dockerfile", &dockerfile(4, ""));
        let log = f.build_ok(&["-t", &tag(4)]);
        assert_eq!(cached_steps(&log), (0, 4), "{keyword}: {log}");
    }
}

#[test]
fn stages_target_and_copy_from() {
    let Some(f) = Fixture::new("stages") else {
        return;
    };
    f.write(
        "Dockerfile",
        r#"FROM busybox:local AS builder
RUN echo built > /artifact
FROM busybox:local AS other
RUN echo other > /other
FROM busybox:local AS broken
RUN exit 7
FROM scratch AS final
COPY --from=builder /artifact /artifact
COPY --from=1 /other /other
COPY --from=busybox:local /bin/busybox /bin/busybox
"#,
    );
    // The default target is the last stage; `broken` is not needed and never runs.
    let out = f.export(&["-t", "final:1"], "final");
    assert_eq!(
        std::fs::read_to_string(out.join("artifact")).unwrap(),
        "built\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("other")).unwrap(),
        "other\n"
    );
    assert!(out.join("bin/busybox").is_file());
    let entries: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries.len(),
        3,
        "scratch holds only what was copied: {entries:?}"
    );
    // --target picks an earlier stage.
    let log = f.build_ok(&["-t", "builder:1", "--target", "builder"]);
    assert!(!log.contains("exit 7"), "{log}");
    // The broken stage fails when targeted.
    let failed = f.build(&["--target", "broken"]);
    assert!(!failed.status.success());
    let unknown = f.build(&["--target", "nope"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nope"));
}

#[test]
fn dockerignore_excludes_with_exceptions() {
    let Some(f) = Fixture::new("dockerignore") else {
        return;
    };
    f.write("keep.txt", "k\n");
    f.write("debug.log", "d\n");
    f.write("important.log", "i\n");
    f.write("deep/tmp/x", "x\n");
    f.write("deep/ok", "ok\n");
    f.write(
        ".dockerignore",
        "*.log\n!important.log\n**/tmp\nDockerfile\n",
    );
    f.write("Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    let out = f.export(&[], "ignore");
    let ctx = out.join("ctx");
    assert!(ctx.join("keep.txt").exists());
    assert!(ctx.join("important.log").exists());
    assert!(!ctx.join("debug.log").exists());
    assert!(!ctx.join("deep/tmp").exists());
    assert!(ctx.join("deep/ok").exists());
    // Naming an ignored file is an error that says so.
    f.write("Dockerfile", "FROM scratch\nCOPY debug.log /\n");
    let out = f.build(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("debug.log") && err.contains(".dockerignore"),
        "{err}"
    );
    // A source outside the context is refused.
    f.write("Dockerfile", "FROM scratch\nCOPY ../outside /\n");
    let out = f.build(&[]);
    assert!(!out.status.success());
}

#[test]
fn large_copies_filled_while_hashed_make_the_same_image_as_small_ones() {
    let Some(f) = Fixture::new("large_copy") else {
        return;
    };
    // Files over the size COPY fills while hashing (8 MiB): an unaligned one, a set-uid one.
    let mut x = 0x9e37_79b9u32;
    let mut bytes = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    };
    std::fs::create_dir_all(f.ctx().join("data")).unwrap();
    std::fs::write(f.ctx().join("data/odd.bin"), bytes((9 << 20) + 4_321)).unwrap();
    std::fs::write(f.ctx().join("data/suid.bin"), bytes(8 << 20)).unwrap();
    std::fs::write(f.ctx().join("data/small.txt"), "small\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        f.ctx().join("data/suid.bin"),
        std::fs::Permissions::from_mode(0o4750),
    )
    .unwrap();
    f.write(
        "Dockerfile",
        "FROM busybox:local\nCOPY --chown=7:8 data/ /data/\nRUN sha256sum /data/odd.bin /data/suid.bin > /sums && stat -c '%a %u %g %s' /data/suid.bin > /meta\n",
    );
    let log = f.build_ok(&["-t", "large:1"]);
    assert_eq!(cached_steps(&log), (0, 3), "{log}");
    let out = f.export(&[], "large");
    for name in ["odd.bin", "suid.bin", "small.txt"] {
        assert_eq!(
            std::fs::read(out.join("data").join(name)).unwrap(),
            std::fs::read(f.ctx().join("data").join(name)).unwrap(),
            "{name}"
        );
    }
    // The RUN saw the filled files (the next step's lower) with their metadata.
    let sums = std::fs::read_to_string(out.join("sums")).unwrap();
    let expected = Command::new("sha256sum")
        .args(["data/odd.bin", "data/suid.bin"])
        .current_dir(f.ctx())
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout).replace("data/", "/data/");
    assert_eq!(sums, expected);
    assert_eq!(
        std::fs::read_to_string(out.join("meta")).unwrap(),
        format!("4750 7 8 {}\n", 8 << 20)
    );
    // The layer digests are those of the tars made again from the snapshots: saving checks
    // every layer against its digest.
    let archive = f.dir.path().join("large.tar");
    rbuild_ok(
        &f.root(),
        &["save", "-o", archive.to_str().unwrap(), "large:1"],
    );
    // Cached next time.
    let first = image_id(&f, "large:1");
    let log = f.build_ok(&["-t", "large:1"]);
    assert_eq!(cached_steps(&log), (2, 3), "{log}");
    assert_eq!(image_id(&f, "large:1"), first);
}

#[test]
fn failing_run_reports_step_line_code_and_output_and_tags_nothing() {
    let Some(f) = Fixture::new("failing_run") else {
        return;
    };
    f.write(
        "Dockerfile",
        "FROM busybox:local\nRUN echo fine\nRUN echo about to fail && echo last words >&2 && exit 3\n",
    );
    let out = f.build(&["-t", "broken:1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("last words"), "{err}");
    let images = rbuild_ok(&f.root(), &["images"]);
    assert!(!images.contains("broken"), "{images}");
    // The step before the failure stays cached (its layer was still being hashed when the
    // next step failed).
    f.write(
        "Dockerfile",
        "FROM busybox:local\nRUN echo fine\nRUN echo fixed\n",
    );
    let log = f.build_ok(&["-t", "fixed:1"]);
    assert_eq!(cached_steps(&log), (1, 3), "{log}");
    // A syntax error points at its line.
    f.write("Dockerfile", "FROM busybox:local\nRUNN echo\n");
    let out = f.build(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2:"));
    // Nothing mounted is left behind.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(f.dir.path().to_str().unwrap()), "{mounts}");
}

#[test]
fn run_mounts_cache_secret_tmpfs_and_bind() {
    let Some(f) = Fixture::new("run_mounts") else {
        return;
    };
    f.write("data/input", "bound\n");
    let secret = f.dir.path().join("token");
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    f.write(
        "Dockerfile",
        r#"FROM busybox:local
RUN --mount=type=cache,target=/cache echo run >> /cache/log && wc -l < /cache/log > /cache-count
RUN --mount=type=secret,id=tok test "$(tr a-z A-Z < /run/secrets/tok)" = S3CR3T-VALUE && echo ok > /secret-ok
RUN --mount=type=secret,id=tok,env=TOKEN test "$(echo $TOKEN | tr a-z A-Z)" = S3CR3T-VALUE && echo ok > /env-ok
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && test -f /scratch/x
RUN --mount=type=bind,source=data,target=/data cp /data/input /copied
"#,
    );
    let src = format!("id=tok,src={}", secret.display());
    let out = f.export(&["-t", "m:1", "--secret", &src], "m1");
    assert_eq!(
        std::fs::read_to_string(out.join("cache-count"))
            .unwrap()
            .trim(),
        "1"
    );
    assert!(out.join("secret-ok").exists() && out.join("env-ok").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("copied")).unwrap(),
        "bound\n"
    );
    for gone in ["cache", "scratch", "data", "run/secrets"] {
        assert!(!out.join(gone).exists(), "/{gone} leaked into the image");
    }
    // The cache mount persists across builds.
    let out = f.export(&["-t", "m:1", "--secret", &src, "--no-cache"], "m2");
    assert_eq!(
        std::fs::read_to_string(out.join("cache-count"))
            .unwrap()
            .trim(),
        "2"
    );
    // The secret is in no layer and no history.
    let save = f.dir.path().join("m.tar");
    rbuild_ok(&f.root(), &["save", "-o", save.to_str().unwrap(), "m:1"]);
    let bytes = std::fs::read(&save).unwrap();
    assert!(!bytes.windows(12).any(|w| w == b"s3cr3t-value"));
    // Without the secret a required mount fails; an optional one is skipped.
    f.write(
        "Dockerfile",
        "FROM busybox:local\nRUN --mount=type=secret,id=tok,required true\n",
    );
    let out = f.build(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tok"));
}

#[test]
fn stdin_dockerfile_outputs_iidfile_and_quiet() {
    let Some(f) = Fixture::new("outputs") else {
        return;
    };
    let iid = f.dir.path().join("iid");
    let oci = f.dir.path().join("img.tar");
    let out_spec = format!("type=oci,dest={}", oci.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(f.root())
        .args([
            "build",
            "-q",
            "-f",
            "-",
            "--iidfile",
            iid.to_str().unwrap(),
            "--output",
            &out_spec,
            "-t",
            "piped:1",
        ])
        .arg(f.ctx())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox:local\nRUN echo piped > /p\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.trim().starts_with("sha256:"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), stdout.trim());
    assert_eq!(image_id(&f, "piped:1"), stdout.trim());
    let listing = Command::new("tar").arg("-tf").arg(&oci).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("index.json") && listing.contains("oci-layout"),
        "{listing}"
    );
    // A bad --output is refused before building.
    let bad = f.build(&["--output", "type=zip,dest=x"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("zip"));
}

#[test]
fn source_date_epoch_makes_builds_reproducible_across_stores() {
    let Some(f) = Fixture::new("reproducible") else {
        return;
    };
    f.write("rootfs/hello", "hello\n");
    f.write(
        "Dockerfile",
        "FROM scratch\nCOPY --from=busybox:local /bin/busybox /bin/busybox\nCOPY rootfs/ /\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir /made && /bin/busybox cp /hello /made/\"]\nENV A=b\n",
    );
    let build = |root: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(root)
            .args(["build", "-q", "--no-cache"])
            .arg(f.ctx())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let second = f.dir.path().join("store2");
    // The same busybox base in the second store (same layer bytes, same config).
    let save = f.dir.path().join("bb.tar");
    rbuild_ok(
        &f.root(),
        &["save", "-o", save.to_str().unwrap(), "busybox:local"],
    );
    rbuild_ok(&second, &["load", "-i", save.to_str().unwrap()]);
    let a = build(&f.root());
    let b = build(&second);
    assert_eq!(a, b, "same input, same SOURCE_DATE_EPOCH: same image");
    let cfg = f.config(&a);
    assert_eq!(cfg["Created"], "2023-11-14T22:13:20Z");
}

#[test]
fn docker_build_of_the_same_dockerfile_matches() {
    if !have_peer("docker", &["version"]) {
        return;
    }
    let Some(f) = Fixture::new("docker_differential") else {
        return;
    };
    let save = f.dir.path().join("bb.tar");
    rbuild_ok(
        &f.root(),
        &["save", "-o", save.to_str().unwrap(), "busybox:local"],
    );
    let load = Command::new("docker")
        .args(["load", "-i", save.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    f.write("src/a.txt", "a\n");
    f.write("src/sub/b.txt", "b\n");
    f.write(".dockerignore", "*.md\n");
    f.write("README.md", "ignored\n");
    f.write(
        "Dockerfile",
        r#"FROM busybox:local
ARG V=3
ENV HOME_DIR=/home/app PATH=/home/app/bin:$PATH
WORKDIR $HOME_DIR
COPY src/ ./src/
COPY . /all/
RUN echo "v$V" > version && rm /bin/ls && mkdir -p bin
USER 1000
LABEL a=b v=$V
EXPOSE 80 53/udp
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat version"]
"#,
    );
    let name = "rbuild-differential:1";
    let docker = Command::new("docker")
        .args(["build", "-q", "--build-arg", "V=4", "-t", name])
        .arg(f.ctx())
        // docker's legacy builder (BuildKit, through the buildx plugin, needs a bridge for
        // this RUN; it is compared in buildkit_conformance.rs).
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        docker.status.success(),
        "{}",
        String::from_utf8_lossy(&docker.stderr)
    );
    let out = f.export(&["-t", name, "--build-arg", "V=4"], "diff");

    // Config fields docker and rbuild both set.
    let theirs: Value = serde_json::from_slice::<Value>(
        &Command::new("docker")
            .args(["image", "inspect", name])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()[0]["Config"]
        .clone();
    let ours = f.config(name)["Config"].clone();
    for field in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
    ] {
        assert_eq!(ours[field], theirs[field], "config field {field}");
    }

    // The filesystems: docker's export of a container vs rbuild's local output.
    let cid = String::from_utf8(
        Command::new("docker")
            .args(["create", name])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let theirs_dir = f.dir.path().join("docker-fs");
    std::fs::create_dir_all(&theirs_dir).unwrap();
    let export = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker export {} | tar -C {} -xf -",
            cid.trim(),
            theirs_dir.display()
        ))
        .status()
        .unwrap();
    assert!(export.success());
    let _ = Command::new("docker").args(["rm", cid.trim()]).output();
    let _ = Command::new("docker").args(["rmi", name]).output();
    let list = |root: &Path| -> Vec<(String, String)> {
        let mut v = Vec::new();
        for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            // docker's export adds runtime files of a created container.
            if [
                ".dockerenv",
                "etc/mtab",
                "etc/hosts",
                "etc/hostname",
                "etc/resolv.conf",
                "dev",
                "proc",
                "sys",
            ]
            .iter()
            .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
            {
                continue;
            }
            let what = if e.file_type().is_file() {
                std::fs::read_to_string(e.path())
                    .map(|s| s.len().to_string())
                    .unwrap_or_else(|_| "bin".into())
            } else if e.file_type().is_symlink() {
                std::fs::read_link(e.path())
                    .unwrap()
                    .to_string_lossy()
                    .to_string()
            } else {
                "dir".into()
            };
            v.push((rel, what));
        }
        v
    };
    let (a, b) = (list(&theirs_dir), list(&out));
    let only_docker: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
    let only_ours: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
    assert!(
        only_docker.is_empty() && only_ours.is_empty(),
        "docker only: {only_docker:?}\nrbuild only: {only_ours:?}"
    );
}

#[test]
fn concurrent_builds_share_one_store() {
    let Some(f) = Fixture::new("concurrent") else {
        return;
    };
    f.write("src/x", "x\n");
    f.write(
        "Dockerfile",
        "FROM busybox:local\nCOPY src/ /src/\nRUN sleep 0.3 && cat /src/x > /y\n",
    );
    let spawn = |tag: &str| {
        Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(f.root())
            .args(["build", "-q", "--no-cache", "-t", tag])
            .arg(f.ctx())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = (0..3).map(|i| spawn(&format!("conc:{i}"))).collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..3 {
        let name = format!("conc:{i}");
        assert_eq!(
            rbuild_ok(&f.root(), &["run", "--rm", &name, "cat", "/y"]),
            "x\n"
        );
    }
    // And a later cached build of the same input reuses what they stored.
    let log = f.build_ok(&["-t", "conc:after"]);
    assert_eq!(cached_steps(&log), (2, 3), "{log}");
}

#[test]
fn push_to_a_registry_and_build_from_it_in_another_store() {
    let Ok(registry) = std::env::var("RBUILD_TEST_REGISTRY") else {
        assert!(!common::peers_required(), "RBUILD_TEST_REGISTRY is not set");
        eprintln!("skipped: no test registry (run scripts/test)");
        return;
    };
    let Some(f) = Fixture::new("push") else {
        return;
    };
    let name = format!("{registry}/rbuild-build-push/app:1");
    f.write(
        "Dockerfile",
        "FROM busybox:local\nRUN echo pushed > /marker\n",
    );
    f.build_ok(&["-t", &name, "--push"]);
    // A fresh store builds FROM the pushed image: the base is pulled.
    let other = f.dir.path().join("store-other");
    let ctx2 = f.dir.path().join("ctx2");
    std::fs::create_dir_all(&ctx2).unwrap();
    std::fs::write(
        ctx2.join("Dockerfile"),
        format!("FROM {name}\nRUN cat /marker > /copy\n"),
    )
    .unwrap();
    let out = rbuild(
        &other,
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            "derived:1",
            ctx2.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        rbuild_ok(&other, &["run", "--rm", "derived:1", "cat", "/copy"]),
        "pushed\n"
    );
    // A missing base names the image and the failure.
    std::fs::write(
        ctx2.join("Dockerfile"),
        format!("FROM {registry}/rbuild-build-push/missing:1\n"),
    )
    .unwrap();
    let out = rbuild(&other, &["build", ctx2.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

/// A one-shot HTTP server on 127.0.0.1 serving `body` for every request; returns its port.
fn serve(body: Vec<u8>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    port
}

#[test]
fn add_unpacks_local_archives_and_fetches_urls() {
    let Some(f) = Fixture::new("add") else {
        return;
    };
    // A gzip'd tar in the context, a plain file, and one served over HTTP.
    let tree = f.dir.path().join("tree");
    std::fs::create_dir_all(tree.join("pkg/bin")).unwrap();
    std::fs::write(tree.join("pkg/bin/tool"), "tool\n").unwrap();
    std::fs::write(tree.join("pkg/README"), "readme\n").unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -czf {}/pkg.tar.gz pkg && cp {}/pkg.tar.gz {}/kept.tgz",
            tree.display(),
            f.ctx().display(),
            f.ctx().display(),
            f.ctx().display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    f.write("plain.txt", "plain\n");
    let served = b"downloaded content\n".to_vec();
    let sum = format!("sha256:{}", rbuild_oci::Digest::sha256_of(&served).hex());
    let port = serve(served);
    f.write(
        "Dockerfile",
        &format!(
            "FROM busybox:local\nADD pkg.tar.gz /opt/\nADD --unpack=false kept.tgz /keep/\nADD plain.txt /plain/\nADD --checksum={sum} http://127.0.0.1:{port}/files/data.txt /dl/\n"
        ),
    );
    let out = f.export(&["-t", "add:1"], "add");
    assert_eq!(
        std::fs::read_to_string(out.join("opt/pkg/bin/tool")).unwrap(),
        "tool\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("opt/pkg/README")).unwrap(),
        "readme\n"
    );
    assert!(
        out.join("keep/kept.tgz").is_file(),
        "--unpack=false keeps the archive"
    );
    assert!(!out.join("opt/pkg.tar.gz").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("plain/plain.txt")).unwrap(),
        "plain\n"
    );
    let dl = out.join("dl/data.txt");
    assert_eq!(
        std::fs::read_to_string(&dl).unwrap(),
        "downloaded content\n"
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::metadata(&dl).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600, "downloads are 0600");
    assert_eq!(m.mtime(), 1_700_000_000, "mtime from Last-Modified");
    // A cached rebuild with --checksum does not need the server's content again.
    let log = f.build_ok(&["-t", "add:1"]);
    assert_eq!(cached_steps(&log), (4, 5), "{log}");
    // A wrong checksum fails and names the URL.
    f.write(
        "Dockerfile",
        &format!(
            "FROM busybox:local\nADD --checksum=sha256:{} http://127.0.0.1:{port}/x /x\n",
            "0".repeat(64)
        ),
    );
    let out = f.build(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

/// The network namespaces (as `net:[INODE]`) any process on the host is in now.
fn live_network_namespaces() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path().join("ns/net")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn network_none_steps_share_one_loopback_namespace_that_goes_with_the_build() {
    let Some(f) = Fixture::new("network_none") else {
        return;
    };
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let nsfs_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .matches(" nsfs ")
        .count();
    // Two RUN steps, each recording the interfaces it sees and its network namespace.
    f.write(
        "Dockerfile",
        "FROM busybox:local\n\
         RUN cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' > /dev1 && readlink /proc/self/ns/net > /ns1\n\
         RUN cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' > /dev2 && readlink /proc/self/ns/net > /ns2 && ping -c1 -W1 127.0.0.1 >/dev/null && echo ok > /lo\n",
    );
    let out = f.export(&["--network", "none", "--no-cache"], "none");
    let read = |n: &str| std::fs::read_to_string(out.join(n)).unwrap();
    assert_eq!(read("dev1"), "lo\n", "only loopback in the first step");
    assert_eq!(read("dev2"), "lo\n", "only loopback in the second step");
    assert_eq!(read("lo"), "ok\n", "loopback is up");
    let (ns1, ns2) = (read("ns1"), read("ns2"));
    assert_eq!(ns1, ns2, "the steps of one build share its namespace");
    assert_ne!(
        ns1.trim(),
        host_ns.to_string_lossy(),
        "not the host's network"
    );
    // Gone with the build: no process in it, nothing mounted to keep it.
    assert!(
        !live_network_namespaces().contains(&ns1.trim().to_owned()),
        "{ns1} outlived the build"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(
        mountinfo.matches(" nsfs ").count(),
        nsfs_before,
        "{mountinfo}"
    );
    assert!(
        !mountinfo.contains(f.dir.path().to_str().unwrap()),
        "{mountinfo}"
    );

    // A failing step: the namespace goes too.
    f.write(
        "Dockerfile",
        "FROM busybox:local\nRUN echo fine\nRUN readlink /proc/self/ns/net && exit 7\n",
    );
    let failed = f.build(&["--network", "none", "--no-cache"]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    let ns = err
        .split_whitespace()
        .find(|w| w.starts_with("net:["))
        .unwrap_or_else(|| panic!("no namespace in the output:\n{err}"))
        .to_owned();
    assert!(
        !live_network_namespaces().contains(&ns),
        "{ns} outlived the failed build"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(
        mountinfo.matches(" nsfs ").count(),
        nsfs_before,
        "{mountinfo}"
    );
    let tmp = f.root().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
}

#[test]
fn same_size_same_mtime_content_change_is_a_cache_miss() {
    let Some(f) = Fixture::new("same_size_same_mtime") else {
        return;
    };
    f.write("src/a.txt", "one\n");
    f.write("src/b.txt", "unchanged\n");
    f.write(
        "Dockerfile",
        "FROM busybox:local\nCOPY src/ /src/\nCMD [\"cat\", \"/src/a.txt\"]\n",
    );
    f.build_ok(&["-t", "m:1"]);
    // The COPY layer's snapshot (the busybox layer is the first).
    let copy_snapshot = || {
        let layers = rbuild_ok(
            &f.root(),
            &["inspect", "-f", "{{json .RootFS.Layers}}", "m:1"],
        );
        let layers: Vec<String> = serde_json::from_str(layers.trim()).unwrap();
        let hex = layers[1].strip_prefix("sha256:").unwrap().to_owned();
        f.root().join("snapshots/sha256").join(hex).join("src")
    };
    let first = copy_snapshot();
    let path = f.ctx().join("src/a.txt");
    let before = std::fs::metadata(&path).unwrap();
    // The same size, written in place (same inode), the old mtime put back: only the content
    // (and the ctime nobody can set) differ.
    std::fs::write(&path, "two\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    let after = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (after.len(), after.modified().unwrap(), after.ino()),
        (before.len(), before.modified().unwrap(), before.ino())
    );
    let log = f.build_ok(&["-t", "m:1"]);
    assert_eq!(cached_steps(&log), (0, 2), "the COPY must run again: {log}");
    assert_eq!(rbuild_ok(&f.root(), &["run", "--rm", "m:1"]), "two\n");
    // The new COPY links the unchanged file from the first one's layer, never the changed
    // one, whose size, mode, owner and mtime are all the same: its content decides.
    let second = copy_snapshot();
    assert_ne!(first, second);
    let ino = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
    assert_eq!(ino(first.join("b.txt")), ino(second.join("b.txt")));
    assert_ne!(ino(first.join("a.txt")), ino(second.join("a.txt")));
    assert_eq!(
        std::fs::read_to_string(first.join("a.txt")).unwrap(),
        "one\n"
    );
    // --no-cache reuses nothing of earlier builds, links included.
    f.write("src/a.txt", "six\n");
    f.build_ok(&["--no-cache", "-t", "m:1"]);
    let third = copy_snapshot();
    assert_ne!(ino(second.join("b.txt")), ino(third.join("b.txt")));
    assert_eq!(rbuild_ok(&f.root(), &["run", "--rm", "m:1"]), "six\n");
}
