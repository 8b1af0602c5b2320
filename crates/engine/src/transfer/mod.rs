//! Moving images between the local store and registries: pull into the store (recording each
//! layer's blob so snapshots can be unpacked, naming the image), push from the store (giving
//! uncompressed layers a gzip form once, remembered by the store).
//!
//! The operations are async ([`Engine::pull`], [`Engine::push`]); [`block_on`] runs one from
//! synchronous code (on a thread of its own when the caller is already inside a runtime).

mod blobs;
pub mod copy;
mod gzip;

use std::sync::Arc;

use rbuild_oci::manifest::{self, descriptor_digest, descriptor_media_type};
use rbuild_oci::{Compression, Digest, MediaType, Reference};
use rbuild_registry::{Client, PullOptions, PushOptions, Reporter};
use rbuild_store::{Image, ImageList, Store};

pub use blobs::StoreBlobs;
pub use gzip::pushable_manifest;
pub(crate) use gzip::{SAMPLE, compresses, gzip_layer};

use crate::Engine;
use crate::error::{EngineError, Result, ResultExt};
use crate::events::{Event, EventType};

impl Engine {
    /// Pull `reference` into the store with `client` and name it; returns the manifest digest
    /// now named. Progress goes to `reporter`; a `pull` event follows.
    pub async fn pull(
        &self,
        client: &Client,
        reference: &Reference,
        opts: &PullOptions,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Digest> {
        let store = self.store()?;
        let digest = pull_to_store(client, store, reference, opts, reporter).await?;
        self.emit(Event::now(
            EventType::Image,
            "pull",
            &reference.to_string(),
            [("name", reference.to_string())],
        ));
        Ok(digest)
    }

    /// Push the stored `image` to `dest` with `client`; returns the pushed manifest digest.
    /// Progress goes to `reporter`; a `push` event follows.
    pub async fn push(
        &self,
        client: &Client,
        image: &Image,
        dest: &Reference,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Digest> {
        let store = self.store()?;
        let digest = push_from_store(client, store, image, dest, reporter).await?;
        self.emit(Event::now(
            EventType::Image,
            "push",
            &dest.to_string(),
            [("name", dest.to_string())],
        ));
        Ok(digest)
    }
}

impl Engine {
    /// Push the stored multi-platform image `list` to `dest`: every image it lists (with
    /// gzip layers), then an index naming them; returns the pushed index digest. Every image
    /// the index lists must be in the store. A `push` event follows.
    pub async fn push_index(
        &self,
        client: &Client,
        list: &ImageList,
        dest: &Reference,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Digest> {
        let digest = push_index_from_store(client, self.store()?, list, dest, reporter).await?;
        self.emit(Event::now(
            EventType::Image,
            "push",
            &dest.to_string(),
            [("name", dest.to_string())],
        ));
        Ok(digest)
    }
}

/// Push the multi-platform image `list` from `store` to `dest` (see [`Engine::push_index`]).
pub async fn push_index_from_store(
    client: &Client,
    store: &Store,
    list: &ImageList,
    dest: &Reference,
    reporter: Arc<dyn Reporter>,
) -> Result<Digest> {
    let _hold = store.hold().context("locking the store against pruning")?;
    let images: Vec<Image> = list
        .entries()
        .iter()
        .filter_map(|(d, _)| store.image(d).ok())
        .collect();
    let mount_from = place_remote_layers(client, store, &images, dest).await?;
    let index = pushable_index(store, list)?;
    rbuild_registry::push(
        client,
        dest,
        &index,
        Arc::new(StoreBlobs(store.clone())),
        &PushOptions { mount_from },
        reporter,
    )
    .await
    .with_context(|| format!("pushing {dest}"))
}

/// The index to push for a stored one: each listed image's pushable manifest (gzip layers) in
/// its place, platforms kept; stored as a blob. An image the store lacks is an error naming
/// its platform.
pub fn pushable_index(store: &Store, list: &ImageList) -> Result<Digest> {
    let mut entries = Vec::new();
    for (digest, platform, desc) in manifest::index_images(&list.index) {
        let image = store.image(&digest).map_err(|e| {
            EngineError::Failed(format!(
                "image {digest} ({}) of index {} is not in the store: {e}",
                platform
                    .as_ref()
                    .map_or("no platform".into(), |p| p.to_string()),
                list.digest
            ))
        })?;
        let pushable = pushable_manifest(store, &image)?;
        let bytes = store.blobs().read(&pushable)?;
        let mut entry = desc.clone();
        entry.set_digest(rbuild_oci::oci_spec::image::Digest::from(&pushable));
        entry.set_size(bytes.len() as u64);
        entries.push(entry);
    }
    let index = manifest::index_of(entries);
    let bytes = serde_json::to_vec(&index).expect("an index serializes");
    Ok(store.put_index(&bytes)?)
}

/// Run `work` (which makes and blocks on its own tokio runtime) here, or on a thread of its
/// own when the caller is itself inside a runtime, where blocking on another would panic.
pub fn on_own_runtime<T: Send, E: Send + From<EngineError>>(
    work: impl FnOnce() -> std::result::Result<T, E> + Send,
) -> std::result::Result<T, E> {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|s| {
        s.spawn(work).join().unwrap_or_else(|_| {
            Err(EngineError::Failed("the transfer thread panicked".into()).into())
        })
    })
}

/// `work` on each of `items`, on up to `max` threads at once; the results in `items`' order,
/// or the first error.
pub(crate) fn each_parallel<T: Sync, R: Send>(
    items: &[T],
    max: usize,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = items.len().clamp(1, max.max(1));
    let mut done: Vec<(usize, Result<R>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return out;
                        };
                        out.push((i, work(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![(
                        0,
                        Err(EngineError::Failed("a worker thread panicked".into())),
                    )]
                })
            })
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// A multi-threaded tokio runtime for transfers.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Run the transfer `work` to its end from synchronous code (see [`on_own_runtime`]).
pub fn block_on<T: Send, F: std::future::Future<Output = Result<T>>>(
    work: impl FnOnce() -> F + Send,
) -> Result<T> {
    on_own_runtime(|| runtime()?.block_on(work()))
}

/// Pull `reference` into `store` and name it; returns the manifest digest now named.
pub async fn pull_to_store(
    client: &Client,
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Digest> {
    let _hold = store.hold().context("locking the store against pruning")?;
    let sink = Arc::new(StoreBlobs(store.clone()));
    let pulled = rbuild_registry::pull(client, reference, sink, opts, reporter)
        .await
        .with_context(|| format!("pulling {reference}"))?;
    for img in &pulled.images {
        record_layers(store, &img.digest)?;
    }
    // A digest reference is found by digest; a tag becomes the name.
    let names: Vec<Reference> = match reference.digest() {
        Some(_) => Vec::new(),
        None => vec![reference.clone()],
    };
    // A multi-platform image's name goes to its index. With every platform kept the index is
    // the result; with one platform pulled it lists the images pulled so far (as containerd's
    // image store keeps it), so pulling another platform under the same tag (a build for
    // several platforms from one base) adds to it instead of taking the name off the one
    // pulled before, and the result is the image pulled.
    if let Some(index) = &pulled.index {
        if !opts.all_platforms {
            let stored = store
                .put_index(&index.bytes)
                .with_context(|| format!("storing the index of {reference}"))?;
            if stored != index.digest {
                return Err(EngineError::Failed(format!(
                    "{reference}: the index stored as {stored}, not {}",
                    index.digest
                )));
            }
        }
        for img in &pulled.images {
            store
                .name_image(&img.digest, &[])
                .with_context(|| format!("recording {reference} in the store"))?;
        }
        store
            .name_index(&index.digest, &names)
            .with_context(|| format!("recording {reference} in the store"))?;
        return Ok(if opts.all_platforms {
            index.digest.clone()
        } else {
            pulled.digest.clone()
        });
    }
    let named = pulled.digest.clone();
    for img in &pulled.images {
        let n: &[Reference] = if img.digest == named { &names } else { &[] };
        store
            .name_image(&img.digest, n)
            .with_context(|| format!("recording {reference} in the store"))?;
    }
    Ok(named)
}

/// Tell the store which blob holds each layer of a pulled image (by diffID).
fn record_layers(store: &Store, manifest_digest: &Digest) -> Result<()> {
    let img = store
        .image(manifest_digest)
        .with_context(|| format!("reading pulled manifest {manifest_digest}"))?;
    let diff_ids = img.diff_ids()?;
    let layers = img.manifest.layers();
    if diff_ids.len() != layers.len() {
        return Err(EngineError::Failed(format!(
            "image {manifest_digest}: config lists {} layers but the manifest {}",
            diff_ids.len(),
            layers.len()
        )));
    }
    for (diff_id, layer) in diff_ids.iter().zip(layers) {
        let compression = descriptor_media_type(layer)
            .and_then(MediaType::layer_compression)
            .unwrap_or(Compression::Gzip);
        let digest = descriptor_digest(layer)?;
        store.record_layer_blob(diff_id, compression, &digest, layer.size(), None)?;
    }
    Ok(())
}

/// Push a stored image to `dest`; returns the pushed manifest digest.
pub async fn push_from_store(
    client: &Client,
    store: &Store,
    image: &Image,
    dest: &Reference,
    reporter: Arc<dyn Reporter>,
) -> Result<Digest> {
    let _hold = store.hold().context("locking the store against pruning")?;
    let mut mount_from =
        place_remote_layers(client, store, std::slice::from_ref(image), dest).await?;
    let manifest = pushable_manifest(store, image)?;
    // Repositories on the same registry this image is known under may lend their blobs.
    for n in &image.names {
        if n.domain() == dest.domain() && n.path() != dest.path() {
            mount_from.push(n.path().to_string());
        }
    }
    rbuild_registry::push(
        client,
        dest,
        &manifest,
        Arc::new(StoreBlobs(store.clone())),
        &PushOptions { mount_from },
        reporter,
    )
    .await
    .with_context(|| format!("pushing {dest}"))
}

/// Make the layers of `images` that the store holds only remotely (reused from a lazily
/// imported build cache) ready for a push to `dest`: a layer whose blob is in a repository of
/// `dest`'s registry is found in `dest`'s repository or mounted into it from there, so its
/// bytes are never downloaded; any other is fetched into the store (verified) to be uploaded.
/// Returns the repositories mounted from (for the config and the layers pushed after).
async fn place_remote_layers(
    client: &Client,
    store: &Store,
    images: &[Image],
    dest: &Reference,
) -> Result<Vec<String>> {
    let mut fetch = Vec::new();
    let mut repositories: Vec<String> = Vec::new();
    for image in images {
        for (diff_id, remote) in store.remote_layers(image)? {
            match place_remote_layer(client, &remote, dest).await? {
                Some(from) => {
                    if let Some(r) = from.filter(|r| !repositories.contains(r)) {
                        repositories.push(r);
                    }
                }
                None => fetch.push((diff_id, remote)),
            }
        }
    }
    crate::cache::fetch_remote_layers(store, client, &fetch).await?;
    Ok(repositories)
}

/// Make the blob of a layer held only remotely (`remote`) present in `dest`'s repository
/// without downloading it: `Some` when it is there already (`Some(None)`) or was mounted from
/// its repository on the same registry (`Some(Some(repository))`); `None` when it has to be
/// fetched and uploaded (another registry, an OCI layout, a refused mount).
pub(crate) async fn place_remote_layer(
    client: &Client,
    remote: &rbuild_store::RemoteLayer,
    dest: &Reference,
) -> Result<Option<Option<String>>> {
    let rbuild_store::LayerLocation::Registry {
        registry,
        repository,
    } = &remote.location
    else {
        return Ok(None);
    };
    if registry != dest.domain() {
        return Ok(None);
    }
    let reg = client.registry(dest.domain()).await?;
    if reg.blob_size(dest.path(), &remote.blob).await?.is_some() {
        return Ok(Some(None));
    }
    if repository != dest.path()
        && reg
            .mount_blob(dest.path(), &remote.blob, repository)
            .await?
    {
        return Ok(Some(Some(repository.clone())));
    }
    Ok(None)
}
