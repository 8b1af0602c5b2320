//! Healthchecks run by rbuild, end to end as root on a busybox image: `run --health-*`,
//! an image's HEALTHCHECK, `--no-healthcheck`, a probe's timeout, and what users see of it:
//! `ps` (`Up 2 seconds (healthy)`), `inspect` (`State.Health`, `Config.Healthcheck`) and
//! docker's `health_status: …` events, for a detached and a foreground container.
#![allow(clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{busybox_image, can_run_as_root};
use serde_json::Value;

fn rbuild(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let o = rbuild(root, args);
    assert!(
        o.status.success(),
        "rbuild {args:?}: {}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn inspect(root: &Path, name: &str) -> Value {
    let v: Value = serde_json::from_str(&ok(root, &["inspect", name])).unwrap();
    v[0].clone()
}

/// Poll `cond` every 20 ms for up to `secs` seconds.
fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

fn ps_status(root: &Path, name: &str) -> String {
    ok(
        root,
        &[
            "ps",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Status}}",
        ],
    )
    .trim()
    .to_owned()
}

fn health_events(root: &Path) -> Vec<String> {
    // `--until` a second that has begun since the last event, so the journal is read to
    // the end, not followed.
    std::thread::sleep(Duration::from_millis(1100));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ok(
        root,
        &[
            "events",
            "--since",
            "0",
            "--until",
            &now.to_string(),
            "--filter",
            "event=health_status",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

#[test]
fn health_flags_make_a_container_healthy_then_unhealthy() {
    if !can_run_as_root("health_flags_make_a_container_healthy_then_unhealthy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    if busybox_image(root, "busybox:latest").is_none() {
        return;
    }
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "none",
            "--health-cmd",
            "test -e /tmp/ready && echo fine",
            "--health-interval",
            "100ms",
            "--health-retries",
            "2",
            "busybox",
            "sh",
            "-c",
            "sleep 0.5; touch /tmp/ready; sleep 60",
        ],
    );
    let h = inspect(root, "web");
    assert_eq!(
        h["Config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "test -e /tmp/ready && echo fine"], "Interval": 100_000_000, "Retries": 2})
    );
    eventually(10, "healthy", || {
        ps_status(root, "web").ends_with("(healthy)")
    });
    let h = inspect(root, "web")["State"]["Health"].clone();
    assert_eq!(h["Status"], "healthy", "{h}");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], 0, "{h}");
    assert_eq!(last["Output"], "fine\n", "{h}");
    assert!(last["Start"].as_str().unwrap().ends_with('Z'), "{h}");
    // ps's health filter sees it (docker's `none` for containers without a healthcheck).
    let names = |f: &str| ok(root, &["ps", "--filter", f, "--format", "{{.Names}}"]);
    assert_eq!(names("health=healthy").trim(), "web");
    assert_eq!(names("health=unhealthy").trim(), "");
    assert!(!names("health=none").lines().any(|n| n == "web"));
    ok(root, &["exec", "web", "rm", "/tmp/ready"]);
    eventually(10, "unhealthy", || {
        ps_status(root, "web").ends_with("(unhealthy)")
    });
    let h = inspect(root, "web")["State"]["Health"].clone();
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    assert_eq!(h["Log"].as_array().unwrap().last().unwrap()["ExitCode"], 1);
    assert!(h["Log"].as_array().unwrap().len() <= 5, "{h}");
    let events = health_events(root);
    let healthy = events
        .iter()
        .position(|e| e == "health_status: healthy web")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(
        events[healthy..]
            .iter()
            .any(|e| e == "health_status: unhealthy web"),
        "{events:?}"
    );
    ok(root, &["rm", "-f", "web"]);
}

#[test]
fn image_healthcheck_timeouts_and_no_healthcheck() {
    if !can_run_as_root("image_healthcheck_timeouts_and_no_healthcheck") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    if busybox_image(root, "busybox:latest").is_none() {
        return;
    }
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=100ms --timeout=300ms --retries=1 CMD sleep 5\nCMD [\"sleep\", \"60\"]\n",
    )
    .unwrap();
    ok(root, &["build", "-q", "-t", "slow", ctx.to_str().unwrap()]);
    ok(
        root,
        &["run", "-d", "--name", "slow", "--network", "none", "slow"],
    );
    assert_eq!(
        inspect(root, "slow")["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "sleep 5"])
    );
    eventually(10, "unhealthy by timeout", || {
        ps_status(root, "slow").ends_with("(unhealthy)")
    });
    let h = inspect(root, "slow")["State"]["Health"].clone();
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], -1, "{h}");
    assert_eq!(
        last["Output"], "Health check exceeded timeout (300ms)",
        "{h}"
    );
    // --health-* fields override the image's one by one.
    ok(
        root,
        &[
            "create",
            "--name",
            "fast",
            "--network",
            "none",
            "--health-cmd",
            "true",
            "slow",
        ],
    );
    let cfg = inspect(root, "fast")["Config"]["Healthcheck"].clone();
    assert_eq!(cfg["Test"], serde_json::json!(["CMD-SHELL", "true"]));
    assert_eq!(cfg["Interval"], 100_000_000, "{cfg}");
    assert_eq!(cfg["Retries"], 1, "{cfg}");
    // --no-healthcheck: docker keeps NONE in the config, and no probe runs.
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "off",
            "--network",
            "none",
            "--no-healthcheck",
            "slow",
        ],
    );
    let off = inspect(root, "off");
    assert_eq!(
        off["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    std::thread::sleep(Duration::from_millis(400));
    assert!(inspect(root, "off")["State"].get("Health").is_none());
    let status = ps_status(root, "off");
    assert!(
        status.starts_with("Up ") && !status.contains('('),
        "{status}"
    );
    let bad = rbuild(
        root,
        &["create", "--no-healthcheck", "--health-cmd", "true", "slow"],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--no-healthcheck conflicts"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    ok(root, &["rm", "-f", "slow", "fast", "off"]);
}

#[test]
fn a_foreground_run_is_probed_too() {
    if !can_run_as_root("a_foreground_run_is_probed_too") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    if busybox_image(root, "busybox:latest").is_none() {
        return;
    }
    ok(
        root,
        &[
            "run",
            "--rm",
            "--name",
            "fg",
            "--network",
            "none",
            "--health-cmd",
            "true",
            "--health-interval",
            "100ms",
            "busybox",
            "sleep",
            "1",
        ],
    );
    let events = health_events(root);
    assert_eq!(events, ["health_status: healthy fg"], "{events:?}");
}

#[test]
fn probes_come_every_start_interval_during_the_start_period() {
    if !can_run_as_root("probes_come_every_start_interval_during_the_start_period") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    if busybox_image(root, "busybox:latest").is_none() {
        return;
    }
    // An hour between probes, but 100 ms while the minute's start period lasts: healthy at
    // once. Without the start interval the first probe would come after an hour.
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "quick",
            "--network",
            "none",
            "--health-cmd",
            "true",
            "--health-interval",
            "1h",
            "--health-start-period",
            "1m",
            "--health-start-interval",
            "100ms",
            "busybox",
            "sleep",
            "60",
        ],
    );
    assert_eq!(
        inspect(root, "quick")["Config"]["Healthcheck"]["StartInterval"],
        100_000_000
    );
    eventually(10, "healthy", || {
        ps_status(root, "quick").ends_with("(healthy)")
    });
    ok(root, &["rm", "-f", "quick"]);
}
