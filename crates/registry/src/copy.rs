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
    let (index, images) = resolve_images(&src_reg, &src_repo, src, top, opts).await?;
    let mount_from = if src_reg.host() == dst_reg.host() && src_repo != dst_repo {
        vec![src_repo.clone()]
    } else {
        Vec::new()
    };
    let origin = Origin::Remote(Arc::clone(&src_reg), src_repo.clone());
    let target = reference_target(dst);
    match index {
        Some(index) if opts.all_platforms => {
            for img in &images {
                send_image(
                    &dst_reg,
                    &dst_repo,
                    &img.bytes,
                    &img.digest.to_string(),
                    &origin,
                    &mount_from,
                    &reporter,
                )
                .await?;
            }
            dst_reg
                .put_manifest(&dst_repo, &target, &index.bytes, &index.media_type)
                .await
        }
        _ => {
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
    }
}
