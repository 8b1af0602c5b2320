//! `rbuild search` and the Engine API's `GET /images/search` (driven by `docker search`).
//!
//! No Docker Hub or Harbor is reachable from the tests, so their search APIs are played by a
//! small HTTP server in the test answering with the JSON shapes their documentation gives
//! (Docker Hub's `GET /v1/search?q=&n=` page: `num_results`, `query`, `results` of `name`,
//! `description`, `star_count`, `is_official`, `is_automated`; Harbor's `GET
//! /api/v2.0/search?q=`: `project` and `repository` lists of `repository_name`,
//! `project_name`, ...). The real Distribution registry (the docker-registry peer) has no
//! search API, and searching it must fail with an error naming it.
#![allow(clippy::print_stderr)]

mod api_support;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use api_support::Service;
use common::rbuild;

/// Which search API the fake registry serves.
#[derive(Clone, Copy)]
enum Flavour {
    Hub,
    Harbor,
}

const HUB_PAGE: &str = r#"{"num_pages":1,"num_results":3,"page_size":25,"query":"busy","page":1,"results":[
 {"name":"busybox","description":"Busybox base image, with a description longer than forty-five characters","star_count":3100,"is_official":true,"is_automated":false},
 {"name":"someone/busybox-tools","description":"tools\non two lines","star_count":12,"is_official":false,"is_automated":true},
 {"name":"other/busy","description":"","star_count":0,"is_official":false,"is_automated":false}]}"#;

const HARBOR_PAGE: &str = r#"{"project":[{"project_id":2,"name":"team","metadata":{"public":"true"}}],
 "repository":[{"project_id":2,"project_name":"team","project_public":true,"repository_name":"team/busybox","pull_count":7,"artifact_count":1},
               {"project_id":2,"project_name":"team","project_public":true,"repository_name":"team/busy-app","pull_count":1,"artifact_count":2}]}"#;

/// A registry on loopback answering `/v2/` and one search API; the request lines it got.
fn fake_registry(flavour: Flavour) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            log.lock().unwrap().push(path.clone());
            let (status, body) = match (flavour, path.split('?').next().unwrap_or("")) {
                (_, "/v2/") => ("200 OK", "{}"),
                (Flavour::Hub, "/v1/search") => ("200 OK", HUB_PAGE),
                (Flavour::Harbor, "/api/v2.0/search") => ("200 OK", HARBOR_PAGE),
                _ => ("404 Not Found", r#"{"errors":[{"code":"NOT_FOUND"}]}"#),
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (host, seen)
}

fn search(root: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = rbuild(root, &[&["search"], args].concat());
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rbuild_search_on_docker_hubs_api() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (host, seen) = fake_registry(Flavour::Hub);
    let term = format!("{host}/busy");
    let (ok, out, err) = search(root, &[&term]);
    assert!(ok, "{err}");
    // docker 28's columns and padding (the docker CLI prints the same, see below).
    let table = [
        "NAME                    DESCRIPTION                                     STARS     OFFICIAL",
        "busybox                 Busybox base image, with a description longe…   3100      [OK]",
        "someone/busybox-tools   tools on two lines                              12        ",
        "other/busy                                                              0         ",
    ];
    assert_eq!(out, format!("{}\n", table.join("\n")), "{out}");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|p| p == "/v1/search?q=busy&n=25"),
        "{:?}",
        seen.lock().unwrap()
    );
    // --limit reaches the registry (and is enforced on what it returns).
    let (ok, out, _) = search(root, &["--limit", "2", "--format", "{{.Name}}", &term]);
    assert!(ok);
    assert_eq!(out, "busybox\nsomeone/busybox-tools\n");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|p| p == "/v1/search?q=busy&n=2")
    );
    // Filters.
    let (_, out, _) = search(
        root,
        &["--filter", "stars=12", "--format", "{{.Name}}", &term],
    );
    assert_eq!(out, "busybox\nsomeone/busybox-tools\n");
    let (_, out, _) = search(
        root,
        &["-f", "is-official=true", "--format", "{{.Name}}", &term],
    );
    assert_eq!(out, "busybox\n");
    let (_, out, _) = search(
        root,
        &["-f", "is-automated=true", "--format", "{{.Name}}", &term],
    );
    assert_eq!(out, "someone/busybox-tools\n");
    // Templates and --no-trunc.
    let (_, out, _) = search(
        root,
        &[
            "--no-trunc",
            "--limit",
            "1",
            "--format",
            "{{.Name}}|{{.Description}}|{{.StarCount}}|{{.IsOfficial}}|{{.IsAutomated}}",
            &term,
        ],
    );
    assert_eq!(
        out,
        "busybox|Busybox base image, with a description longer than forty-five characters|3100|[OK]|\n"
    );
    let (_, out, _) = search(root, &["--limit", "1", "--format", "json", &term]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["StarCount"], "3100");
    // Bad input: named, nothing asked of the registry for a bad filter or limit.
    let (ok, _, err) = search(root, &["--filter", "stars=many", &term]);
    assert!(!ok && err.contains("stars=many"), "{err}");
    let (ok, _, err) = search(root, &["--limit", "101", &term]);
    assert!(!ok && err.contains("101"), "{err}");
    let (ok, _, err) = search(root, &["--filter", "colour=red", &term]);
    assert!(!ok && err.contains("colour"), "{err}");
}

#[test]
fn rbuild_search_on_harbors_api() {
    let dir = tempfile::tempdir().unwrap();
    let (host, seen) = fake_registry(Flavour::Harbor);
    let (ok, out, err) = search(
        dir.path(),
        &[
            "--format",
            "{{.Name}} {{.StarCount}}",
            &format!("{host}/busy"),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "team/busybox 0\nteam/busy-app 0\n");
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().any(|p| p.starts_with("/v1/search?q=busy")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|p| p == "/api/v2.0/search?q=busy"),
        "{seen:?}"
    );
}

#[test]
fn a_registry_without_search_is_a_clear_error() {
    let Ok(registry) = std::env::var("RBUILD_TEST_REGISTRY") else {
        assert!(!common::peers_required(), "RBUILD_TEST_REGISTRY is not set");
        eprintln!("skipped: no test registry (source scripts/lib/peers.sh; peers_start)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = search(dir.path(), &[&format!("{registry}/busybox")]);
    assert!(!ok, "{out}");
    assert!(
        err.contains(&registry) && err.contains("no search API"),
        "{err}"
    );
}

#[test]
fn docker_search_through_the_service() {
    let Some(s) = Service::start() else { return };
    let (host, _) = fake_registry(Flavour::Hub);
    let term = format!("{host}/busy");
    // The docker CLI renders what GET /images/search answered: the same table as rbuild's.
    let theirs = s.ok(&["search", &term]);
    let (ok, ours, err) = search(&s.root(), &[&term]);
    assert!(ok, "{err}");
    assert_eq!(theirs, ours);
    let out = s.ok(&[
        "search",
        "--limit",
        "3",
        "--filter",
        "stars=1",
        "--format",
        "{{.Name}}:{{.StarCount}}:{{.IsOfficial}}",
        &term,
    ]);
    assert_eq!(
        out,
        "busybox:3100:[OK]\nsomeone/busybox-tools:12:[]\n".replace("[]", "")
    );
    // A registry without search: docker's error names it.
    if let Ok(registry) = std::env::var("RBUILD_TEST_REGISTRY") {
        let out = s.docker(&["search", &format!("{registry}/busybox")]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&registry) && err.contains("no search API"),
            "{err}"
        );
    }
}
