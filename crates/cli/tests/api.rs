//! The Engine API service (`rbuild system service`) driven by real clients: the docker 28 CLI
//! with `DOCKER_HOST` at the service's socket, the Docker SDK for Python, and raw HTTP for
//! bad requests.
#![allow(clippy::print_stderr)]

mod api_support;
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api_support::{DOCKER, Service};
use common::{busybox_image, peers_required, rbuild_ok};

#[test]
fn docker_cli_version_info_images_and_containers() {
    let Some(s) = Service::start() else { return };
    // version: the server part is rbuild's, at the API version it serves.
    let v = s.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Platform.Name}}",
    ]);
    assert_eq!(v.trim(), "1.41 rbuild");
    let info = s.ok(&["info", "--format", "{{.Images}} {{.Driver}} {{.OSType}}"]);
    assert_eq!(info.trim(), "1 overlay2 linux");
    let images = s.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), "busybox:latest");

    // run --rm: output and exit code through attach and wait.
    let out = s.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_eq!(s.ok(&["ps", "-aq"]).trim(), "", "--rm left a container");

    let tty = s.ok(&["run", "--rm", "-t", "busybox", "tty"]);
    assert!(
        tty.starts_with("/dev/pts/") && tty.ends_with("\r\n"),
        "{tty:?}"
    );

    // run -i: piped stdin reaches the container, its end ends `cat`.
    let out = s.docker_in(&["run", "--rm", "-i", "busybox", "cat"], b"piped\ninput\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\ninput\n");

    // run -d, logs (streams kept apart), exec, ps --format, inspect -f.
    let id = s.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exec sleep 300",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let t = Instant::now();
    let logs = loop {
        let l = s.docker(&["logs", "web"]);
        if !l.stdout.is_empty() && !l.stderr.is_empty() || t.elapsed() > Duration::from_secs(10) {
            break l;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "err\n");
    let tail = s.ok(&["logs", "--tail", "1", "-t", "web"]);
    assert!(
        tail.is_empty() || tail.ends_with("Z out\n") || tail.contains("Z "),
        "{tail:?}"
    );
    let out = s.docker(&["exec", "web", "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in-exec\n");
    let out = s.docker_in(&["exec", "-i", "web", "cat"], b"through exec\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "through exec\n",
        "{out:?}"
    );
    // With a TTY: a terminal inside the container, raw bytes (no framing) out.
    let tty = s.ok(&["exec", "-t", "web", "tty"]);
    assert!(
        tty.starts_with("/dev/pts/") && tty.ends_with("\r\n"),
        "{tty:?}"
    );
    let ps = s.ok(&["ps", "--format", "{{.Names}}|{{.Image}}|{{.Status}}"]);
    assert!(ps.starts_with("web|busybox|Up "), "{ps}");
    let st = s.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Running}} {{.Config.Image}}",
        "web",
    ]);
    assert_eq!(st.trim(), "running true busybox");
    let top = s.ok(&["top", "web"]);
    assert!(top.contains("sleep 300"), "{top}");

    // cp in both directions.
    let f = s.dir.path().join("f.txt");
    std::fs::write(&f, "copied in\n").unwrap();
    s.ok(&["cp", f.to_str().unwrap(), "web:/tmp/"]);
    assert_eq!(s.ok(&["exec", "web", "cat", "/tmp/f.txt"]), "copied in\n");
    let back = s.dir.path().join("back");
    s.ok(&["cp", "web:/tmp/f.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied in\n");

    // stop, rm.
    s.ok(&["stop", "-t", "1", "web"]);
    let st = s.ok(&["inspect", "-f", "{{.State.Status}}", "web"]);
    assert_eq!(st.trim(), "exited");
    let df = s.ok(&["system", "df"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("Containers") && l.split_whitespace().nth(1) == Some("1")),
        "{df}"
    );
    // The image the container was made from counts as active (the service reports each
    // image's containers, as dockerd does).
    assert!(
        df.lines()
            .any(|l| l.starts_with("Images") && l.split_whitespace().nth(2) == Some("1")),
        "{df}"
    );
    s.ok(&["rm", "web"]);
    assert_eq!(s.ok(&["ps", "-aq"]).trim(), "");
    s.ok(&["create", "--name", "pruned", "busybox", "true"]);
    let pruned = s.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    assert_eq!(s.ok(&["ps", "-aq"]).trim(), "");
    let out = s.docker(&["inspect", "web"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such"),
        "{out:?}"
    );
}

#[test]
fn docker_cli_build_tag_rmi_push_pull_and_volumes() {
    let Some(s) = Service::start() else { return };
    let ctx = s.dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "from the context\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS base\nARG GREETING=hi\nCOPY hello.txt /hello.txt\nRUN echo \"$GREETING\" > /greeting\nFROM base AS final\nLABEL built.by=api\nCMD [\"cat\", \"/greeting\", \"/hello.txt\"]\nFROM busybox AS other\nRUN false\n",
    )
    .unwrap();
    let out = s.ok(&[
        "build",
        "--build-arg",
        "GREETING=bonjour",
        "--target",
        "final",
        "--label",
        "x=y",
        "-t",
        "built:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(out.contains("Successfully tagged built:1"), "{out}");
    assert_eq!(
        s.ok(&["run", "--rm", "built:1"]),
        "bonjour\nfrom the context\n"
    );
    let labels = s.ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"built.by\"}} {{index .Config.Labels \"x\"}}",
        "built:1",
    ]);
    assert_eq!(labels.trim(), "api y");
    // A failing build fails the client.
    let bad = s.docker(&["build", "--target", "other", ctx.to_str().unwrap()]);
    assert!(!bad.status.success(), "{bad:?}");

    s.ok(&["tag", "built:1", "built:again"]);
    let tags = s.ok(&["images", "built", "--format", "{{.Tag}}"]);
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort_unstable();
    assert_eq!(tags, ["1", "again"]);
    let rmi = s.ok(&["rmi", "built:again"]);
    assert!(rmi.contains("Untagged: built:again"), "{rmi}");
    let out = s.docker(&["rmi", "nosuch:image"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such image"),
        "{out:?}"
    );

    // Volumes.
    s.ok(&["volume", "create", "--label", "k=v", "data"]);
    assert!(s.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "data"));
    assert_eq!(
        s.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Driver}} {{.Labels.k}}",
            "data"
        ])
        .trim(),
        "local v"
    );
    s.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    s.ok(&["volume", "rm", "data"]);
    assert!(!s.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "data"));

    // Push and pull against the Distribution registry.
    let Ok(reg) = std::env::var("RBUILD_TEST_REGISTRY") else {
        assert!(!peers_required(), "RBUILD_TEST_REGISTRY is not set");
        eprintln!("skipped push/pull: RBUILD_TEST_REGISTRY not set");
        return;
    };
    // docker login checks the credentials through the service (an open registry takes any).
    let out = s.docker_in(
        &["login", "-u", "me", "--password-stdin", &reg],
        b"secret\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"),
        "{out:?}"
    );
    let remote = format!("{reg}/api-test/built:1");
    s.ok(&["tag", "built:1", &remote]);
    let push = s.ok(&["push", &remote]);
    assert!(push.contains("digest: sha256:"), "{push}");
    s.ok(&["rmi", &remote]);
    let pull = s.ok(&["pull", &remote]);
    assert!(pull.contains("Downloaded newer image"), "{pull}");
    assert_eq!(
        s.ok(&["run", "--rm", &remote]),
        "bonjour\nfrom the context\n"
    );
}

#[test]
fn bad_requests_get_docker_errors_and_the_service_survives() {
    let Some(s) = Service::start() else { return };
    // Invalid JSON: 400 with docker's {"message"}.
    let body = "{not json";
    let (code, text) = s.raw(
        format!(
            "POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(code, 400, "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["message"].is_string());
    // No such container: 404; a name in use: 409; an unknown route: 404; a version too old: 400.
    let (code, _) =
        s.raw(b"GET /containers/nosuch/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(code, 404);
    let create = r#"{"Image":"busybox","Cmd":["true"]}"#;
    let req = format!(
        "POST /containers/create?name=dup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{create}",
        create.len()
    );
    assert_eq!(s.raw(req.as_bytes()).0, 201);
    let (code, text) = s.raw(req.as_bytes());
    assert_eq!(code, 409, "{text}");
    assert_eq!(
        s.raw(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .0,
        404
    );
    assert_eq!(
        s.raw(b"GET /v1.1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .0,
        400
    );
    // Malformed HTTP: 400 (from the HTTP layer), and a head larger than the bound.
    assert_eq!(s.raw(b"GARBAGE\r\n\r\n").0, 400);
    let huge = format!(
        "GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let (code, _) = s.raw(huge.as_bytes());
    assert!(code == 431 || code == 400 || code == 0, "{code}");
    // A body bigger than the JSON bound: 413.
    let big = "x".repeat(5 << 20);
    let (code, _) = s.raw(
        format!(
            "POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
            big.len()
        )
        .as_bytes(),
    );
    assert_eq!(code, 413);
    // Still serving.
    let (code, body) = s.raw(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((code, body.as_str()), (200, "OK"));
    // The socket is the owner's and its group's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.sock()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
}

#[test]
fn non_loopback_tcp_is_refused_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(dir.path())
        .args(["system", "service", "tcp://0.0.0.0:2375"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS") && err.contains("0.0.0.0:2375"), "{err}");
}

#[test]
fn idle_service_exits_after_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("idle.sock");
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(["system", "service", "--time", "1"])
        .arg(format!("unix://{}", sock.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(!sock.exists(), "the socket is removed at exit");
}

#[test]
fn events_of_other_processes_reach_docker_events_and_rbuild_events() {
    let Some(s) = Service::start() else { return };
    // A container made and run by the CLI (another process) and its detached monitor.
    rbuild_ok(&s.root(), &["run", "-d", "--name", "ev", "busybox", "true"]);
    let t = Instant::now();
    let mut seen = String::new();
    while t.elapsed() < Duration::from_secs(15) {
        seen = s.ok(&[
            "events",
            "--since",
            "1m",
            "--until",
            "0s",
            "--filter",
            "container=ev",
            "--format",
            "{{.Action}}",
        ]);
        if seen.contains("die") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let actions: Vec<&str> = seen.lines().collect();
    assert_eq!(actions, ["create", "start", "die"], "{seen}");
    let mine = rbuild_ok(
        &s.root(),
        &[
            "events",
            "--since",
            "1m",
            "--until",
            "0s",
            "--filter",
            "event=die",
            "--format",
            "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}",
        ],
    );
    assert_eq!(mine.trim(), "ev 0");

    // A restart policy's restarts, from the monitor: die, start, die, start, die.
    rbuild_ok(
        &s.root(),
        &[
            "run",
            "-d",
            "--name",
            "rs",
            "--restart",
            "on-failure:2",
            "busybox",
            "sh",
            "-c",
            "exit 1",
        ],
    );
    let t = Instant::now();
    let mut seen = String::new();
    while t.elapsed() < Duration::from_secs(20) {
        seen = s.ok(&[
            "events",
            "--since",
            "1m",
            "--until",
            "0s",
            "--filter",
            "container=rs",
            "--format",
            "{{.Action}} {{.Actor.Attributes.exitCode}}",
        ]);
        if seen.matches("die").count() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Go's template prints `<no value>` for the attribute events without an exit code lack.
    let actions: Vec<&str> = seen
        .lines()
        .map(|l| l.trim_end_matches("<no value>").trim())
        .collect();
    assert_eq!(
        actions,
        [
            "create", "start", "die 1", "start", "die 1", "start", "die 1"
        ],
        "{seen}"
    );

    // Streaming: an event that happens while `docker events` follows.
    let mut follow = Command::new(DOCKER)
        .args([
            "events",
            "--filter",
            "type=image",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .env("DOCKER_HOST", s.host())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    rbuild_ok(&s.root(), &["tag", "busybox", "streamed:1"]);
    let out = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(line.starts_with("tag "), "{line:?}");
    assert!(line.contains("streamed:1"), "{line:?}");
}

#[test]
fn docker_sdk_for_python() {
    let Some(s) = Service::start() else { return };
    let probe = Command::new("python3")
        .args(["-c", "import docker"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        assert!(
            !peers_required(),
            "RBUILD_TEST_PEERS=1 but the docker Python SDK is missing"
        );
        eprintln!("skipped: no docker Python SDK");
        return;
    }
    let ctx = s.dir.path().join("pyctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo py > /py\nCMD [\"cat\", \"/py\"]\n",
    )
    .unwrap();
    let script = format!(
        r#"
import docker, sys
c = docker.DockerClient(base_url={host:?}, timeout=60)
assert c.ping()
# containers.run: output, exit codes, detach, exec_run, logs, wait, remove
out = c.containers.run("busybox", ["sh", "-c", "echo hi"], remove=True)
assert out == b"hi\n", out
try:
    c.containers.run("busybox", ["sh", "-c", "exit 5"], remove=True)
    sys.exit("a failing container did not raise")
except docker.errors.ContainerError as e:
    assert e.exit_status == 5, e.exit_status
ct = c.containers.run("busybox", ["sh", "-c", "echo started; exec sleep 300"], detach=True, name="py")
r = ct.exec_run(["sh", "-c", "echo exec-out; exit 2"])
assert r.exit_code == 2 and r.output == b"exec-out\n", r
ct.reload()
assert ct.status == "running", ct.status
assert [x.name for x in c.containers.list()] == ["py"]
ct.kill()
res = ct.wait()
assert res["StatusCode"] == 137, res
assert b"started" in ct.logs(), ct.logs()
ct.remove()
assert c.containers.list(all=True) == []
# images: list, build
assert any("busybox:latest" in i.tags for i in c.images.list())
img, logs = c.images.build(path={ctx:?}, tag="pybuilt:1")
assert "pybuilt:1" in img.tags, img.tags
assert c.containers.run("pybuilt:1", remove=True) == b"py\n"
# volumes
v = c.volumes.create("pyvol", labels={{"a": "b"}})
assert c.volumes.get("pyvol").attrs["Labels"] == {{"a": "b"}}
assert "pyvol" in [x.name for x in c.volumes.list()]
v.remove()
assert "pyvol" not in [x.name for x in c.volumes.list()]
# networks: the predefined ones
assert sorted(n.name for n in c.networks.list()) == ["bridge", "host", "none"]
# images.pull (and push) against the Distribution registry, when there is one
reg = {reg:?}
if reg:
    c.images.get("pybuilt:1").tag(reg + "/py/built", "1")
    last = list(c.images.push(reg + "/py/built", tag="1", stream=True, decode=True))[-1]
    assert last["aux"]["Digest"].startswith("sha256:"), last
    c.images.remove(reg + "/py/built:1")
    pulled = c.images.pull(reg + "/py/built", tag="1")
    assert reg + "/py/built:1" in pulled.tags, pulled.tags
print("ok")
"#,
        host = s.host(),
        ctx = ctx.to_str().unwrap(),
        reg = std::env::var("RBUILD_TEST_REGISTRY").unwrap_or_default(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn version_system_df_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let v = rbuild_ok(&root, &["version", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["ApiVersion"], "1.41");
    if busybox_image(&root, "busybox:latest").is_none() {
        return;
    }
    rbuild_ok(&root, &["create", "--name", "stopped", "busybox", "true"]);
    rbuild_ok(&root, &["volume", "create", "kept"]);
    rbuild_ok(
        &root,
        &[
            "create",
            "--network",
            "none",
            "-v",
            "kept:/data",
            "busybox",
            "true",
        ],
    );
    rbuild_ok(&root, &["network", "create", "unused-net"]);
    let df = rbuild_ok(&root, &["system", "df"]);
    let row = |t: &str| -> Vec<String> {
        df.lines()
            .find(|l| l.starts_with(t))
            .unwrap_or_else(|| panic!("{t} in {df}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("Images")[1..3], ["1", "1"], "{df}");
    assert_eq!(row("Containers")[1..3], ["2", "0"], "{df}");
    assert_eq!(row("Local Volumes")[2..4], ["1", "1"], "{df}");
    let out = rbuild_ok(&root, &["system", "prune", "-f", "-a"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(out.contains("Deleted Networks:\nunused-net\n"), "{out}");
    assert!(!out.contains("Deleted Volumes:"), "{out}");
    assert!(out.contains("Deleted Images:"), "{out}");
    assert!(
        rbuild_ok(&root, &["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .all(|n| n != "unused-net")
    );
    assert_eq!(rbuild_ok(&root, &["volume", "ls", "-q"]).trim(), "kept");
    assert!(rbuild_ok(&root, &["ps", "-aq"]).trim().is_empty());
    assert!(rbuild_ok(&root, &["images", "-q"]).trim().is_empty());
}

#[test]
fn docker_cli_logs_follow_attach_and_networks() {
    let Some(s) = Service::start() else { return };
    s.ok(&[
        "run",
        "-d",
        "--name",
        "lf",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo $i; sleep 0.2; done; echo gone >&2; exit 7",
    ]);
    // Follows until the container ends, both streams.
    let out = s.docker(&["logs", "-f", "lf"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\n3\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "gone\n");
    s.ok(&["rm", "lf"]);
    s.ok(&[
        "run",
        "-d",
        "--name",
        "at",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; echo attached; exit 7",
    ]);
    let out = s.docker(&["attach", "at"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "attached\n");
    // Networks: the predefined ones, and a user-defined bridge a container joins by name.
    let nets = s.ok(&["network", "ls", "--format", "{{.Name}}"]);
    let mut nets: Vec<&str> = nets.lines().collect();
    nets.sort_unstable();
    assert_eq!(nets, ["bridge", "host", "none"]);
    s.ok(&["network", "create", "apinet"]);
    let driver = s.ok(&["network", "inspect", "-f", "{{.Driver}}", "apinet"]);
    assert_eq!(driver.trim(), "bridge");
    let out = s.ok(&[
        "run",
        "--rm",
        "--network",
        "apinet",
        "--network-alias",
        "svc",
        "busybox",
        "hostname",
    ]);
    assert!(!out.trim().is_empty(), "{out}");
    s.ok(&["network", "rm", "apinet"]);
    let out = s.docker(&["network", "inspect", "apinet"]);
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn a_gone_events_client_lets_the_service_go_idle() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ev.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(["system", "service", "--time", "1"])
        .arg(format!("unix://{}", sock.display()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Killed if the test fails.
    struct Reap(Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(child);
    let t = Instant::now();
    let mut s = loop {
        if let Ok(s) = UnixStream::connect(&sock) {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "service did not listen"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    s.write_all(b"GET /v1.41/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // While the stream is open, the service stays.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "exited under an open stream"
    );
    drop(s);
    let t = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the service did not go idle after its events client left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// docker-compose 1.29 (Debian's) drives the service: `up -d` of two services where one
/// reaches the other by service name and one publishes a port, `ps`, `logs`, and `down`
/// leaving no container or network behind.
#[test]
fn docker_compose_up_ps_logs_down() {
    let Some(s) = Service::start() else { return };
    if !common::have_peer("docker-compose", &["version"]) {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proj = s.dir.path().join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(
        proj.join("docker-compose.yml"),
        format!(
            "version: \"3.8\"\nservices:\n  web:\n    image: busybox:latest\n    command: sh -c \"echo hello-from-web > /tmp/index.html; httpd -f -p 80 -h /tmp\"\n    ports:\n      - \"127.0.0.1:{port}:80\"\n  client:\n    image: busybox:latest\n    command: sh -c \"until wget -q -O - http://web/index.html; do sleep 0.2; done; sleep 300\"\n    depends_on: [web]\n"
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let out = Command::new("docker-compose")
            .args(args)
            .current_dir(&proj)
            .env("DOCKER_HOST", s.host())
            .env("RBUILD_NETWORK_LINGER", "0.3")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    compose(&["up", "-d"]);
    let names = s.ok(&["ps", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["proj_client_1", "proj_web_1"]);
    // The published port answers from the host.
    let mut body = String::new();
    let t = Instant::now();
    while !body.contains("hello-from-web") && t.elapsed() < Duration::from_secs(20) {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = c.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
            body.clear();
            let _ = c.read_to_string(&mut body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(body.contains("hello-from-web"), "{body}");
    let ps = compose(&["ps"]);
    assert_eq!(ps.matches("proj_web_1").count(), 1, "{ps}");
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    // The client reached web by its service name.
    let t = Instant::now();
    let mut logs = String::new();
    while !logs.contains("hello-from-web") && t.elapsed() < Duration::from_secs(20) {
        logs = compose(&["logs", "client"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(logs.contains("hello-from-web"), "{logs}");
    compose(&["down"]);
    assert_eq!(s.ok(&["ps", "-a", "-q"]), "");
    let nets = s.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains("proj_default"), "{nets}");
}
