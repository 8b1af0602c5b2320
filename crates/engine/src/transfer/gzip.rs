//! Layers a registry takes: an image whose layers are stored uncompressed (built here) is
//! pushed with their gzip form, made once and remembered by the store.

use std::io::Read;

use rbuild_oci::manifest::{self, descriptor_media_type};
use rbuild_oci::{Compression, Digest, MediaType};
use rbuild_store::{Image, Store};

use crate::error::{EngineError, Result, ResultExt};

/// The manifest to push for a stored image: its own when every layer is compressed, else a new
/// one (stored as a blob) whose uncompressed layers are replaced by their gzip form.
pub fn pushable_manifest(store: &Store, image: &Image) -> Result<Digest> {
    let layers = image.manifest.layers();
    let uncompressed = layers.iter().any(|l| {
        descriptor_media_type(l).and_then(MediaType::layer_compression) == Some(Compression::None)
    });
    if !uncompressed {
        return Ok(image.manifest_digest.clone());
    }
    let diff_ids = image.diff_ids()?;
    // A layer held only remotely (a lazily imported cache's) is pushed as the blob it is there.
    let mut remote = std::collections::HashMap::new();
    for (d, r) in store.remote_layers(image)? {
        remote.insert(d, r);
    }
    // Compress the uncompressed layers on every core at once (each is one gzip stream).
    let todo: Vec<&Digest> = diff_ids
        .iter()
        .zip(layers)
        .filter(|(d, l)| {
            descriptor_media_type(l).and_then(MediaType::layer_compression)
                == Some(Compression::None)
                && !remote.contains_key(*d)
        })
        .map(|(d, _)| d)
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results = super::each_parallel(&todo, cores, |diff_id| {
        gzip_layer(store, diff_id)
            .with_context(|| format!("compressing layer {diff_id}"))
            .map(|c| ((*diff_id).clone(), c))
    })?;
    let mut compressed = std::collections::HashMap::new();
    for (diff_id, c) in results {
        compressed.insert(diff_id, c);
    }
    let mut new_layers = Vec::new();
    for (diff_id, layer) in diff_ids.iter().zip(layers) {
        let kind = descriptor_media_type(layer);
        if let Some(r) = remote.get(diff_id) {
            let mt = r.media_type.parse().unwrap_or(MediaType::OciLayerGzip);
            new_layers.push(manifest::descriptor(mt, &r.blob, r.size));
            continue;
        }
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
pub(crate) fn gzip_layer(store: &Store, diff_id: &Digest) -> Result<(Digest, u64)> {
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
        return Err(EngineError::Failed(format!(
            "layer content has digest {actual}, expected {diff_id}; not pushed"
        )));
    }
    let writer = gz.finish().context("compressing")?;
    let (digest, size) = writer.commit(None, "compressed layer")?;
    store.record_layer_blob(diff_id, Compression::Gzip, &digest, size, Some(total))?;
    Ok((digest, size))
}

/// Bytes of a layer sampled to decide whether deflate is worth it.
pub(crate) const SAMPLE: usize = 4 << 20;

/// Whether `sample` shrinks by at least 5% at gzip's fastest level.
pub(crate) fn compresses(sample: &[u8]) -> bool {
    let mut c = flate2::Compress::new(flate2::Compression::fast(), false);
    let mut out = Vec::with_capacity(sample.len() + 1024);
    match c.compress_vec(sample, &mut out, flate2::FlushCompress::Finish) {
        Ok(flate2::Status::StreamEnd) => (out.len() as f64) < sample.len() as f64 * 0.95,
        // The output did not even fit in the input's size: incompressible.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
