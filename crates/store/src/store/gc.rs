//! Garbage collection: dangling images, then blobs, layer records, snapshots and staging
//! files no image refers to.

use std::collections::HashSet;
use std::fs;

use rbuild_oci::Digest;
use rbuild_oci::manifest;

use super::{Store, remove_path};
use crate::error::Result;
use crate::index::ImageTable;
use crate::lock::Lock;

/// The store's garbage-collection lock held exclusively ([`Store::lock_gc`]): no writer adds
/// content and no other pruner runs while it is held.
#[derive(Debug)]
pub struct GcLock(#[allow(dead_code)] Lock);

impl Store {
    /// `rbuild image prune`: delete dangling (unnamed) images but those whose image ID is in
    /// `in_use` (containers' images: their layers are the containers' lower dirs), then
    /// everything no image refers to (blobs, layer records, snapshots, stale staging files).
    /// Returns the deleted image IDs.
    pub fn prune(&self, in_use: &HashSet<Digest>) -> Result<Vec<Digest>> {
        let image_id = |m: &Digest| {
            self.blobs
                .read(m)
                .ok()
                .and_then(|b| manifest::decode_manifest(&b).ok())
                .and_then(|m| manifest::descriptor_digest(m.config()).ok())
        };
        let dangling = self.update_table(|t| {
            // Unnamed indexes go first; the images the named ones list are not dangling.
            t.indexes.retain(|_, e| !e.names.is_empty());
            let listed = self.listed_by_indexes(t);
            let gone: Vec<Digest> = t
                .images
                .iter()
                .filter(|(d, e)| e.names.is_empty() && !listed.contains(d))
                .map(|(d, _)| d.clone())
                .filter(|d| !image_id(d).is_some_and(|id| in_use.contains(&id)))
                .collect();
            for d in &gone {
                t.images.remove(d);
            }
            Ok(gone)
        })?;
        let ids = dangling.iter().filter_map(image_id).collect();
        self.collect_garbage()?;
        Ok(ids)
    }

    /// Delete blobs, layer records and snapshots no image refers to. Waits for writers
    /// holding [`Store::hold`].
    pub fn collect_garbage(&self) -> Result<()> {
        let gc = self.lock_gc()?;
        self.collect_garbage_locked(&gc, &HashSet::new())
    }

    /// Keep every writer ([`Store::hold`]) and every other collection away until the returned
    /// lock is dropped: what a pruner holds while it decides what goes and removes it.
    pub fn lock_gc(&self) -> Result<GcLock> {
        Lock::exclusive(&self.root.join("locks/gc")).map(GcLock)
    }

    /// The diffIDs of the layers the stored images use (what a collection always keeps).
    pub fn image_layers(&self) -> Result<HashSet<Digest>> {
        Ok(self.referenced(&self.table()?).1)
    }

    /// [`Store::collect_garbage`] under a lock the caller holds, also keeping the layers
    /// `keep_layers` lists (those a build cache still records) in every form the store has.
    pub fn collect_garbage_locked(
        &self,
        _gc: &GcLock,
        keep_layers: &HashSet<Digest>,
    ) -> Result<()> {
        let table = self.table()?;
        let (mut keep_blobs, mut layers) = self.referenced(&table);
        // A layer kept for another owner may be stored as its uncompressed blob.
        keep_blobs.extend(keep_layers.iter().cloned());
        layers.extend(keep_layers.iter().cloned());
        self.sweep(keep_blobs, layers)
    }

    /// The blobs and layers (diffIDs) the image index refers to.
    fn referenced(&self, table: &ImageTable) -> (HashSet<Digest>, HashSet<Digest>) {
        let mut keep_blobs: HashSet<Digest> = HashSet::new();
        let mut keep_layers: HashSet<Digest> = HashSet::new();
        keep_blobs.extend(table.indexes.keys().cloned());
        for m in table.images.keys() {
            keep_blobs.insert(m.clone());
            let Ok(bytes) = self.blobs.read(m) else {
                continue;
            };
            let Ok(man) = manifest::decode_manifest(&bytes) else {
                continue;
            };
            for d in std::iter::once(man.config()).chain(man.layers()) {
                if let Ok(d) = manifest::descriptor_digest(d) {
                    keep_blobs.insert(d);
                }
            }
            if let Ok(cfg) = manifest::descriptor_digest(man.config())
                .ok()
                .and_then(|c| self.blobs.read(&c).ok())
                .ok_or(())
                .and_then(|b| manifest::decode_config(&b).map_err(|_| ()))
            {
                keep_layers.extend(manifest::diff_ids(&cfg).unwrap_or_default());
            }
        }
        (keep_blobs, keep_layers)
    }

    /// Delete every blob, layer record and snapshot not kept, and stale staging files.
    fn sweep(&self, mut keep_blobs: HashSet<Digest>, keep_layers: HashSet<Digest>) -> Result<()> {
        // Every remembered form of a kept layer stays (a later push or save reuses it).
        for l in &keep_layers {
            if let Ok(rec) = self.layer_record(l) {
                keep_blobs.extend(rec.blobs.values().map(|b| b.digest.clone()));
            }
        }
        for b in self.blobs.list()? {
            if !keep_blobs.contains(&b) {
                self.blobs.remove(&b)?;
            }
        }
        for alg in ["sha256", "sha512"] {
            for (dir, suffix) in [("layers", ".json"), ("snapshots", "")] {
                let d = self.root.join(dir).join(alg);
                let Ok(rd) = fs::read_dir(&d) else { continue };
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let hex = name.strip_suffix(suffix).unwrap_or(&name);
                    let keep = format!("{alg}:{hex}")
                        .parse::<Digest>()
                        .is_ok_and(|dg| keep_layers.contains(&dg));
                    if !keep {
                        remove_path(&e.path())?;
                    }
                }
            }
        }
        // No writer holds the gc lock now, so staging files are leftovers of dead processes.
        let tmp = self.tmp_dir();
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten() {
                remove_path(&e.path())?;
            }
        }
        Ok(())
    }
}
