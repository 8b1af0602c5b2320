//! Moving images between the local store and registries: pull into the store (recording each
//! layer's blob so snapshots can be unpacked, naming the image), push from the store (giving
//! uncompressed layers a gzip form once, remembered by the store).
//!
//! Blocking entry points for synchronous callers: [`pull_blocking`] and [`push_blocking`] (what
//! `rbuild pull`/`rbuild push` run), and for the build command [`pull_image_blocking`] (`FROM`)
//! and [`push_image_blocking`] (`build --push`), with the build's registry options.

use std::sync::Arc;

use std::io::Read;

use anyhow::Context;
use rbuild_oci::manifest::{self, descriptor_digest, descriptor_media_type};
use rbuild_oci::{Compression, Digest, MediaType, Platform, Reference};
use rbuild_registry::{Client, PullOptions, PushOptions, Reporter};
use rbuild_store::{Image, Store};

use crate::commands::registry_opts::{RegistryArgs, run_interruptible, runtime};
use crate::progress::{Direction, Progress};
use crate::store_blobs::StoreBlobs;

/// Pull `reference` into `store` with `registry`'s settings, drawing progress on stderr (none
/// when `quiet`) and ending with docker's `Digest:` line; returns the digest now named. Blocks
/// until done; SIGINT/SIGTERM discard the unfinished transfer (exit status 130).
pub fn pull_blocking(
    registry: &RegistryArgs,
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    quiet: bool,
) -> anyhow::Result<Digest> {
    on_own_runtime(|| {
        let client = registry.client()?;
        let progress = Arc::new(Progress::new(Direction::Pull, quiet));
        let rt = runtime()?;
        let digest = run_interruptible(
            &rt,
            pull_to_store(&client, store, reference, opts, progress.clone()),
        )?;
        progress.line(&format!("Digest: {digest}"));
        Ok(digest)
    })
}

/// Push the stored `image` to `dest` with `registry`'s settings (progress as for
/// [`pull_blocking`]); returns the pushed manifest digest. Blocks until done.
pub fn push_blocking(
    registry: &RegistryArgs,
    store: &Store,
    image: &Image,
    dest: &Reference,
    quiet: bool,
) -> anyhow::Result<Digest> {
    on_own_runtime(|| {
        let client = registry.client()?;
        let progress = Arc::new(Progress::new(Direction::Push, quiet));
        let rt = runtime()?;
        run_interruptible(
            &rt,
            push_from_store(&client, store, image, dest, progress.clone()),
        )
    })
}

/// For the build command's `FROM`: pull `reference` for `platform` into `store` with the
/// user's registry settings (environment, `/etc/rbuild/registries.json`, docker credentials,
/// as a flagless `rbuild pull`) and return the stored image. Always contacts the registry;
/// whether to pull at all (absent base, `--pull`) is the caller's decision.
// Called by the build command (FROM, --push), which lands with the builder (#5).
pub fn pull_image_blocking(
    registry: &RegistryArgs,
    store: &Store,
    reference: &Reference,
    platform: &Platform,
    quiet: bool,
) -> anyhow::Result<Image> {
    let opts = PullOptions {
        platform: platform.clone(),
        all_platforms: false,
    };
    let digest = pull_blocking(registry, store, reference, &opts, quiet)?;
    store
        .image(&digest)
        .with_context(|| format!("reading pulled image {reference} from the store"))
}

/// For `build --push`: push the stored image named `image_ref` to the registry that name
/// points at, with the user's registry settings (as [`pull_image_blocking`]); returns the
/// pushed manifest digest.
// Called by the build command (FROM, --push), which lands with the builder (#5).
pub fn push_image_blocking(
    registry: &RegistryArgs,
    store: &Store,
    image_ref: &Reference,
    quiet: bool,
) -> anyhow::Result<Digest> {
    let name = image_ref.to_string();
    let image = store
        .resolve(&name)
        .with_context(|| format!("finding image {name:?} in the store"))?;
    push_blocking(registry, store, &image, image_ref, quiet)
}

/// Run `work` (which makes and blocks on its own tokio runtime) here, or on a thread of its
/// own when the caller is itself inside a runtime, where blocking on another would panic.
fn on_own_runtime<T: Send>(work: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|s| {
        s.spawn(work)
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the transfer thread panicked")))
    })
}

/// Pull `reference` into `store` and name it; returns the manifest digest now named.
pub async fn pull_to_store(
    client: &Client,
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    reporter: Arc<dyn Reporter>,
) -> anyhow::Result<Digest> {
    let _hold = store.hold().context("locking the store against pruning")?;
    let sink = Arc::new(StoreBlobs(store.clone()));
    let pulled = rbuild_registry::pull(client, reference, sink, opts, reporter)
        .await
        .with_context(|| format!("pulling {reference}"))?;
    for img in &pulled.images {
        record_layers(store, &img.digest)?;
    }
    // The store names image manifests: with every platform kept, the name goes to the one the
    // index lists for the wanted platform (the others are found by digest).
    let named = match &pulled.index {
        Some(index) if opts.all_platforms => manifest::decode_index(&index.bytes)
            .ok()
            .and_then(|i| manifest::select_platform(&i, &opts.platform).cloned())
            .and_then(|d| descriptor_digest(&d).ok())
            .unwrap_or_else(|| pulled.images[0].digest.clone()),
        _ => pulled.digest.clone(),
    };
    // A digest reference is found by digest; a tag becomes the image's name.
    let names: Vec<Reference> = match reference.digest() {
        Some(_) => Vec::new(),
        None => vec![reference.clone()],
    };
    for img in &pulled.images {
        let n: &[Reference] = if img.digest == named { &names } else { &[] };
        store
            .name_image(&img.digest, n)
            .with_context(|| format!("recording {reference} in the store"))?;
    }
    Ok(named)
}

/// Tell the store which blob holds each layer of a pulled image (by diffID).
fn record_layers(store: &Store, manifest_digest: &Digest) -> anyhow::Result<()> {
    let img = store
        .image(manifest_digest)
        .with_context(|| format!("reading pulled manifest {manifest_digest}"))?;
    let diff_ids = img.diff_ids()?;
    let layers = img.manifest.layers();
    if diff_ids.len() != layers.len() {
        anyhow::bail!(
            "image {manifest_digest}: config lists {} layers but the manifest {}",
            diff_ids.len(),
            layers.len()
        );
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

/// The manifest to push for a stored image: its own when every layer is compressed, else a new
/// one (stored as a blob) whose uncompressed layers are replaced by their gzip form.
pub fn pushable_manifest(store: &Store, image: &Image) -> anyhow::Result<Digest> {
    let layers = image.manifest.layers();
    let uncompressed = layers.iter().any(|l| {
        descriptor_media_type(l).and_then(MediaType::layer_compression) == Some(Compression::None)
    });
    if !uncompressed {
        return Ok(image.manifest_digest.clone());
    }
    let diff_ids = image.diff_ids()?;
    // Compress the uncompressed layers on every core at once (each is one gzip stream).
    let todo: Vec<&Digest> = diff_ids
        .iter()
        .zip(layers)
        .filter(|(_, l)| {
            descriptor_media_type(l).and_then(MediaType::layer_compression)
                == Some(Compression::None)
        })
        .map(|(d, _)| d)
        .collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(todo.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<anyhow::Result<(Digest, (Digest, u64))>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(diff_id) = todo.get(i) else {
                            return out;
                        };
                        let r = gzip_layer(store, diff_id)
                            .with_context(|| format!("compressing layer {diff_id}"))
                            .map(|c| ((*diff_id).clone(), c));
                        out.push(r);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut compressed = std::collections::HashMap::new();
    for r in results {
        let (diff_id, c) = r?;
        compressed.insert(diff_id, c);
    }
    let mut new_layers = Vec::new();
    for (diff_id, layer) in diff_ids.iter().zip(layers) {
        let kind = descriptor_media_type(layer);
        match compressed.get(diff_id) {
            Some((digest, size))
                if kind.and_then(MediaType::layer_compression) == Some(Compression::None) =>
            {
                let mt = if kind == Some(MediaType::DockerLayer) {
                    MediaType::DockerLayerGzip
                } else {
                    MediaType::OciLayerGzip
                };
                new_layers.push(manifest::descriptor(mt, digest, *size));
            }
            _ => new_layers.push(layer.clone()),
        }
    }
    let mut m = image.manifest.clone();
    m.set_layers(new_layers);
    let bytes = serde_json::to_vec(&m)?;
    let digest = Digest::sha256_of(&bytes);
    // Made before by an earlier push: no need to write (and fsync) it again.
    if !store.blobs().contains(&digest) {
        store.blobs().put(&bytes, Some(&digest))?;
    }
    Ok(digest)
}

/// The gzip form of layer `diff_id`: the one the store remembers, else made now at gzip's
/// fastest level (pushing is dominated by compression; level 1 is several times faster than
/// the default and any gzip reader takes it), verified against the diffID and recorded so the
/// next push or save reuses it.
fn gzip_layer(store: &Store, diff_id: &Digest) -> anyhow::Result<(Digest, u64)> {
    if let Some(known) = store.layer_blob(diff_id, Compression::Gzip)? {
        return Ok(known);
    }
    let _hold = store.hold()?;
    let mut src = store.layer_reader(diff_id)?;
    // Deflate gains nothing on incompressible data (already compressed or random files) yet
    // runs at ~50 MB/s on it: judge by a sample, and store such layers in gzip's stored blocks.
    let mut sample = Vec::with_capacity(SAMPLE);
    std::io::Read::by_ref(&mut src)
        .take(SAMPLE as u64)
        .read_to_end(&mut sample)
        .context("reading the layer")?;
    let level = if compresses(&sample) {
        flate2::Compression::fast()
    } else {
        flate2::Compression::none()
    };
    let writer = store.blobs().writer(rbuild_oci::Algorithm::Sha256)?;
    let mut gz = flate2::write::GzEncoder::new(writer, level);
    let mut hasher = rbuild_oci::Hasher::new(diff_id.algorithm());
    hasher.update(&sample);
    std::io::Write::write_all(&mut gz, &sample).context("compressing")?;
    let mut total = sample.len() as u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match std::io::Read::read(&mut src, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the layer"),
        };
        hasher.update(&buf[..n]);
        std::io::Write::write_all(&mut gz, &buf[..n]).context("compressing")?;
        total += n as u64;
    }
    let actual = hasher.finish();
    if &actual != diff_id {
        anyhow::bail!("layer content has digest {actual}, expected {diff_id}; not pushed");
    }
    let writer = gz.finish().context("compressing")?;
    let (digest, size) = writer.commit(None, "compressed layer")?;
    store.record_layer_blob(diff_id, Compression::Gzip, &digest, size, Some(total))?;
    Ok((digest, size))
}

/// Bytes of a layer sampled to decide whether deflate is worth it.
const SAMPLE: usize = 4 << 20;

/// Whether `sample` shrinks by at least 5% at gzip's fastest level.
fn compresses(sample: &[u8]) -> bool {
    let mut c = flate2::Compress::new(flate2::Compression::fast(), false);
    let mut out = Vec::with_capacity(sample.len() + 1024);
    match c.compress_vec(sample, &mut out, flate2::FlushCompress::Finish) {
        Ok(flate2::Status::StreamEnd) => (out.len() as f64) < sample.len() as f64 * 0.95,
        // The output did not even fit in the input's size: incompressible.
        _ => false,
    }
}

/// Push a stored image to `dest`; returns the pushed manifest digest.
pub async fn push_from_store(
    client: &Client,
    store: &Store,
    image: &Image,
    dest: &Reference,
    reporter: Arc<dyn Reporter>,
) -> anyhow::Result<Digest> {
    let _hold = store.hold().context("locking the store against pruning")?;
    let manifest = pushable_manifest(store, image)?;
    // Repositories on the same registry this image is known under may lend their blobs.
    let mount_from: Vec<String> = image
        .names
        .iter()
        .filter(|n| n.domain() == dest.domain() && n.path() != dest.path())
        .map(|n| n.path().to_string())
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry_support::{Auth, RegistryProcess};

    /// A one-layer image made through the store API, named `name`; returns it and its layer tar.
    fn stored_image(store: &Store, name: &Reference) -> (Image, Vec<u8>) {
        let mut b = tar::Builder::new(Vec::new());
        let body = b"made for the blocking transfer helpers\n".repeat(1000);
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "etc/helpers.txt", &body[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let layer = store.add_layer_tar(&tar[..], "test layer").unwrap();
        let host = Platform::host();
        let config = serde_json::json!({
            "architecture": host.architecture,
            "os": host.os,
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
        });
        let image = store
            .commit_image(
                &serde_json::to_vec(&config).unwrap(),
                std::slice::from_ref(name),
            )
            .unwrap();
        (image, tar)
    }

    #[test]
    fn build_helpers_push_and_pull_through_a_real_registry() {
        let Some(reg) = RegistryProcess::start(Auth::Open, "transfer helpers") else {
            return;
        };
        let src = tempfile::tempdir().unwrap();
        let src = Store::open(src.path()).unwrap();
        let name: Reference = format!("{}/helpers/img:1", reg.addr).parse().unwrap();
        let (image, tar) = stored_image(&src, &name);

        // build --push: the stored name says where to.
        let pushed =
            push_image_blocking(&RegistryArgs::from_env().unwrap(), &src, &name, true).unwrap();
        // The uncompressed stored layer went out gzip'd: a new manifest, same image ID.
        assert_ne!(pushed, image.manifest_digest);
        assert_eq!(
            push_image_blocking(&RegistryArgs::from_env().unwrap(), &src, &name, true).unwrap(),
            pushed,
            "a second push reports the same manifest"
        );

        // FROM: a fresh store pulls it, named, with the same config and layer content.
        let dst = tempfile::tempdir().unwrap();
        let dst = Store::open(dst.path()).unwrap();
        let pulled = pull_image_blocking(
            &RegistryArgs::from_env().unwrap(),
            &dst,
            &name,
            &Platform::host(),
            true,
        )
        .unwrap();
        assert_eq!(pulled.manifest_digest, pushed);
        assert_eq!(pulled.id, image.id);
        assert_eq!(pulled.names, vec![name.clone()]);
        let diff_id = &pulled.diff_ids().unwrap()[0];
        let mut content = Vec::new();
        dst.layer_reader(diff_id)
            .unwrap()
            .read_to_end(&mut content)
            .unwrap();
        assert!(content == tar, "pulled layer differs from the one pushed");
        assert_eq!(
            dst.resolve(&name.to_string()).unwrap().manifest_digest,
            pushed
        );

        // Called from async code (a runtime already running on this thread): still works.
        let third = tempfile::tempdir().unwrap();
        let third = Store::open(third.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let again = rt
            .block_on(async {
                pull_image_blocking(
                    &RegistryArgs::from_env().unwrap(),
                    &third,
                    &name,
                    &Platform::host(),
                    true,
                )
            })
            .unwrap();
        assert_eq!(again.manifest_digest, pushed);

        // A tag the registry lacks: an error naming the reference, and nothing named.
        let missing: Reference = format!("{}/helpers/img:nope", reg.addr).parse().unwrap();
        let err = pull_image_blocking(
            &RegistryArgs::from_env().unwrap(),
            &dst,
            &missing,
            &Platform::host(),
            true,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("helpers/img:nope"), "{msg}");
        assert!(dst.resolve(&missing.to_string()).is_err());
        // Pushing a name the store does not have says so.
        let err = push_image_blocking(&RegistryArgs::from_env().unwrap(), &dst, &missing, true)
            .unwrap_err();
        assert!(format!("{err:#}").contains("in the store"), "{err:#}");
    }

    #[test]
    fn only_data_that_shrinks_is_deflated() {
        let text = "the same words again and again\n".repeat(10_000);
        assert!(compresses(text.as_bytes()));
        // xorshift noise: incompressible.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(!compresses(&noise));
        assert!(!compresses(&[]));
    }
}
