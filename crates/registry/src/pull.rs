//! Pulling an image into a [`BlobSink`]: resolve the reference, pick the platform from an index
//! (or keep them all), fetch config and layers concurrently with verification, skipping blobs
//! the sink has, then store the manifests (after their blobs, so a stored manifest is complete).

use std::sync::Arc;

use rbuild_oci::manifest::{decode_index, decode_manifest, descriptor_digest, select_platform};
use rbuild_oci::{Digest, MediaType, Platform, Reference};

use crate::blobs::BlobSink;
use crate::client::Client;
use crate::error::{RegistryError, Result};
use crate::manifest::RemoteManifest;
use crate::progress::{Outcome, Reporter};
use crate::tasks::run_bounded;

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to pick from an index.
    pub platform: Platform,
    /// Keep the whole index and every image in it.
    pub all_platforms: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            all_platforms: false,
        }
    }
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// What the reference now means locally: the index digest with `all_platforms`, else the
    /// chosen image manifest's digest.
    pub digest: Digest,
    /// The index, when the reference named one.
    pub index: Option<RemoteManifest>,
    /// The image manifests fetched (one, or every platform's).
    pub images: Vec<RemoteManifest>,
}

/// The tag or digest a reference asks for (`latest` when it has neither).
pub fn reference_target(reference: &Reference) -> String {
    match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    }
}

pub(crate) fn manifest_error(what: String, source: rbuild_oci::ManifestError) -> RegistryError {
    RegistryError::Manifest { what, source }
}

/// The blobs (config first, then layers) of an image manifest, with sizes.
pub(crate) fn manifest_blobs(what: &str, bytes: &[u8]) -> Result<Vec<(Digest, u64)>> {
    let m = decode_manifest(bytes).map_err(|e| manifest_error(what.to_string(), e))?;
    let mut out = Vec::new();
    for d in std::iter::once(m.config()).chain(m.layers()) {
        let digest = descriptor_digest(d).map_err(|e| RegistryError::Manifest {
            what: what.to_string(),
            source: rbuild_oci::ManifestError::Digest {
                what: "manifest",
                source: e,
            },
        })?;
        if !out.iter().any(|(x, _)| *x == digest) {
            out.push((digest, d.size()));
        }
    }
    Ok(out)
}

/// Pull `reference` into `sink`.
pub async fn pull(
    client: &Client,
    reference: &Reference,
    sink: Arc<dyn BlobSink>,
    opts: &PullOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Pulled> {
    let reg = client.registry(reference.domain()).await?;
    let repo = reference.path().to_string();
    let top = reg.manifest(&repo, &reference_target(reference)).await?;
    let (index, images) = resolve_images(&reg, &repo, reference, top, opts).await?;

    let mut wanted: Vec<(Digest, u64)> = Vec::new();
    for img in &images {
        for b in manifest_blobs(
            &format!("manifest {} of {reference}", img.digest),
            &img.bytes,
        )? {
            if !wanted.contains(&b) {
                wanted.push(b);
            }
        }
    }
    let limit = client.options().concurrency;
    run_bounded(wanted, limit, |(digest, size)| {
        let reg = Arc::clone(&reg);
        let sink = Arc::clone(&sink);
        let reporter = Arc::clone(&reporter);
        let repo = repo.clone();
        async move {
            reporter.on_start(&digest, size);
            if sink.contains(&digest) {
                reporter.on_done(&digest, Outcome::Present);
                return Ok(());
            }
            let writer = sink.begin(&digest).map_err(|source| RegistryError::Local {
                what: format!("storing blob {digest}"),
                source,
            })?;
            let verifies = sink.verifies_digests();
            reg.fetch_blob(&repo, &digest, size, writer, verifies, reporter.as_ref())
                .await?;
            reporter.on_done(&digest, Outcome::Transferred);
            Ok(())
        }
    })
    .await?;

    // The index is kept only when all its images are.
    let kept_index = index.as_ref().filter(|_| opts.all_platforms);
    for m in images.iter().chain(kept_index) {
        if !sink.contains(&m.digest) {
            sink.put(&m.digest, &m.bytes)
                .map_err(|source| RegistryError::Local {
                    what: format!("storing manifest {}", m.digest),
                    source,
                })?;
        }
    }
    let digest = match (&index, opts.all_platforms) {
        (Some(i), true) => i.digest.clone(),
        _ => images[0].digest.clone(),
    };
    Ok(Pulled {
        digest,
        index,
        images,
    })
}

/// From the top-level manifest to the image manifests wanted.
pub(crate) async fn resolve_images(
    reg: &crate::Registry,
    repo: &str,
    reference: &Reference,
    top: RemoteManifest,
    opts: &PullOptions,
) -> Result<(Option<RemoteManifest>, Vec<RemoteManifest>)> {
    match top.kind() {
        Some(k) if k.is_manifest() => Ok((None, vec![top])),
        Some(k) if k.is_index() => {
            let index = decode_index(&top.bytes)
                .map_err(|e| manifest_error(format!("index of {reference}"), e))?;
            let chosen: Vec<Digest> = if opts.all_platforms {
                index
                    .manifests()
                    .iter()
                    .filter(|d| {
                        rbuild_oci::manifest::descriptor_media_type(d)
                            .is_some_and(MediaType::is_manifest)
                    })
                    // Attestations ride along as `unknown/unknown` entries; they are not images.
                    .filter(|d| {
                        d.platform()
                            .as_ref()
                            .is_none_or(|p| p.os().to_string() != "unknown")
                    })
                    .filter_map(|d| descriptor_digest(d).ok())
                    .collect()
            } else {
                let d = select_platform(&index, &opts.platform).ok_or_else(|| {
                    RegistryError::NoPlatform {
                        reference: reference.to_string(),
                        platform: opts.platform.to_string(),
                        available: index
                            .manifests()
                            .iter()
                            .filter_map(|d| d.platform().as_ref())
                            .map(|p| format!("{}/{}", p.os(), p.architecture()))
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })?;
                vec![descriptor_digest(d).map_err(|e| RegistryError::Manifest {
                    what: format!("index of {reference}"),
                    source: rbuild_oci::ManifestError::Digest {
                        what: "index",
                        source: e,
                    },
                })?]
            };
            let mut images = Vec::new();
            for d in chosen {
                let m = reg.manifest(repo, &d.to_string()).await?;
                if !m.kind().is_some_and(MediaType::is_manifest) {
                    return Err(reg.protocol(format!(
                        "{reference}: index entry {d} is a {}, not an image manifest",
                        m.media_type
                    )));
                }
                images.push(m);
            }
            if images.is_empty() {
                return Err(reg.protocol(format!("{reference}: index lists no image manifests")));
            }
            Ok((Some(top), images))
        }
        _ => Err(reg.protocol(format!(
            "{reference}: unsupported manifest media type {:?} (only OCI and Docker schema 2 images)",
            top.media_type
        ))),
    }
}
