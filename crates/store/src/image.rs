//! An image as stored: manifest, config and names.

use rbuild_oci::manifest::{self, ImageConfig, ImageIndex, ImageManifest};
use rbuild_oci::{Digest, Platform, Reference};

use crate::error::{Result, StoreError};

/// A resolved image.
#[derive(Debug, Clone)]
pub struct Image {
    /// Digest of the manifest (the image's identity in the index).
    pub manifest_digest: Digest,
    /// The manifest.
    pub manifest: ImageManifest,
    /// Digest of the config: the image ID docker shows.
    pub id: Digest,
    /// The config, decoded.
    pub config: ImageConfig,
    /// The config's exact bytes (docker fields oci-spec does not model are kept here).
    pub config_bytes: Vec<u8>,
    /// Names pointing at the image.
    pub names: Vec<Reference>,
    /// When the image entered the store (seconds since the epoch).
    pub added: u64,
}

impl Image {
    /// The layers' diffIDs in order, bottom layer first.
    pub fn diff_ids(&self) -> Result<Vec<Digest>> {
        manifest::diff_ids(&self.config).map_err(|source| StoreError::Digest {
            what: format!("config {}", self.id),
            source,
        })
    }

    /// The config as generic JSON (for docker-style inspect output).
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.config_bytes).unwrap_or(serde_json::Value::Null)
    }

    /// Total size of the layers as stored (compressed or not) plus config.
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum::<u64>() + self.manifest.config().size()
    }
}

/// A stored image index (a multi-platform image): its digest, the index, and its names.
#[derive(Debug, Clone)]
pub struct ImageList {
    /// Digest of the index.
    pub digest: Digest,
    /// The index's exact bytes.
    pub bytes: Vec<u8>,
    /// The index, decoded.
    pub index: ImageIndex,
    /// Names pointing at it.
    pub names: Vec<Reference>,
    /// When it entered the store (seconds since the epoch).
    pub added: u64,
}

impl ImageList {
    /// The images the index lists (attestations left out): manifest digest and platform.
    pub fn entries(&self) -> Vec<(Digest, Option<Platform>)> {
        manifest::index_images(&self.index)
            .into_iter()
            .map(|(d, p, _)| (d, p))
            .collect()
    }

    /// The manifest digest for `platform` (an entry without a platform fits any).
    pub fn manifest_for(&self, platform: &Platform) -> Option<Digest> {
        self.entries()
            .into_iter()
            .find(|(_, p)| p.as_ref().is_none_or(|p| platform.matches(p)))
            .map(|(d, _)| d)
    }
}
