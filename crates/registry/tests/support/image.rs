//! Random test images: incompressible "layers" (gzip-labelled random bytes, enough for a
//! registry, which never looks inside) and a valid config, as an OCI or Docker manifest.

use rbuild_oci::{Digest, MediaType};
use rbuild_registry::MemoryBlobs;

/// Deterministic pseudo-random bytes (xorshift), `len` of them, from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A test image held in memory.
pub struct TestImage {
    /// Manifest, config and layers.
    pub blobs: MemoryBlobs,
    /// The manifest's digest.
    pub manifest: Digest,
    /// The manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// The config digest.
    pub config: Digest,
    /// The layer digests, bottom first.
    pub layers: Vec<Digest>,
}

/// An image with layers of `sizes` bytes (seeded by `seed`), OCI media types unless `docker`.
pub fn test_image(seed: u64, sizes: &[usize], docker: bool) -> TestImage {
    let blobs = MemoryBlobs::new();
    let mut layers = Vec::new();
    let mut descs = Vec::new();
    let layer_type = if docker {
        MediaType::DockerLayerGzip
    } else {
        MediaType::OciLayerGzip
    };
    for (i, size) in sizes.iter().enumerate() {
        let data = random_bytes(seed * 1000 + i as u64, *size);
        let d = blobs.insert(data);
        descs.push(format!(
            r#"{{"mediaType":"{layer_type}","digest":"{d}","size":{size}}}"#
        ));
        layers.push(d);
    }
    let diff_ids: Vec<String> = layers.iter().map(|d| format!("\"{d}\"")).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"],"Labels":{{"seed":"{seed}"}}}},"rootfs":{{"type":"layers","diff_ids":[{}]}},"history":[]}}"#,
        diff_ids.join(",")
    );
    let config_len = config.len();
    let config_digest = blobs.insert(config.into_bytes());
    let (mt, ct) = if docker {
        (MediaType::DockerManifest, MediaType::DockerConfig)
    } else {
        (MediaType::OciManifest, MediaType::OciConfig)
    };
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"{ct}","digest":"{config_digest}","size":{config_len}}},"layers":[{}]}}"#,
        descs.join(",")
    );
    let manifest_bytes = manifest.into_bytes();
    let manifest_digest = blobs.insert(manifest_bytes.clone());
    TestImage {
        blobs,
        manifest: manifest_digest,
        manifest_bytes,
        config: config_digest,
        layers,
    }
}
