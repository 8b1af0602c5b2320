//! Pushing an image from a [`BlobSource`]: skip blobs the registry has, mount what another
//! repository there has, upload the rest concurrently, then the config-bearing manifest(s) and
//! finally the index or tag. A tag already pointing at the same manifest means nothing to do.

use std::sync::Arc;

use futures_util::StreamExt;
use reqwest::Body;

use rbuild_oci::manifest::{decode_index, descriptor_digest};
use rbuild_oci::{Digest, Reference};

use crate::blobs::BlobSource;
use crate::client::{Client, Registry};
use crate::error::{RegistryError, Result};
use crate::manifest::media_type_of;
use crate::progress::{Outcome, Reporter};
use crate::pull::{manifest_error, reference_target};
use crate::tasks::run_bounded;

/// How to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Other repositories on the destination registry to try mounting blobs from.
    pub mount_from: Vec<String>,
}

/// Where the bytes of blobs being sent come from.
#[derive(Clone)]
pub(crate) enum Origin {
    /// A local source (store, layout, memory).
    Local(Arc<dyn BlobSource>),
    /// Another repository, possibly on another registry: streamed through, never stored.
    Remote(Arc<Registry>, String),
}

/// Push the image or index `manifest` from `source` to `dest`; returns the pushed digest.
pub async fn push(
    client: &Client,
    dest: &Reference,
    manifest: &Digest,
    source: Arc<dyn BlobSource>,
    opts: &PushOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Digest> {
    let reg = client.registry(dest.domain()).await?;
    let repo = dest.path().to_string();
    let bytes = read_local(&source, manifest, "manifest")?;
    let media_type = media_type_of(&bytes).ok_or_else(|| {
        RegistryError::Config(format!(
            "manifest {manifest} is not a JSON manifest or index"
        ))
    })?;
    let target = reference_target(dest);
    if let Some(info) = reg.manifest_info(&repo, &target).await?
        && info.digest.as_ref() == Some(manifest)
    {
        return Ok(manifest.clone());
    }
    let origin = Origin::Local(Arc::clone(&source));
    if media_type
        .parse()
        .is_ok_and(rbuild_oci::MediaType::is_index)
    {
        let index =
            decode_index(&bytes).map_err(|e| manifest_error(format!("index {manifest}"), e))?;
        for d in index.manifests() {
            let child = descriptor_digest(d).map_err(|e| {
                manifest_error(
                    format!("index {manifest}"),
                    rbuild_oci::ManifestError::Digest {
                        what: "index",
                        source: e,
                    },
                )
            })?;
            match source.read(&child) {
                Ok(child_bytes) => {
                    send_image(
                        &reg,
                        &repo,
                        &child_bytes,
                        &child.to_string(),
                        &origin,
                        &opts.mount_from,
                        &reporter,
                    )
                    .await?;
                }
                // An entry we do not have locally must already be on the registry.
                Err(_)
                    if reg
                        .manifest_info(&repo, &child.to_string())
                        .await?
                        .is_some() => {}
                Err(e) => {
                    return Err(RegistryError::Local {
                        what: format!("reading manifest {child} listed in index {manifest}"),
                        source: e,
                    });
                }
            }
        }
        return reg.put_manifest(&repo, &target, &bytes, &media_type).await;
    }
    send_image(
        &reg,
        &repo,
        &bytes,
        &target,
        &origin,
        &opts.mount_from,
        &reporter,
    )
    .await
}

fn read_local(source: &Arc<dyn BlobSource>, digest: &Digest, what: &str) -> Result<Vec<u8>> {
    let bytes = source.read(digest).map_err(|e| RegistryError::Local {
        what: format!("reading {what} {digest}"),
        source: e,
    })?;
    let actual = Digest::sha256_of(&bytes);
    if &actual != digest {
        return Err(RegistryError::DigestMismatch {
            what: format!("local {what}"),
            expected: digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// Send an image manifest's blobs, then the manifest under `target` (tag or digest).
pub(crate) async fn send_image(
    reg: &Arc<Registry>,
    repo: &str,
    bytes: &[u8],
    target: &str,
    origin: &Origin,
    mount_from: &[String],
    reporter: &Arc<dyn Reporter>,
) -> Result<Digest> {
    let media_type = media_type_of(bytes)
        .ok_or_else(|| reg.protocol(format!("manifest for {repo}:{target} has no media type")))?;
    let blobs = referenced_blobs(bytes)
        .ok_or_else(|| reg.protocol(format!("manifest for {repo}:{target} is not a manifest")))?;
    // Layers first and concurrently; the config (first entry) too — it is small.
    run_bounded(blobs, reg.options().concurrency, |(digest, size)| {
        let reg = Arc::clone(reg);
        let repo = repo.to_string();
        let origin = origin.clone();
        let mounts = mount_from.to_vec();
        let reporter = Arc::clone(reporter);
        async move { send_blob(&reg, &repo, &digest, size, &origin, &mounts, reporter).await }
    })
    .await?;
    reg.put_manifest(repo, target, bytes, &media_type).await
}

/// The blobs a manifest references (`config`, `layers`), whatever their media types: sending
/// content on needs no understanding of it (attestations, artifacts), unlike storing it.
pub(crate) fn referenced_blobs(bytes: &[u8]) -> Option<Vec<(Digest, u64)>> {
    #[derive(serde::Deserialize)]
    struct Desc {
        digest: Digest,
        size: u64,
    }
    #[derive(serde::Deserialize)]
    struct Doc {
        config: Option<Desc>,
        #[serde(default)]
        layers: Vec<Desc>,
    }
    let doc: Doc = serde_json::from_slice(bytes).ok()?;
    let mut out: Vec<(Digest, u64)> = Vec::new();
    for d in doc.config.into_iter().chain(doc.layers) {
        if !out.iter().any(|(x, _)| *x == d.digest) {
            out.push((d.digest, d.size));
        }
    }
    Some(out)
}

/// Make blob `digest` exist in `repo`: already there, mounted, or uploaded.
async fn send_blob(
    reg: &Arc<Registry>,
    repo: &str,
    digest: &Digest,
    size: u64,
    origin: &Origin,
    mount_from: &[String],
    reporter: Arc<dyn Reporter>,
) -> Result<Outcome> {
    reporter.on_start(digest, size);
    let outcome = if reg.blob_size(repo, digest).await?.is_some() {
        Outcome::Present
    } else if mounted(reg, repo, digest, mount_from).await? {
        Outcome::Mounted
    } else {
        match origin {
            Origin::Local(source) => {
                reg.upload_blob(
                    repo,
                    digest,
                    size,
                    Arc::clone(source),
                    Arc::clone(&reporter),
                )
                .await?;
            }
            Origin::Remote(src_reg, src_repo) => {
                stream_between(src_reg, src_repo, reg, repo, digest, size, &reporter).await?;
            }
        }
        Outcome::Transferred
    };
    reporter.on_done(digest, outcome);
    Ok(outcome)
}

async fn mounted(reg: &Registry, repo: &str, digest: &Digest, from: &[String]) -> Result<bool> {
    for f in from.iter().filter(|f| f.as_str() != repo) {
        if reg.mount_blob(repo, digest, f).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Stream a blob from one registry repository into another without storing it; retried whole.
async fn stream_between(
    src: &Arc<Registry>,
    src_repo: &str,
    dst: &Registry,
    dst_repo: &str,
    digest: &Digest,
    size: u64,
    reporter: &Arc<dyn Reporter>,
) -> Result<()> {
    let mut attempt = 0;
    loop {
        let resp = src.blob_response(src_repo, digest, 0).await?;
        let rep = Arc::clone(reporter);
        let d = digest.clone();
        let mut done = 0u64;
        let stream = resp.bytes_stream().map(move |chunk| {
            if let Ok(c) = &chunk {
                done += c.len() as u64;
                rep.on_progress(&d, done);
            }
            chunk
        });
        match dst
            .upload_stream(dst_repo, digest, size, Body::wrap_stream(stream))
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && attempt < dst.options().retries => {
                attempt += 1;
                reporter.on_retry(
                    digest,
                    &format!("{}; restarting the blob", crate::error::one_line(&e)),
                );
                tokio::time::sleep(dst.options().backoff * attempt).await;
            }
            Err(e) => return Err(e),
        }
    }
}
