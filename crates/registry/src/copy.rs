//! Registry → registry copy: manifests are re-sent byte for byte (digests preserved) and blobs
//! stream from source to destination without a local copy, or are mounted when both
//! repositories live on the same registry.

use std::sync::Arc;

use rbuild_oci::{Digest, Reference};

use crate::client::Client;
use crate::error::Result;
use crate::progress::Reporter;
use crate::pull::{PullOptions, reference_target, resolve_images};
use crate::push::{Origin, send_image};

/// Copy `src` to `dst`, choosing a platform from an index unless `opts.all_platforms`;
/// returns the digest now at `dst`.
pub async fn copy(
    client: &Client,
    src: &Reference,
    dst: &Reference,
    opts: &PullOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Digest> {
    let src_reg = client.registry(src.domain()).await?;
    let dst_reg = client.registry(dst.domain()).await?;
    let src_repo = src.path().to_string();
    let dst_repo = dst.path().to_string();
    let top = src_reg.manifest(&src_repo, &reference_target(src)).await?;
    if opts.all_platforms && top.kind().is_some_and(rbuild_oci::MediaType::is_index) {
        return copy_index(&src_reg, &src_repo, &dst_reg, &dst_repo, dst, top, reporter).await;
    }
    let (_, images) = resolve_images(&src_reg, &src_repo, src, top, opts).await?;
    let mount_from = if src_reg.host() == dst_reg.host() && src_repo != dst_repo {
        vec![src_repo.clone()]
    } else {
        Vec::new()
    };
    let origin = Origin::Remote(Arc::clone(&src_reg), src_repo.clone());
    let target = reference_target(dst);
    send_image(
        &dst_reg,
        &dst_repo,
        &images[0].bytes,
        &target,
        &origin,
        &mount_from,
        &reporter,
    )
    .await
}

/// Copy a whole index: every entry (images, attestations, artifacts) by digest, then the index.
async fn copy_index(
    src_reg: &Arc<crate::Registry>,
    src_repo: &str,
    dst_reg: &Arc<crate::Registry>,
    dst_repo: &str,
    dst: &Reference,
    index: crate::RemoteManifest,
    reporter: Arc<dyn Reporter>,
) -> Result<Digest> {
    let decoded = rbuild_oci::manifest::decode_index(&index.bytes).map_err(|source| {
        crate::RegistryError::Manifest {
            what: format!("index {}", index.digest),
            source,
        }
    })?;
    let mount_from = if src_reg.host() == dst_reg.host() && src_repo != dst_repo {
        vec![src_repo.to_string()]
    } else {
        Vec::new()
    };
    let origin = Origin::Remote(Arc::clone(src_reg), src_repo.to_string());
    for d in decoded.manifests() {
        let digest = d.digest().to_string();
        let child = src_reg.manifest(src_repo, &digest).await?;
        if child.kind().is_some_and(rbuild_oci::MediaType::is_index) {
            return Err(src_reg.protocol(format!(
                "index {} nests index {digest}; nested indexes are not copied",
                index.digest
            )));
        }
        send_image(
            dst_reg,
            dst_repo,
            &child.bytes,
            &digest,
            &origin,
            &mount_from,
            &reporter,
        )
        .await?;
    }
    dst_reg
        .put_manifest(
            dst_repo,
            &reference_target(dst),
            &index.bytes,
            &index.media_type,
        )
        .await
}
