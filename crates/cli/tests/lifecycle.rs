//! Detached containers end to end, as root on a busybox image: `run -d`, `ps`, `logs`,
//! `stop` (STOPSIGNAL and timeout), `kill`, `restart` policies, `wait`, `pause`, `rm`, a
//! monitor killed with SIGKILL, names and ID prefixes, concurrent commands — and after each
//! `rm`, no directory, cgroup, process or mount of the container is left.
#![allow(clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::busybox_image;

fn can_run(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("RBUILD_TEST_PEERS").is_err(),
        "{test}: needs root under scripts/test"
    );
    eprintln!("skipping {test}: needs root");
    false
}

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
        text(&o.stderr),
        text(&o.stdout)
    );
    text(&o.stdout)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Poll `cond` every 10 ms for up to `secs` seconds.
fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

fn inspect(root: &Path, name: &str) -> serde_json::Value {
    let out = ok(root, &["inspect", "--type", "container", name]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

fn cgroups_of(id: &str) -> Vec<String> {
    let out = Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "6",
            "-name",
            &format!("rbuild-{id}"),
        ])
        .output()
        .unwrap();
    text(&out.stdout).lines().map(str::to_owned).collect()
}

fn processes_naming(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = text(&cmd).replace('\0', " ");
        if cmd.contains(id) {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// Nothing of container `id` is left: directory, name, cgroups, monitor, mounts.
fn assert_gone(root: &Path, id: &str) {
    assert!(
        !root.join("containers").join(id).exists(),
        "container directory left"
    );
    eventually(5, "the cgroups to go", || cgroups_of(id).is_empty());
    eventually(5, "the monitor and the background removal to go", || {
        processes_naming(id).is_empty()
    });
    assert!(
        !root
            .join("containers")
            .join(format!(".removing-{id}"))
            .exists(),
        "the removed container's files are gone"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_s = root.to_string_lossy();
    assert!(
        !mounts.contains(&*root_s),
        "mounts under {root_s} left: {mounts}"
    );
    let names = std::fs::read_dir(root.join("container-names"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        names,
        0,
        "a name link is left: {:?}",
        std::fs::read_dir(root.join("container-names"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            .unwrap_or_default()
    );
}

fn setup(test: &str, changes: &[&str]) -> Option<tempfile::TempDir> {
    if !can_run(test) {
        return None;
    }
    let root = tempfile::tempdir().unwrap();
    busybox_image(root.path(), "bb:latest")?;
    if !changes.is_empty() {
        // A second image with extra config (STOPSIGNAL, EXPOSE, …) over the same layer.
        let work = tempfile::tempdir().unwrap();
        let rootfs = common::busybox_rootfs(work.path())?;
        let tar = work.path().join("r.tar");
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        let mut args = vec!["import"];
        for c in changes {
            args.push("--change");
            args.push(c);
        }
        let tar_s = tar.to_string_lossy().into_owned();
        args.push(&tar_s);
        args.push("bb:custom");
        ok(root.path(), &args);
    }
    Some(root)
}

#[test]
fn detached_container_runs_logs_stops_and_is_removed_without_leftovers() {
    let Some(tmp) = setup("run -d", &["STOPSIGNAL SIGUSR1"]) else {
        return;
    };
    let root = tmp.path();
    let script = "echo started; echo oops >&2; trap 'echo got-usr1; exit 42' USR1; \
                  i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done";
    let id = ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            "bb:custom",
            "sh",
            "-c",
            script,
        ],
    );
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 64, "run -d prints the ID: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let ps = ok(root, &["ps"]);
    let lines: Vec<&str> = ps.lines().collect();
    assert!(lines[0].starts_with("CONTAINER ID   IMAGE"), "{ps}");
    assert!(lines[1].starts_with(&id[..12]), "{ps}");
    assert!(lines[1].contains("Up "), "{ps}");
    assert!(lines[1].ends_with("ticker"), "{ps}");
    // Output reaches the log, each stream to its own side.
    eventually(5, "ticks in the log", || {
        text(&rbuild(root, &["logs", "ticker"]).stdout).contains("tick 3\n")
    });
    let logs = rbuild(root, &["logs", "ticker"]);
    assert!(text(&logs.stdout).starts_with("started\ntick 1\n"));
    assert_eq!(text(&logs.stderr), "oops\n");
    let tail = ok(root, &["logs", "--tail", "1", "-t", &id[..8]]);
    assert!(
        tail.lines().count() == 1 && tail.contains("Z tick "),
        "{tail}"
    );
    let log_file = root
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"));
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log_file)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["log"], "started\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    // logs -f follows until the container ends.
    let follow = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .args(["logs", "-f", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `stop` sends the image's STOPSIGNAL (USR1): the trap answers, exit status 42.
    let t = Instant::now();
    assert_eq!(ok(root, &["stop", "ticker"]), "ticker\n");
    assert!(t.elapsed() < Duration::from_secs(5));
    let followed = follow.wait_with_output().unwrap();
    let followed = text(&followed.stdout);
    assert!(
        followed.starts_with("started\n") && followed.ends_with("got-usr1\n"),
        "logs -f printed everything up to the end: {followed}"
    );
    let st = inspect(root, "ticker");
    assert_eq!(st["State"]["Status"], "exited");
    assert_eq!(st["State"]["ExitCode"], 42);
    assert_eq!(st["Config"]["StopSignal"], "SIGUSR1");
    assert_eq!(st["Name"], "/ticker");
    let ps = ok(root, &["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("ticker Exited (42) "), "{ps}");
    assert_eq!(
        ok(root, &["ps", "-q"]),
        "",
        "ps without -a shows running ones only"
    );
    assert_eq!(ok(root, &["wait", "ticker"]), "42\n");
    assert_eq!(ok(root, &["rm", "ticker"]), "ticker\n");
    assert_gone(root, &id);
    let gone = rbuild(root, &["logs", "ticker"]);
    assert!(!gone.status.success());
    assert!(text(&gone.stderr).contains("No such container: ticker"));
}

#[test]
fn stop_kills_after_the_timeout_and_kill_sends_signals() {
    let Some(tmp) = setup("stop timeout", &[]) else {
        return;
    };
    let root = tmp.path();
    // Ignores SIGTERM (PID 1 without a handler ignores it anyway): stop must SIGKILL.
    let id = ok(
        root,
        &[
            "run",
            "-d",
            "bb",
            "sh",
            "-c",
            "trap '' TERM; while true; do sleep 0.05; done",
        ],
    );
    let id = id.trim().to_owned();
    let t = Instant::now();
    ok(root, &["stop", "-t", "1", &id]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "stop waited {took:?}"
    );
    let st = inspect(root, &id);
    assert_eq!(st["State"]["ExitCode"], 137);
    // kill: a custom signal to a running container; a stopped one is an error.
    let id2 = ok(
        root,
        &[
            "run",
            "-d",
            "bb",
            "sh",
            "-c",
            "trap 'exit 7' HUP; while true; do sleep 0.05; done",
        ],
    );
    let id2 = id2.trim().to_owned();
    ok(root, &["kill", "-s", "HUP", &id2[..10]]);
    assert_eq!(ok(root, &["wait", &id2]), "7\n");
    let again = rbuild(root, &["kill", &id2]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("is not running"),
        "{}",
        text(&again.stderr)
    );
    // -i keeps standard input open: a shell waits on it instead of ending at once.
    let sh = ok(root, &["run", "-di", "bb", "sh"]).trim().to_owned();
    let no_i = ok(root, &["run", "-d", "bb", "sh"]).trim().to_owned();
    assert_eq!(
        ok(root, &["wait", &no_i]),
        "0\n",
        "without -i, sh reads end-of-file"
    );
    assert_eq!(inspect(root, &sh)["State"]["Running"], true);
    ok(root, &["rm", "-f", &sh, &no_i]);
    // rm refuses a running container unless forced.
    let id3 = ok(root, &["run", "-d", "bb", "sleep", "100"])
        .trim()
        .to_owned();
    let refused = rbuild(root, &["rm", &id3]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("container is running"));
    let t = Instant::now();
    ok(root, &["rm", "-f", &id3]);
    assert!(t.elapsed() < Duration::from_secs(3), "rm -f kills at once");
    for i in [&id, &id2] {
        ok(root, &["rm", i]);
    }
    for i in [&id, &id2, &id3] {
        assert_gone(root, i);
    }
}

#[test]
fn restart_on_failure_restarts_exactly_n_times() {
    let Some(tmp) = setup("restart policy", &[]) else {
        return;
    };
    let root = tmp.path();
    let id = ok(
        root,
        &[
            "run",
            "-d",
            "--restart",
            "on-failure:3",
            "bb",
            "sh",
            "-c",
            "echo run; exit 3",
        ],
    )
    .trim()
    .to_owned();
    // wait returns at the first exit, as docker's (the policy restarts it after).
    assert_eq!(ok(root, &["wait", &id]), "3\n");
    eventually(30, "3 restarts, then the end", || {
        let st = inspect(root, &id);
        st["RestartCount"] == 3 && st["State"]["Status"] == "exited"
    });
    assert_eq!(ok(root, &["wait", &id]), "3\n");
    let st = inspect(root, &id);
    assert_eq!(st["RestartCount"], 3);
    assert_eq!(st["State"]["Status"], "exited");
    assert_eq!(
        st["HostConfig"]["RestartPolicy"],
        serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 3})
    );
    assert_eq!(
        ok(root, &["logs", &id]),
        "run\n".repeat(4),
        "1 run + 3 restarts"
    );
    // always: restarts after success too, until stopped by the user.
    let id2 = ok(
        root,
        &[
            "run",
            "-d",
            "--restart",
            "always",
            "bb",
            "sh",
            "-c",
            "echo up; sleep 0.05",
        ],
    )
    .trim()
    .to_owned();
    eventually(10, "two restarts", || {
        inspect(root, &id2)["RestartCount"].as_u64().unwrap_or(0) >= 2
    });
    ok(root, &["stop", "-t", "1", &id2]);
    let st = inspect(root, &id2);
    assert_ne!(st["State"]["Status"], "running");
    let count = st["RestartCount"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        inspect(root, &id2)["RestartCount"].as_u64().unwrap(),
        count,
        "no restart after a user's stop"
    );
    // wait still tells the status of a container --rm removed at its end.
    let gone = ok(
        root,
        &["run", "-d", "--rm", "bb", "sh", "-c", "sleep 0.2; exit 9"],
    );
    assert_eq!(ok(root, &["wait", gone.trim()]), "9\n");
    let after = rbuild(root, &["inspect", "--type", "container", gone.trim()]);
    assert_eq!(after.status.code(), Some(1), "--rm removed it");
    let bad = rbuild(
        root,
        &["run", "-d", "--rm", "--restart", "always", "bb", "true"],
    );
    assert_eq!(bad.status.code(), Some(125));
    ok(root, &["rm", &id, &id2]);
    assert_gone(root, &id);
    assert_gone(root, &id2);
}

#[test]
fn a_monitor_killed_with_sigkill_is_reported_dead_and_swept() {
    let Some(tmp) = setup("monitor SIGKILL", &[]) else {
        return;
    };
    let root = tmp.path();
    let id = ok(root, &["run", "-d", "bb", "sleep", "1000"])
        .trim()
        .to_owned();
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    let monitor = state["monitor_pid"].as_i64().unwrap() as i32;
    let pid = state["pid"].as_i64().unwrap() as i32;
    assert!(monitor > 0 && pid > 0);
    assert!(!cgroups_of(&id).is_empty(), "the container has cgroups");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually(5, "the container to die with its monitor", || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    let ps = ok(
        root,
        &["ps", "-a", "--format", "{{.ID}} {{.State}} {{.Status}}"],
    );
    assert_eq!(ps, format!("{} dead Dead\n", &id[..12]));
    let st = inspect(root, &id);
    assert_eq!(st["State"]["Dead"], true);
    assert!(
        st["State"]["Error"].as_str().unwrap().contains("monitor"),
        "{st}"
    );
    assert!(
        cgroups_of(&id).is_empty(),
        "ps swept the dead container's cgroups"
    );
    assert_eq!(ok(root, &["ps", "-q"]), "");
    ok(root, &["rm", &id]);
    assert_gone(root, &id);
}

#[test]
fn names_are_unique_and_id_prefixes_resolve() {
    let Some(tmp) = setup("names", &[]) else {
        return;
    };
    let root = tmp.path();
    let a = ok(root, &["create", "--name", "one", "bb", "true"])
        .trim()
        .to_owned();
    let dup = rbuild(root, &["create", "--name", "one", "bb", "true"]);
    assert_eq!(dup.status.code(), Some(125));
    assert!(
        text(&dup.stderr).contains("\"/one\" is already in use"),
        "{}",
        text(&dup.stderr)
    );
    let rmi = rbuild(root, &["rmi", "bb"]);
    assert_eq!(rmi.status.code(), Some(1));
    assert!(
        text(&rmi.stderr).contains("is using its referenced image"),
        "{}",
        text(&rmi.stderr)
    );
    let bad = rbuild(root, &["create", "--name=-x", "bb", "true"]);
    assert!(text(&bad.stderr).contains("invalid container name"));
    // Generated names look like docker's.
    let b = ok(root, &["create", "bb", "true"]).trim().to_owned();
    let name = inspect(root, &b)["Name"].as_str().unwrap().to_owned();
    assert!(
        name.starts_with('/') && name.contains('_'),
        "generated name {name}"
    );
    // Unique prefixes find a container; a shared prefix is ambiguous.
    let created = ok(
        root,
        &["ps", "-a", "--filter", "status=created", "-q", "--no-trunc"],
    );
    assert_eq!(created.lines().count(), 2);
    assert_eq!(inspect(root, &a[..6])["Id"], a.as_str());
    let common: usize = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    if common > 0 {
        let amb = rbuild(root, &["inspect", "--type", "container", &a[..common]]);
        assert_eq!(amb.status.code(), Some(1));
    }
    // A relative --root works for detached containers too (their monitor runs from /).
    let rel = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .current_dir(root.parent().unwrap())
        .arg("--root")
        .arg(root.file_name().unwrap())
        .args(["run", "-d", "bb", "sh", "-c", "echo relative"])
        .output()
        .unwrap();
    assert!(rel.status.success(), "{}", text(&rel.stderr));
    let rel_id = text(&rel.stdout).trim().to_owned();
    assert_eq!(ok(root, &["wait", &rel_id]), "0\n");
    assert_eq!(ok(root, &["logs", &rel_id]), "relative\n");
    ok(root, &["rm", &rel_id]);
    let late = ok(
        root,
        &[
            "run",
            "-d",
            "bb",
            "sh",
            "-c",
            "sleep 0.3; echo late; exit 6",
        ],
    );
    let attached = rbuild(root, &["attach", late.trim()]);
    assert_eq!(attached.status.code(), Some(6));
    assert_eq!(text(&attached.stdout), "late\n");
    ok(root, &["rm", late.trim()]);
    let start = ok(root, &["start", "-a", "one"]);
    assert_eq!(start, "");
    assert_eq!(inspect(root, "one")["State"]["Status"], "exited");
    // Foreground runs are containers too; --rm removes them.
    let fg = rbuild(
        root,
        &["run", "--name", "fg", "bb", "sh", "-c", "echo hi; exit 5"],
    );
    assert_eq!(fg.status.code(), Some(5));
    assert_eq!(text(&fg.stdout), "hi\n");
    assert_eq!(inspect(root, "fg")["State"]["ExitCode"], 5);
    let pruned = ok(root, &["container", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Containers:\n"), "{pruned}");
    assert_eq!(pruned.lines().filter(|l| l.len() == 64).count(), 3);
    assert_eq!(ok(root, &["ps", "-aq"]), "");
    assert_gone(root, &a);
    assert_gone(root, &b);
}

#[test]
fn pause_freezes_and_concurrent_commands_agree() {
    let Some(tmp) = setup("pause", &[]) else {
        return;
    };
    let root = tmp.path();
    let id = ok(
        root,
        &[
            "create",
            "--name",
            "pz",
            "bb",
            "sh",
            "-c",
            "while true; do echo x; sleep 0.02; done",
        ],
    )
    .trim()
    .to_owned();
    // Two starts at once: one monitor, both succeed (docker's start of a running one is a no-op).
    let spawn_start = || {
        Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(root)
            .args(["start", "pz"])
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn_start);
        let b = s.spawn(spawn_start);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success() && b.status.success());
    let monitors = processes_naming(&id)
        .iter()
        .filter(|p| p.contains("container-monitor"))
        .count();
    assert_eq!(monitors, 1, "{:?}", processes_naming(&id));
    ok(root, &["pause", "pz"]);
    let freezer = cgroups_of(&id)
        .into_iter()
        .find(|d| d.contains("/freezer/"));
    if let Some(f) = &freezer {
        assert_eq!(
            std::fs::read_to_string(Path::new(f).join("freezer.state"))
                .unwrap()
                .trim(),
            "FROZEN"
        );
    }
    assert!(ok(root, &["ps"]).contains("(Paused)"));
    let lines = |r: &Path| text(&rbuild(r, &["logs", "pz"]).stdout).lines().count();
    let before = lines(root);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(lines(root), before, "a paused container prints nothing");
    ok(root, &["unpause", "pz"]);
    eventually(5, "output after unpause", || lines(root) > before);
    // Two forced removals at once: both end, nothing is left.
    let (a, b) = std::thread::scope(|s| {
        let rm = || rbuild(root, &["rm", "-f", "pz"]);
        let a = s.spawn(rm);
        let b = s.spawn(rm);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(
        a.status.success() || b.status.success(),
        "{}{}",
        text(&a.stderr),
        text(&b.stderr)
    );
    assert_gone(root, &id);
}

#[test]
fn exec_joins_the_containers_namespaces_and_cgroups() {
    let Some(tmp) = setup("exec", &[]) else {
        return;
    };
    let root = tmp.path();
    let id = ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "ex",
            "bb",
            "sh",
            "-c",
            "echo data > /tmp/file; exec sleep 100",
        ],
    )
    .trim()
    .to_owned();
    eventually(5, "the file", || {
        rbuild(root, &["exec", "ex", "cat", "/tmp/file"]).stdout == b"data\n"
    });
    // Its processes (PID 1 is the container's), its host name, its cgroup.
    let out = ok(
        root,
        &[
            "exec",
            "ex",
            "sh",
            "-c",
            "ps -o pid,comm | awk '$1==1{print $2}'; hostname; grep pids /proc/self/cgroup",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "sleep", "{out}");
    assert_eq!(lines[1], &id[..12]);
    assert!(lines[2].ends_with(&format!("rbuild-{id}")), "{out}");
    let o = rbuild(
        root,
        &[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "FOO=bar",
            "ex",
            "sh",
            "-c",
            "id -un; pwd; echo $FOO; exit 4",
        ],
    );
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(text(&o.stdout), "nobody\n/tmp\nbar\n");
    let missing = rbuild(root, &["exec", "ex", "no-such-command"]);
    assert_eq!(missing.status.code(), Some(127));
    let top = ok(root, &["top", "ex"]);
    assert!(top.starts_with("UID"), "{top}");
    assert!(
        top.lines().nth(1).is_some_and(|l| l.ends_with("sleep 100")),
        "{top}"
    );
    ok(root, &["stop", "-t", "0", "ex"]);
    let stopped = rbuild(root, &["exec", "ex", "true"]);
    assert_ne!(stopped.status.code(), Some(0));
    assert!(text(&stopped.stderr).contains("is not running"));
    ok(root, &["rm", "ex"]);
    assert_gone(root, &id);
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn published_ports_forward_http_into_the_container() {
    let Some(tmp) = setup("ports", &["EXPOSE 8080"]) else {
        return;
    };
    let root = tmp.path();
    let www = tmp.path().join("www");
    std::fs::create_dir(&www).unwrap();
    let body = "x".repeat(100_000);
    std::fs::write(www.join("big.html"), &body).unwrap();
    std::fs::write(www.join("index.html"), "hello from the container\n").unwrap();
    let vol = format!("{}:/www:ro", www.display());
    let id = ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-P",
            "-v",
            &vol,
            "bb:custom",
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            "/www",
        ],
    )
    .trim()
    .to_owned();
    let port_line = ok(root, &["port", "web"]);
    let port: u16 = port_line
        .trim()
        .strip_prefix("8080/tcp -> 127.0.0.1:")
        .unwrap_or_else(|| panic!("{port_line}"))
        .parse()
        .unwrap();
    assert_eq!(
        ok(root, &["port", "web", "8080"]),
        format!("127.0.0.1:{port}\n")
    );
    let ps = ok(root, &["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps, format!("127.0.0.1:{port}->8080/tcp\n"));
    eventually(5, "httpd to answer", || {
        http_get(port, "/index.html").is_ok_and(|r| r.contains("hello from the container"))
    });
    for _ in 0..100 {
        let r = http_get(port, "/index.html").unwrap();
        assert!(
            r.starts_with("HTTP/1.") && r.ends_with("hello from the container\n"),
            "{r}"
        );
    }
    // Several at once, with bodies larger than one copy buffer.
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..5 {
                        let r = http_get(port, "/big.html").unwrap();
                        assert!(r.ends_with(&body), "a whole body");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let insp = inspect(root, "web");
    assert_eq!(
        insp["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"],
        port.to_string()
    );
    // --network container:NAME shares the namespace: httpd is on that loopback.
    assert_eq!(
        ok(
            root,
            &[
                "run",
                "--rm",
                "--network",
                "container:web",
                "bb",
                "wget",
                "-qO-",
                "http://127.0.0.1:8080/index.html"
            ]
        ),
        "hello from the container\n"
    );
    let own = rbuild(
        root,
        &[
            "run",
            "--rm",
            "bb",
            "wget",
            "-qO-",
            "http://127.0.0.1:8080/index.html",
        ],
    );
    assert_eq!(
        own.status.code(),
        Some(1),
        "another container has its own loopback"
    );
    // A taken port is refused at start.
    let clash = rbuild(
        root,
        &[
            "run",
            "-d",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "bb",
            "sleep",
            "5",
        ],
    );
    assert_eq!(clash.status.code(), Some(125), "{}", text(&clash.stderr));
    assert!(text(&clash.stderr).contains(&port.to_string()));
    ok(root, &["rm", "-f", "web"]);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the forwarder stops with the container"
    );
    // Closed, not only refusing: the port is free for another listener at once.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the published port is free again");
    ok(root, &["container", "prune", "-f"]);
    assert_gone(root, &id);
}

#[test]
fn volumes_outlive_containers_and_start_with_the_images_content() {
    let Some(tmp) = setup("volumes", &["VOLUME /var/spool"]) else {
        return;
    };
    let root = tmp.path();
    // A named volume is made on first use, filled from the image's /etc, and keeps what
    // a container wrote after that container is gone.
    let o = ok(
        root,
        &[
            "run",
            "--rm",
            "-v",
            "conf:/etc",
            "bb",
            "sh",
            "-c",
            "cat /etc/passwd | head -1; echo kept > /etc/mine",
        ],
    );
    assert!(o.starts_with("root:"), "{o}");
    assert_eq!(ok(root, &["volume", "ls", "-q"]), "conf\n");
    assert_eq!(
        ok(
            root,
            &[
                "run",
                "--rm",
                "--mount",
                "type=volume,source=conf,target=/c,readonly",
                "bb",
                "sh",
                "-c",
                "cat /c/mine; touch /c/x 2>/dev/null || echo read-only"
            ]
        ),
        "kept\nread-only\n"
    );
    let insp: serde_json::Value =
        serde_json::from_str(&ok(root, &["volume", "inspect", "conf"])).unwrap();
    let mountpoint = insp[0]["Mountpoint"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(Path::new(&mountpoint).join("mine")).unwrap(),
        "kept\n"
    );
    // The image's VOLUME gets an anonymous volume; --volumes-from shares it; rm -v removes it.
    let id = ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "owner",
            "bb:custom",
            "sh",
            "-c",
            "echo from-owner > /var/spool/f; exec sleep 100",
        ],
    )
    .trim()
    .to_owned();
    let mounts = inspect(root, "owner")["Mounts"].clone();
    assert_eq!(mounts[0]["Destination"], "/var/spool");
    assert_eq!(mounts[0]["Type"], "volume");
    let anon = mounts[0]["Name"].as_str().unwrap().to_owned();
    assert_eq!(anon.len(), 64);
    eventually(5, "the owner's write", || {
        rbuild(
            root,
            &[
                "run",
                "--rm",
                "--volumes-from",
                "owner:ro",
                "bb",
                "cat",
                "/var/spool/f",
            ],
        )
        .stdout
            == b"from-owner\n"
    });
    let in_use = rbuild(root, &["volume", "rm", &anon]);
    assert_eq!(in_use.status.code(), Some(1));
    assert!(text(&in_use.stderr).contains("in use"));
    ok(root, &["rm", "-f", "-v", "owner"]);
    assert_gone(root, &id);
    assert_eq!(
        ok(root, &["volume", "ls", "-q"]),
        "conf\n",
        "rm -v removed the anonymous volume"
    );
    ok(root, &["volume", "rm", "conf"]);
    assert_eq!(ok(root, &["volume", "ls", "-q"]), "");
}

#[test]
fn commit_makes_a_layer_of_the_changes_and_export_a_whole_rootfs() {
    let Some(tmp) = setup("commit", &[]) else {
        return;
    };
    let root = tmp.path();
    let id = ok(
        root,
        &[
            "run",
            "--name",
            "cm",
            "bb",
            "sh",
            "-c",
            "echo committed > /root/note; rm /bin/ls",
        ],
    )
    .trim()
    .to_owned();
    assert_eq!(id, "", "a foreground run prints the command's output only");
    let image = ok(
        root,
        &[
            "commit",
            "-m",
            "add note",
            "-c",
            "ENV X=1",
            "cm",
            "bb:committed",
        ],
    );
    assert!(image.trim().starts_with("sha256:"), "{image}");
    let layers: serde_json::Value =
        serde_json::from_str(&ok(root, &["inspect", "--type", "image", "bb:committed"])).unwrap();
    assert_eq!(
        layers[0]["RootFS"]["Layers"].as_array().unwrap().len(),
        2,
        "one new layer"
    );
    assert_eq!(
        ok(
            root,
            &[
                "run",
                "--rm",
                "bb:committed",
                "sh",
                "-c",
                "cat /root/note; test -e /bin/ls || echo no-ls; echo $X; test -s /etc/hosts && echo hosts"
            ]
        ),
        "committed\nno-ls\n1\nhosts\n"
    );
    let history = ok(root, &["history", "bb:committed"]);
    assert!(
        history
            .lines()
            .nth(1)
            .is_some_and(|l| l.ends_with("add note")),
        "{history}"
    );
    let tar = tmp.path().join("export.tar");
    ok(root, &["export", "-o", tar.to_str().unwrap(), "cm"]);
    let list = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let list = text(&list.stdout);
    assert!(list.lines().any(|l| l == "./root/note"), "{list}");
    assert!(list.lines().any(|l| l == "./bin/busybox"));
    assert!(
        !list.lines().any(|l| l == "./bin/ls"),
        "the deletion is applied"
    );
    // The export is a rootfs tarball docker imports (when the peer is there).
    if common::have_peer("docker", &["version"]) {
        let imported = Command::new("docker")
            .args(["import", tar.to_str().unwrap(), "rbuild-test/exported:1"])
            .output()
            .unwrap();
        assert!(imported.status.success(), "{}", text(&imported.stderr));
        let out = Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "rbuild-test/exported:1",
                "cat",
                "/root/note",
            ])
            .output()
            .unwrap();
        assert_eq!(text(&out.stdout), "committed\n", "{}", text(&out.stderr));
        let _ = Command::new("docker")
            .args(["rmi", "rbuild-test/exported:1"])
            .output();
    }
    let cid = inspect(root, "cm")["Id"].as_str().unwrap().to_owned();
    ok(root, &["rm", "cm"]);
    assert_gone(root, &cid);
}

#[test]
fn cp_copies_out_and_in_without_leaving_the_container() {
    let Some(tmp) = setup("cp", &[]) else {
        return;
    };
    let root = tmp.path();
    let local = tmp.path().join("local.txt");
    std::fs::write(&local, "from-host\n").unwrap();
    let id = ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "cpc",
            "bb",
            "sh",
            "-c",
            "ln -s / /tmp/escape; echo inside > /tmp/in.txt; exec sleep 100",
        ],
    )
    .trim()
    .to_owned();
    let out = tmp.path().join("out.txt");
    eventually(5, "the file to copy", || {
        rbuild(root, &["cp", "cpc:/tmp/in.txt", out.to_str().unwrap()])
            .status
            .success()
    });
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "inside\n");
    ok(root, &["cp", local.to_str().unwrap(), "cpc:/tmp/"]);
    assert_eq!(
        ok(root, &["exec", "cpc", "cat", "/tmp/local.txt"]),
        "from-host\n"
    );
    // A link to / inside the container is the container's /, not the host's.
    let marker = format!("rbuild-cp-test-{}", &id[..12]);
    ok(
        root,
        &[
            "cp",
            local.to_str().unwrap(),
            &format!("cpc:/tmp/escape/{marker}"),
        ],
    );
    assert!(
        !Path::new("/").join(&marker).exists(),
        "cp escaped to the host"
    );
    assert_eq!(
        ok(root, &["exec", "cpc", "cat", &format!("/{marker}")]),
        "from-host\n"
    );
    // Stopped: read from the layers and the changes, write into the changes.
    ok(root, &["stop", "-t", "0", "cpc"]);
    ok(root, &["cp", local.to_str().unwrap(), "cpc:/etc/"]);
    let etc = tmp.path().join("etc-out");
    ok(root, &["cp", "cpc:/etc", etc.to_str().unwrap()]);
    assert!(etc.join("passwd").is_file(), "the image's files");
    assert_eq!(
        std::fs::read_to_string(etc.join("local.txt")).unwrap(),
        "from-host\n"
    );
    let missing = rbuild(root, &["cp", "cpc:/no/such", etc.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
    ok(root, &["rm", "cpc"]);
    assert_gone(root, &id);
}

#[test]
fn published_udp_ports_relay_datagrams_both_ways() {
    let Some(tmp) = setup("udp ports", &[]) else {
        return;
    };
    let root = tmp.path();
    let id = ok(
        root,
        &[
            "run",
            "-d",
            "-p",
            "127.0.0.1:0:9999/udp",
            "bb",
            "sleep",
            "100",
        ],
    )
    .trim()
    .to_owned();
    let line = ok(root, &["port", &id]);
    let port: u16 = line
        .trim()
        .strip_prefix("9999/udp -> 127.0.0.1:")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    let pid = inspect(root, &id)["State"]["Pid"].as_i64().unwrap();
    // An echo server in the container's network namespace (busybox has none for UDP).
    let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('127.0.0.1',9999))\nprint('up',flush=True)\nwhile True:\n d,a=s.recvfrom(65536)\n s.sendto(b'echo:'+d,a)\n";
    let Ok(mut server) = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["python3", "-c", echo])
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("skipped the UDP relay: no nsenter/python3");
        ok(root, &["rm", "-f", &id]);
        return;
    };
    let mut up = [0u8; 3];
    std::io::Read::read_exact(server.stdout.as_mut().unwrap(), &mut up).unwrap();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for i in 0..20 {
        let msg = format!("ping {i}");
        client.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], format!("echo:{msg}").as_bytes());
    }
    let _ = server.kill();
    let _ = server.wait();
    ok(root, &["rm", "-f", &id]);
    // The relay (and its flow's socket) closed with the container: the port binds again.
    std::net::UdpSocket::bind(("127.0.0.1", port)).expect("the published UDP port is free again");
    assert_gone(root, &id);
}

/// Run rbuild with `input` on its standard input; killed (and the test failed) if it has
/// not ended within `secs` seconds.
fn with_input(root: &Path, args: &[&str], input: &str, secs: u64) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let until = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "rbuild {args:?} did not end within {secs} s: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn attach_and_start_i_feed_stdin_to_interactive_containers() {
    let Some(tmp) = setup("attach stdin", &[]) else {
        return;
    };
    let root = tmp.path();
    // create -i is StdinOnce: the end of start -a -i's input ends cat.
    let cat = ok(root, &["create", "-i", "--name", "cat1", "bb", "cat"])
        .trim()
        .to_owned();
    assert_eq!(inspect(root, "cat1")["Config"]["StdinOnce"], true);
    let started = with_input(root, &["start", "-a", "-i", "cat1"], "hello\n", 30);
    assert_eq!(started.status.code(), Some(0), "{}", text(&started.stderr));
    assert_eq!(text(&started.stdout), "hello\n");
    assert_eq!(ok(root, &["logs", "cat1"]), "hello\n");
    // run -d -i keeps stdin open until an attacher writes to it.
    let reader = ok(
        root,
        &["run", "-d", "-i", "bb", "sh", "-c", "read x; echo got $x"],
    )
    .trim()
    .to_owned();
    assert_eq!(inspect(root, &reader)["Config"]["StdinOnce"], false);
    assert_eq!(inspect(root, &reader)["State"]["Status"], "running");
    let attached = with_input(root, &["attach", &reader], "line1\n", 30);
    assert_eq!(
        attached.status.code(),
        Some(0),
        "{}",
        text(&attached.stderr)
    );
    assert_eq!(text(&attached.stdout), "got line1\n");
    assert_eq!(ok(root, &["logs", &reader]), "got line1\n");
    // Without StdinOnce, one attacher's end of input does not close stdin: a second
    // attacher's line is read too.
    let two = ok(
        root,
        &[
            "run",
            "-d",
            "-i",
            "bb",
            "sh",
            "-c",
            "read a; echo first $a; read b; echo both $a $b",
        ],
    )
    .trim()
    .to_owned();
    let first = {
        let (root, two) = (root.to_owned(), two.clone());
        std::thread::spawn(move || with_input(&root, &["attach", &two], "one\n", 60))
    };
    eventually(30, "the first line read", || {
        ok(root, &["logs", &two]).contains("first one")
    });
    let second = with_input(root, &["attach", &two], "two\n", 30);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(text(&second.stdout), "both one two\n");
    let first = first.join().unwrap();
    assert_eq!(first.status.code(), Some(0));
    assert!(text(&first.stdout).ends_with("both one two\n"));
    // With a terminal, input is typed into it (echoed back, as a terminal does).
    let shell = ok(root, &["run", "-d", "-i", "-t", "bb", "sh"])
        .trim()
        .to_owned();
    let typed = with_input(
        root,
        &["attach", &shell],
        "echo in-tty-$((6*7))\nexit 3\n",
        30,
    );
    assert_eq!(typed.status.code(), Some(3), "{}", text(&typed.stderr));
    assert!(
        text(&typed.stdout).contains("in-tty-42\r\n"),
        "{}",
        text(&typed.stdout)
    );
    // The detach keys (ctrl-p ctrl-q) leave a container with a terminal running; status 1.
    let kept = ok(root, &["run", "-d", "-i", "-t", "bb", "sh"])
        .trim()
        .to_owned();
    let left = with_input(
        root,
        &["attach", &kept],
        "echo before\n\x10\x11exit 9\n",
        30,
    );
    assert_eq!(left.status.code(), Some(1), "{}", text(&left.stdout));
    assert!(text(&left.stderr).contains("read escape sequence"));
    assert_eq!(inspect(root, &kept)["State"]["Status"], "running");
    let custom = with_input(
        root,
        &["attach", "--detach-keys", "ctrl-a", &kept],
        "echo again-$((2+2))\nexit 6\n",
        30,
    );
    assert_eq!(custom.status.code(), Some(6), "{}", text(&custom.stderr));
    assert!(text(&custom.stdout).contains("again-4\r\n"));
    // --no-stdin leaves the container's stdin alone.
    let waiting = ok(
        root,
        &["run", "-d", "-i", "bb", "sh", "-c", "read x; exit 4"],
    )
    .trim()
    .to_owned();
    let detached = {
        let (root, waiting) = (root.to_owned(), waiting.clone());
        std::thread::spawn(move || {
            with_input(&root, &["attach", "--no-stdin", &waiting], "ignored\n", 60)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(inspect(root, &waiting)["State"]["Status"], "running");
    let fed = with_input(root, &["attach", &waiting], "go\n", 30);
    assert_eq!(fed.status.code(), Some(4));
    assert_eq!(detached.join().unwrap().status.code(), Some(4));
    for id in [&cat, &reader, &two, &waiting, &shell, &kept] {
        assert!(
            !root
                .join("containers")
                .join(id)
                .join("attach.sock")
                .exists()
        );
    }
    ok(root, &["rm", &cat, &reader, &two, &waiting, &shell, &kept]);
    for id in [&cat, &reader, &two, &waiting, &shell, &kept] {
        assert_gone(root, id);
    }
}

#[test]
fn wait_returns_at_the_first_exit_and_autostart_keeps_user_stops() {
    let Some(tmp) = setup("restart policies", &[]) else {
        return;
    };
    let root = tmp.path();
    let flapping = ok(
        root,
        &[
            "run",
            "-d",
            "--restart",
            "always",
            "bb",
            "sh",
            "-c",
            "sleep 0.2; exit 7",
        ],
    )
    .trim()
    .to_owned();
    let waited = with_input(root, &["wait", &flapping], "", 30);
    assert_eq!(text(&waited.stdout), "7\n", "{}", text(&waited.stderr));
    eventually(30, "a restart after the wait", || {
        inspect(root, &flapping)["RestartCount"].as_u64() >= Some(1)
    });
    ok(root, &["rm", "-f", &flapping]);
    assert_gone(root, &flapping);
    // dockerd's start (here: autostart, at boot) starts `always` containers a user
    // stopped, not `unless-stopped` ones; both come back if they went down on their own.
    let run = |policy: &str, name: &str| {
        ok(
            root,
            &[
                "run",
                "-d",
                "--restart",
                policy,
                "--name",
                name,
                "bb",
                "sleep",
                "1000",
            ],
        )
        .trim()
        .to_owned()
    };
    let always = run("always", "always1");
    let unless = run("unless-stopped", "unless1");
    let crashed = run("unless-stopped", "crashed1");
    let never = run("no", "never1");
    assert_eq!(
        inspect(root, &unless)["HostConfig"]["RestartPolicy"],
        serde_json::json!({"Name": "unless-stopped", "MaximumRetryCount": 0})
    );
    ok(root, &["stop", "-t", "0", &always, &unless, &never]);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("containers").join(&crashed).join("state.json"))
            .unwrap(),
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(state["monitor_pid"].as_i64().unwrap() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually(10, "the crashed container to be dead", || {
        inspect(root, &crashed)["State"]["Status"] == "dead"
    });
    let started = ok(root, &["container", "autostart"]);
    let mut started: Vec<&str> = started.lines().collect();
    started.sort();
    let mut expected = vec![always.as_str(), crashed.as_str()];
    expected.sort();
    assert_eq!(started, expected);
    assert_eq!(inspect(root, &always)["State"]["Status"], "running");
    assert_eq!(inspect(root, &crashed)["State"]["Status"], "running");
    assert_eq!(inspect(root, &unless)["State"]["Status"], "exited");
    assert_eq!(inspect(root, &never)["State"]["Status"], "exited");
    assert_eq!(ok(root, &["container", "autostart"]), "", "nothing more");
    ok(root, &["rm", "-f", &always, &unless, &crashed, &never]);
    for id in [&always, &unless, &crashed, &never] {
        assert_gone(root, id);
    }
}

#[test]
fn images_containers_use_survive_rmi_and_prune() {
    let Some(tmp) = setup("rmi conflicts", &["ENV MARK=custom"]) else {
        return;
    };
    let root = tmp.path();
    let image = inspect_image_id(root, "bb:custom");
    let user = ok(
        root,
        &[
            "create",
            "--name",
            "user1",
            "bb:custom",
            "sh",
            "-c",
            "echo $MARK",
        ],
    )
    .trim()
    .to_owned();
    let refused = rbuild(root, &["rmi", "bb:custom"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains(&format!(
            "unable to remove repository reference \"bb:custom\" (must force) - container {} is using its referenced image {}",
            &user[..12],
            &image[7..19]
        )),
        "{}",
        text(&refused.stderr)
    );
    let by_id = rbuild(root, &["rmi", &image]);
    assert_eq!(by_id.status.code(), Some(1));
    assert!(
        text(&by_id.stderr).contains("(must be forced) - image is being used by stopped container"),
        "{}",
        text(&by_id.stderr)
    );
    let live = ok(root, &["run", "-d", "bb:custom", "sleep", "1000"])
        .trim()
        .to_owned();
    let forced = rbuild(root, &["rmi", "-f", &image]);
    assert_eq!(forced.status.code(), Some(1));
    assert!(
        text(&forced.stderr).contains(&format!(
            "(cannot be forced) - image is being used by running container {}",
            &live[..12]
        )),
        "{}",
        text(&forced.stderr)
    );
    ok(root, &["rm", "-f", &live]);
    // Forced with a stopped container: the name goes, the image stays (dangling).
    assert_eq!(
        ok(root, &["rmi", "-f", "bb:custom"]),
        "Untagged: bb:custom\n"
    );
    assert!(!ok(root, &["images"]).contains("custom"));
    let pruned = ok(root, &["image", "prune", "-f"]);
    assert!(!pruned.contains(&image), "{pruned}");
    assert_eq!(inspect_image_id(root, &image), image, "still stored");
    assert_eq!(ok(root, &["start", "-a", "user1"]), "custom\n");
    ok(root, &["rm", &user]);
    assert_gone(root, &user);
    let pruned = ok(root, &["image", "prune", "-f"]);
    assert!(pruned.contains(&format!("deleted: {image}")), "{pruned}");
    assert_eq!(
        rbuild(root, &["inspect", "--type", "image", &image])
            .status
            .code(),
        Some(1)
    );
}

fn inspect_image_id(root: &Path, name: &str) -> String {
    let out = ok(root, &["inspect", "--type", "image", name]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["Id"].as_str().unwrap().to_owned()
}
