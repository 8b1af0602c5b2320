//! The registry settings a front end gives the engine, and the client made from them:
//! credentials from docker's config.json, insecure hosts (the front end's own plus
//! `/etc/rbuild/registries.json`), extra CA certificates, concurrency; logging in and out
//! (checked credentials remembered in docker's config.json or its credential helper); what
//! a registry holds (tags, repositories, manifests).

mod auth;
mod remote;
mod search;

use std::path::PathBuf;
use std::sync::Arc;

use rbuild_registry::credentials::DockerConfig;
use rbuild_registry::{Client, ClientOptions};

pub use auth::{login, logout, normalize_host};
pub use remote::{catalog, delete_manifest, manifest, tags};
pub use search::{DEFAULT_SEARCH_LIMIT, search, search_filter, search_target};

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
