//! `rbuild compose`: `config` renders the loaded project (files merged, variables from the
//! shell and `.env`, profiles); bad files fail naming the file and key; a real sample project
//! (docker/awesome-compose's nginx-golang-postgres on busybox images) goes up — built image,
//! named volume, `.env`, replicas, names and aliases, a published port answering from the
//! host — is recreated only where its configuration changed, and goes down leaving nothing;
//! keys and verbs rbuild does not run yet say so before anything is made.
#![allow(clippy::print_stderr)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn compose(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("compose")
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn config_renders_the_merged_interpolated_project() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("compose.yaml"),
        "services:\n  web:\n    image: app:${TAG}\n    ports: ['8080:80']\n    depends_on: [db]\n  db:\n    image: db:${DB_TAG:-15}\n  debug:\n    image: tools\n    profiles: [debug]\nvolumes:\n  data: {}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("extra.yaml"),
        "services:\n  web:\n    environment: {MODE: prod}\n",
    )
    .unwrap();
    std::fs::write(d.join(".env"), "TAG=from-dotenv\n").unwrap();

    let yaml = stdout_ok(&compose(d, &["config"], &[("TAG", "from-shell")]));
    assert!(yaml.contains("image: app:from-shell"), "{yaml}");
    assert!(yaml.contains("image: db:15"), "{yaml}");
    assert!(!yaml.contains("tools"), "profile off: {yaml}");
    let name = d.file_name().unwrap().to_string_lossy().to_lowercase();
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(
        yaml.contains(&format!("name: {}", name.trim_start_matches(['-', '_']))),
        "{yaml}"
    );

    let merged = stdout_ok(&compose(
        d,
        &[
            "-f",
            "compose.yaml",
            "-f",
            "extra.yaml",
            "-p",
            "shop",
            "config",
            "--format",
            "json",
        ],
        &[],
    ));
    let v: serde_json::Value = serde_json::from_str(&merged).unwrap();
    assert_eq!(v["name"], "shop");
    assert_eq!(v["services"]["web"]["image"], "app:from-dotenv");
    assert_eq!(v["services"]["web"]["environment"]["MODE"], "prod");

    let services = stdout_ok(&compose(
        d,
        &["--profile", "debug", "config", "--services"],
        &[],
    ));
    assert_eq!(services, "db\ndebug\nweb\n");
    assert_eq!(
        stdout_ok(&compose(d, &["config", "--volumes"], &[])),
        "data\n"
    );
    assert_eq!(stdout_ok(&compose(d, &["config", "-q"], &[])), "");
}

#[test]
fn bad_files_fail_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  web:\n    image: a\n    restrat: always\n",
    )
    .unwrap();
    let out = compose(d, &["config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(
        err.contains("services.web") && err.contains("restrat"),
        "{err}"
    );

    std::fs::write(
        &file,
        "services:\n  web:\n    image: a:${TAG:?TAG is the release}\n",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&compose(d, &["config"], &[]).stderr).into_owned();
    assert!(
        err.contains("required variable TAG is missing a value: TAG is the release"),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    let err = String::from_utf8_lossy(&compose(empty.path(), &["config"], &[]).stderr).into_owned();
    assert!(err.contains("no configuration file provided"), "{err}");
}

#[test]
fn verbs_and_keys_not_run_yet_are_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("compose.yaml"),
        "services:\n  web:\n    image: a\n    logging:\n      driver: syslog\n  db:\n    image: b\n    deploy:\n      resources:\n        reservations:\n          memory: 1g\n",
    )
    .unwrap();
    for verb in ["events", "cp", "stats", "watch"] {
        let out = compose(d, &[verb, "web"], &[("RBUILD_ROOT", root_s)]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("rbuild compose {verb}: not supported yet")),
            "{err}"
        );
    }
    let out = compose(d, &["up", "-d", "web"], &[("RBUILD_ROOT", root_s)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("service \"web\": `logging.driver: syslog` is not supported yet"),
        "{err}"
    );
    let err = String::from_utf8_lossy(
        &compose(d, &["run", "--rm", "web"], &[("RBUILD_ROOT", root_s)]).stderr,
    )
    .into_owned();
    assert!(
        err.contains("`logging.driver: syslog` is not supported yet"),
        "{err}"
    );
    let err = String::from_utf8_lossy(
        &compose(d, &["up", "-d", "db"], &[("RBUILD_ROOT", root_s)]).stderr,
    )
    .into_owned();
    assert!(
        err.contains("`deploy.resources.reservations` is not supported yet"),
        "{err}"
    );
    std::fs::write(
        d.join("compose.yaml"),
        "services:\n  web:\n    image: a\n    networks: [n]\n    volumes: [v:/v]\nnetworks:\n  n:\n    ipam:\n      config:\n        - subnet: 10.9.0.0/16\n          ip_range: 10.9.1.0/24\nvolumes:\n  v:\n    driver: nfs\n",
    )
    .unwrap();
    let err =
        String::from_utf8_lossy(&compose(d, &["up", "-d"], &[("RBUILD_ROOT", root_s)]).stderr)
            .into_owned();
    assert!(
        err.contains("network \"n\": ipam ip_range and aux_addresses are not supported yet"),
        "{err}"
    );
    // Nothing was made: no container, network or volume records.
    for sub in ["containers", "volumes"] {
        let entries = std::fs::read_dir(root.path().join(sub))
            .map(|r| r.count())
            .unwrap_or(0);
        assert_eq!(entries, 0, "{sub}");
    }
    let err =
        String::from_utf8_lossy(&compose(dir.path(), &["frobnicate"], &[]).stderr).into_owned();
    assert!(err.contains("unknown command \"frobnicate\""), "{err}");
}

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

/// `rbuild --root ROOT compose ARGS` in `dir`, with `env`; the network hub ends a moment
/// after its last container.
fn rbc(root: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .arg("compose")
        .args(args)
        .current_dir(dir)
        .env("RBUILD_NETWORK_LINGER", "0.3")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Like [`rbc`], asserting success; (stdout, stderr).
fn rbc_ok(root: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let o = rbc(root, dir, args, env);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "compose {args:?}: {out}{err}");
    (out, err)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET /` on 127.0.0.1:`port`, once it contains `want` (or what came last).
fn http_get_until(port: u16, want: &str) -> String {
    let until = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < until {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            if body.contains(want) {
                return body;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    last
}

/// `ps --format json` of the project: one object per line.
fn ps_json(root: &Path, dir: &Path) -> Vec<serde_json::Value> {
    let (out, _) = rbc_ok(root, dir, &["ps", "-a", "--format", "json"], &[]);
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Processes whose command line mentions `root` (monitors, the hub, its uplink).
fn processes_of(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(root.to_str().unwrap()) {
            out.push(cmd);
        }
    }
    out
}

#[test]
fn a_sample_project_goes_up_changes_and_goes_down() {
    if !can_run("a_sample_project_goes_up_changes_and_goes_down") {
        return;
    }
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    if common::busybox_image(root, "busybox:local").is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // The directory's name is the project's, normalized as compose does.
    let dir = work.path().join("Nginx-Golang");
    copy_dir(
        &common::repo_root().join("testdata/compose/nginx-golang-postgres"),
        &dir,
    );
    let port = free_port().to_string();
    let env = [("PROXY_PORT", port.as_str()), ("GREETING", "bonjour")];

    // build: the services with `build:`, tagged PROJECT-SERVICE; up then uses the image.
    let (_, err) = rbc_ok(root, &dir, &["build", "-q"], &env);
    assert!(
        err.lines()
            .any(|l| l == "Image nginx-golang-backend  Built"),
        "{err}"
    );
    let (_, err) = rbc_ok(root, &dir, &["up", "-d"], &env);
    assert!(!err.contains("Building"), "{err}");
    for line in [
        "Network nginx-golang_default  Created",
        "Volume nginx-golang_db-data  Created",
        "Container nginx-golang-db-1  Started",
        "Container nginx-golang-backend-1  Started",
        "Container nginx-golang-backend-2  Started",
        "Container nginx-golang-proxy-1  Started",
    ] {
        assert!(err.lines().any(|l| l == line), "{line:?} in:\n{err}");
    }
    // Dependencies first: db before the backends (once its healthcheck passed:
    // `service_healthy`), the backends before the proxy.
    let at = |l: &str| err.find(l).unwrap_or_else(|| panic!("{l:?} in:\n{err}"));
    assert!(
        at("Container nginx-golang-db-1  Started") < at("Container nginx-golang-db-1  Waiting")
    );
    assert!(
        at("Container nginx-golang-db-1  Waiting") < at("Container nginx-golang-db-1  Healthy")
    );
    assert!(
        at("Container nginx-golang-db-1  Healthy")
            < at("Container nginx-golang-backend-1  Creating")
    );
    assert!(
        at("Container nginx-golang-backend-2  Started")
            < at("Container nginx-golang-proxy-1  Creating")
    );

    let ps = ps_json(root, &dir);
    let mut names: Vec<&str> = ps.iter().map(|c| c["Name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "nginx-golang-backend-1",
            "nginx-golang-backend-2",
            "nginx-golang-db-1",
            "nginx-golang-proxy-1"
        ]
    );
    for c in &ps {
        assert_eq!(c["State"], "running", "{c}");
        assert_eq!(c["Project"], "nginx-golang");
        let labels = c["Labels"].as_str().unwrap();
        assert!(
            labels.contains("com.docker.compose.project=nginx-golang"),
            "{labels}"
        );
        assert!(
            labels.contains(&format!(
                "com.docker.compose.service={}",
                c["Service"].as_str().unwrap()
            )),
            "{labels}"
        );
        assert!(
            labels.contains("com.docker.compose.config-hash="),
            "{labels}"
        );
        assert!(
            labels.contains("com.docker.compose.oneoff=False"),
            "{labels}"
        );
    }
    let db = ps
        .iter()
        .find(|c| c["Name"] == "nginx-golang-db-1")
        .unwrap();
    assert_eq!(db["Health"], "healthy", "{db}");
    assert!(
        db["Status"].as_str().unwrap().ends_with("(healthy)"),
        "{db}"
    );
    let (out, _) = rbc_ok(root, &dir, &["ps", "db"], &env);
    assert!(out.contains("(healthy)"), "{out}");
    let inspect = common::rbuild_ok(root, &["inspect", "nginx-golang-db-1"]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect[0]["State"]["Health"]["Status"], "healthy");
    assert_eq!(
        inspect[0]["Config"]["Healthcheck"]["Test"],
        serde_json::json!([
            "CMD",
            "wget",
            "-q",
            "-O",
            "/dev/null",
            "http://127.0.0.1:5432/ready"
        ])
    );
    // The file secret, read-only at /run/secrets/NAME.
    let (out, _) = rbc_ok(
        root,
        &dir,
        &["exec", "-T", "backend", "cat", "/run/secrets/db-password"],
        &env,
    );
    assert_eq!(out, "db-secret-from-file\n");
    let o = rbc(
        root,
        &dir,
        &[
            "exec",
            "-T",
            "db",
            "sh",
            "-c",
            "echo x > /run/secrets/db-password",
        ],
        &env,
    );
    assert!(!o.status.success(), "the secret is read-only");
    let backend2 = ps
        .iter()
        .find(|c| c["Name"] == "nginx-golang-backend-2")
        .unwrap();
    assert!(
        backend2["Labels"]
            .as_str()
            .unwrap()
            .contains("com.docker.compose.container-number=2")
    );
    assert_eq!(backend2["Image"], "nginx-golang-backend");

    // The published port answers from the host: the proxy's page, fetched from the
    // backend through its `api` alias, built with the build arg from the environment.
    let body = http_get_until(port.parse().unwrap(), "bonjour from the backend");
    assert!(body.contains("bonjour from the backend"), "{body}");
    // By service name from another container; the db's environment came from .env and
    // its data is on the named volume.
    let (out, _) = rbc_ok(
        root,
        &dir,
        &[
            "exec",
            "-T",
            "proxy",
            "wget",
            "-q",
            "-O",
            "-",
            "http://backend:8000/",
        ],
        &env,
    );
    assert_eq!(out, "bonjour from the backend\n");
    let (out, _) = rbc_ok(
        root,
        &dir,
        &[
            "exec",
            "-T",
            "backend",
            "wget",
            "-q",
            "-O",
            "-",
            "http://db:5432/ready",
        ],
        &env,
    );
    assert_eq!(out, "example:s3cret-from-dotenv\n");
    let vol = common::rbuild_ok(root, &["volume", "inspect", "nginx-golang_db-data"]);
    let vol: serde_json::Value = serde_json::from_str(&vol).unwrap();
    assert_eq!(
        vol[0]["Labels"]["com.docker.compose.project"],
        "nginx-golang"
    );
    assert_eq!(vol[0]["Labels"]["com.docker.compose.volume"], "db-data");
    let data = Path::new(vol[0]["Mountpoint"].as_str().unwrap()).join("ready");
    assert_eq!(
        std::fs::read_to_string(data).unwrap(),
        "example:s3cret-from-dotenv\n"
    );
    let net = common::rbuild_ok(root, &["network", "inspect", "nginx-golang_default"]);
    let net: serde_json::Value = serde_json::from_str(&net).unwrap();
    assert_eq!(net[0]["Labels"]["com.docker.compose.network"], "default");
    assert_eq!(
        net[0]["Labels"]["com.docker.compose.project"],
        "nginx-golang"
    );

    // logs: `service-N  | ` prefixes.
    let (out, _) = rbc_ok(root, &dir, &["logs", "db"], &env);
    assert_eq!(
        out,
        "db-1  | database system is ready to accept connections\n"
    );

    // images, port, top, ls.
    let (out, _) = rbc_ok(root, &dir, &["images"], &env);
    assert!(
        out.lines().any(|l| l.starts_with("nginx-golang-backend-2")
            && l.contains(" nginx-golang-backend ")
            && l.contains(" latest ")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("nginx-golang-db-1")
            && l.contains(" busybox ")
            && l.contains(" local ")),
        "{out}"
    );
    let (out, _) = rbc_ok(root, &dir, &["port", "proxy", "80"], &env);
    assert_eq!(out, format!("127.0.0.1:{port}\n"));
    let (out, _) = rbc_ok(root, &dir, &["top", "db"], &env);
    assert!(out.starts_with("nginx-golang-db-1\nUID"), "{out}");
    assert!(out.contains("httpd -f -p 5432"), "{out}");
    let (out, _) = rbc_ok(root, &dir, &["ls"], &env);
    assert!(
        out.lines()
            .any(|l| l.starts_with("nginx-golang") && l.contains("running(4)")),
        "{out}"
    );

    // run --rm: a one-off on the project's network, its status passed on, nothing left.
    let (out, _) = rbc_ok(
        root,
        &dir,
        &[
            "run",
            "--rm",
            "backend",
            "wget",
            "-q",
            "-O",
            "-",
            "http://db:5432/ready",
        ],
        &env,
    );
    assert_eq!(out, "example:s3cret-from-dotenv\n");
    let o = rbc(
        root,
        &dir,
        &["run", "--rm", "--no-deps", "db", "sh", "-c", "exit 3"],
        &env,
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let all = common::rbuild_ok(root, &["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!all.contains("-run-"), "{all}");
    // A detached one-off is kept (and goes with `down`).
    let (out, _) = rbc_ok(root, &dir, &["run", "-d", "--no-deps", "db", "true"], &env);
    assert!(out.starts_with("nginx-golang-db-run-"), "{out}");

    // A second up: only the proxy's configuration changed.
    let ids = |ps: &[serde_json::Value]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = ps
            .iter()
            .map(|c| {
                (
                    c["Name"].as_str().unwrap().to_owned(),
                    c["ID"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = ids(&ps);
    let env2 = [
        ("PROXY_PORT", port.as_str()),
        ("GREETING", "bonjour"),
        ("PROXY_VERSION", "2"),
    ];
    let (_, err) = rbc_ok(root, &dir, &["up", "-d"], &env2);
    for line in [
        "Container nginx-golang-db-1  Running",
        "Container nginx-golang-backend-1  Running",
        "Container nginx-golang-backend-2  Running",
        "Container nginx-golang-proxy-1  Recreated",
        "Container nginx-golang-proxy-1  Started",
    ] {
        assert!(err.lines().any(|l| l == line), "{line:?} in:\n{err}");
    }
    assert_eq!(err.matches("Recreate").count(), 2, "{err}");
    let after = ids(&ps_json(root, &dir));
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        assert_eq!(a != b, name == "nginx-golang-proxy-1", "{name}");
    }
    let body = http_get_until(port.parse().unwrap(), "bonjour from the backend");
    assert!(body.contains("bonjour from the backend"), "{body}");

    // down: containers and the network go, the volume stays.
    let (_, err) = rbc_ok(root, &dir, &["down"], &env2);
    assert!(
        err.lines()
            .any(|l| l == "Container nginx-golang-proxy-1  Removed"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l == "Network nginx-golang_default  Removed"),
        "{err}"
    );
    assert_eq!(common::rbuild_ok(root, &["ps", "-aq"]), "");
    assert!(!common::rbuild_ok(root, &["network", "ls"]).contains("nginx-golang"));
    assert!(common::rbuild_ok(root, &["volume", "ls", "-q"]).contains("nginx-golang_db-data"));
    // down -v: the volume too; --rmi local: the image compose built (not busybox:local).
    let o = rbc(root, &dir, &["down", "--rmi", "some"], &env2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid --rmi option \"some\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (_, err) = rbc_ok(root, &dir, &["down", "-v", "--rmi", "local"], &env2);
    assert!(
        err.lines()
            .any(|l| l == "Volume nginx-golang_db-data  Removed"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l == "Image nginx-golang-backend  Removed"),
        "{err}"
    );
    let images = common::rbuild_ok(root, &["images"]);
    assert!(!images.contains("nginx-golang-backend"), "{images}");
    assert!(images.contains("busybox"), "{images}");
    assert_eq!(common::rbuild_ok(root, &["volume", "ls", "-q"]), "");

    // Nothing left running or mounted.
    let until = Instant::now() + Duration::from_secs(10);
    while !processes_of(root).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        processes_of(root).is_empty(),
        "left: {:?}",
        processes_of(root)
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(root.to_str().unwrap()), "mounts left");
}

#[test]
fn attached_up_multiplexes_logs_and_stops_on_ctrl_c() {
    if !can_run("attached_up_multiplexes_logs_and_stops_on_ctrl_c") {
        return;
    }
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    if common::busybox_image(root, "busybox:local").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("compose.yaml"),
        "name: chat\nservices:\n  talker:\n    image: busybox:local\n    command: sh -c 'echo hello from talker; trap \"exit 0\" TERM; while :; do sleep 0.2; done'\n  echoer:\n    image: busybox:local\n    command: echo once\n    network_mode: none\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .args(["compose", "up"])
        .current_dir(d)
        .env("RBUILD_NETWORK_LINGER", "0.3")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            let _ = tx.send(text.clone());
        }
    });
    let until = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while Instant::now() < until
        && !(seen.contains("talker-1  | hello from talker\n")
            && seen.contains("echoer-1  | once\n"))
    {
        if let Ok(t) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = t;
        }
    }
    assert!(seen.contains("talker-1  | hello from talker\n"), "{seen}");
    assert!(seen.contains("echoer-1  | once\n"), "{seen}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("Gracefully stopping..."), "{err}");
    assert!(
        err.lines().any(|l| l == "Container chat-talker-1  Stopped"),
        "{err}"
    );
    let ps = ps_json(root, d);
    assert_eq!(ps.len(), 2);
    for c in &ps {
        assert_eq!(c["State"], "exited", "{c}");
    }
    rbc_ok(root, d, &["down"], &[]);
    assert_eq!(common::rbuild_ok(root, &["ps", "-aq"]), "");
}

#[test]
fn declared_external_and_addressed_networks() {
    if !can_run("declared_external_and_addressed_networks") {
        return;
    }
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    if common::busybox_image(root, "busybox:local").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("compose.yaml"),
        r#"name: multi
services:
  api:
    image: busybox:local
    command: httpd -f -p 80 -h /etc
    networks:
      back:
        ipv4_address: 172.31.9.10
        aliases: [backend-api]
      front: {}
  web:
    image: busybox:local
    command: sleep 3600
    init: true
    networks: [front]
  db:
    image: busybox:local
    command: sleep 3600
    init: true
    networks: [back, ext]
networks:
  front:
  back:
    ipam:
      config:
        - subnet: 172.31.9.0/24
  ext:
    external: true
    name: shared-net
"#,
    )
    .unwrap();
    // The external network is missing: an error, and nothing made.
    let o = rbc(root, d, &["up", "-d"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("network shared-net declared as external, but could not be found"),
        "{err}"
    );
    assert!(!common::rbuild_ok(root, &["network", "ls"]).contains("multi_"));
    common::rbuild_ok(root, &["network", "create", "shared-net"]);

    let (_, err) = rbc_ok(root, d, &["up", "-d"], &[]);
    assert!(
        err.lines().any(|l| l == "Network multi_back  Created"),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l == "Network multi_front  Created"),
        "{err}"
    );
    assert!(!err.contains("Network shared-net"), "{err}");
    let api_host = |args: &[&str]| rbc_ok(root, d, args, &[]).0;
    let hostname = api_host(&["exec", "-T", "api", "hostname"]);
    // On front by service name; on back by alias and by its fixed address.
    assert_eq!(
        api_host(&[
            "exec",
            "-T",
            "web",
            "wget",
            "-q",
            "-O",
            "-",
            "http://api/hostname"
        ]),
        hostname
    );
    assert_eq!(
        api_host(&[
            "exec",
            "-T",
            "db",
            "wget",
            "-q",
            "-O",
            "-",
            "http://backend-api/hostname"
        ]),
        hostname
    );
    assert_eq!(
        api_host(&[
            "exec",
            "-T",
            "db",
            "wget",
            "-q",
            "-O",
            "-",
            "http://172.31.9.10/hostname"
        ]),
        hostname
    );
    // web is not on back: the alias there does not reach it.
    let o = rbc(
        root,
        d,
        &[
            "exec",
            "-T",
            "web",
            "wget",
            "-T",
            "2",
            "-q",
            "-O",
            "-",
            "http://backend-api/hostname",
        ],
        &[],
    );
    assert!(!o.status.success());
    let net: serde_json::Value = serde_json::from_str(&common::rbuild_ok(
        root,
        &["network", "inspect", "shared-net"],
    ))
    .unwrap();
    assert_eq!(
        net[0]["Containers"].as_object().map(|m| m.len()),
        Some(1),
        "{net}"
    );

    // --scale over the file's replicas, and back.
    let (_, err) = rbc_ok(root, d, &["up", "-d", "--wait", "--scale", "db=2"], &[]);
    assert!(
        err.lines().any(|l| l == "Container multi-db-2  Started"),
        "{err}"
    );
    let (_, err) = rbc_ok(root, d, &["up", "-d"], &[]);
    assert!(
        err.lines().any(|l| l == "Container multi-db-2  Removed"),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l == "Container multi-db-1  Running"),
        "{err}"
    );

    // pause, unpause, kill.
    let state = |svc: &str| -> String {
        ps_json(root, d)
            .into_iter()
            .find(|c| c["Service"] == svc)
            .map(|c| c["State"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (_, err) = rbc_ok(root, d, &["pause", "db"], &[]);
    assert!(
        err.lines().any(|l| l == "Container multi-db-1  Paused"),
        "{err}"
    );
    assert_eq!(state("db"), "paused");
    rbc_ok(root, d, &["unpause", "db"], &[]);
    assert_eq!(state("db"), "running");
    let (_, err) = rbc_ok(root, d, &["kill", "db"], &[]);
    assert!(
        err.lines().any(|l| l == "Container multi-db-1  Killed"),
        "{err}"
    );
    // The monitor records the end a moment after the signal.
    let until = Instant::now() + Duration::from_secs(5);
    while state("db") != "exited" && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(state("db"), "exited");
    let (_, err) = rbc_ok(root, d, &["up", "-d"], &[]);
    assert!(
        err.lines().any(|l| l == "Container multi-db-1  Started"),
        "{err}"
    );

    // web leaves the file: an orphan, warned about, removed with --remove-orphans.
    let text = std::fs::read_to_string(d.join("compose.yaml")).unwrap();
    let (a, b) = (text.find("  web:").unwrap(), text.find("  db:").unwrap());
    std::fs::write(
        d.join("compose.yaml"),
        format!("{}{}", &text[..a], &text[b..]),
    )
    .unwrap();
    let (_, err) = rbc_ok(root, d, &["up", "-d"], &[]);
    assert!(
        err.contains("Found orphan containers ([multi-web-1])"),
        "{err}"
    );
    let (_, err) = rbc_ok(root, d, &["up", "-d", "--remove-orphans"], &[]);
    assert!(
        err.lines().any(|l| l == "Container multi-web-1  Removed"),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l == "Container multi-api-1  Running"),
        "{err}"
    );

    let (_, err) = rbc_ok(root, d, &["down"], &[]);
    assert!(
        err.lines().any(|l| l == "Network multi_back  Removed"),
        "{err}"
    );
    // The external network is not the project's: it stays.
    let nets = common::rbuild_ok(root, &["network", "ls"]);
    assert!(
        nets.contains("shared-net") && !nets.contains("multi_"),
        "{nets}"
    );
    common::rbuild_ok(root, &["network", "rm", "shared-net"]);
}

#[test]
fn pull_and_push_go_through_the_registry() {
    let Ok(registry) = std::env::var("RBUILD_TEST_REGISTRY") else {
        assert!(!common::peers_required(), "RBUILD_TEST_REGISTRY is not set");
        eprintln!("skipped: no test registry");
        return;
    };
    if !can_run("pull_and_push_go_through_the_registry") {
        return;
    }
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    if common::busybox_image(root, "busybox:local").is_none() {
        return;
    }
    let base = format!("{registry}/compose-test/busybox:1");
    let built = format!("{registry}/compose-test/built:1");
    common::rbuild_ok(root, &["tag", "busybox:local", &base]);
    common::rbuild_ok(root, &["push", "-q", &base]);
    common::rbuild_ok(root, &["rmi", &base]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("app")).unwrap();
    std::fs::write(
        d.join("app/Dockerfile"),
        "FROM busybox:local\nRUN echo built > /built\n",
    )
    .unwrap();
    std::fs::write(
        d.join("compose.yaml"),
        format!(
            "name: transfer\nservices:\n  base:\n    image: {base}\n  app:\n    build: app\n    image: {built}\n"
        ),
    )
    .unwrap();
    let (_, err) = rbc_ok(root, d, &["pull"], &[]);
    assert!(err.lines().any(|l| l == "base Pulled"), "{err}");
    assert!(
        err.lines()
            .any(|l| l == "app Skipped - No image to be pulled"),
        "{err}"
    );
    common::rbuild_ok(root, &["inspect", &base]);
    rbc_ok(root, d, &["build", "-q"], &[]);
    let (_, err) = rbc_ok(root, d, &["push"], &[]);
    assert!(
        err.contains(&format!("app Pushed {built}@sha256:")),
        "{err}"
    );
    // What was pushed comes back.
    common::rbuild_ok(root, &["rmi", &built]);
    common::rbuild_ok(root, &["pull", "-q", &built]);
    let out = common::rbuild_ok(
        root,
        &["run", "--rm", "--network", "none", &built, "cat", "/built"],
    );
    assert_eq!(out, "built\n");
}

/// The cgroup limits of the running container `name` as the host sees them: (memory bytes,
/// CPU quota per 100 ms period in µs, pids) — cgroup v1 or v2.
fn cgroup_limits(root: &Path, name: &str) -> (String, String, String) {
    let v = common::rbuild_ok(root, &["inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    let pid = v[0]["State"]["Pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path_of = |ctrl: &str| -> Option<String> {
        cg.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == ctrl).then(|| path.to_owned())
        })
    };
    let read = |p: String| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    match path_of("memory") {
        Some(mem) => (
            read(format!("/sys/fs/cgroup/memory{mem}/memory.limit_in_bytes")),
            read(format!(
                "/sys/fs/cgroup/cpu{}/cpu.cfs_quota_us",
                path_of("cpu").unwrap()
            )),
            read(format!(
                "/sys/fs/cgroup/pids{}/pids.max",
                path_of("pids").unwrap()
            )),
        ),
        None => {
            let p = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            let cpu = read(format!("/sys/fs/cgroup{p}/cpu.max"));
            (
                read(format!("/sys/fs/cgroup{p}/memory.max")),
                cpu.split_whitespace().next().unwrap().to_owned(),
                read(format!("/sys/fs/cgroup{p}/pids.max")),
            )
        }
    }
}

#[test]
fn service_keys_reach_the_containers() {
    if !can_run("service_keys_reach_the_containers") {
        return;
    }
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    if common::busybox_image(root, "busybox:local").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    std::fs::write(d.join("app.env"), "FROM_FILE=yes\n").unwrap();
    std::fs::write(
        d.join("compose.yaml"),
        format!(
            r#"name: keys
services:
  tool:
    image: busybox:local
    entrypoint: ["sh", "-c"]
    command: ["trap 'exit 0' USR1; while :; do sleep 0.1; done"]
    env_file: [app.env]
    init: true
    working_dir: /scratch
    hostname: toolbox
    read_only: true
    tmpfs: [/scratch]
    volumes:
      - type: tmpfs
        target: /cache
    cap_drop: [ALL]
    cap_add: [NET_BIND_SERVICE]
    stop_signal: SIGUSR1
    stop_grace_period: 3s
    extra_hosts: ["db.example:10.1.2.3"]
    dns: [10.0.0.53]
    tty: true
    stdin_open: true
    labels: {{tier: tools}}
    restart: on-failure:2
    deploy:
      resources:
        limits: {{memory: 64m, cpus: '0.5', pids: 40}}
  web:
    image: busybox:local
    command: sh -c 'mkdir -p /www && echo long syntax > /www/index.html && exec httpd -f -p 80 -h /www'
    expose: ["9000"]
    ports:
      - target: 80
        published: "{port}"
        host_ip: 127.0.0.1
        protocol: tcp
  who:
    image: busybox:local
    command: sleep 60
    user: "1000:1000"
    working_dir: /tmp
    network_mode: none
"#
        ),
    )
    .unwrap();
    rbc_ok(root, d, &["up", "-d"], &[]);
    let sh = |svc: &str, script: &str| -> String {
        rbc_ok(root, d, &["exec", "-T", svc, "sh", "-c", script], &[]).0
    };
    // env_file, working_dir, hostname, extra_hosts, dns, tmpfs (short and long), read_only.
    assert_eq!(
        sh("tool", "echo $FROM_FILE; pwd; hostname"),
        "yes\n/scratch\ntoolbox\n"
    );
    assert!(sh("tool", "cat /etc/hosts").contains("10.1.2.3\tdb.example"));
    assert!(sh("tool", "cat /etc/resolv.conf").contains("nameserver 10.0.0.53"));
    let mounts = sh("tool", "cat /proc/mounts");
    assert!(mounts.contains("tmpfs /scratch tmpfs"), "{mounts}");
    assert!(mounts.contains("tmpfs /cache tmpfs"), "{mounts}");
    let o = rbc(root, d, &["exec", "-T", "tool", "touch", "/x"], &[]);
    assert!(!o.status.success(), "read_only root");
    sh("tool", "touch /scratch/ok /cache/ok");
    // init: PID 1 is the init, the command its child.
    let pid1 = sh("tool", "tr '\\0' ' ' < /proc/1/cmdline");
    assert!(!pid1.starts_with("sh "), "{pid1}");
    // cap_drop ALL + cap_add NET_BIND_SERVICE (bit 10): only it is left.
    let caps = sh("tool", "grep CapEff /proc/self/status");
    assert_eq!(
        caps.split_whitespace().nth(1),
        Some("0000000000000400"),
        "{caps}"
    );
    // deploy.resources.limits.
    let (mem, cpu, pids) = cgroup_limits(root, "keys-tool-1");
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    assert_eq!(cpu.trim(), "50000");
    assert_eq!(pids.trim(), "40");
    // stop_signal, stop_grace_period, tty, stdin_open, labels, restart, expose.
    let v = common::rbuild_ok(root, &["inspect", "keys-tool-1", "keys-web-1"]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    let tool = &v[0];
    assert_eq!(tool["Config"]["StopSignal"], "SIGUSR1");
    assert_eq!(tool["Config"]["StopTimeout"], 3);
    assert_eq!(tool["Config"]["Tty"], true);
    assert_eq!(tool["Config"]["OpenStdin"], true);
    assert_eq!(tool["Config"]["Labels"]["tier"], "tools");
    assert_eq!(tool["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(tool["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    assert!(
        v[1]["Config"]["ExposedPorts"]
            .as_object()
            .unwrap()
            .contains_key("9000/tcp")
    );
    // The long port syntax answers from the host.
    let body = http_get_until(port, "long syntax");
    assert!(body.contains("long syntax"), "{body}");
    // user, working_dir, network_mode: none.
    assert_eq!(sh("who", "id -u; id -g; pwd"), "1000\n1000\n/tmp\n");
    let ifaces = sh("who", "cat /proc/net/dev");
    assert!(
        ifaces.contains("lo:") && !ifaces.contains("eth0"),
        "{ifaces}"
    );
    // stop sends SIGUSR1, which the command traps to exit 0 at once.
    let t = Instant::now();
    rbc_ok(root, d, &["stop", "tool"], &[]);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let ps = ps_json(root, d);
    let tool = ps.iter().find(|c| c["Service"] == "tool").unwrap();
    assert_eq!(tool["ExitCode"], 0, "{tool}");
    rbc_ok(root, d, &["down"], &[]);
    assert_eq!(common::rbuild_ok(root, &["ps", "-aq"]), "");
}

#[test]
fn healthchecks_secrets_and_configs() {
    if !can_run("healthchecks_secrets_and_configs") {
        return;
    }
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    if common::busybox_image(root, "busybox:local").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("app.conf"), "mode=file\n").unwrap();
    std::fs::write(
        d.join("compose.yaml"),
        r#"name: hc
services:
  slow:
    image: busybox:local
    command: sh -c 'sleep 0.7; touch /tmp/up; exec sleep 60'
    network_mode: none
    init: true
    healthcheck:
      test: test -e /tmp/up
      interval: 100ms
      retries: 30
  sick:
    image: busybox:local
    command: sleep 60
    network_mode: none
    init: true
    healthcheck:
      test: ["CMD", "false"]
      interval: 100ms
      retries: 2
  plain:
    image: busybox:local
    command: sleep 60
    network_mode: none
    init: true
  migrate:
    image: busybox:local
    command: sh -c 'sleep 0.3; echo migrated'
    network_mode: none
  app:
    image: busybox:local
    command: sleep 60
    network_mode: none
    init: true
    depends_on:
      slow: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
    secrets:
      - source: token
        target: api.token
        mode: 256
      - key
    configs:
      - app_conf
      - source: inline
        target: /etc/inline.conf
  needs-sick:
    image: busybox:local
    command: sleep 60
    network_mode: none
    depends_on:
      sick: {condition: service_healthy}
  needs-plain:
    image: busybox:local
    command: sleep 60
    network_mode: none
    depends_on:
      plain: {condition: service_healthy}
secrets:
  token:
    environment: TOKEN
  key:
    file: ./app.conf
configs:
  app_conf:
    file: ./app.conf
  inline:
    content: "inline=${TOKEN}"
"#,
    )
    .unwrap();
    let env = [("TOKEN", "t0k3n")];
    // service_healthy and service_completed_successfully: app waits for both.
    let (_, err) = rbc_ok(root, d, &["up", "-d", "app"], &env);
    let at = |l: &str| err.find(l).unwrap_or_else(|| panic!("{l:?} in:\n{err}"));
    assert!(at("Container hc-slow-1  Healthy") < at("Container hc-app-1  Creating"));
    assert!(at("Container hc-migrate-1  Exited") < at("Container hc-app-1  Creating"));
    let ps = ps_json(root, d);
    let slow = ps.iter().find(|c| c["Service"] == "slow").unwrap();
    assert_eq!(slow["Health"], "healthy", "{slow}");
    let (out, _) = rbc_ok(root, d, &["ps", "slow"], &[]);
    assert!(out.contains("(healthy)"), "{out}");
    // Secrets at /run/secrets, configs at /NAME or their target.
    let (out, _) = rbc_ok(
        root,
        d,
        &[
            "exec",
            "-T",
            "app",
            "sh",
            "-c",
            "cat /run/secrets/api.token; echo; cat /run/secrets/key /app_conf /etc/inline.conf; echo; stat -c %a /run/secrets/api.token /etc/inline.conf",
        ],
        &env,
    );
    assert_eq!(out, "t0k3n\nmode=file\nmode=file\ninline=t0k3n\n400\n444\n");
    let o = rbc(
        root,
        d,
        &["exec", "-T", "app", "sh", "-c", "echo x > /app_conf"],
        &env,
    );
    assert!(!o.status.success(), "a file config is read-only");
    // A dependency that turns unhealthy, or has no healthcheck, fails the up clearly and
    // its dependent is not created.
    let o = rbc(root, d, &["up", "-d", "needs-sick"], &env);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("dependency failed to start: container hc-sick-1 is unhealthy"),
        "{err}"
    );
    let o = rbc(root, d, &["up", "-d", "needs-plain"], &env);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("container hc-plain-1 has no healthcheck configured"),
        "{err}"
    );
    let names = common::rbuild_ok(root, &["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!names.contains("needs-"), "{names}");
    // up --wait: returns once healthy; an unhealthy one fails it.
    rbc_ok(root, d, &["down"], &env);
    let (_, err) = rbc_ok(root, d, &["up", "-d", "--wait", "slow"], &env);
    assert!(err.contains("Container hc-slow-1  Healthy"), "{err}");
    let v = common::rbuild_ok(root, &["inspect", "hc-slow-1"]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v[0]["State"]["Health"]["Status"], "healthy");
    let o = rbc(root, d, &["up", "-d", "--wait", "sick"], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("container hc-sick-1 is unhealthy"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    rbc_ok(root, d, &["down"], &env);
    assert_eq!(common::rbuild_ok(root, &["ps", "-aq"]), "");
}

#[test]
fn build_cache_to_and_from_reach_the_builder() {
    if !can_run("build_cache_to_and_from_reach_the_builder") {
        return;
    }
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    if common::busybox_image(root, "busybox:local").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("cache");
    std::fs::create_dir(d.join("ctx")).unwrap();
    std::fs::write(
        d.join("ctx/Dockerfile"),
        "FROM busybox:local\nRUN echo built > /built\n",
    )
    .unwrap();
    let write = |key: &str| {
        std::fs::write(
            d.join("compose.yaml"),
            format!(
                "name: cc\nservices:\n  app:\n    build:\n      context: ctx\n      {key}: [\"type=local,{}={}\"]\n",
                if key == "cache_to" { "dest" } else { "src" },
                cache.display()
            ),
        )
        .unwrap();
    };
    write("cache_to");
    rbc_ok(root, d, &["build"], &[]);
    assert!(cache.join("index.json").is_file(), "the cache was exported");
    // A second store with the same base image: the step comes from the imported cache.
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path();
    let saved = d.join("busybox.tar");
    common::rbuild_ok(
        root,
        &["save", "-o", saved.to_str().unwrap(), "busybox:local"],
    );
    common::rbuild_ok(other, &["load", "-i", saved.to_str().unwrap()]);
    write("cache_from");
    let (_, err) = rbc_ok(other, d, &["build"], &[]);
    assert!(err.contains("#2 CACHED"), "{err}");
    // A cache that cannot be read is a warning; the build goes on.
    std::fs::remove_dir_all(&cache).unwrap();
    let (_, err) = rbc_ok(other, d, &["build"], &[]);
    assert!(err.contains("cache import from"), "{err}");
    assert!(err.contains("Image cc-app  Built"), "{err}");
}
