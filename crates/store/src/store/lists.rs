//! Multi-platform images: image indexes stored as blobs and named in the table's `indexes`,
//! the images they list recorded as (usually unnamed) images. A name of an index resolves to
//! the image for a platform (this machine's unless asked otherwise), as docker's containerd
//! image store does.

use std::collections::HashSet;

use rbuild_oci::manifest::{self, ImageIndex};
use rbuild_oci::{Digest, MediaType, Platform, Reference};

use super::{Store, now};
use crate::error::{Result, StoreError};
use crate::image::{Image, ImageList};

impl Store {
    /// Write an OCI image index listing `images`, each for its platform, in order, and name
    /// it with `names` (which move off any image or other index).
    pub fn commit_index(
        &self,
        images: &[(Platform, Image)],
        names: &[Reference],
    ) -> Result<ImageList> {
        let entries = images
            .iter()
            .map(|(platform, img)| {
                Ok(manifest::with_platform(
                    self.manifest_descriptor(img)?,
                    platform,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        self.commit_index_of(entries, names)
    }

    /// Write an OCI image index listing the descriptors `entries` (image manifests in the
    /// store, with their platforms) and name it with `names`.
    pub fn commit_index_of(
        &self,
        entries: Vec<rbuild_oci::Descriptor>,
        names: &[Reference],
    ) -> Result<ImageList> {
        let index = manifest::index_of(entries);
        let bytes = serde_json::to_vec(&index).expect("an index serializes");
        let digest = self.put_index(&bytes)?;
        self.name_index(&digest, names)?;
        self.index(&digest)
    }

    /// A descriptor of `image`'s manifest (media type, digest, size; no platform).
    pub fn manifest_descriptor(&self, image: &Image) -> Result<rbuild_oci::Descriptor> {
        let bytes = self.blobs.read(&image.manifest_digest)?;
        let mt = manifest_media_type(&bytes);
        Ok(manifest::descriptor(
            mt,
            &image.manifest_digest,
            bytes.len() as u64,
        ))
    }

    /// Store the bytes of an image index (checked to decode) as a blob; returns its digest.
    pub fn put_index(&self, bytes: &[u8]) -> Result<Digest> {
        manifest::decode_index(bytes).map_err(|source| StoreError::Manifest {
            what: "image index".into(),
            source,
        })?;
        self.blobs.put(bytes, None)
    }

    /// Record the stored index `digest` with `names`; the images it lists that are in the
    /// store are recorded as images (without names) if they are not already.
    pub fn name_index(&self, digest: &Digest, names: &[Reference]) -> Result<()> {
        let list = self.decode_index_blob(digest)?;
        let t = now();
        let present: Vec<Digest> = manifest::index_images(&list)
            .into_iter()
            .map(|(d, _, _)| d)
            .filter(|d| self.blobs.contains(d))
            .collect();
        self.update_table(|table| {
            for d in &present {
                table.insert(d, t);
            }
            table
                .indexes
                .entry(digest.clone())
                .or_insert_with(|| crate::index::ImageEntry {
                    names: Vec::new(),
                    added: t,
                });
            for n in names {
                table.set_index_name(digest, n.clone(), t);
            }
            Ok(())
        })
    }

    fn decode_index_blob(&self, digest: &Digest) -> Result<ImageIndex> {
        let bytes = self.blobs.read(digest)?;
        manifest::decode_index(&bytes).map_err(|source| StoreError::Manifest {
            what: format!("index {digest}"),
            source,
        })
    }

    /// The stored index `digest`.
    pub fn index(&self, digest: &Digest) -> Result<ImageList> {
        let table = self.table()?;
        let entry = table.indexes.get(digest).cloned().unwrap_or_default();
        let bytes = self.blobs.read(digest)?;
        let index = manifest::decode_index(&bytes).map_err(|source| StoreError::Manifest {
            what: format!("index {digest}"),
            source,
        })?;
        Ok(ImageList {
            digest: digest.clone(),
            bytes,
            index,
            names: entry.names,
            added: entry.added,
        })
    }

    /// Every stored index.
    pub fn indexes(&self) -> Result<Vec<ImageList>> {
        self.table()?
            .indexes
            .keys()
            .map(|d| self.index(d))
            .collect()
    }

    /// The index `what` means, if it means one: a name of an index, `name@digest` or the
    /// digest (full, or a prefix of its hex) of a stored index. `None` when `what` is not an
    /// index here (it may still be an image).
    pub fn resolve_index(&self, what: &str) -> Result<Option<ImageList>> {
        let table = self.table()?;
        if table.indexes.is_empty() {
            return Ok(None);
        }
        if let Ok(r) = what.parse::<Reference>() {
            match r.digest() {
                Some(d) if table.indexes.contains_key(d) => return self.index(d).map(Some),
                Some(_) => {}
                None => {
                    if table.find_name(&r).is_some() {
                        return Ok(None);
                    }
                    if let Some(d) = table.find_index_name(&r) {
                        return self.index(d).map(Some);
                    }
                }
            }
        }
        let hex = what.strip_prefix("sha256:").unwrap_or(what);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<&Digest> = table
                .indexes
                .keys()
                .filter(|d| d.hex().starts_with(hex))
                .collect();
            match hits.as_slice() {
                [] => {}
                [d] => return self.index(d).map(Some),
                _ => return Err(StoreError::AmbiguousId(what.to_string())),
            }
        }
        Ok(None)
    }

    /// The image `what` means for `platform`: from an index, the entry for the platform
    /// (an error naming the platforms it has when it has none, or when that image is not in
    /// the store); a single image as it is (the caller checks its platform).
    pub fn resolve_platform(&self, what: &str, platform: &Platform) -> Result<Image> {
        match self.resolve_index(what)? {
            Some(list) => self.image_for(&list, what, platform),
            None => self.resolve_image(what),
        }
    }

    /// `list`'s image for `platform`, which must be in the store.
    pub fn image_for(&self, list: &ImageList, what: &str, platform: &Platform) -> Result<Image> {
        let table = self.table()?;
        let stored = |d: &Digest| table.images.contains_key(d) && self.blobs.contains(d);
        let chosen = list
            .entries()
            .into_iter()
            .find(|(d, p)| p.as_ref().is_none_or(|p| platform.matches(p)) && stored(d));
        match chosen {
            Some((d, _)) => self.image(&d),
            None => Err(StoreError::NoPlatform {
                what: what.to_string(),
                platform: platform.to_string(),
                available: list
                    .entries()
                    .iter()
                    .map(|(d, p)| {
                        let name = p.as_ref().map_or("any".to_string(), |p| p.to_string());
                        if stored(d) {
                            name
                        } else {
                            format!("{name} (not pulled)")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Manifests listed by stored indexes (kept by garbage collection, never dangling).
    pub(crate) fn listed_by_indexes(&self, table: &crate::ImageTable) -> HashSet<Digest> {
        table
            .indexes
            .keys()
            .filter_map(|d| self.decode_index_blob(d).ok())
            .flat_map(|i| {
                manifest::index_images(&i)
                    .into_iter()
                    .map(|(d, _, _)| d)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Remove the index `list` named or meant by `what`: a name goes (the index with its last
    /// name); the index's digest removes it with every name (more than one only with `force`).
    /// The images it listed that have no names of their own and no other index lists go too.
    pub(crate) fn remove_index(
        &self,
        list: &ImageList,
        what: &str,
        force: bool,
    ) -> Result<super::RemoveOutcome> {
        let by_name = what
            .parse::<Reference>()
            .ok()
            .filter(|r| r.digest().is_none() && list.names.contains(r));
        let outcome = self.update_table(|t| {
            if let Some(name) = &by_name {
                t.remove_name(name);
                if t.indexes
                    .get(&list.digest)
                    .is_some_and(|e| !e.names.is_empty())
                {
                    return Ok(super::RemoveOutcome::Untagged(name.clone()));
                }
            } else if list.names.len() > 1 && !force {
                return Err(StoreError::ImageInUse {
                    image: list.digest.short().to_string(),
                    count: list.names.len(),
                });
            }
            t.indexes.remove(&list.digest);
            Ok(super::RemoveOutcome::Deleted {
                id: list.digest.clone(),
                untagged: match &by_name {
                    Some(n) => vec![n.clone()],
                    None => list.names.clone(),
                },
            })
        })?;
        if matches!(outcome, super::RemoveOutcome::Deleted { .. }) {
            let table = self.table()?;
            let still_listed = self.listed_by_indexes(&table);
            self.update_table(|t| {
                for (d, _) in list.entries() {
                    let unnamed = t.images.get(&d).is_some_and(|e| e.names.is_empty());
                    if unnamed && !still_listed.contains(&d) {
                        t.images.remove(&d);
                    }
                }
                Ok(())
            })?;
            self.collect_garbage()?;
        }
        Ok(outcome)
    }
}

/// The media type a manifest's bytes declare (OCI when they do not say).
fn manifest_media_type(bytes: &[u8]) -> MediaType {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str()?.parse().ok())
        .filter(|m: &MediaType| m.is_manifest())
        .unwrap_or(MediaType::OciManifest)
}
