//! A running `rbuild system service` for the Engine API tests, and the docker CLI pointed at
//! it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{busybox_image, peers_required};

/// The docker CLI (the client only; the service is its daemon).
pub const DOCKER: &str = "/usr/local/bin/docker";

/// A running `rbuild system service` on a temporary store root and socket; stopped on drop.
pub struct Service {
    /// The temporary directory: store root, socket, docker's config.
    pub dir: tempfile::TempDir,
    /// The service process.
    pub child: Child,
}

impl Service {
    /// A service over a fresh store holding busybox; `None` (skip) without docker's CLI or
    /// busybox when peers are not required.
    pub fn start() -> Option<Service> {
        if !Path::new(DOCKER).exists() {
            assert!(
                !peers_required(),
                "RBUILD_TEST_PEERS=1 but {DOCKER} is missing"
            );
            eprintln!("skipped: no docker CLI at {DOCKER}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        busybox_image(&root, "busybox:latest")?;
        let sock = dir.path().join("s.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(&root)
            .args(["system", "service", "--time", "0"])
            .arg(format!("unix://{}", sock.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let s = Service { dir, child };
        let t = Instant::now();
        while UnixStream::connect(s.sock()).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "service did not listen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(s)
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("s.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock().display())
    }

    /// `docker ARGS` against the service, with `stdin` piped in.
    pub fn docker_in(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(DOCKER)
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
        drop(input);
        // A hung client must fail the test, not hang it.
        let t = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("docker {args:?} did not finish in 60 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait_with_output().unwrap()
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_in(args, b"")
    }

    /// `docker ARGS`, asserting success; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// One raw HTTP/1.1 request; the status code and body.
    pub fn raw(&self, request: &[u8]) -> (u16, String) {
        let mut s = UnixStream::connect(self.sock()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The service may answer (and close) before a too large request is all sent.
        let _ = s.write_all(request);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (code, body)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // Containers left running by a failed test: stop their monitors.
        let _ = Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(self.root())
            .args(["container", "prune", "-f"])
            .output();
    }
}
