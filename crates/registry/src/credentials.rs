//! Docker's client configuration (`$DOCKER_CONFIG/config.json`, `~/.docker/config.json`):
//! `auths` entries, a global `credsStore` and per-registry `credHelpers` run as
//! `docker-credential-NAME get|store|erase`. Read and written in the same format, unknown
//! fields preserved, the file replaced atomically with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::auth::Credential;
use crate::client::CredentialProvider;
use crate::error::{RegistryError, Result};

/// The key Docker uses for Docker Hub in `auths`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A loaded `config.json`.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    json: Map<String, Value>,
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".docker").join("config.json")
}

/// The `auths` key for a registry host.
pub fn auth_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

fn creds_error(registry: &str, detail: String) -> RegistryError {
    RegistryError::Credentials {
        registry: registry.to_string(),
        detail,
    }
}

impl DockerConfig {
    /// Load `path`; a missing file is an empty configuration.
    pub fn load(path: impl Into<PathBuf>) -> Result<DockerConfig> {
        let path = path.into();
        let json = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                RegistryError::Config(format!("{}: not a docker config file: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => return Err(RegistryError::File { path, source }),
        };
        Ok(DockerConfig { path, json })
    }

    /// Load the default file ([`default_path`]).
    pub fn load_default() -> Result<DockerConfig> {
        DockerConfig::load(default_path())
    }

    /// The file this configuration came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper for `registry`: its `credHelpers` entry, else `credsStore`.
    pub fn helper(&self, registry: &str) -> Option<String> {
        let key = auth_key(registry);
        self.json
            .get("credHelpers")
            .and_then(|h| h.get(registry).or_else(|| h.get(&key)))
            .or_else(|| self.json.get("credsStore"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// The credential for `registry`, from its helper or from `auths`.
    pub fn get(&self, registry: &str) -> Result<Option<Credential>> {
        let key = auth_key(registry);
        if let Some(helper) = self.helper(registry) {
            return helper_get(&helper, registry, &key);
        }
        let Some(auths) = self.json.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = [
            key.clone(),
            format!("https://{registry}"),
            format!("http://{registry}"),
            format!("https://{registry}/v1/"),
            format!("https://{registry}/v2/"),
        ]
        .iter()
        .find_map(|k| auths.get(k));
        let Some(entry) = entry else {
            return Ok(None);
        };
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| {
                    creds_error(
                        registry,
                        format!("{}: `auth` is not base64", self.path.display()),
                    )
                })?;
            let raw = String::from_utf8(raw).map_err(|_| {
                creds_error(
                    registry,
                    format!("{}: `auth` is not UTF-8", self.path.display()),
                )
            })?;
            let (user, secret) = raw.split_once(':').ok_or_else(|| {
                creds_error(
                    registry,
                    format!("{}: `auth` is not user:password", self.path.display()),
                )
            })?;
            return Ok(Some(Credential {
                username: user.to_string(),
                secret: secret.to_string(),
            }));
        }
        let user = entry.get("username").and_then(Value::as_str);
        let pass = entry.get("password").and_then(Value::as_str);
        Ok(match (user, pass) {
            (Some(u), Some(p)) => Some(Credential {
                username: u.to_string(),
                secret: p.to_string(),
            }),
            _ => None,
        })
    }

    /// Remember `credential` for `registry` (in its helper if one is configured) and save.
    pub fn store(&mut self, registry: &str, credential: &Credential) -> Result<()> {
        let key = auth_key(registry);
        let entry = match self.helper(registry) {
            Some(helper) => {
                let input = json!({
                    "ServerURL": key,
                    "Username": credential.username,
                    "Secret": credential.secret,
                });
                run_helper(&helper, "store", registry, &input.to_string())?;
                json!({})
            }
            None => {
                let raw = format!("{}:{}", credential.username, credential.secret);
                json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) })
            }
        };
        let auths = self
            .json
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Some(a) = auths.as_object_mut() {
            a.insert(key, entry);
        }
        self.save()
    }

    /// Forget the credential for `registry` and save; `false` if there was none.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        let key = auth_key(registry);
        let mut found = false;
        if let Some(helper) = self.helper(registry) {
            found = run_helper(&helper, "erase", registry, &key).is_ok();
        }
        if let Some(a) = self.json.get_mut("auths").and_then(Value::as_object_mut) {
            found |= a.remove(&key).is_some();
        }
        if found {
            self.save()?;
        }
        Ok(found)
    }

    /// Write the file atomically (temp file in the same directory, fsync, rename), mode 0600.
    pub fn save(&self) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let io = |source| RegistryError::File {
            path: self.path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(&self.json).map_err(|e| io(e.into()))?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }
}

impl CredentialProvider for DockerConfig {
    fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        self.get(registry)
    }
}

/// Run `docker-credential-HELPER ACTION` with `input` on stdin; its stdout.
fn run_helper(helper: &str, action: &str, registry: &str, input: &str) -> Result<String> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| creds_error(registry, format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| creds_error(registry, format!("{program} {action}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        // Helpers print their complaint on stdout; it never contains the secret.
        let msg = if stdout.trim().is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            stdout.trim().to_string()
        };
        return Err(creds_error(
            registry,
            format!("{program} {action} failed ({}): {msg}", out.status),
        ));
    }
    Ok(stdout)
}

fn helper_get(helper: &str, registry: &str, key: &str) -> Result<Option<Credential>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    // A helper named in the config but not installed (a config copied from another machine)
    // holds nothing here: go on anonymously rather than fail every pull.
    let program = format!("docker-credential-{helper}");
    let installed = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(&program).is_file()));
    if !installed {
        return Ok(None);
    }
    let out = match run_helper(helper, "get", registry, key) {
        Ok(out) => out,
        Err(RegistryError::Credentials { detail, .. })
            if detail.contains("credentials not found") =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let a: Answer = serde_json::from_str(&out).map_err(|_| {
        creds_error(
            registry,
            format!("docker-credential-{helper} get: answer is not JSON"),
        )
    })?;
    Ok(Some(Credential {
        username: a.username,
        secret: a.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(u: &str, p: &str) -> Credential {
        Credential {
            username: u.into(),
            secret: p.into(),
        }
    }

    #[test]
    fn stores_reads_and_erases_in_docker_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths":{},"HttpHeaders":{"X-Keep":"me"}}"#).unwrap();
        let mut c = DockerConfig::load(&path).unwrap();
        c.store("localhost:5000", &cred("alice", "s3:cret"))
            .unwrap();
        c.store("docker.io", &cred("bob", "pw")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["auths"]["localhost:5000"]["auth"], "YWxpY2U6czM6Y3JldA==");
        assert!(v["auths"][DOCKER_HUB_KEY]["auth"].is_string());
        assert_eq!(v["HttpHeaders"]["X-Keep"], "me");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let c = DockerConfig::load(&path).unwrap();
        assert_eq!(
            c.get("localhost:5000").unwrap(),
            Some(cred("alice", "s3:cret"))
        );
        assert_eq!(c.get("docker.io").unwrap(), Some(cred("bob", "pw")));
        assert_eq!(c.get("other:1").unwrap(), None);

        let mut c = c;
        assert!(c.erase("localhost:5000").unwrap());
        assert!(!c.erase("localhost:5000").unwrap());
        assert_eq!(
            DockerConfig::load(&path)
                .unwrap()
                .get("localhost:5000")
                .unwrap(),
            None
        );
    }

    #[test]
    fn missing_file_is_empty_and_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = DockerConfig::load(dir.path().join("nope.json")).unwrap();
        assert_eq!(c.get("x").unwrap(), None);
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        let e = DockerConfig::load(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.json"), "{e}");
    }
}
