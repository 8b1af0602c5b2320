//! Layers known only remotely: a build that reuses a lazily imported build cache's step
//! commits its image without fetching the layer, and the store records where the layer's blob
//! is (a registry repository or an OCI layout directory). Whoever needs the bytes fetches it
//! first (the engine does, verified, and records it as usual); reading it before that is
//! [`StoreError::LayerNotLocal`], never wrong bytes.

use std::path::PathBuf;

use rbuild_oci::Digest;
use serde::{Deserialize, Serialize};

use super::Store;
use crate::error::{Result, StoreError};
use crate::image::Image;
use crate::lock::Lock;

/// Where a layer's blob can be fetched from, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLayer {
    /// The blob (compressed or not) holding the layer.
    pub blob: Digest,
    /// The blob's media type (`application/vnd.oci.image.layer.v1.tar+gzip`, …).
    pub media_type: String,
    /// The blob's size.
    pub size: u64,
    /// Where it is.
    pub location: LayerLocation,
}

/// A place holding layer blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LayerLocation {
    /// A repository of a registry.
    Registry {
        /// The registry (`localhost:5000`, as in references).
        registry: String,
        /// The repository (`cache/app`).
        repository: String,
    },
    /// An OCI image layout directory.
    Layout {
        /// The directory.
        dir: PathBuf,
    },
}

impl std::fmt::Display for LayerLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerLocation::Registry {
                registry,
                repository,
            } => write!(f, "registry {registry}/{repository}"),
            LayerLocation::Layout { dir } => write!(f, "OCI layout {}", dir.display()),
        }
    }
}

impl Store {
    /// Remember that layer `diff_id` (of `size` bytes uncompressed, when known) can be fetched
    /// as `remote`. The layer may then be in images committed with [`Store::commit_image`]
    /// before any of its bytes are here.
    pub fn record_remote_layer(
        &self,
        diff_id: &Digest,
        remote: &RemoteLayer,
        size: Option<u64>,
    ) -> Result<()> {
        self.record_remote_layers(&[(diff_id, remote, size)])
    }

    /// [`Store::record_remote_layer`] for several layers at once, as a build committing an
    /// image of imported layers does: each record is written and synced, then renamed into
    /// place, and their directory synced once (not once a record).
    pub fn record_remote_layers(
        &self,
        layers: &[(&Digest, &RemoteLayer, Option<u64>)],
    ) -> Result<()> {
        let _lock = Lock::exclusive(&self.root.join("locks/index"))?;
        let tmp_dir = self.tmp_dir();
        let mut staged: Vec<(tempfile::TempPath, PathBuf)> = Vec::new();
        for (diff_id, remote, size) in layers {
            let mut rec = self.layer_record(diff_id)?;
            if rec.remote.as_ref() == Some(*remote) && (size.is_none() || rec.size.is_some()) {
                continue;
            }
            rec.remote = Some((*remote).clone());
            if rec.size.is_none() {
                rec.size = *size;
            }
            let bytes = serde_json::to_vec(&rec).expect("a layer record serializes");
            staged.push((
                super::write_synced_temp(&tmp_dir, &bytes)?,
                self.layer_record_path(diff_id),
            ));
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (tmp, dest) in staged {
            crate::blobs::rename_into(&tmp, &dest)?;
            // Renamed: nothing is left to remove.
            let _ = tmp.keep();
            let dir = dest.parent().expect("a record path has a parent");
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_path_buf());
            }
        }
        for dir in dirs {
            crate::blobs::sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Where to fetch layer `diff_id` from, when the store holds none of its forms but knows
    /// where it is (a layer reused from a lazily imported cache); `None` for a layer held here
    /// (or unknown).
    pub fn remote_layer(&self, diff_id: &Digest) -> Result<Option<RemoteLayer>> {
        let rec = self.layer_record(diff_id)?;
        Ok(rec.remote.filter(|_| !self.has_layer(diff_id)))
    }

    /// Where layer `diff_id` came from remotely, whether or not it has been fetched since
    /// (a push to that registry mounts the blob from there instead of uploading it).
    pub fn layer_origin(&self, diff_id: &Digest) -> Option<RemoteLayer> {
        self.layer_record(diff_id).ok()?.remote
    }

    /// The layers of `image` the store holds only remotely, bottom first, with where they are.
    pub fn remote_layers(&self, image: &Image) -> Result<Vec<(Digest, RemoteLayer)>> {
        let mut out = Vec::new();
        for d in image.diff_ids()? {
            if let Some(r) = self.remote_layer(&d)? {
                out.push((d, r));
            }
        }
        Ok(out)
    }

    /// The error for reading layer `diff_id`, which is only at `remote`.
    pub(crate) fn not_local(diff_id: &Digest, remote: &RemoteLayer) -> StoreError {
        StoreError::LayerNotLocal {
            diff_id: diff_id.clone(),
            blob: remote.blob.clone(),
            location: remote.location.to_string(),
        }
    }
}
