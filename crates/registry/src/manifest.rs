//! Manifests on a registry: GET by tag or digest (with `Accept` for OCI and Docker types,
//! verified against the digest), HEAD for existence, PUT with the right media type, DELETE.

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};

use rbuild_oci::{Digest, MediaType};

use crate::auth::Scope;
use crate::client::Registry;
use crate::error::{RegistryError, Result};
use crate::transport::{status_error, transport};

/// Every manifest type rbuild reads, in the `Accept` header of manifest requests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest accepted (the distribution spec suggests registries cap at 4 MiB).
pub const MANIFEST_MAX: u64 = 4 << 20;

/// A manifest or index as the registry served it: the exact bytes, their digest and media type.
#[derive(Debug, Clone)]
pub struct RemoteManifest {
    /// The raw bytes (hash these, never re-serialize).
    pub bytes: Vec<u8>,
    /// `sha256` of the bytes (verified against the requested digest, if any).
    pub digest: Digest,
    /// The media type from `Content-Type`, or the JSON's `mediaType`.
    pub media_type: String,
}

impl RemoteManifest {
    /// The media type, if rbuild knows it.
    pub fn kind(&self) -> Option<MediaType> {
        self.media_type.parse().ok()
    }
}

/// What a HEAD on a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// `Docker-Content-Digest`.
    pub digest: Option<Digest>,
    /// `Content-Type`.
    pub media_type: Option<String>,
    /// `Content-Length`.
    pub size: Option<u64>,
}

/// The `mediaType` field of a manifest's JSON, if present.
pub fn media_type_of(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    p.media_type.or_else(|| {
        // Untyped OCI documents: an index has `manifests`, an image manifest does not.
        Some(if p.manifests.is_some() {
            MediaType::OciIndex.as_str().to_string()
        } else {
            MediaType::OciManifest.as_str().to_string()
        })
    })
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let v = v.split(';').next()?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

impl Registry {
    /// Fetch the manifest `reference` (tag or digest) of `repository`.
    pub async fn manifest(&self, repository: &str, reference: &str) -> Result<RemoteManifest> {
        let url = self.url(&format!("{repository}/manifests/{reference}"));
        let resp = self
            .send(Method::GET, &url, &Scope::pull(repository), |r| {
                r.header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(self.not_found(repository, format!("manifest {reference}")));
        }
        if !resp.status().is_success() {
            return Err(status_error("GET", &url, resp).await);
        }
        if resp.content_length().is_some_and(|l| l > MANIFEST_MAX) {
            return Err(self.protocol(format!(
                "manifest {repository}:{reference} is larger than {MANIFEST_MAX} bytes"
            )));
        }
        let header_type = content_type(resp.headers());
        let header_digest = header_digest(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport("GET", &url, e))?
            .to_vec();
        let expected = reference.parse::<Digest>().ok();
        let mut hasher = rbuild_oci::Hasher::new(
            expected
                .as_ref()
                .map_or(rbuild_oci::Algorithm::Sha256, Digest::algorithm),
        );
        hasher.update(&bytes);
        let digest = hasher.finish();
        if let Some(expected) = expected.or(header_digest)
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {}/{repository}:{reference}", self.host()),
                expected,
                actual: digest,
            });
        }
        let media_type = header_type
            .filter(|t| t.starts_with("application/vnd."))
            .or_else(|| media_type_of(&bytes))
            .ok_or_else(|| {
                self.protocol(format!(
                    "manifest {repository}:{reference} has no media type"
                ))
            })?;
        Ok(RemoteManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// HEAD the manifest `reference`: `None` when absent.
    pub async fn manifest_info(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestInfo>> {
        let url = self.url(&format!("{repository}/manifests/{reference}"));
        let resp = self
            .send(Method::HEAD, &url, &Scope::pull(repository), |r| {
                r.header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(ManifestInfo {
                digest: header_digest(resp.headers()),
                media_type: content_type(resp.headers()),
                size: resp.content_length(),
            })),
            _ => Err(status_error("HEAD", &url, resp).await),
        }
    }

    /// Upload a manifest under `reference` (tag or digest) with `media_type`; returns its digest.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        let url = self.url(&format!("{repository}/manifests/{reference}"));
        let body = bytes::Bytes::copy_from_slice(bytes);
        let resp = self
            .send(Method::PUT, &url, &Scope::push(repository), |r| {
                r.header(CONTENT_TYPE, media_type).body(body.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(status_error("PUT", &url, resp).await);
        }
        let digest = Digest::sha256_of(bytes);
        if let Some(d) = header_digest(resp.headers())
            && d != digest
        {
            return Err(self.protocol(format!(
                "registry stored manifest {repository}:{reference} as {d}, but its content is {digest}"
            )));
        }
        Ok(digest)
    }

    /// Delete the manifest `digest` (registries refuse deleting by tag).
    pub async fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<()> {
        let url = self.url(&format!("{repository}/manifests/{digest}"));
        let resp = self
            .send(Method::DELETE, &url, &Scope::delete(repository), |r| r)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Err(self.not_found(repository, format!("manifest {digest}"))),
            s if s.is_success() => Ok(()),
            _ => Err(status_error("DELETE", &url, resp).await),
        }
    }

    pub(crate) fn not_found(&self, repository: &str, what: String) -> RegistryError {
        RegistryError::NotFound {
            registry: self.host().to_string(),
            repository: repository.to_string(),
            what,
        }
    }

    pub(crate) fn protocol(&self, detail: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.host().to_string(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_json() {
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#).as_deref(),
            Some("application/vnd.docker.distribution.manifest.v2+json")
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(MediaType::OciIndex.as_str())
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"config":{}}"#).as_deref(),
            Some(MediaType::OciManifest.as_str())
        );
        assert_eq!(media_type_of(b"nope"), None);
    }
}
