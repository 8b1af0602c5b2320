//! The registry settings a front end gives the engine, and the client made from them:
//! credentials from docker's config.json, insecure hosts (the front end's own plus
//! `/etc/rbuild/registries.json`), extra CA certificates, concurrency; logging in and out
//! (checked credentials remembered in docker's config.json or its credential helper).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbuild_registry::credentials::DockerConfig;
use rbuild_registry::{Client, ClientOptions, Credential, Scope, StaticCredential};

use crate::error::{EngineError, Result, ResultExt};

/// The system-wide registries configuration: `{"insecure-registries": ["host:port", …]}`
/// (`RBUILD_REGISTRIES_CONF` names another file).
pub const REGISTRIES_CONF: &str = "/etc/rbuild/registries.json";

/// How the engine talks to registries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Hosts reached over plain HTTP or with unverified TLS.
    pub insecure_registries: Vec<String>,
    /// A directory of extra CA certificates (`*.crt`).
    pub cert_dir: Option<PathBuf>,
    /// Docker's config.json to read credentials from [default: docker's own path].
    pub authfile: Option<PathBuf>,
    /// Blobs transferred at once (at least 1).
    pub max_concurrent: usize,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            insecure_registries: Vec::new(),
            cert_dir: None,
            authfile: None,
            max_concurrent: 4,
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct RegistriesConf {
    #[serde(rename = "insecure-registries", default)]
    insecure_registries: Vec<String>,
}

impl RegistrySettings {
    /// The credentials file these settings read.
    pub fn docker_config(&self) -> Result<DockerConfig> {
        let path = self
            .authfile
            .clone()
            .unwrap_or_else(rbuild_registry::credentials::default_path);
        DockerConfig::load(&path)
            .with_context(|| format!("reading credentials from {}", path.display()))
    }

    /// A registry client with these settings and the system-wide insecure hosts.
    pub fn client(&self) -> Result<Client> {
        let conf_path = std::env::var_os("RBUILD_REGISTRIES_CONF")
            .map_or_else(|| PathBuf::from(REGISTRIES_CONF), PathBuf::from);
        let conf: RegistriesConf = match std::fs::read(&conf_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!("{}: not a registries configuration", conf_path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistriesConf::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", conf_path.display())),
        };
        let mut insecure = self.insecure_registries.clone();
        insecure.extend(conf.insecure_registries);
        if self.max_concurrent == 0 {
            return Err(EngineError::InvalidParameter(
                "--max-concurrent must be at least 1".into(),
            ));
        }
        Ok(Client::new(ClientOptions {
            insecure_registries: insecure,
            cert_dir: self.cert_dir.clone(),
            credentials: Arc::new(self.docker_config()?),
            concurrency: self.max_concurrent,
            ..ClientOptions::default()
        }))
    }
}

/// A registry host as users write it for login/logout/catalog: `https://index.docker.io/v1/`
/// and `docker.io` → `docker.io`; `http://h:5000/` → `h:5000`.
pub fn normalize_host(input: &str) -> String {
    let s = input
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_string(),
    }
}

/// Check `credential` against the registry at `host` (with `settings`' transport options)
/// and remember it in the credentials file `settings` name (docker's `/auth`, `docker
/// login`).
pub async fn login(settings: &RegistrySettings, host: &str, credential: Credential) -> Result<()> {
    let base = settings.client()?;
    let client = Client::new(ClientOptions {
        credentials: Arc::new(StaticCredential {
            registry: host.to_owned(),
            credential: credential.clone(),
        }),
        ..base.options().clone()
    });
    async {
        let reg = client.registry(host).await?;
        reg.check_login(&Scope::none()).await
    }
    .await
    .with_context(|| format!("logging in to {host}"))?;
    let mut config = settings.docker_config()?;
    config
        .store(host, &credential)
        .with_context(|| format!("saving credentials for {host}"))?;
    Ok(())
}

/// Forget the credentials for `host` in the credentials file `authfile` [default: docker's];
/// [`EngineError::NotFound`] (with a hint naming the file) when there were none.
pub fn logout(authfile: Option<&Path>, host: &str) -> Result<()> {
    let path = authfile.map_or_else(rbuild_registry::credentials::default_path, Path::to_owned);
    let mut config = DockerConfig::load(&path)?;
    if !config
        .erase(host)
        .with_context(|| format!("removing credentials for {host}"))?
    {
        return Err(EngineError::NotFound(format!("not logged in to {host}"))
            .with_hint(format!("credentials are read from {}", path.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalized_as_docker_does() {
        assert_eq!(normalize_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_host("docker.io"), "docker.io");
        assert_eq!(normalize_host("http://h:5000/"), "h:5000");
        assert_eq!(normalize_host(" localhost:5000 "), "localhost:5000");
    }
}
