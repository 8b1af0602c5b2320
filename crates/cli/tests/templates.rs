//! Go templates (`inspect -f`, `--format`) rendered by rbuild (gtmpl and its wrapper) compared
//! with the docker CLI's own rendering of the same templates over dockerd's equivalent
//! objects: a container created the same way on both sides, the same volume, and table
//! alignment.
#![allow(clippy::print_stderr)]

mod common;

use std::process::Command;

use common::{busybox_tarball, have_peer, rbuild};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Templates whose output docker and rbuild agree on, over a created container (slices,
/// maps in key order, json, range with keys and values, index, len, if/else, printf,
/// docker's own functions, a missing map key).
const CONTAINER_TEMPLATES: &[&str] = &[
    "{{.Name}}",
    "{{.State.Running}} {{.State.Status}} {{.State.Pid}} {{.State.ExitCode}}",
    "{{.Config.Cmd}}",
    "{{json .Config.Cmd}}",
    "{{.Config.Labels}}",
    "{{json .Config.Labels}}",
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
    "{{range .Config.Labels}}{{.}},{{end}}",
    "{{range $i, $a := .Args}}{{$i}}:{{$a}} {{end}}",
    r#"{{index .Config.Labels "b"}}|{{index .Config.Labels "nope"}}|{{.Config.Labels.nope}}"#,
    "{{index .Config.Cmd 1}} {{len .Config.Cmd}} {{len .Config.Labels}} {{len .Name}}",
    "{{.HostConfig.NetworkMode}} {{.HostConfig.RestartPolicy.Name}}",
    r#"{{join .Config.Cmd "+"}} {{upper .Config.Image}} {{lower "ABC"}} {{title "hello world"}}"#,
    "{{if .State.Running}}up{{else}}down{{end}}",
    "{{json .State.Running}} {{json .Mounts}} {{.Mounts}} {{.HostConfig.Binds}}",
    "{{.Path}} {{.Args}}",
    r#"{{printf "%s|%v|%d" .Name .State.Running .RestartCount}}"#,
    r#"{{with .Config.Labels}}{{.a}}{{end}} {{- /* a comment */ -}} !"#,
    r#"{{range split "x,y" ","}}[{{.}}]{{end}} {{truncate .Name 3}}"#,
    "{{println .Name .State.Running}}",
];

#[test]
fn inspect_templates_match_docker() {
    if !have_peer("docker", &["version"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some(tarball) = busybox_tarball(work.path()) else {
        return;
    };
    let root = work.path().join("root");
    let tag = format!("rbuild-templates-busybox:{}", std::process::id());
    let name = format!("tpl-{}", std::process::id());
    let tar = tarball.to_str().unwrap();
    docker(&["import", "--change", r#"CMD ["/bin/sh"]"#, tar, &tag]);
    let out = rbuild(
        &root,
        &["import", "--change", r#"CMD ["/bin/sh"]"#, tar, &tag],
    );
    assert!(out.status.success(), "{out:?}");
    let create = [
        "create",
        "--name",
        &name,
        "--network",
        "none",
        "-l",
        "b=2",
        "-l",
        "a=1",
        "-l",
        "z=26",
        &tag,
        "sh",
        "-c",
        "echo hi",
    ];
    docker(&create);
    let out = rbuild(&root, &create);
    assert!(out.status.success(), "{out:?}");
    let mut failures = Vec::new();
    for t in CONTAINER_TEMPLATES {
        let theirs = docker(&["inspect", "-f", t, &name]);
        let out = rbuild(&root, &["inspect", "-f", t, &name]);
        let ours = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || ours != theirs {
            failures.push(format!(
                "{t}\n  docker: {theirs:?}\n  rbuild: {ours:?} {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    // A volume, through `volume inspect -f` and `volume ls --format`.
    let vol = format!("tplvol{}", std::process::id());
    docker(&["volume", "create", "--label", "k=v", &vol]);
    let out = rbuild(&root, &["volume", "create", "--label", "k=v", &vol]);
    assert!(out.status.success(), "{out:?}");
    let filter = format!("name={vol}");
    for (args, only) in [
        (
            vec![
                "volume",
                "inspect",
                "-f",
                "{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}}",
                &vol,
            ],
            vec![],
        ),
        // rbuild's store holds this volume only; dockerd's may hold others.
        (
            vec!["volume", "ls", "--format", "{{.Name}}|{{.Driver}}"],
            vec!["--filter", &filter],
        ),
    ] {
        let theirs = docker(&[&args[..], &only[..]].concat());
        let out = rbuild(&root, &args);
        let ours = String::from_utf8_lossy(&out.stdout).into_owned();
        if ours != theirs {
            failures.push(format!(
                "{args:?}\n  docker: {theirs:?}\n  rbuild: {ours:?}"
            ));
        }
    }
    // `table` templates: a header of docker's column names, columns aligned as docker's
    // tabwriter aligns them.
    // And `ps`'s `.Label "KEY"` method.
    for format in [
        "table {{.Names}}\t{{.Image}}\t{{.State}}",
        r#"{{.Label "a"}}|{{.Label "z"}}|{{.Label "none"}}|{{.Labels}}"#,
    ] {
        let theirs = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("name={name}"),
            "--format",
            format,
        ]);
        let out = rbuild(&root, &["ps", "-a", "--format", format]);
        let ours = String::from_utf8_lossy(&out.stdout).into_owned();
        if ours != theirs {
            failures.push(format!(
                "{format}\n  docker: {theirs:?}\n  rbuild: {ours:?}"
            ));
        }
    }
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    let _ = Command::new("docker").args(["volume", "rm", &vol]).output();
    let _ = Command::new("docker").args(["rmi", &tag]).output();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A template error is reported, with a non-zero exit, as docker does.
    let out = rbuild(&root, &["inspect", "-f", "{{.Name", &name]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("template"),
        "{out:?}"
    );
}
