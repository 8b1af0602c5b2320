//! Bridge networks end to end, as root on a busybox image: user networks whose containers
//! reach each other by name and alias (and not across networks, until `network connect`),
//! the default bridge's way out to Debian's mirror and its published ports, `host-gateway`,
//! docker's errors for bad input with nothing left half-made, a killed hub recovered, a
//! restarted container still resolvable — and the host's addresses and routes untouched,
//! no hub, uplink or mount left once everything is removed.
#![allow(clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{busybox_image, can_run_as_root as can_run};

/// `rbuild --root ROOT ARGS`, the hub ending a moment after its last container.
fn rb(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("RBUILD_NETWORK_LINGER", "0.3")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let o = rb(root, args);
    assert!(
        o.status.success(),
        "rbuild {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(root: &Path, args: &[&str]) -> String {
    let o = rb(root, args);
    assert!(
        !o.status.success(),
        "rbuild {args:?} should fail: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn host_network() -> (String, String) {
    let run = |args: &[&str]| {
        String::from_utf8(Command::new("ip").args(args).output().unwrap().stdout).unwrap()
    };
    (run(&["addr"]), run(&["route"]))
}

/// The hub's PID, while it runs.
fn hub_pid(root: &Path) -> Option<i32> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("networks/hub.json")).ok()?).ok()?;
    let pid = v["pid"].as_i64()? as i32;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// Processes whose command line mentions `root` (the hub, its uplink, monitors).
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

/// After everything is removed: the hub ends, and with it its uplink; no mount of the root.
fn assert_all_gone(root: &Path, hub: Option<i32>) {
    let until = Instant::now() + Duration::from_secs(10);
    while hub_pid(root).is_some() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(hub_pid(root), None, "the hub ended");
    if let Some(pid) = hub {
        // Gone (or a zombie about to be reaped by init) soon after its state file.
        let gone = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
        };
        let until = Instant::now() + Duration::from_secs(5);
        while !gone(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "hub {pid} gone: {stat}"
        );
    }
    // slirp4netns names the hub's namespace by its PID; none may be left.
    let slirps: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| hub.is_some_and(|p| c.contains(&format!("/proc/{p}/ns/net"))))
        .collect();
    assert!(slirps.is_empty(), "uplinks left: {slirps:?}");
    assert!(
        processes_of(root).is_empty(),
        "left: {:?}",
        processes_of(root)
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(root.to_str().unwrap()), "mounts left");
}

#[test]
fn user_networks_resolve_names_isolate_and_connect() {
    if !can_run("user_networks_resolve_names_isolate_and_connect") {
        return;
    }
    let before = host_network();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let Some(_) = busybox_image(root, "bb:1") else {
        return;
    };
    ok(root, &["network", "create", "front"]);
    ok(
        root,
        &[
            "network",
            "create",
            "--subnet",
            "172.30.0.0/24",
            "--label",
            "tier=back",
            "back",
        ],
    );
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "front",
            "--network-alias",
            "www",
            "bb:1",
            "sh",
            "-c",
            "hostname > /tmp/who; httpd -f -p 80 -h /tmp",
        ],
    );
    let web_json: serde_json::Value = serde_json::from_str(&ok(root, &["inspect", "web"])).unwrap();
    let web_id = web_json[0]["Id"].as_str().unwrap();
    let same = ok(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "front",
            "bb:1",
            "sh",
            "-c",
            "for n in web www; do until wget -q -O - http://$n/who; do sleep 0.1; done; done; nslookup web",
        ],
    );
    let web_ip = {
        let v: serde_json::Value = serde_json::from_str(&ok(root, &["inspect", "web"])).unwrap();
        let net = &v[0]["NetworkSettings"]["Networks"]["front"];
        assert_eq!(net["Aliases"][0], "www");
        assert_eq!(net["Gateway"], "172.18.0.1");
        assert_eq!(net["MacAddress"].as_str().unwrap(), "02:42:ac:12:00:02");
        net["IPAddress"].as_str().unwrap().to_owned()
    };
    assert_eq!(web_ip, "172.18.0.2");
    let short = &web_id[..12];
    assert_eq!(same.lines().filter(|l| *l == short).count(), 2, "{same}");
    assert!(same.contains(&format!("Address: {web_ip}")), "{same}");

    // From the other network: no name, no route.
    let other = ok(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "back",
            "bb:1",
            "sh",
            "-c",
            &format!(
                "nslookup web >/dev/null 2>&1 && echo resolved; wget -q -T 2 -O - http://{web_ip}/who || echo unreachable"
            ),
        ],
    );
    assert_eq!(other.trim(), "unreachable", "{other}");

    // connect, then disconnect, a running container.
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "client",
            "--network",
            "back",
            "bb:1",
            "sleep",
            "300",
        ],
    );
    ok(
        root,
        &["network", "connect", "--alias", "cl", "front", "client"],
    );
    let connected = ok(
        root,
        &["exec", "client", "wget", "-q", "-O", "-", "http://web/who"],
    );
    assert_eq!(connected.trim(), short);
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(root, &["network", "inspect", "front"])).unwrap();
    let names: Vec<&str> = inspect[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"client") && names.contains(&"web"));
    assert_eq!(inspect[0]["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
    ok(root, &["network", "disconnect", "front", "client"]);
    let after = ok(
        root,
        &[
            "exec",
            "client",
            "sh",
            "-c",
            &format!("wget -q -T 2 -O - http://{web_ip}/who || echo unreachable"),
        ],
    );
    assert_eq!(after.trim(), "unreachable");
    let back: serde_json::Value =
        serde_json::from_str(&ok(root, &["network", "inspect", "back"])).unwrap();
    assert_eq!(back[0]["Labels"]["tier"], "back");
    assert_eq!(back[0]["IPAM"]["Config"][0]["Gateway"], "172.30.0.1");

    // In use: refused, as docker.
    let err = fails(root, &["network", "rm", "front"]);
    assert!(err.contains("has active endpoints"), "{err}");
    let ls = ok(
        root,
        &["network", "ls", "--format", "{{.Name}} {{.Driver}}"],
    );
    assert_eq!(
        ls,
        "back bridge\nbridge bridge\nfront bridge\nhost host\nnone null\n"
    );
    let hub = hub_pid(root);
    assert!(hub.is_some(), "a hub runs while containers are attached");

    ok(root, &["rm", "-f", "web", "client"]);
    ok(root, &["network", "rm", "front", "back"]);
    assert_eq!(
        ok(root, &["network", "ls", "-q", "--filter", "type=custom"]),
        ""
    );
    assert_all_gone(root, hub);
    assert_eq!(
        host_network(),
        before,
        "the host's addresses and routes are untouched"
    );
}

#[test]
fn default_bridge_egress_published_ports_and_host_gateway() {
    if !can_run("default_bridge_egress_published_ports_and_host_gateway") {
        return;
    }
    let before = host_network();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let Some(_) = busybox_image(root, "bb:1") else {
        return;
    };
    // Egress through the uplink, names through the host's resolver.
    let release = ok(
        root,
        &[
            "run",
            "--rm",
            "bb:1",
            "wget",
            "-q",
            "-O",
            "-",
            "http://deb.debian.org/debian/dists/bookworm/Release",
        ],
    );
    assert!(
        release.contains("Codename: bookworm"),
        "{}",
        &release[..release.len().min(300)]
    );

    // A published port of a bridged container answers on the host's loopback.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "srv",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "bb:1",
            "sh",
            "-c",
            "echo served > /tmp/index.html; httpd -f -p 80 -h /tmp",
        ],
    );
    let mut body = String::new();
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
            body.clear();
            let _ = s.read_to_string(&mut body);
            if body.contains("served") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(body.contains("served"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&ok(root, &["inspect", "srv"])).unwrap();
    assert_eq!(v[0]["NetworkSettings"]["IPAddress"], "172.17.0.2");
    assert_eq!(v[0]["HostConfig"]["NetworkMode"], "bridge");

    // host-gateway reaches a service on the host's loopback.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hport = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nfrom-host")
            .unwrap();
    });
    let got = ok(
        root,
        &[
            "run",
            "--rm",
            "--add-host",
            "host.docker.internal:host-gateway",
            "bb:1",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://host.docker.internal:{hport}/"),
        ],
    );
    assert_eq!(got, "from-host");
    server.join().unwrap();
    let hub = hub_pid(root);
    ok(root, &["rm", "-f", "srv"]);
    assert_all_gone(root, hub);
    assert_eq!(host_network(), before);
}

#[test]
fn bad_network_input_is_refused_and_leaves_nothing() {
    if !can_run("bad_network_input_is_refused_and_leaves_nothing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let Some(_) = busybox_image(root, "bb:1") else {
        return;
    };
    ok(
        root,
        &["network", "create", "--subnet", "10.77.0.0/16", "net1"],
    );
    let err = fails(root, &["network", "create", "net1"]);
    assert!(
        err.contains("network with name net1 already exists"),
        "{err}"
    );
    let err = fails(
        root,
        &["network", "create", "--subnet", "10.77.5.0/24", "net2"],
    );
    assert!(err.contains("Pool overlaps"), "{err}");
    let err = fails(root, &["network", "create", "--subnet", "nonsense", "net3"]);
    assert!(err.contains("invalid subnet"), "{err}");
    let err = fails(
        root,
        &["run", "--rm", "--network", "nosuch", "bb:1", "true"],
    );
    assert!(err.contains("network nosuch not found"), "{err}");
    ok(
        root,
        &[
            "create",
            "--name",
            "aa",
            "--network",
            "net1",
            "--ip",
            "10.77.0.9",
            "bb:1",
            "true",
        ],
    );
    let err = fails(
        root,
        &[
            "create",
            "--name",
            "bb",
            "--network",
            "net1",
            "--ip",
            "10.77.0.9",
            "bb:1",
            "true",
        ],
    );
    assert!(err.contains("Address already in use"), "{err}");
    let err = fails(
        root,
        &[
            "create",
            "--name",
            "cc",
            "--ip",
            "172.17.0.9",
            "bb:1",
            "true",
        ],
    );
    assert!(err.contains("user configured subnets"), "{err}");
    let err = fails(root, &["network", "rm", "bridge"]);
    assert!(err.contains("pre-defined network"), "{err}");
    // Nothing half-made: only `aa` exists, holding only its own address.
    assert_eq!(ok(root, &["ps", "-a", "--format", "{{.Names}}"]), "aa\n");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("networks/state.json")).unwrap()).unwrap();
    assert_eq!(st["endpoints"].as_array().unwrap().len(), 1, "{st}");
    ok(root, &["rm", "aa"]);
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("networks/state.json")).unwrap()).unwrap();
    assert!(st["endpoints"].as_array().unwrap().is_empty(), "{st}");
    assert_eq!(hub_pid(root), None, "nothing ran: no hub");
}

#[test]
fn killed_hub_recovers_and_restarted_containers_stay_resolvable() {
    if !can_run("killed_hub_recovers_and_restarted_containers_stay_resolvable") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let Some(_) = busybox_image(root, "bb:1") else {
        return;
    };
    ok(root, &["network", "create", "app"]);
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "flappy",
            "--network",
            "app",
            "--restart",
            "always",
            "bb:1",
            "sh",
            "-c",
            "sleep 0.5; exit 3",
        ],
    );
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "peer",
            "--network",
            "app",
            "bb:1",
            "sleep",
            "300",
        ],
    );
    // After restarts, its name still answers.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let v: serde_json::Value = serde_json::from_str(&ok(root, &["inspect", "flappy"])).unwrap();
        let n = v[0]["RestartCount"].as_u64().unwrap();
        if n >= 2 {
            break;
        }
        assert!(Instant::now() < until, "flappy did not restart");
        std::thread::sleep(Duration::from_millis(200));
    }
    let looked = ok(root, &["exec", "peer", "nslookup", "flappy"]);
    assert!(looked.contains("Address: 172.18.0.2"), "{looked}");

    // The hub killed: the next command starts a new one and plugs running containers in.
    let hub = hub_pid(root).expect("hub");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hub),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{hub}/stat")).exists()
        && std::fs::read_to_string(format!("/proc/{hub}/stat")).is_ok_and(|s| !s.contains(") Z"))
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = ok(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "app",
            "bb:1",
            "sh",
            "-c",
            "nslookup peer | grep Address: | tail -1",
        ],
    );
    assert!(again.contains("172.18.0.3"), "{again}");
    let new_hub = hub_pid(root).expect("a new hub");
    assert_ne!(new_hub, hub);
    let reach = ok(
        root,
        &["exec", "peer", "ping", "-c", "1", "-W", "2", "172.18.0.1"],
    );
    assert!(reach.contains("1 packets received"), "{reach}");
    ok(root, &["rm", "-f", "flappy", "peer"]);
    ok(root, &["network", "prune", "-f"]);
    assert_all_gone(root, Some(new_hub));
}

#[test]
fn build_steps_join_a_named_network() {
    if !can_run("build_steps_join_a_named_network") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let Some(_) = busybox_image(root, "bb:1") else {
        return;
    };
    ok(root, &["network", "create", "buildnet"]);
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "buildnet",
            "bb:1",
            "sh",
            "-c",
            "echo from-web > /tmp/x; httpd -f -p 80 -h /tmp",
        ],
    );
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb:1\nRUN until wget -q -O /got http://web/x; do sleep 0.1; done\n",
    )
    .unwrap();
    ok(
        root,
        &[
            "build",
            "--network",
            "buildnet",
            "-t",
            "got:1",
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(
        ok(
            root,
            &["run", "--rm", "--network", "none", "got:1", "cat", "/got"]
        ),
        "from-web\n"
    );
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("networks/state.json")).unwrap()).unwrap();
    assert_eq!(
        st["endpoints"].as_array().unwrap().len(),
        1,
        "the build's endpoint is gone: {st}"
    );
    let err = fails(
        root,
        &["build", "--network", "nosuch", ctx.to_str().unwrap()],
    );
    assert!(err.contains("network nosuch not found"), "{err}");
    let hub = hub_pid(root);
    ok(root, &["rm", "-f", "web"]);
    assert_all_gone(root, hub);
}

#[test]
fn internal_networks_have_no_way_out() {
    if !can_run("internal_networks_have_no_way_out") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let Some(_) = busybox_image(root, "bb:1") else {
        return;
    };
    ok(root, &["network", "create", "--internal", "sealed"]);
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "inside",
            "--network",
            "sealed",
            "bb:1",
            "sh",
            "-c",
            "echo in > /tmp/x; httpd -f -p 80 -h /tmp",
        ],
    );
    let out = ok(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "sealed",
            "bb:1",
            "sh",
            "-c",
            "ip route | grep -c default; until wget -q -O - http://inside/x; do sleep 0.1; done; \
             wget -q -T 3 -O /dev/null http://10.0.2.2:1/ 2>/dev/null || echo no-way-out",
        ],
    );
    assert_eq!(out, "0\nin\nno-way-out\n");
    let v: serde_json::Value =
        serde_json::from_str(&ok(root, &["network", "inspect", "sealed"])).unwrap();
    assert_eq!(v[0]["Internal"], true);
    let hub = hub_pid(root);
    ok(root, &["rm", "-f", "inside"]);
    assert_all_gone(root, hub);
}

#[test]
fn add_host_and_dns_apply_off_bridge_networks_too() {
    if !can_run("add_host_and_dns_apply_off_bridge_networks_too") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let Some(_) = busybox_image(root, "bb:1") else {
        return;
    };
    let etc = |network: &str| {
        ok(
            root,
            &[
                "run",
                "--rm",
                "--network",
                network,
                "--hostname",
                "box",
                "--add-host",
                "db.example:10.9.8.7",
                "--dns",
                "192.0.2.53",
                "--dns-search",
                "corp.example",
                "--dns-option",
                "ndots:2",
                "bb:1",
                "sh",
                "-c",
                "cat /etc/hosts; echo ---; cat /etc/resolv.conf",
            ],
        )
    };
    for network in ["none", "host"] {
        let out = etc(network);
        let (hosts, resolv) = out.split_once("---\n").expect("both files");
        assert!(
            hosts.contains("10.9.8.7\tdb.example\n"),
            "{network}: {hosts}"
        );
        assert_eq!(
            resolv, "nameserver 192.0.2.53\nsearch corp.example\noptions ndots:2\n",
            "{network}"
        );
        if network == "none" {
            assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
            assert!(hosts.contains("127.0.1.1\tbox\n"), "{hosts}");
        } else {
            // The host's own /etc/hosts, then the entry.
            let host = std::fs::read_to_string("/etc/hosts").unwrap();
            assert!(hosts.starts_with(host.trim_end()), "{hosts}");
        }
    }
    // Without them a container keeps docker's own files: the host's resolv.conf.
    let plain = ok(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "bb:1",
            "cat",
            "/etc/resolv.conf",
        ],
    );
    assert_eq!(plain, std::fs::read_to_string("/etc/resolv.conf").unwrap());
    // A container in another's network namespace shares its files: refused, as docker does.
    ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "owner",
            "--network",
            "none",
            "bb:1",
            "sleep",
            "30",
        ],
    );
    let err = fails(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "container:owner",
            "--add-host",
            "a:1.2.3.4",
            "bb:1",
            "true",
        ],
    );
    assert!(
        err.contains("conflicting options: custom host-to-IP mapping"),
        "{err}"
    );
    let err = fails(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "container:owner",
            "--dns",
            "1.1.1.1",
            "bb:1",
            "true",
        ],
    );
    assert!(
        err.contains("conflicting options: dns and the network mode"),
        "{err}"
    );
    ok(root, &["rm", "-f", "owner"]);
}
