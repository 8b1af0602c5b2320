//! The image index: which manifests are images, which are image indexes (multi-platform
//! lists), and their names. Stored as `images.json`, replaced atomically under the `index` lock
//! (see [`crate::Store`]). A name points at one image or one index, never both.

use std::collections::BTreeMap;

use rbuild_oci::{Digest, Reference};

/// Every image in the store, by manifest digest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ImageTable {
    /// Manifest digest → entry.
    pub images: BTreeMap<Digest, ImageEntry>,
    /// Image index (manifest list) digest → entry. The images an index lists that are in the
    /// store are in `images` too (usually without names of their own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub indexes: BTreeMap<Digest, ImageEntry>,
}

/// One image's entry in the index.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ImageEntry {
    /// Normalized names (`docker.io/library/alpine:latest`); empty for a dangling image.
    pub names: Vec<Reference>,
    /// When the image entered the store (seconds since the epoch).
    pub added: u64,
}

impl ImageTable {
    /// The manifest a name points to.
    pub fn find_name(&self, name: &Reference) -> Option<&Digest> {
        self.images
            .iter()
            .find(|(_, e)| e.names.contains(name))
            .map(|(d, _)| d)
    }

    /// The index a name points to.
    pub fn find_index_name(&self, name: &Reference) -> Option<&Digest> {
        self.indexes
            .iter()
            .find(|(_, e)| e.names.contains(name))
            .map(|(d, _)| d)
    }

    /// Point `name` at the index `digest` (recorded if absent), moving it off any image or
    /// other index.
    pub fn set_index_name(&mut self, digest: &Digest, name: Reference, added: u64) {
        self.drop_name(&name);
        let entry = self
            .indexes
            .entry(digest.clone())
            .or_insert_with(|| ImageEntry {
                names: Vec::new(),
                added,
            });
        entry.names.push(name);
        entry.names.sort();
    }

    fn drop_name(&mut self, name: &Reference) {
        for e in self.images.values_mut().chain(self.indexes.values_mut()) {
            e.names.retain(|n| n != name);
        }
    }

    /// Record an image (no names yet) if absent.
    pub fn insert(&mut self, manifest: &Digest, added: u64) {
        self.images
            .entry(manifest.clone())
            .or_insert_with(|| ImageEntry {
                names: Vec::new(),
                added,
            });
    }

    /// Point `name` at `manifest`, moving it off any other image (which may become dangling).
    pub fn set_name(&mut self, manifest: &Digest, name: Reference, added: u64) {
        self.drop_name(&name);
        self.insert(manifest, added);
        let entry = self.images.get_mut(manifest).expect("just inserted");
        entry.names.push(name);
        entry.names.sort();
    }

    /// Remove `name`; returns the manifest (or index) it pointed to.
    pub fn remove_name(&mut self, name: &Reference) -> Option<Digest> {
        let digest = self
            .find_name(name)
            .or_else(|| self.find_index_name(name))?
            .clone();
        self.drop_name(name);
        Some(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    #[test]
    fn moving_a_name_leaves_the_old_image_dangling() {
        let mut t = ImageTable::default();
        let name: Reference = "alpine".parse().unwrap();
        t.set_name(&d('a'), name.clone(), 1);
        t.set_name(&d('b'), name.clone(), 2);
        assert_eq!(t.find_name(&name), Some(&d('b')));
        assert!(t.images[&d('a')].names.is_empty());
        assert_eq!(t.remove_name(&name), Some(d('b')));
        assert_eq!(t.find_name(&name), None);
    }

    #[test]
    fn a_name_moves_between_images_and_indexes() {
        let mut t = ImageTable::default();
        let name: Reference = "app:1".parse().unwrap();
        t.set_name(&d('a'), name.clone(), 1);
        t.set_index_name(&d('c'), name.clone(), 2);
        assert_eq!(t.find_name(&name), None);
        assert_eq!(t.find_index_name(&name), Some(&d('c')));
        t.set_name(&d('a'), name.clone(), 3);
        assert_eq!(t.find_index_name(&name), None);
        assert_eq!(t.remove_name(&name), Some(d('a')));
        // An old index without `indexes` still loads.
        let old: ImageTable = serde_json::from_str(r#"{"images":{}}"#).unwrap();
        assert!(old.indexes.is_empty());
    }

    #[test]
    fn round_trips_through_json() {
        let mut t = ImageTable::default();
        t.set_name(&d('a'), "x/y:1".parse().unwrap(), 5);
        let s = serde_json::to_string(&t).unwrap();
        let back: ImageTable = serde_json::from_str(&s).unwrap();
        assert_eq!(back.images[&d('a')].names[0].to_string(), "docker.io/x/y:1");
    }
}
