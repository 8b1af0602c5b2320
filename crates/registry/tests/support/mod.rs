//! Test support: real `docker-registry` processes (open, htpasswd, token auth) on free loopback
//! ports with temporary storage, a JWT token endpoint, a connection-dropping proxy, a proxy
//! that cuts every connection after so many body bytes, and random test images. Everything is
//! killed and removed on drop.
#![allow(dead_code)]

pub mod cutting;
pub mod image;
pub mod proxy;
pub mod token;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the peers must be present (`scripts/test` sets this).
pub fn peers_required() -> bool {
    std::env::var("RBUILD_TEST_PEERS").is_ok_and(|v| v == "1")
}

/// `true` if `program` is on PATH; when absent, panics under `RBUILD_TEST_PEERS=1` and
/// otherwise prints a skip message.
pub fn have(program: &str, test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    if !found {
        assert!(
            !peers_required(),
            "{test}: `{program}` is missing but RBUILD_TEST_PEERS=1"
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipping {test}: `{program}` not installed");
        }
    }
    found
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How the registry authenticates.
pub enum Auth {
    /// Anyone may do anything.
    Open,
    /// htpasswd Basic auth with one user.
    Htpasswd {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// Bearer tokens from `realm`, signed by the key of `cert_pem`.
    Token {
        /// Token endpoint URL.
        realm: String,
        /// PEM certificate whose key signs tokens.
        cert_pem: String,
    },
}

/// The service and issuer names the token configuration uses.
pub const TOKEN_SERVICE: &str = "rbuild-test-registry";
/// Issuer of test tokens.
pub const TOKEN_ISSUER: &str = "rbuild-test-issuer";

/// A running `docker-registry serve`.
pub struct RegistryProcess {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: tempfile::TempDir,
}

impl RegistryProcess {
    /// Start a registry, or `None` (after a skip message) when `docker-registry` is missing.
    pub fn start(auth: Auth, test: &str) -> Option<RegistryProcess> {
        RegistryProcess::start_with(auth, None, test)
    }

    /// Start a registry serving HTTPS with `tls` = (certificate PEM, key PEM).
    pub fn start_tls(cert_pem: &str, key_pem: &str, test: &str) -> Option<RegistryProcess> {
        RegistryProcess::start_with(Auth::Open, Some((cert_pem, key_pem)), test)
    }

    fn start_with(auth: Auth, tls: Option<(&str, &str)>, test: &str) -> Option<RegistryProcess> {
        if !have("docker-registry", test) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let data = dir.path().join("data");
        let auth_yaml = match &auth {
            Auth::Open => String::new(),
            Auth::Htpasswd { user, password } => {
                if !have("htpasswd", test) {
                    return None;
                }
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "htpasswd failed");
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: rbuild-test\n    path: {}\n",
                    file.display()
                )
            }
            Auth::Token { realm, cert_pem } => {
                let file = dir.path().join("token.crt");
                std::fs::write(&file, cert_pem).unwrap();
                format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    file.display()
                )
            }
        };
        let tls_yaml = match tls {
            None => String::new(),
            Some((cert, key)) => {
                let (c, k) = (dir.path().join("server.crt"), dir.path().join("server.key"));
                std::fs::write(&c, cert).unwrap();
                std::fs::write(&k, key).unwrap();
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    c.display(),
                    k.display()
                )
            }
        };
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_yaml}{auth_yaml}",
                data.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "docker-registry exited ({status}): {}",
                    std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(RegistryProcess { child, addr, dir })
    }

    /// The storage file of blob `hex` (sha256) on disk.
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
