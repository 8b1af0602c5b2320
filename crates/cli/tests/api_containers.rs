//! The Engine API's container and image lists and names, driven by the docker 28 CLI:
//! `docker rename` (and its 409 on a taken name), `docker ps --filter` with each filter docker
//! supports, `docker images --filter`, and `rbuild rename`.
#![allow(clippy::print_stderr)]

mod api_support;
mod common;

use api_support::Service;

/// The names `docker ps -a --filter ARGS` lists, sorted.
fn ps(s: &Service, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["ps", "-a", "--format", "{{.Names}}"];
    for f in filters {
        args.push("--filter");
        args.push(f);
    }
    let mut names: Vec<String> = s.ok(&args).lines().map(str::to_owned).collect();
    names.sort();
    names
}

#[test]
fn docker_rename_and_rbuild_rename() {
    let Some(s) = Service::start() else { return };
    s.ok(&["create", "--name", "first", "busybox", "true"]);
    s.ok(&["create", "--name", "second", "busybox", "true"]);
    s.ok(&["rename", "first", "renamed"]);
    assert_eq!(ps(&s, &[]), ["renamed", "second"]);
    assert_eq!(
        s.ok(&["inspect", "-f", "{{.Name}}", "renamed"]).trim(),
        "/renamed"
    );
    // The old name is free again, the new one taken: docker's 409 wording.
    s.ok(&["create", "--name", "first", "busybox", "true"]);
    let out = s.docker(&["rename", "renamed", "second"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is already in use by container"), "{err}");
    let (code, body) = s.raw(
        b"POST /v1.41/containers/renamed/rename?name=second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 409, "{body}");
    // Same name: a bad parameter; an invalid name too.
    let (code, _) = s.raw(
        b"POST /containers/renamed/rename?name=renamed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 400);
    let (code, _) = s.raw(
        b"POST /containers/renamed/rename?name=b%2Fad HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 400);
    let (code, _) = s.raw(
        b"POST /containers/nosuch/rename?name=x1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 404);
    // The CLI: `rbuild rename` and `rbuild container rename`, seen through the service.
    let rbuild = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(s.root())
            .args(args)
            .output()
            .unwrap()
    };
    let out = rbuild(&["rename", "renamed", "again"]);
    assert!(out.status.success(), "{out:?}");
    let out = rbuild(&["container", "rename", "again", "second"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already in use"),
        "{out:?}"
    );
    assert_eq!(ps(&s, &[]), ["again", "first", "second"]);
    // The event journal saw the renames, with docker's oldName attribute (the client sends
    // `--until 0s` in whole seconds: the events' second must be over).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let ev = s.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "event=rename",
        "--format",
        "{{.Actor.Attributes.oldName}}>{{.Actor.Attributes.name}}",
    ]);
    assert_eq!(ev.trim(), "/first>renamed\n/renamed>again");
}

#[test]
fn docker_ps_filters() {
    let Some(s) = Service::start() else { return };
    s.ok(&["volume", "create", "vol1"]);
    s.ok(&["network", "create", "net1"]);
    s.ok(&[
        "create",
        "--name",
        "ca",
        "--label",
        "tier=web",
        "-v",
        "vol1:/data",
        "--network",
        "net1",
        "-p",
        "127.0.0.1:0:80",
        "--expose",
        "9000",
        "busybox",
        "true",
    ]);
    let out = s.docker(&[
        "run",
        "--name",
        "cb",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    s.ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "--network",
        "none",
        "-v",
        "/scratch",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(ps(&s, &["status=running"]), ["cc"]);
    assert_eq!(ps(&s, &["status=created"]), ["ca"]);
    assert_eq!(ps(&s, &["exited=3"]), ["cb"]);
    assert_eq!(ps(&s, &["name=cb"]), ["cb"]);
    assert_eq!(ps(&s, &["label=tier=web"]), ["ca"]);
    assert_eq!(ps(&s, &["ancestor=busybox"]), ["ca", "cb", "cc"]);
    assert_eq!(ps(&s, &["before=cc"]), ["ca", "cb"]);
    assert_eq!(ps(&s, &["since=ca"]), ["cb", "cc"]);
    assert_eq!(ps(&s, &["since=ca", "before=cc"]), ["cb"]);
    assert_eq!(ps(&s, &["network=net1"]), ["ca"]);
    assert_eq!(ps(&s, &["network=none"]), ["cb", "cc"]);
    assert_eq!(ps(&s, &["volume=vol1"]), ["ca"]);
    assert_eq!(ps(&s, &["volume=/scratch"]), ["cc"]);
    assert_eq!(ps(&s, &["publish=80"]), ["ca"]);
    assert_eq!(ps(&s, &["publish=80/udp"]), Vec::<String>::new());
    assert_eq!(ps(&s, &["expose=9000"]), ["ca"]);
    assert_eq!(ps(&s, &["expose=8000-9999/tcp"]), ["ca"]);
    assert_eq!(ps(&s, &["health=none"]), ["ca", "cb", "cc"]);
    assert_eq!(ps(&s, &["health=healthy"]), Vec::<String>::new());
    assert_eq!(ps(&s, &["is-task=false"]), ["ca", "cb", "cc"]);
    let id = s.ok(&["inspect", "-f", "{{.Id}}", "cb"]);
    assert_eq!(ps(&s, &[&format!("id={}", &id[..12])]), ["cb"]);
    // Without -a, a filter on a running-only list.
    let running = s.ok(&["ps", "--format", "{{.Names}}", "--filter", "network=none"]);
    assert_eq!(running.trim(), "cc");
    // Bad filters: docker's 400 (an unknown key, a bad port) and 404 (before a missing one).
    let out = s.docker(&["ps", "--filter", "nonsense=1"]);
    assert!(!out.status.success(), "{out:?}");
    let out = s.docker(&["ps", "--filter", "publish=eighty"]);
    assert!(!out.status.success(), "{out:?}");
    let out = s.docker(&["ps", "--filter", "before=nosuch"]);
    assert!(!out.status.success(), "{out:?}");
    s.ok(&["rm", "-f", "ca", "cb", "cc"]);
}

#[test]
fn docker_images_filters() {
    let Some(s) = Service::start() else { return };
    let ctx = s.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nLABEL kind=test\nRUN echo one > /one\n",
    )
    .unwrap();
    // Images' creation times are compared in whole seconds: a second between them.
    let tick = || std::thread::sleep(std::time::Duration::from_millis(1100));
    tick();
    s.ok(&["build", "-q", "-t", "labelled:1", ctx.to_str().unwrap()]);
    tick();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo two > /two\n",
    )
    .unwrap();
    s.ok(&["build", "-q", "-t", "plain:1", ctx.to_str().unwrap()]);
    let images = |filters: &[&str]| {
        let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        for f in filters {
            args.push("--filter");
            args.push(f);
        }
        let mut v: Vec<String> = s.ok(&args).lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(images(&["label=kind=test"]), ["labelled:1"]);
    assert_eq!(images(&["label=kind"]), ["labelled:1"]);
    assert_eq!(images(&["reference=plain"]), ["plain:1"]);
    assert_eq!(images(&["dangling=true"]), Vec::<String>::new());
    assert_eq!(images(&["since=busybox"]), ["labelled:1", "plain:1"]);
    assert_eq!(images(&["before=labelled:1"]), ["busybox:latest"]);
    assert_eq!(
        images(&["since=busybox", "label=kind=test"]),
        ["labelled:1"]
    );
    // Untag one: it is dangling now.
    s.ok(&["tag", "plain:1", "plain:2"]);
    s.ok(&["rmi", "plain:1"]);
    assert_eq!(images(&["reference=plain:2"]), ["plain:2"]);
    assert_eq!(images(&["reference=plain"]), ["plain:2"]);
    let out = s.docker(&["images", "--filter", "nonsense=1"]);
    assert!(!out.status.success(), "{out:?}");
    // The CLI's `rbuild images --filter`: the same engine filters.
    let rbuild_images = |filters: &[&str]| {
        let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        for f in filters {
            args.push("--filter");
            args.push(f);
        }
        let out = common::rbuild(&s.root(), &args);
        assert!(out.status.success(), "{out:?}");
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(rbuild_images(&["label=kind=test"]), ["labelled:1"]);
    assert_eq!(
        rbuild_images(&["since=busybox", "before=plain:2"]),
        ["labelled:1"]
    );
    assert_eq!(rbuild_images(&["reference=plain"]), ["plain:2"]);
    assert!(
        !common::rbuild(&s.root(), &["images", "--filter", "dangling=maybe"])
            .status
            .success()
    );
}
