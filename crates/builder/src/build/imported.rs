//! Build cache that travels: the steps of a cache imported with `--cache-from` (a registry
//! artifact or an OCI layout, read by the engine), the records a build used or made (which
//! `--cache-to` exports), and why a step missed the cache.
//!
//! An imported entry is trusted for nothing but its key: its layer is brought into the store
//! only when the step hits ([`LayerFetcher`]), and the fetcher verifies the blob's digest and
//! the layer's diffID before the store keeps it. A failed fetch is a warning and a miss.

use std::collections::HashMap;
use std::sync::Arc;

use rbuild_oci::Digest;
use rbuild_store::Store;
use serde::{Deserialize, Serialize};

use super::cache::{KeyInputs, Record, Records, step_id};
use crate::cache_key::first_difference;

/// One step of an exported or imported cache: its key, the layer it made (diffID and the
/// compressed blob that carries it) and what the key was made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The step's cache key.
    pub key: Digest,
    /// The diffID of its layer.
    pub diff_id: Digest,
    /// The blob (in the cache artifact) holding the layer, compressed.
    pub layer: Digest,
    /// The layer's uncompressed size, when the exporter knew it: an image committed with the
    /// layer not fetched lists it by diffID and size, as one built with its bytes does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// When the step first ran, so an imported hit gives the same image.
    pub created: String,
    /// What the key was made of, for explanations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<KeyInputs>,
}

/// Brings an imported entry's layer into the store.
pub trait LayerFetcher: Send + Sync + std::fmt::Debug {
    /// Fetch the layer of `entry` into `store`, verified against its blob digest and its
    /// diffID, so that `store.has_blob(&entry.diff_id)` holds afterwards; or say why not.
    fn fetch(&self, store: &Store, entry: &CacheEntry) -> Result<(), String>;

    /// Where `entry`'s layer stays fetchable later, for an image committed without its bytes
    /// ([`Store::record_remote_layer`]); `None` when it must be fetched now.
    fn remote(&self, _store: &Store, _entry: &CacheEntry) -> Option<rbuild_store::RemoteLayer> {
        None
    }
}

/// The content of a `RUN --mount=type=cache` directory, exported as a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    /// The cache mount's id.
    pub id: String,
    /// The diffID of the layer holding its content.
    pub diff_id: Digest,
    /// The blob (in the cache artifact) holding the layer, compressed.
    pub layer: Digest,
}

impl MountEntry {
    /// The entry as the [`LayerFetcher`] takes it.
    pub fn as_entry(&self) -> CacheEntry {
        CacheEntry {
            key: Digest::sha256_of(format!("cache mount {}", self.id).as_bytes()),
            diff_id: self.diff_id.clone(),
            layer: self.layer.clone(),
            size: None,
            created: String::new(),
            inputs: None,
        }
    }
}

/// A cache imported with `--cache-from`.
#[derive(Debug, Clone)]
pub struct CacheImport {
    /// What it is, for messages (`registry localhost:5000/app:cache`).
    pub name: String,
    /// Its steps.
    pub entries: Vec<CacheEntry>,
    /// Its cache mounts' contents, restored into a cache mount this store does not have yet.
    pub mounts: Vec<MountEntry>,
    /// Where their layers come from.
    pub layers: Arc<dyn LayerFetcher>,
}

/// A step record a build used or made, for `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedRecord {
    /// The step's key.
    pub key: Digest,
    /// Its layer.
    pub diff_id: Digest,
    /// When it first ran.
    pub created: String,
    /// What its key was made of.
    pub inputs: Option<KeyInputs>,
    /// Whether its layer is in the final image (a step of the target stage or of a stage it
    /// is based on): what `mode=min` exports; `mode=max` exports every used record.
    pub in_image: bool,
    /// The stage it belongs to.
    pub(crate) stage: usize,
}

/// One row of `rbuild build --explain`, or a step's verdict during a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainedStep {
    /// The build-wide step number.
    pub id: usize,
    /// The step as progress shows it (`[2/5] COPY app.py /app/`).
    pub label: String,
    /// `Some(true)` cached, `Some(false)` not; `None` for steps that are not looked up
    /// (`FROM`, `WORKDIR /`).
    pub cached: Option<bool>,
    /// Why it missed (for misses).
    pub reason: Option<String>,
}

/// The imported caches of a build, by key and by parent.
#[derive(Debug, Default)]
pub(crate) struct Imported {
    by_key: HashMap<Digest, (usize, CacheEntry)>,
    by_parent: HashMap<String, Vec<Digest>>,
    by_step: HashMap<String, Vec<Digest>>,
    sources: Vec<CacheImport>,
}

impl Imported {
    /// Index `imports` (an earlier import's entry wins over a later one's for a key).
    pub fn new(imports: &[CacheImport]) -> Imported {
        let mut out = Imported {
            sources: imports.to_vec(),
            ..Default::default()
        };
        for (i, import) in imports.iter().enumerate() {
            for e in &import.entries {
                if out.by_key.contains_key(&e.key) {
                    continue;
                }
                if let Some(inputs) = &e.inputs {
                    out.by_parent
                        .entry(inputs.parent.clone())
                        .or_default()
                        .push(e.key.clone());
                    out.by_step
                        .entry(step_id(&inputs.step))
                        .or_default()
                        .push(e.key.clone());
                }
                out.by_key.insert(e.key.clone(), (i, e.clone()));
            }
        }
        out
    }

    /// The first import's content of cache mount `id`, and that import.
    pub fn mount(&self, id: &str) -> Option<(&CacheImport, &MountEntry)> {
        self.sources
            .iter()
            .find_map(|s| s.mounts.iter().find(|m| m.id == id).map(|m| (s, m)))
    }

    /// The entry for `key` and the import it came from.
    pub fn get(&self, key: &Digest) -> Option<(&CacheImport, &CacheEntry)> {
        let (i, e) = self.by_key.get(key)?;
        Some((&self.sources[*i], e))
    }

    fn records(&self, keys: Option<&Vec<Digest>>) -> Vec<(Digest, Record)> {
        keys.into_iter()
            .flatten()
            .filter_map(|k| self.by_key.get(k))
            .map(|(_, e)| (e.key.clone(), e.record()))
            .collect()
    }
}

impl CacheEntry {
    /// The entry as a local record.
    pub fn record(&self) -> Record {
        Record {
            diff_id: Some(self.diff_id.to_string()),
            created: self.created.clone(),
            inputs: self.inputs.clone(),
        }
    }
}

/// What a missed step knows about itself, to compare with the records.
pub(crate) struct Miss<'a> {
    /// Its key.
    pub key: &'a Digest,
    /// Its parent key.
    pub parent: &'a Digest,
    /// Its inputs (`None` when the step kept none).
    pub inputs: Option<&'a KeyInputs>,
    /// Whether an earlier step of the stage (or its base stage) was not cached.
    pub after_rebuilt: bool,
    /// Whether this is the stage's first step, and what the stage starts from.
    pub first: Option<&'a str>,
}

/// Why `miss` was not cached: compared with the nearest record (local or imported) under the
/// same parent, the first differing input; else what is known about the parent.
pub(crate) fn explain(
    records: &Records,
    imported: &Imported,
    miss: &Miss<'_>,
    fetch_failure: Option<&str>,
) -> String {
    if let Some(why) = fetch_failure {
        return format!("the imported layer could not be used: {why}");
    }
    if records.exists(miss.key) {
        return "the cached layer is no longer in the store".into();
    }
    let Some(now) = miss.inputs else {
        return "no cache record for this parent".into();
    };
    let parent = miss.parent.to_string();
    let mut candidates = records.by_parent(miss.parent);
    candidates.extend(imported.records(imported.by_parent.get(&parent)));
    // The nearest record: the one equal in the most inputs; its first differing input is
    // the reason.
    // Only the same instruction is comparable: a RUN is not explained by a COPY.
    let keyword = |i: &KeyInputs| i.step["instruction"]["instruction"].clone();
    let mut best: Option<(usize, String)> = None;
    for then in candidates
        .iter()
        .filter_map(|(_, r)| r.inputs.as_ref())
        .filter(|then| keyword(then) == keyword(now))
    {
        let Some(reason) =
            first_difference(&now.step, &then.step, &now.files, &then.files, &now.args)
        else {
            continue;
        };
        let same = KEY_FIELDS
            .iter()
            .filter(|f| now.step.get(**f) == then.step.get(**f))
            .count();
        if best.as_ref().is_none_or(|(b, _)| same > *b) {
            best = Some((same, reason));
        }
    }
    if let Some((_, reason)) = best {
        return reason;
    }
    if miss.after_rebuilt {
        return match miss.first {
            Some(base) => format!("its base ({base}) was rebuilt"),
            None => "the previous step was rebuilt".into(),
        };
    }
    if let Some(base) = miss.first.filter(|b| b.starts_with("image ")) {
        // The same step on another base: which base was it?
        let mut same = records.by_step(&now.step);
        same.extend(imported.records(imported.by_step.get(&step_id(&now.step))));
        if let Some(old) = same
            .iter()
            .filter_map(|(_, r)| r.inputs.as_ref()?.base.clone())
            .find(|b| b.starts_with("image ") && b != base)
        {
            return format!(
                "base image digest changed ({} → {})",
                old.trim_start_matches("image "),
                base.trim_start_matches("image ")
            );
        }
    }
    "no cache record for this parent".into()
}

/// The inputs of a step document, compared to find the nearest record.
const KEY_FIELDS: [&str; 7] = [
    "instruction",
    "env",
    "shell",
    "user",
    "workdir",
    "content",
    "inputs",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(parent: &str, step: serde_json::Value, files: &[(&str, &str)]) -> KeyInputs {
        KeyInputs {
            parent: parent.into(),
            step,
            files: files
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            base: None,
            args: vec!["VERSION".into()],
        }
    }

    fn doc(ins: &str, env: &[&str], content: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "v": crate::cache_key::CACHE_KEY_VERSION,
            "instruction": {"instruction": ins, "sources": ["src"]},
            "env": env,
            "shell": ["/bin/sh", "-c"],
            "user": "",
            "workdir": "/",
            "content": content,
            "inputs": [],
        })
    }

    #[test]
    fn misses_name_the_first_changed_input() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let records = Records::new(&store);
        let parent = Digest::sha256_of(b"parent");
        let old = inputs(
            &parent.to_string(),
            doc("COPY", &[], Some("sha256:1")),
            &[("src/app.py", "644 file 3 sha256:a"), ("b", "644 file 1 x")],
        );
        let rec = Record {
            diff_id: Some(Digest::sha256_of(b"l").to_string()),
            created: "t".into(),
            inputs: Some(old),
        };
        records.put(&Digest::sha256_of(b"old"), &rec).unwrap();
        let now = inputs(
            &parent.to_string(),
            doc("COPY", &[], Some("sha256:2")),
            &[("src/app.py", "644 file 3 sha256:b"), ("b", "644 file 1 x")],
        );
        let key = Digest::sha256_of(b"new");
        let miss = Miss {
            key: &key,
            parent: &parent,
            inputs: Some(&now),
            after_rebuilt: false,
            first: None,
        };
        let imported = Imported::default();
        assert_eq!(
            explain(&records, &imported, &miss, None),
            "COPY src/app.py changed"
        );

        // An ARG's value, found among imported records only.
        let other = Digest::sha256_of(b"other parent");
        let then = inputs(&other.to_string(), doc("RUN", &["VERSION=1"], None), &[]);
        let entry = CacheEntry {
            key: Digest::sha256_of(b"imported"),
            diff_id: Digest::sha256_of(b"l"),
            layer: Digest::sha256_of(b"gz"),
            size: None,
            created: "t".into(),
            inputs: Some(then),
        };
        #[derive(Debug)]
        struct Never;
        impl LayerFetcher for Never {
            fn fetch(&self, _: &Store, _: &CacheEntry) -> Result<(), String> {
                Err("never".into())
            }
        }
        let imported = Imported::new(&[CacheImport {
            name: "test".into(),
            entries: vec![entry],
            mounts: vec![],
            layers: Arc::new(Never),
        }]);
        let now = inputs(&other.to_string(), doc("RUN", &["VERSION=2"], None), &[]);
        let miss = Miss {
            key: &key,
            parent: &other,
            inputs: Some(&now),
            after_rebuilt: false,
            first: None,
        };
        assert_eq!(
            explain(&records, &imported, &miss, None),
            "ARG VERSION changed"
        );
        // Nothing under a new parent after a rebuilt step.
        let fresh = Digest::sha256_of(b"fresh");
        let miss = Miss {
            key: &key,
            parent: &fresh,
            inputs: Some(&now),
            after_rebuilt: true,
            first: None,
        };
        assert_eq!(
            explain(&records, &imported, &miss, None),
            "the previous step was rebuilt"
        );
        let miss = Miss {
            after_rebuilt: false,
            ..miss
        };
        assert_eq!(
            explain(&records, &imported, &miss, None),
            "no cache record for this parent"
        );
    }

    #[test]
    fn a_new_base_image_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let records = Records::new(&store);
        let old_base = Digest::sha256_of(b"old base key");
        let mut then = inputs(&old_base.to_string(), doc("RUN", &[], None), &[]);
        then.base = Some("image sha256:1111".into());
        let rec = Record {
            diff_id: Some(Digest::sha256_of(b"l").to_string()),
            created: "t".into(),
            inputs: Some(then),
        };
        records.put(&Digest::sha256_of(b"old"), &rec).unwrap();
        let new_base = Digest::sha256_of(b"new base key");
        let mut now = inputs(&new_base.to_string(), doc("RUN", &[], None), &[]);
        now.base = Some("image sha256:2222".into());
        let key = Digest::sha256_of(b"new");
        let miss = Miss {
            key: &key,
            parent: &new_base,
            inputs: Some(&now),
            after_rebuilt: false,
            first: Some("image sha256:2222"),
        };
        assert_eq!(
            explain(&records, &Imported::default(), &miss, None),
            "base image digest changed (sha256:1111 → sha256:2222)"
        );
    }
}
