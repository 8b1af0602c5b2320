//! A cache as an OCI image layout directory (`type=local`): `oci-layout`, `index.json` naming
//! the artifact's manifest (`org.opencontainers.image.ref.name` `latest`), `blobs/sha256/…`.
//! Every blob read from it is verified by its digest.

use std::io::Read;
use std::path::{Path, PathBuf};

use rbuild_builder::build::{CacheEntry, LayerFetcher};
use rbuild_oci::Digest;
use rbuild_store::{LayerLocation, RemoteLayer, Store};

use crate::error::{EngineError, Result, ResultExt};
use crate::files::write_atomic;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub(super) fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

/// Write the artifact `manifest` (in the store, with its config and layers) into `dir`,
/// blobs first and `index.json` last, so a reader never sees an index without its blobs.
/// The blobs of `placed` layers are not in the store: they are copied from the OCI layout
/// they are in, verified.
pub(super) fn write(
    store: &Store,
    dir: &Path,
    manifest: &Digest,
    size: u64,
    placed: &std::collections::HashMap<Digest, RemoteLayer>,
) -> Result<()> {
    let bytes = store.blobs().read(manifest)?;
    let mut todo = Vec::new();
    for d in rbuild_registry_blobs(&bytes)
        .into_iter()
        .chain(std::iter::once(manifest.clone()))
    {
        let dest = blob_path(dir, &d);
        if dest.is_file() || todo.iter().any(|(t, _)| *t == d) {
            continue;
        }
        let parent = dest.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        todo.push((d, dest));
    }
    // Several blobs at a time: each is mostly the kernel copying file content.
    crate::transfer::each_parallel(&todo, 4, |(d, dest)| write_blob(store, d, dest, placed))?;
    write_atomic(&dir.join("oci-layout"), |f| {
        std::io::Write::write_all(f, br#"{"imageLayoutVersion":"1.0.0"}"#)
    })?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest.to_string(),
            "size": size,
            "annotations": { REF_NAME: "latest" },
        }],
    });
    let index = serde_json::to_vec(&index)?;
    write_atomic(&dir.join("index.json"), |f| {
        std::io::Write::write_all(f, &index)
    })
}

/// Write blob `d` at `dest`: from the OCI layout a `placed` layer is in (copied, verified),
/// else from the store.
fn write_blob(
    store: &Store,
    d: &Digest,
    dest: &Path,
    placed: &std::collections::HashMap<Digest, RemoteLayer>,
) -> Result<()> {
    let elsewhere = placed.values().find_map(|r| match &r.location {
        LayerLocation::Layout { dir } if r.blob == *d => Some(blob_path(dir, d)),
        _ => None,
    });
    match elsewhere {
        Some(path) => {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut src = Verified::new(file, d);
            write_atomic(dest, |f| {
                std::io::copy(&mut src, f)?;
                src.check()
            })
        }
        // Not hashed again: whoever reads the cache verifies each blob.
        None => write_atomic(dest, |f| store.write_blob_file(d, f).map(|_| ())),
    }
}

/// The digests a manifest's config and layers name.
fn rbuild_registry_blobs(manifest: &[u8]) -> Vec<Digest> {
    let doc: serde_json::Value = serde_json::from_slice(manifest).unwrap_or_default();
    let mut out = Vec::new();
    let descs = doc.get("config").into_iter().chain(
        doc.get("layers")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten(),
    );
    for d in descs {
        if let Some(d) = d
            .get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| d.parse().ok())
        {
            out.push(d);
        }
    }
    out
}

/// The bytes of the cache manifest `dir`'s `index.json` names (`latest`, or its only entry),
/// verified, and its digest.
pub(super) fn read_manifest(dir: &Path) -> Result<(Vec<u8>, Digest)> {
    let path = dir.join("index.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let index: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| EngineError::Failed(format!("{}: not an OCI index: {e}", path.display())))?;
    let manifests = index
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    let chosen = manifests
        .iter()
        .find(|m| m["annotations"][REF_NAME] == "latest")
        .or(if manifests.len() == 1 {
            manifests.first()
        } else {
            None
        })
        .ok_or_else(|| {
            EngineError::Failed(format!("{}: no manifest named latest", path.display()))
        })?;
    let digest: Digest = chosen["digest"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|e| EngineError::Failed(format!("{}: {e}", path.display())))?;
    Ok((read_blob(dir, &digest, 4 << 20)?, digest))
}

/// Blob `digest` of `dir` in memory (at most `max` bytes), verified.
pub(super) fn read_blob(dir: &Path, digest: &Digest, max: u64) -> Result<Vec<u8>> {
    let path = blob_path(dir, digest);
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(EngineError::Failed(format!(
            "{}: larger than {max} bytes",
            path.display()
        )));
    }
    let actual = Digest::sha256_of(&bytes);
    if &actual != digest {
        return Err(EngineError::Failed(format!(
            "{}: content has digest {actual}, expected {digest}",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Layers of a cache in a layout directory, copied in (verified) on hits.
#[derive(Debug)]
pub(super) struct LocalLayers {
    /// The layout.
    pub dir: PathBuf,
    /// Its layer blobs.
    pub blobs: super::LayerBlobs,
}

impl LayerFetcher for LocalLayers {
    fn fetch(&self, store: &Store, entry: &CacheEntry) -> std::result::Result<(), String> {
        let copied = (|| -> Result<()> {
            if !store.blobs().contains(&entry.layer) {
                super::fetch::copy_from_layout(store, &self.dir, &entry.layer)?;
            }
            super::fetch::store_layer(store, &entry.layer, &entry.diff_id)
        })();
        copied.map_err(|e| crate::build::chain_text(&e))
    }

    fn remote(&self, _store: &Store, entry: &CacheEntry) -> Option<RemoteLayer> {
        let location = LayerLocation::Layout {
            dir: std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone()),
        };
        super::remote_layer(&self.blobs, entry, location)
    }
}

/// A reader hashing what passes, to check it against a digest at the end.
struct Verified<R> {
    inner: R,
    hasher: rbuild_oci::Hasher,
    expected: Digest,
}

impl<R: Read> Verified<R> {
    fn new(inner: R, expected: &Digest) -> Self {
        Verified {
            inner,
            hasher: rbuild_oci::Hasher::new(expected.algorithm()),
            expected: expected.clone(),
        }
    }

    /// Whether everything read hashed to the digest expected.
    fn check(&mut self) -> std::io::Result<()> {
        let hasher = std::mem::replace(
            &mut self.hasher,
            rbuild_oci::Hasher::new(self.expected.algorithm()),
        );
        let actual = hasher.finish();
        if actual == self.expected {
            return Ok(());
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "digest mismatch: expected {}, content hashes to {actual}",
                self.expected
            ),
        ))
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
