//! Layers of a lazily imported build cache brought into the store: an image a build
//! committed from imported records holds layers the store knows only by where they are
//! ([`rbuild_store::RemoteLayer`]: a registry repository or an OCI layout directory). Whatever
//! needs their bytes — a container, a build's `FROM`, save, copy, a push elsewhere — calls
//! [`materialize`] first: each blob is fetched, verified by its digest, its tar verified
//! against the diffID, and only then recorded, so a failure leaves the store as it was.

use std::path::Path;

use rbuild_oci::{Compression, Digest};
use rbuild_registry::{BlobSink, Client};
use rbuild_store::{Image, ImageList, LayerLocation, RemoteLayer, Store};

use crate::error::{Result, ResultExt};
use crate::registry::RegistrySettings;
use crate::transfer::StoreBlobs;

/// Fetch every layer of `image` the store holds only remotely, with a client made from
/// `settings` when one is needed (on a runtime of its own: call it from synchronous code).
pub fn materialize(store: &Store, settings: &RegistrySettings, image: &Image) -> Result<()> {
    let layers = store.remote_layers(image)?;
    if layers.is_empty() {
        return Ok(());
    }
    let client = settings.client()?;
    crate::transfer::block_on(|| fetch_remote_layers(store, &client, &layers))
}

/// [`materialize`] for every image of `list` the store holds.
pub fn materialize_list(
    store: &Store,
    settings: &RegistrySettings,
    list: &ImageList,
) -> Result<()> {
    for (digest, _) in list.entries() {
        if let Ok(image) = store.image(&digest) {
            materialize(store, settings, &image)?;
        }
    }
    Ok(())
}

/// Fetch `layers` (diffID, where) into `store`; registries through `client`. An error names
/// the layer and where it was to come from.
pub(crate) async fn fetch_remote_layers(
    store: &Store,
    client: &Client,
    layers: &[(Digest, RemoteLayer)],
) -> Result<()> {
    if layers.is_empty() {
        return Ok(());
    }
    let _hold = store.hold().context("locking the store against pruning")?;
    for (diff_id, remote) in layers {
        fetch_layer(store, client, diff_id, remote)
            .await
            .with_context(|| {
                format!(
                    "fetching layer {diff_id} (blob {}) from {}, where an imported build cache holds it",
                    remote.blob, remote.location
                )
            })
            .map_err(|e| {
                e.with_hint(
                    "the image was built from an imported cache without downloading its layers; \
                     make that cache reachable again, or remove the image and build it again \
                     without that --cache-from",
                )
            })?;
    }
    Ok(())
}

/// Fetch one layer's blob from where `remote` says into the store, then make it the layer.
async fn fetch_layer(
    store: &Store,
    client: &Client,
    diff_id: &Digest,
    remote: &RemoteLayer,
) -> Result<()> {
    if !store.blobs().contains(&remote.blob) {
        match &remote.location {
            LayerLocation::Registry {
                registry,
                repository,
            } => {
                let reg = client.registry(registry).await?;
                let writer = StoreBlobs(store.clone()).begin(&remote.blob)?;
                reg.fetch_blob(
                    repository,
                    &remote.blob,
                    remote.size,
                    writer,
                    true,
                    &rbuild_registry::Silent,
                )
                .await?;
            }
            LayerLocation::Layout { dir } => copy_from_layout(store, dir, &remote.blob)?,
        }
    }
    store_layer(store, &remote.blob, diff_id)
}

/// Copy blob `digest` of the OCI layout `dir` into the store, verified.
pub(crate) fn copy_from_layout(store: &Store, dir: &Path, digest: &Digest) -> Result<()> {
    let path = super::layout::blob_path(dir, digest);
    let file = std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
    store
        .blobs()
        .ingest(file, Some(digest), &path.display().to_string())?;
    Ok(())
}

/// Make blob `layer` (in the store, verified) layer `diff_id` of the store: its uncompressed
/// tar verified against the diffID, both forms recorded.
pub(crate) fn store_layer(store: &Store, layer: &Digest, diff_id: &Digest) -> Result<()> {
    let _hold = store.hold()?;
    if layer == diff_id {
        // An uncompressed layer: the verified blob is the layer.
        let size = store.blobs().size(layer)?;
        store.record_layer_blob(diff_id, Compression::None, diff_id, size, Some(size))?;
        return Ok(());
    }
    let reader = store.blob_reader(layer)?;
    let (compression, tar) =
        rbuild_store::compress::decompress(reader).context("reading the layer")?;
    let what = format!("layer {diff_id} (from blob {layer})");
    let (_, size) = store.blobs().ingest(tar, Some(diff_id), &what)?;
    let compressed = store.blobs().size(layer)?;
    store.record_layer_blob(diff_id, compression, layer, compressed, Some(size))?;
    store.record_layer_blob(diff_id, Compression::None, diff_id, size, Some(size))?;
    Ok(())
}

/// The builder's way to fetch layers the store holds only remotely
/// ([`rbuild_builder::build::BuildOptions::remote_layers`]), with `settings`.
#[derive(Debug)]
pub struct StoreRemoteLayers {
    /// How to reach registries.
    pub settings: RegistrySettings,
}

impl rbuild_builder::build::LayerFetcher for StoreRemoteLayers {
    fn fetch(
        &self,
        store: &Store,
        entry: &rbuild_builder::build::CacheEntry,
    ) -> std::result::Result<(), String> {
        let fetched = (|| -> Result<()> {
            let Some(remote) = store.remote_layer(&entry.diff_id)? else {
                return Ok(());
            };
            let client = self.settings.client()?;
            let layers = [(entry.diff_id.clone(), remote)];
            crate::transfer::block_on(|| fetch_remote_layers(store, &client, &layers))
        })();
        fetched.map_err(|e| crate::build::chain_text(&e))
    }

    fn remote(
        &self,
        store: &Store,
        entry: &rbuild_builder::build::CacheEntry,
    ) -> Option<RemoteLayer> {
        store.layer_origin(&entry.diff_id)
    }
}
