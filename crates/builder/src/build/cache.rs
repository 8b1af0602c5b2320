//! Step cache records: `<store root>/buildcache/records/<key hex>.json` maps a step's cache key
//! to what the step produced (its layer's diffID, or none for a step that changed nothing) and
//! when. A record is written atomically (temp file + rename) only after its layer is in the
//! store, so a failed or interrupted step never leaves one behind, and concurrent builds on one
//! store at worst write the same record twice.

use std::path::{Path, PathBuf};

use rbuild_oci::Digest;
use rbuild_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::BuildError;

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The layer's diffID (`None` only in records of earlier versions, for steps that changed
    /// nothing; such records are misses).
    pub diff_id: Option<String>,
    /// When the step first ran (RFC 3339), reused so a cached rebuild gives the same image.
    pub created: String,
}

/// The cache records of one store.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

impl Records {
    /// The records of `store`.
    pub fn new(store: &Store) -> Self {
        Records {
            dir: store.root().join("buildcache").join("records"),
        }
    }

    fn path(&self, key: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", key.hex()))
    }

    /// The record for `key` when it exists and its layer is still in the store.
    pub fn get(&self, store: &Store, key: &Digest) -> Option<(Record, Digest)> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        // A record without a diffID was written by versions that made no layer for a step
        // that changed nothing; every step makes one now, so it is a miss.
        let diff_id: Digest = record.diff_id.as_deref()?.parse().ok()?;
        store.has_blob(&diff_id).then_some((record, diff_id))
    }

    /// Remember what the step with `key` produced.
    pub fn put(&self, key: &Digest, record: &Record) -> Result<(), BuildError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| BuildError::io(&self.dir, e))?;
        let bytes = serde_json::to_vec(record).expect("a record serializes");
        write_atomic(&self.path(key), &bytes)
    }
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| BuildError::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| BuildError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| BuildError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_need_their_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let records = Records::new(&store);
        let key = Digest::sha256_of(b"key");
        assert!(records.get(&store, &key).is_none());
        let missing = Digest::sha256_of(b"no such layer");
        let rec = Record {
            diff_id: Some(missing.to_string()),
            created: "2024-01-01T00:00:00Z".into(),
        };
        records.put(&key, &rec).unwrap();
        assert!(
            records.get(&store, &key).is_none(),
            "a record whose layer was pruned is a miss"
        );
        let layer = store.blobs().put(b"layer bytes", None).unwrap();
        let rec = Record {
            diff_id: Some(layer.to_string()),
            created: "2024-01-01T00:00:00Z".into(),
        };
        records.put(&key, &rec).unwrap();
        assert_eq!(records.get(&store, &key), Some((rec, layer)));
        let empty = Record {
            diff_id: None,
            created: "x".into(),
        };
        let key2 = Digest::sha256_of(b"key2");
        records.put(&key2, &empty).unwrap();
        assert_eq!(
            records.get(&store, &key2),
            None,
            "a layerless record from an older version is a miss: every step makes a layer now"
        );
    }
}
