//! The image index: which manifests are images, and their names. Stored as `images.json`,
//! replaced atomically under the `index` lock (see [`crate::Store`]).

use std::collections::BTreeMap;

use rbuild_oci::{Digest, Reference};

/// Every image in the store, by manifest digest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ImageTable {
    /// Manifest digest → entry.
    pub images: BTreeMap<Digest, ImageEntry>,
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
        for e in self.images.values_mut() {
            e.names.retain(|n| *n != name);
        }
        self.insert(manifest, added);
        let entry = self.images.get_mut(manifest).expect("just inserted");
        entry.names.push(name);
        entry.names.sort();
    }

    /// Remove `name`; returns the manifest it pointed to.
    pub fn remove_name(&mut self, name: &Reference) -> Option<Digest> {
        let digest = self.find_name(name)?.clone();
        if let Some(e) = self.images.get_mut(&digest) {
            e.names.retain(|n| n != name);
        }
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
    fn round_trips_through_json() {
        let mut t = ImageTable::default();
        t.set_name(&d('a'), "x/y:1".parse().unwrap(), 5);
        let s = serde_json::to_string(&t).unwrap();
        let back: ImageTable = serde_json::from_str(&s).unwrap();
        assert_eq!(back.images[&d('a')].names[0].to_string(), "docker.io/x/y:1");
    }
}
