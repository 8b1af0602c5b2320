//! Step cache records: `<store root>/buildcache/records/<key hex>.json` maps a step's cache key
//! to what the step produced (its layer's diffID, or none for a step that changed nothing) and
//! when. A record is written atomically (temp file + rename) only after its layer is in the
//! store, so a failed or interrupted step never leaves one behind, and concurrent builds on one
//! store at worst write the same record twice.

use std::collections::BTreeMap;
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
    /// What the key was made of, so that a later miss can say what changed (absent in
    /// records of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<KeyInputs>,
}

/// The inputs of a step's key as a record keeps them: nothing machine-local (no paths of the
/// context or the store, no times), so they travel with an exported cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInputs {
    /// The parent key (the previous step's, or the stage's base key).
    pub parent: String,
    /// The key document without the parent ([`crate::cache_key::step_document`]).
    pub step: serde_json::Value,
    /// For COPY/ADD from the context: each source's mode and content by its context path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// For a stage's first step: what the stage starts from (`image sha256:…`,
    /// `stage NAME`, `scratch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The build args among the step's variables (the rest are ENV), for explanations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
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
        let (record, diff_id) = self.find(key)?;
        store.has_blob(&diff_id).then_some((record, diff_id))
    }

    /// The record for `key` and its layer's diffID, whether or not the store holds the layer.
    pub(crate) fn find(&self, key: &Digest) -> Option<(Record, Digest)> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        // A record without a diffID was written by versions that made no layer for a step
        // that changed nothing; every step makes one now, so it is a miss.
        let diff_id: Digest = record.diff_id.as_deref()?.parse().ok()?;
        Some((record, diff_id))
    }

    /// Remember what the step with `key` produced. A record with its inputs is also listed
    /// under its parent and under its step document, where explanations look for it.
    pub fn put(&self, key: &Digest, record: &Record) -> Result<(), BuildError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| BuildError::io(&self.dir, e))?;
        let bytes = serde_json::to_vec(record).expect("a record serializes");
        write_atomic(&self.path(key), &bytes)?;
        if let Some(inputs) = &record.inputs {
            for dir in self.index_dirs(inputs) {
                std::fs::create_dir_all(&dir).map_err(|e| BuildError::io(&dir, e))?;
                let entry = dir.join(key.hex());
                std::fs::write(&entry, b"").map_err(|e| BuildError::io(&entry, e))?;
            }
        }
        Ok(())
    }

    /// Where a COPY's file list for the layer of the step with `key` is kept
    /// (`buildcache/copies/<key hex>`, [`crate::copy::write_file_list`]).
    pub fn file_list(&self, key: &Digest) -> PathBuf {
        let root = self.dir.parent().unwrap_or(&self.dir);
        root.join("copies").join(key.hex())
    }

    /// The index directories a record with `inputs` is listed in: by parent, by step.
    fn index_dirs(&self, inputs: &KeyInputs) -> [PathBuf; 2] {
        let index = self.dir.parent().unwrap_or(&self.dir).join("index");
        let parent = Digest::sha256_of(inputs.parent.as_bytes());
        [
            index.join("parent").join(&parent.hex()[..32]),
            index.join("step").join(&step_id(&inputs.step)[..32]),
        ]
    }

    /// Records (key, record) of steps under `parent`.
    pub fn by_parent(&self, parent: &Digest) -> Vec<(Digest, Record)> {
        let probe = KeyInputs {
            parent: parent.to_string(),
            step: serde_json::Value::Null,
            files: BTreeMap::new(),
            base: None,
            args: Vec::new(),
        };
        let [dir, _] = self.index_dirs(&probe);
        self.listed(&dir)
            .into_iter()
            .filter(|(_, r)| r.inputs.as_ref().is_some_and(|i| i.parent == probe.parent))
            .collect()
    }

    /// Records of steps with the step document `step` (under any parent).
    pub fn by_step(&self, step: &serde_json::Value) -> Vec<(Digest, Record)> {
        let probe = KeyInputs {
            parent: String::new(),
            step: step.clone(),
            files: BTreeMap::new(),
            base: None,
            args: Vec::new(),
        };
        let [_, dir] = self.index_dirs(&probe);
        self.listed(&dir)
            .into_iter()
            .filter(|(_, r)| r.inputs.as_ref().is_some_and(|i| &i.step == step))
            .collect()
    }

    /// Count a hit of the record for `key` (`builder prune --filter until=` and
    /// `--keep-storage` go by the last use).
    pub(crate) fn note_use(&self, key: &Digest) {
        super::cache_usage::note_use(&self.path(key));
    }

    /// Whether a record for `key` exists (whether or not its layer is still there).
    pub fn exists(&self, key: &Digest) -> bool {
        self.path(key).is_file()
    }

    fn listed(&self, dir: &Path) -> Vec<(Digest, Record)> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let Some(key) = e
                .file_name()
                .to_str()
                .and_then(|h| format!("sha256:{h}").parse::<Digest>().ok())
            else {
                continue;
            };
            let Some(record) = std::fs::read(self.path(&key))
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            else {
                continue;
            };
            out.push((key, record));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// A stable id of a step document (its canonical JSON's digest, hex).
pub(crate) fn step_id(step: &serde_json::Value) -> String {
    Digest::sha256_of(serde_json::to_string(step).expect("json").as_bytes())
        .hex()
        .to_string()
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
            inputs: None,
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
            inputs: None,
        };
        records.put(&key, &rec).unwrap();
        assert_eq!(records.get(&store, &key), Some((rec, layer)));
        let empty = Record {
            diff_id: None,
            created: "x".into(),
            inputs: None,
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
