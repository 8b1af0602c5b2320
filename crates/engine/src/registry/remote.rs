//! What a registry holds: a repository's tags, the registry's repositories, a manifest as
//! the registry serves it, and deleting one.

use rbuild_oci::{Digest, Reference};
use rbuild_registry::{Client, RemoteManifest, reference_target};

use crate::error::{Result, ResultExt};

/// The tags of repository `r` (its tag or digest ignored).
pub async fn tags(client: &Client, r: &Reference) -> Result<Vec<String>> {
    async {
        let reg = client.registry(r.domain()).await?;
        reg.tags(r.path()).await
    }
    .await
    .with_context(|| format!("listing tags of {}", r.repository()))
}

/// The repositories of the registry at `host`.
pub async fn catalog(client: &Client, host: &str) -> Result<Vec<String>> {
    async {
        let reg = client.registry(host).await?;
        reg.catalog().await
    }
    .await
    .with_context(|| format!("listing repositories of {host}"))
}

/// The manifest `r` names, as the registry serves it.
pub async fn manifest(client: &Client, r: &Reference) -> Result<RemoteManifest> {
    async {
        let reg = client.registry(r.domain()).await?;
        reg.manifest(r.path(), &reference_target(r)).await
    }
    .await
    .with_context(|| format!("fetching the manifest of {r}"))
}

/// Delete the manifest `r` names (by its digest, looked up for a tag); returns the digest.
pub async fn delete_manifest(client: &Client, r: &Reference) -> Result<Digest> {
    async {
        let reg = client.registry(r.domain()).await?;
        let digest = match r.digest() {
            Some(d) => d.clone(),
            None => reg.manifest(r.path(), &reference_target(r)).await?.digest,
        };
        reg.delete_manifest(r.path(), &digest).await?;
        Ok::<_, rbuild_registry::RegistryError>(digest)
    }
    .await
    .with_context(|| format!("deleting {r}"))
}
