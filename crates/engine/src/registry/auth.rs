//! Logging in to and out of registries: credentials checked against the registry, then
//! remembered in (or erased from) docker's config.json or its credential helper.

use std::path::Path;
use std::sync::Arc;

use rbuild_registry::credentials::DockerConfig;
use rbuild_registry::{Client, ClientOptions, Credential, Scope, StaticCredential};

use super::RegistrySettings;
use crate::error::{EngineError, Result, ResultExt};

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
