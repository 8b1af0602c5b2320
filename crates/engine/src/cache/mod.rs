//! Build cache that travels (`--cache-to`, `--cache-from`): the step records a build used or
//! made, exported as an OCI artifact to a registry or an OCI layout directory, and imported
//! into another store, where the builder reuses them.
//!
//! The artifact is an OCI image manifest whose config (media type [`CONFIG_MEDIA_TYPE`]) lists
//! the records — step cache key → layer diffID, the compressed blob that carries it, the time
//! the step first ran and what its key was made of — and whose layers are those blobs, the same
//! gzip blobs a push of the image sends, so a registry holds them once.
//!
//! An import reads only the manifest and the config; a layer is fetched when its step hits
//! (`LayerFetcher`), verified by its blob digest and then by its diffID before the store
//! keeps it. Anything wrong with a cache source is a warning and the build goes on without it.

mod fetch;
mod layout;
mod spec;

use std::collections::HashMap;
use std::sync::Arc;

use rbuild_builder::build::{CacheEntry, CacheImport, LayerFetcher, MountEntry, UsedRecord};
use rbuild_oci::{Compression, Digest};
use rbuild_registry::{BlobSink, Client, PushOptions, Registry};
use rbuild_store::{LayerLocation, RemoteLayer, Store};
use serde::{Deserialize, Serialize};

pub(crate) use fetch::fetch_remote_layers;
pub use fetch::{StoreRemoteLayers, materialize, materialize_list};
pub use spec::{
    CacheExport, CacheLocation, CacheMode, CacheSource, parse_cache_from, parse_cache_to,
};

use crate::error::{EngineError, Result, ResultExt};
use crate::transfer::{SAMPLE, StoreBlobs, compresses, gzip_layer};

/// The media type of a cache artifact's config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.rbuild.cache.config.v1+json";

pub use rbuild_builder::build::CACHE_FORMAT;

/// Largest cache config read (a record is a few hundred bytes to a few hundred kilobytes).
const CONFIG_MAX: u64 = 64 << 20;

/// A cache artifact's config: the records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheConfig {
    format: String,
    records: Vec<CacheEntry>,
    /// `RUN --mount=type=cache` contents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mounts: Vec<MountEntry>,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// Steps exported.
    pub records: usize,
    /// Layer blobs the artifact lists.
    pub layers: usize,
    /// Cache mounts exported.
    pub mounts: usize,
    /// The artifact's manifest digest.
    pub digest: Digest,
    /// What was left out and why (cache mounts over the size limit).
    pub warnings: Vec<String>,
}

/// The records `mode` exports of those a build used.
pub fn select(records: &[UsedRecord], mode: CacheMode) -> Vec<&UsedRecord> {
    records
        .iter()
        .filter(|r| mode == CacheMode::Max || r.in_image)
        .collect()
}

/// The media type of a gzip layer in a cache artifact.
const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The media type of an uncompressed layer (its blob digest is its diffID).
const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// The blob a cache artifact carries for layer `diff_id`: its gzip form when the store has one
/// (a push made it; the registry then holds it once), else the tar itself when its data does
/// not compress (judged on a sample: no compressed copy to write on export, and an import
/// stores what it downloads as is), else a new gzip form. (digest, size, media type)
fn cache_blob(store: &Store, diff_id: &Digest) -> Result<Blob> {
    if let Some((d, size)) = store.layer_blob(diff_id, Compression::Gzip)? {
        return Ok((d, size, GZIP_LAYER.into()));
    }
    if let Some((d, size)) = store.layer_blob(diff_id, Compression::None)? {
        let mut sample = Vec::with_capacity(SAMPLE);
        std::io::Read::read_to_end(
            &mut std::io::Read::take(store.layer_reader(diff_id)?, SAMPLE as u64),
            &mut sample,
        )
        .context("reading the layer")?;
        if !compresses(&sample) {
            return Ok((d, size, TAR_LAYER.into()));
        }
    }
    let (d, size) = gzip_layer(store, diff_id)?;
    Ok((d, size, GZIP_LAYER.into()))
}

/// [`cache_blob`] of each layer of `records` but those `placed`, several at a time: making a
/// blob is a tar made again from a snapshot, compressed, written and synced, and the syncs of
/// several overlap.
fn cache_blobs(
    store: &Store,
    records: &[&UsedRecord],
    placed: &HashMap<Digest, RemoteLayer>,
) -> Result<HashMap<Digest, Blob>> {
    let mut todo: Vec<(&Digest, &Digest)> = Vec::new();
    for r in records {
        if !placed.contains_key(&r.diff_id) && !todo.iter().any(|(d, _)| *d == &r.diff_id) {
            todo.push((&r.diff_id, &r.key));
        }
    }
    let made = crate::transfer::each_parallel(&todo, 4, |(diff_id, key)| {
        cache_blob(store, diff_id)
            .with_context(|| format!("compressing the layer of step {key}"))
            .map(|b| ((*diff_id).clone(), b))
    })?;
    Ok(made.into_iter().collect())
}

/// Cache mounts as layers: their entries, their blobs (digest, size), and warnings about
/// the ones left out.
type MountLayers = (Vec<MountEntry>, Vec<Blob>, Vec<String>);

/// A layer blob of a cache artifact: digest, size, media type.
type Blob = (Digest, u64, String);

/// Layers of the cache mounts `mounts` (each directory's content), those over `max` bytes
/// left out with a warning.
fn mount_layers(
    store: &Store,
    mounts: &[(String, std::path::PathBuf)],
    max: u64,
) -> Result<MountLayers> {
    let (mut entries, mut blobs, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    for (id, dir) in mounts {
        let size = crate::usage::dir_size(dir, max);
        if size > max {
            warnings.push(format!(
                "cache mount {id:?} not exported: larger than cache-mount-max-size ({max} bytes)"
            ));
            continue;
        }
        let source = rbuild_store::LayerSource::Tree(dir.clone());
        let info = store
            .add_layer(&source, &rbuild_store::layer::CreateOptions::default())
            .with_context(|| format!("reading cache mount {id:?}"))?;
        let (blob, size, media_type) = cache_blob(store, &info.diff_id)
            .with_context(|| format!("compressing cache mount {id:?}"))?;
        blobs.push((blob.clone(), size, media_type));
        entries.push(MountEntry {
            id: id.clone(),
            diff_id: info.diff_id,
            layer: blob,
        });
    }
    Ok((entries, blobs, warnings))
}

/// Make the artifact of `records` and `mounts` in the store (each layer's gzip form, the
/// config, the manifest); returns the manifest's digest and size and the number of layers.
/// Layers in `placed` are listed as the remote blobs they are (not in the store); `sizes`
/// gives uncompressed sizes the store does not know.
fn make_artifact(
    store: &Store,
    records: &[&UsedRecord],
    mounts: Vec<MountEntry>,
    mount_blobs: Vec<Blob>,
    placed: &HashMap<Digest, RemoteLayer>,
    sizes: &HashMap<Digest, u64>,
) -> Result<(Digest, u64, usize)> {
    let mut entries = Vec::new();
    let mut layers: Vec<Blob> = Vec::new();
    for b in mount_blobs {
        if !layers.contains(&b) {
            layers.push(b);
        }
    }
    let made = cache_blobs(store, records, placed)?;
    for r in records {
        let (blob, size, media_type) = match placed.get(&r.diff_id) {
            Some(remote) => (remote.blob.clone(), remote.size, remote.media_type.clone()),
            None => made[&r.diff_id].clone(),
        };
        if !layers.iter().any(|(d, _, _)| *d == blob) {
            layers.push((blob.clone(), size, media_type));
        }
        entries.push(CacheEntry {
            key: r.key.clone(),
            diff_id: r.diff_id.clone(),
            layer: blob,
            size: store
                .layer_size(&r.diff_id)
                .or_else(|| sizes.get(&r.diff_id).copied()),
            created: r.created.clone(),
            inputs: r.inputs.clone(),
        });
    }
    let config = serde_json::to_vec(&CacheConfig {
        format: CACHE_FORMAT.into(),
        records: entries,
        mounts,
    })?;
    let config_digest = store.blobs().put(&config, None)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": layers.iter().map(|(d, s, t)| serde_json::json!({
            "mediaType": t,
            "digest": d.to_string(),
            "size": s,
        })).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&manifest)?;
    let digest = store.blobs().put(&bytes, None)?;
    Ok((digest, bytes.len() as u64, layers.len()))
}

/// Export `records` (those `to.mode` selects) to `to`'s location; registries through
/// `client`.
pub fn export(
    client: &Client,
    store: &Store,
    to: &CacheExport,
    outcome: &rbuild_builder::build::BuildOutcome,
) -> Result<Exported> {
    let _hold = store.hold().context("locking the store against pruning")?;
    let chosen = select(&outcome.records, to.mode);
    if to.location == CacheLocation::Inline {
        // Written into the image's config by the build (BuildOptions::inline_cache).
        return Ok(Exported {
            records: chosen.len(),
            layers: 0,
            mounts: 0,
            digest: Digest::sha256_of(b""),
            warnings: Vec::new(),
        });
    }
    // Layers the build reused from an imported cache without needing their bytes: an export
    // to the registry holding them lists them as they are there (found in the cache's
    // repository or mounted into it), downloading nothing; any other is fetched.
    let mut placed: HashMap<Digest, RemoteLayer> = HashMap::new();
    let mut mount_from: Vec<String> = Vec::new();
    for r in &chosen {
        if store.has_blob(&r.diff_id) {
            continue;
        }
        let lazy = outcome
            .unfetched
            .iter()
            .find(|l| l.entry.diff_id == r.diff_id);
        let remote = lazy
            .and_then(|l| l.layers.remote(store, &l.entry))
            .or_else(|| store.remote_layer(&r.diff_id).ok().flatten());
        if let (CacheLocation::Registry(reference), Some(remote)) = (&to.location, &remote) {
            let found = crate::transfer::block_on(|| {
                crate::transfer::place_remote_layer(client, remote, reference)
            })?;
            if let Some(from) = found {
                if let Some(f) = from.filter(|f| !mount_from.contains(f)) {
                    mount_from.push(f);
                }
                placed.insert(r.diff_id.clone(), remote.clone());
                continue;
            }
        }
        // From one OCI layout to another: the blob file is copied (verified), not stored here.
        if let (CacheLocation::Local(_), Some(remote)) = (&to.location, &remote)
            && let LayerLocation::Layout { dir } = &remote.location
            && layout::blob_path(dir, &remote.blob).is_file()
        {
            placed.insert(r.diff_id.clone(), remote.clone());
            continue;
        }
        let fetched = match (lazy, remote) {
            (Some(lazy), _) => lazy.fetch(store),
            (None, Some(remote)) => {
                let layers = [(r.diff_id.clone(), remote)];
                crate::transfer::block_on(|| fetch::fetch_remote_layers(store, client, &layers))
                    .map_err(|e| crate::build::chain_text(&e))
            }
            (None, None) => Ok(()),
        };
        fetched.map_err(|e| {
            EngineError::Failed(format!("fetching imported layer {}: {e}", r.diff_id))
        })?;
    }
    let (mounts, mount_blobs, warnings) = if to.cache_mounts {
        mount_layers(store, &outcome.cache_mounts, to.cache_mount_max_size)?
    } else {
        Default::default()
    };
    let mount_count = mounts.len();
    let sizes: HashMap<Digest, u64> = outcome
        .unfetched
        .iter()
        .filter_map(|l| Some((l.entry.diff_id.clone(), l.entry.size?)))
        .collect();
    let (digest, size, layers) =
        make_artifact(store, &chosen, mounts, mount_blobs, &placed, &sizes)?;
    match &to.location {
        CacheLocation::Inline => unreachable!("returned above"),
        CacheLocation::Registry(reference) => {
            // Layers the image's own repositories on that registry hold are mounted, not sent.
            mount_from.extend(
                outcome
                    .image
                    .names
                    .iter()
                    .filter(|n| n.domain() == reference.domain() && n.path() != reference.path())
                    .map(|n| n.path().to_string()),
            );
            crate::transfer::block_on(|| async {
                rbuild_registry::push(
                    client,
                    reference,
                    &digest,
                    Arc::new(StoreBlobs(store.clone())),
                    &PushOptions { mount_from },
                    Arc::new(rbuild_registry::Silent),
                )
                .await
                .with_context(|| format!("exporting the build cache to {reference}"))
            })?;
        }
        CacheLocation::Local(dir) => layout::write(store, dir, &digest, size, &placed)
            .with_context(|| format!("exporting the build cache to {}", dir.display()))?,
    }
    Ok(Exported {
        records: chosen.len(),
        layers,
        mounts: mount_count,
        digest,
        warnings,
    })
}

/// Import the cache at `from`: its records, their layers fetched later, on hits.
pub fn import(client: &Client, from: &CacheSource) -> Result<CacheImport> {
    let name = from.location.to_string();
    match &from.location {
        CacheLocation::Inline => Err(EngineError::InvalidParameter(
            "an inline cache is imported with type=registry,ref=IMAGE".into(),
        )),
        CacheLocation::Registry(reference) => {
            let rt = Arc::new(crate::transfer::runtime()?);
            let (reg, manifest, entries) = run_on(&rt, || async {
                let reg = client.registry(reference.domain()).await?;
                let target = rbuild_registry::reference_target(reference);
                let m = reg.manifest(reference.path(), &target).await?;
                let (config, sizes) = match parse_manifest(&m.bytes) {
                    Ok(found) => found,
                    // An image pushed with an inline cache.
                    Err(not_cache) => {
                        let Some((config, layers)) = image_manifest(&m.bytes) else {
                            return Err(not_cache);
                        };
                        let bytes = reg
                            .blob_bytes(reference.path(), &config, CONFIG_MAX)
                            .await?;
                        let entries = parse_inline(&bytes, &layers)?;
                        let layers = layers.into_iter().map(|(d, s, t)| (d, (s, t))).collect();
                        return Ok((reg, layers, (entries, Vec::new())));
                    }
                };
                let bytes = reg
                    .blob_bytes(reference.path(), &config.0, CONFIG_MAX)
                    .await?;
                let entries = parse_config(&bytes, &sizes)?;
                let mounts = parse_mounts(&bytes, &sizes)?;
                Ok::<_, EngineError>((reg, sizes, (entries, mounts)))
            })
            .with_context(|| format!("importing the build cache {reference}"))?;
            let (entries, mounts) = entries;
            let layers = Arc::new(RegistryLayers {
                rt,
                reg,
                registry: reference.domain().to_string(),
                repository: reference.path().to_string(),
                blobs: manifest,
            });
            Ok(CacheImport {
                name,
                entries,
                mounts,
                layers,
            })
        }
        CacheLocation::Local(dir) => {
            let (bytes, _) = layout::read_manifest(dir)
                .with_context(|| format!("importing the build cache {}", dir.display()))?;
            let (config, sizes) = parse_manifest(&bytes)
                .with_context(|| format!("importing the build cache {}", dir.display()))?;
            let config = layout::read_blob(dir, &config.0, CONFIG_MAX)
                .with_context(|| format!("importing the build cache {}", dir.display()))?;
            let entries = parse_config(&config, &sizes)
                .with_context(|| format!("importing the build cache {}", dir.display()))?;
            let mounts = parse_mounts(&config, &sizes)
                .with_context(|| format!("importing the build cache {}", dir.display()))?;
            Ok(CacheImport {
                name,
                entries,
                mounts,
                layers: Arc::new(layout::LocalLayers {
                    dir: dir.clone(),
                    blobs: sizes,
                }),
            })
        }
    }
}

/// Run `work` on `rt` from synchronous code, on a thread of its own (the caller may be
/// inside another runtime, or a builder thread).
fn run_on<T: Send, F: std::future::Future<Output = Result<T>>>(
    rt: &tokio::runtime::Runtime,
    work: impl FnOnce() -> F + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(work()))
            .join()
            .unwrap_or_else(|_| Err(EngineError::Failed("the cache thread panicked".into())))
    })
}

/// A cache artifact's layer blobs: size and media type by digest.
pub(crate) type LayerBlobs = HashMap<Digest, (u64, String)>;

/// Where `entry`'s layer blob is, when `blobs` (its cache's) lists it.
pub(crate) fn remote_layer(
    blobs: &LayerBlobs,
    entry: &CacheEntry,
    location: LayerLocation,
) -> Option<RemoteLayer> {
    let (size, media_type) = blobs.get(&entry.layer)?;
    Some(RemoteLayer {
        blob: entry.layer.clone(),
        media_type: media_type.clone(),
        size: *size,
        location,
    })
}

/// A cache manifest's config descriptor and its layers; anything else (an image, an index,
/// another tool's cache) is refused as foreign.
fn parse_manifest(bytes: &[u8]) -> Result<((Digest, u64), LayerBlobs)> {
    #[derive(Deserialize)]
    struct Desc {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        digest: Digest,
        size: u64,
    }
    #[derive(Deserialize)]
    struct Doc {
        config: Option<Desc>,
        #[serde(default)]
        layers: Vec<Desc>,
    }
    let doc: Doc = serde_json::from_slice(bytes)
        .map_err(|e| EngineError::Failed(format!("not an rbuild build cache: {e}")))?;
    let config = doc
        .config
        .filter(|c| c.media_type == CONFIG_MEDIA_TYPE)
        .ok_or_else(|| {
            EngineError::Failed(format!(
                "not an rbuild build cache (its config is not {CONFIG_MEDIA_TYPE})"
            ))
        })?;
    let sizes = doc
        .layers
        .into_iter()
        .map(|l| (l.digest, (l.size, l.media_type)))
        .collect();
    Ok(((config.digest, config.size), sizes))
}

/// An image manifest's layer: digest, size, media type.
type ImageLayer = (Digest, u64, String);

/// An image manifest's config digest and its layers, in order.
fn image_manifest(bytes: &[u8]) -> Option<(Digest, Vec<ImageLayer>)> {
    let m = rbuild_oci::manifest::decode_manifest(bytes).ok()?;
    let config = rbuild_oci::manifest::descriptor_digest(m.config()).ok()?;
    let layers = m
        .layers()
        .iter()
        .map(|l| {
            Ok((
                rbuild_oci::manifest::descriptor_digest(l)?,
                l.size(),
                l.media_type().to_string(),
            ))
        })
        .collect::<std::result::Result<Vec<_>, rbuild_oci::DigestError>>()
        .ok()?;
    Some((config, layers))
}

/// The inline cache of an image config: its records, each layer found by its diffID among
/// the image's `layers` (the config's `rootfs.diff_ids` in the same order).
fn parse_inline(config: &[u8], layers: &[ImageLayer]) -> Result<Vec<CacheEntry>> {
    let doc: serde_json::Value = serde_json::from_slice(config)
        .map_err(|e| EngineError::Failed(format!("corrupt image config: {e}")))?;
    let inline = doc
        .get(rbuild_builder::build::INLINE_CACHE_KEY)
        .cloned()
        .ok_or_else(|| {
            EngineError::Failed(
                "not an rbuild build cache (an image without an inline cache)".into(),
            )
        })?;
    let diff_ids: Vec<Digest> = doc["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str()?.parse().ok())
        .collect();
    if diff_ids.len() != layers.len() {
        return Err(EngineError::Failed(format!(
            "image config lists {} layers, its manifest {}",
            diff_ids.len(),
            layers.len()
        )));
    }
    let blob_of: HashMap<&Digest, &Digest> = diff_ids
        .iter()
        .zip(layers.iter().map(|(d, _, _)| d))
        .collect();
    // Inline records name their layer by diffID: each must be one of the image's.
    let listed: HashMap<Digest, u64> = diff_ids.iter().map(|d| (d.clone(), 0)).collect();
    let mut entries = parse_config(&serde_json::to_vec(&inline)?, &listed)?;
    for e in &mut entries {
        let blob = blob_of.get(&e.diff_id).ok_or_else(|| {
            EngineError::Failed(format!(
                "corrupt inline cache: step {} names layer {}, which the image does not have",
                e.key, e.diff_id
            ))
        })?;
        e.layer = (*blob).clone();
    }
    Ok(entries)
}

/// The cache mounts of a cache config, each checked to name a layer the manifest lists.
fn parse_mounts<V>(bytes: &[u8], layers: &HashMap<Digest, V>) -> Result<Vec<MountEntry>> {
    let config: CacheConfig = serde_json::from_slice(bytes)
        .map_err(|e| EngineError::Failed(format!("corrupt cache config: {e}")))?;
    if let Some(m) = config
        .mounts
        .iter()
        .find(|m| !layers.contains_key(&m.layer))
    {
        return Err(EngineError::Failed(format!(
            "corrupt cache config: cache mount {:?} names layer {}, which the manifest does not list",
            m.id, m.layer
        )));
    }
    Ok(config.mounts)
}

/// The records of a cache config, each checked to name a layer the manifest lists.
fn parse_config<V>(bytes: &[u8], layers: &HashMap<Digest, V>) -> Result<Vec<CacheEntry>> {
    let config: CacheConfig = serde_json::from_slice(bytes)
        .map_err(|e| EngineError::Failed(format!("corrupt cache config: {e}")))?;
    if config.format != CACHE_FORMAT {
        return Err(EngineError::Failed(format!(
            "cache format {:?} is not {CACHE_FORMAT:?}",
            config.format
        )));
    }
    let (good, bad): (Vec<CacheEntry>, Vec<CacheEntry>) = config
        .records
        .into_iter()
        .partition(|e| layers.contains_key(&e.layer));
    if let Some(e) = bad.first() {
        return Err(EngineError::Failed(format!(
            "corrupt cache config: step {} names layer {}, which the manifest does not list",
            e.key, e.layer
        )));
    }
    Ok(good)
}

/// Layers of a registry cache, fetched on hits.
struct RegistryLayers {
    rt: Arc<tokio::runtime::Runtime>,
    reg: Arc<Registry>,
    /// The registry as the reference names it (what a later fetch connects to).
    registry: String,
    repository: String,
    blobs: LayerBlobs,
}

impl std::fmt::Debug for RegistryLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryLayers({}/{})", self.reg.host(), self.repository)
    }
}

impl LayerFetcher for RegistryLayers {
    fn fetch(&self, store: &Store, entry: &CacheEntry) -> std::result::Result<(), String> {
        let (size, _) = *self
            .blobs
            .get(&entry.layer)
            .ok_or_else(|| format!("blob {} is not in the cache manifest", entry.layer))?;
        let fetched = if store.blobs().contains(&entry.layer) {
            Ok(())
        } else {
            run_on(&self.rt, || async {
                let sink = StoreBlobs(store.clone());
                let writer = sink.begin(&entry.layer)?;
                self.reg
                    .fetch_blob(
                        &self.repository,
                        &entry.layer,
                        size,
                        writer,
                        true,
                        &rbuild_registry::Silent,
                    )
                    .await?;
                Ok(())
            })
        };
        fetched
            .and_then(|()| fetch::store_layer(store, &entry.layer, &entry.diff_id))
            .map_err(|e| crate::build::chain_text(&e))
    }

    fn remote(&self, _store: &Store, entry: &CacheEntry) -> Option<RemoteLayer> {
        let location = LayerLocation::Registry {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
        };
        remote_layer(&self.blobs, entry, location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_and_corrupt_artifacts_are_refused() {
        let image = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
        let err = parse_manifest(image).unwrap_err().to_string();
        assert!(err.contains("not an rbuild build cache"), "{err}");
        assert!(parse_manifest(b"{nonsense").is_err());
        let layers: HashMap<Digest, u64> = HashMap::new();
        assert!(parse_config(b"[]", &layers).is_err());
        let other =
            serde_json::to_vec(&serde_json::json!({"format": "v0", "records": []})).unwrap();
        assert!(
            parse_config(&other, &layers)
                .unwrap_err()
                .to_string()
                .contains("rbuild-cache/v1")
        );
        let d = Digest::sha256_of(b"x");
        let dangling = serde_json::to_vec(&serde_json::json!({"format": CACHE_FORMAT, "records": [
            {"key": d, "diff_id": d, "layer": d, "created": "t"}
        ]}))
        .unwrap();
        let err = parse_config(&dangling, &layers).unwrap_err().to_string();
        assert!(err.contains("does not list"), "{err}");
        let mut listed = HashMap::new();
        listed.insert(d.clone(), 1);
        assert_eq!(parse_config(&dangling, &listed).unwrap().len(), 1);
    }
}
