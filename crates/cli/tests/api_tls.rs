//! The Engine API service over TLS, as dockerd serves it: `rbuild system service --tlsverify
//! --tlscacert --tlscert --tlskey tcp://…` driven by the docker 28 CLI with its own
//! `--tlsverify` options, certificates made in the test with the openssl CLI; a client without
//! a certificate (or one signed by another CA) is turned away; an address other than
//! loopback is refused without --tlsverify; the unix socket is 0660 and the owner's.
#![allow(clippy::print_stderr)]

mod api_support;
mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use api_support::DOCKER;
use common::peers_required;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA (`NAME-ca.pem`), and a server certificate for 127.0.0.1 and a client certificate it
/// signs (`NAME-server*.pem`, `NAME-client*.pem`), as docker's "Protect the Docker daemon
/// socket" page makes them.
fn make_certs(dir: &Path, name: &str) {
    let p = |s: &str| format!("{name}-{s}");
    openssl(dir, &["genrsa", "-out", &p("ca-key.pem"), "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-key",
            &p("ca-key.pem"),
            "-sha256",
            "-subj",
            "/CN=rbuild test CA",
            "-out",
            &p("ca.pem"),
        ],
    );
    for (who, ext) in [
        (
            "server",
            "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
        ),
        ("client", "extendedKeyUsage = clientAuth\n"),
    ] {
        std::fs::write(dir.join(p(&format!("{who}.ext"))), ext).unwrap();
        openssl(
            dir,
            &["genrsa", "-out", &p(&format!("{who}-key.pem")), "2048"],
        );
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &p(&format!("{who}-key.pem")),
                "-subj",
                &format!("/CN={who}"),
                "-out",
                &p(&format!("{who}.csr")),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-sha256",
                "-in",
                &p(&format!("{who}.csr")),
                "-CA",
                &p("ca.pem"),
                "-CAkey",
                &p("ca-key.pem"),
                "-CAcreateserial",
                "-out",
                &p(&format!("{who}-cert.pem")),
                "-extfile",
                &p(&format!("{who}.ext")),
            ],
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn docker_cli_over_tls_with_client_certificates() {
    if !Path::new(DOCKER).exists() || Command::new("openssl").arg("version").output().is_err() {
        assert!(!peers_required(), "the docker CLI or openssl is missing");
        eprintln!("skipped: no docker CLI or openssl");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certs(d, "good");
    make_certs(d, "other");
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let f = |n: &str| d.join(n).to_str().unwrap().to_owned();
    let _service = Killed(
        Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(d.join("root"))
            .args(["system", "service", "--time", "0", "--tlsverify"])
            .args(["--tlscacert", &f("good-ca.pem")])
            .args(["--tlscert", &f("good-server-cert.pem")])
            .args(["--tlskey", &f("good-server-key.pem")])
            .arg(&host)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "service did not listen"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let docker = |tls: &[String], args: &[&str]| -> Output {
        Command::new(DOCKER)
            .args(tls)
            .args(["-H", &host])
            .args(args)
            .env("DOCKER_CONFIG", d.join("docker-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_CONTEXT")
            .output()
            .unwrap()
    };
    let client = |ca: &str, who: &str| -> Vec<String> {
        vec![
            "--tlsverify".into(),
            "--tlscacert".into(),
            f(&format!("{ca}-ca.pem")),
            "--tlscert".into(),
            f(&format!("{who}-client-cert.pem")),
            "--tlskey".into(),
            f(&format!("{who}-client-key.pem")),
        ]
    };
    let out = docker(
        &client("good", "good"),
        &[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.Platform.Name}}",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.41 rbuild");
    let out = docker(
        &client("good", "good"),
        &["info", "--format", "{{.OSType}}"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "linux",
        "{out:?}"
    );
    // A client certificate another CA signed: the handshake fails.
    let out = docker(&client("good", "other"), &["version"]);
    assert!(!out.status.success(), "{out:?}");
    // No client certificate at all (TLS, server verified): refused too.
    let out = docker(
        &["--tls".into(), "--tlscacert".into(), f("good-ca.pem")],
        &["version", "--format", "{{.Server.APIVersion}}"],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "{out:?}"
    );
    // Plain HTTP on the TLS port: no answer from the API.
    let out = docker(&[], &["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(!out.status.success(), "{out:?}");
    // Still serving the good client.
    let out = docker(
        &client("good", "good"),
        &["version", "--format", "{{.Server.Os}}"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "linux",
        "{out:?}"
    );
}

#[test]
fn bad_tls_options_and_non_loopback_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let service = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(d.join("root"))
            .args(["system", "service", "--time", "1"])
            .args(args)
            .output()
            .unwrap()
    };
    // A certificate file that does not exist: named in the error.
    let missing = d.join("missing.pem");
    let out = service(&[
        "--tls",
        "--tlscert",
        missing.to_str().unwrap(),
        "--tlskey",
        missing.to_str().unwrap(),
        "tcp://127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.pem"), "{err}");
    // A file without a certificate.
    let junk = d.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let out = service(&[
        "--tls",
        "--tlscert",
        junk.to_str().unwrap(),
        "--tlskey",
        junk.to_str().unwrap(),
        "tcp://127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("junk.pem") && err.contains("certificate"),
        "{err}"
    );
    // Off loopback: refused without --tlsverify, even with --tls (server-side TLS only).
    if Command::new("openssl").arg("version").output().is_ok() {
        make_certs(d, "t");
        let f = |n: &str| d.join(n).to_str().unwrap().to_owned();
        let out = service(&[
            "--tls",
            "--tlscert",
            &f("t-server-cert.pem"),
            "--tlskey",
            &f("t-server-key.pem"),
            "tcp://0.0.0.0:0",
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--tlsverify") && err.contains("0.0.0.0:0"),
            "{err}"
        );
    }
}

#[test]
fn the_socket_is_0660_and_the_owners() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mode.sock");
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .args(["system", "service", "--time", "0"])
            .arg(format!("unix://{}", sock.display()))
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "service did not listen"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let m = std::fs::metadata(&sock).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    // root:root for root (the service's user and group otherwise).
    assert_eq!(m.uid(), nix::unistd::geteuid().as_raw());
    assert_eq!(m.gid(), nix::unistd::getegid().as_raw());
    let _ = child.0.kill();
}
