//! What the build cache holds and how it is pruned (`rbuild builder prune`, `system df`'s
//! Build Cache row): the objects under `<store root>/buildcache/`, as BuildKit lists its
//! cache records —
//!
//! - `regular`: a step record (`records/<key hex>.json`, with its COPY file list
//!   `copies/<key hex>`) and the layer it points at; *shared* when an image uses that layer;
//! - `exec.cachemount`: a `RUN --mount=type=cache` directory (`mounts/<id hash>`);
//! - `source.local`: a context's stat-keyed digest cache (`context/<id>.digests`).
//!
//! Each use of an object is counted in `uses/<name>`, whose mtime is its last use.
//! Pruning ([`super::cache_prune`]) follows BuildKit's rules: without `all` only what no image shares goes (BuildKit's
//! "dangling" cache: records whose layer is gone or is only the cache's, cache mounts, context
//! digests); with `all` every object. `until` spares what was used more recently; a
//! `keep_storage` budget removes the least recently used candidates only until the cache
//! fits. A record's layer is freed when no image and no remaining record uses it, through the
//! store's own collection, under its exclusive gc lock (builds hold it shared for their whole
//! run, so none sees a half-removed record).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use rbuild_oci::Digest;
use rbuild_store::Store;

use super::cache::Record;
use crate::error::BuildError;

/// The kind of a build cache object, named as BuildKit names its record types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    /// A step's cache record and its layer.
    Regular,
    /// A `RUN --mount=type=cache` directory.
    CacheMount,
    /// A build context's content digest cache.
    SourceLocal,
}

impl CacheKind {
    /// BuildKit's name of the type (`docker system df -v`'s CACHE TYPE).
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Regular => "regular",
            CacheKind::CacheMount => "exec.cachemount",
            CacheKind::SourceLocal => "source.local",
        }
    }
}

/// One object of the build cache.
#[derive(Debug, Clone)]
pub struct CacheObject {
    /// Its ID: the first 25 hex digits of its record key, or of its directory or file name.
    pub id: String,
    /// What it is.
    pub kind: CacheKind,
    /// A short description (`RUN step`, `cache mount`, `local source for context`).
    pub description: String,
    /// Its bytes: its own files, plus its layer's for a record whose layer is stored here
    /// (counted in one record only when several point at it).
    pub size: u64,
    /// Whether an image uses its layer (then removing the record frees no layer).
    pub shared: bool,
    /// When it was made (nanoseconds since the epoch).
    pub created: i64,
    /// When a build last used it (nanoseconds since the epoch).
    pub last_used: i64,
    /// How many times builds used it (its making included).
    pub usage_count: u64,
    pub(super) own: u64,
    pub(super) layer: Option<Digest>,
    pub(super) layer_size: u64,
    pub(super) paths: Vec<PathBuf>,
}

impl CacheObject {
    /// An object without a layer (a cache mount, a context's digests) named `name`, of
    /// `own` bytes, made, last used and used so many times as `uses` says, removed by
    /// removing `paths`.
    fn local(
        name: &str,
        kind: CacheKind,
        own: u64,
        uses: (i64, i64, u64),
        paths: Vec<PathBuf>,
    ) -> Self {
        CacheObject {
            id: name.chars().take(25).collect(),
            kind,
            description: match kind {
                CacheKind::CacheMount => "cache mount",
                _ => "local source for context",
            }
            .into(),
            size: own,
            shared: false,
            created: uses.0,
            last_used: uses.1,
            usage_count: uses.2.max(1),
            own,
            layer: None,
            layer_size: 0,
            paths,
        }
    }
}

/// The build cache of one store.
#[derive(Debug, Clone, Default)]
pub struct CacheUsage {
    /// Every object, most recently used first.
    pub objects: Vec<CacheObject>,
}

pub(super) fn cache_root(store: &Store) -> PathBuf {
    store.root().join("buildcache")
}

/// A file's or directory's modification and birth times (ns), falling back to each other.
fn times(path: &Path) -> (i64, i64) {
    let Ok(m) = fs::symlink_metadata(path) else {
        return (0, 0);
    };
    let ns = |t: std::io::Result<std::time::SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
    };
    let modified = ns(m.modified()).unwrap_or(0);
    (ns(m.created()).unwrap_or(modified), modified)
}

fn file_len(path: &Path) -> u64 {
    fs::symlink_metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The name under which an object's uses are counted (`buildcache/uses/<name>`) and the
/// `buildcache` directory, from the object's path: `<key hex>` for `records/<key hex>.json`,
/// `mount-<hash>` for `mounts/<hash>`, `context-<id>` for `context/<id>.digests`.
fn use_name(path: &Path) -> Option<(PathBuf, String)> {
    let dir = path.parent()?;
    let root = dir.parent()?.to_path_buf();
    let file = path.file_name()?.to_str()?;
    let name = match dir.file_name()?.to_str()? {
        "records" => file.strip_suffix(".json")?.to_owned(),
        "mounts" => format!("mount-{file}"),
        "context" => format!("context-{}", file.strip_suffix(".digests")?),
        _ => return None,
    };
    Some((root, name))
}

/// Count a use of the object at `path` now: `buildcache/uses/<name>` holds how many times
/// builds used it and its modification time is the last use, what `until` and
/// `keep_storage` go by (the object itself is not written: a cache mount's content stays
/// as the build left it). Concurrent builds may lose a count, never the time.
pub(crate) fn note_use(path: &Path) {
    let Some((root, name)) = use_name(path) else {
        return;
    };
    let dir = root.join("uses");
    let file = dir.join(&name);
    let count = uses(&file).0 + 1;
    let _ = fs::create_dir_all(&dir)
        .map_err(|e| BuildError::io(&dir, e))
        .and_then(|()| super::cache::write_atomic(&file, count.to_string().as_bytes()));
}

/// The count and time (ns) of a uses file; (0, None) when there is none.
fn uses(file: &Path) -> (u64, Option<i64>) {
    match fs::read_to_string(file) {
        Ok(text) => (text.trim().parse().unwrap_or(0), Some(times(file).1)),
        Err(_) => (0, None),
    }
}

/// The uses file of the object at `path`, with its count and time.
fn uses_of(path: &Path) -> Option<(PathBuf, u64, Option<i64>)> {
    let (root, name) = use_name(path)?;
    let file = root.join("uses").join(name);
    let (count, time) = uses(&file);
    Some((file, count, time))
}

/// What a step record's instruction was, from its key document (`RUN echo hi`, `COPY`).
fn describe(record: &Record) -> String {
    let ins = record
        .inputs
        .as_ref()
        .and_then(|i| i.step.get("instruction"));
    let Some(name) = ins
        .and_then(|i| i.get("instruction"))
        .and_then(|n| n.as_str())
    else {
        return "build step".into();
    };
    let command = ins.and_then(|i| i.get("command")).and_then(|c| {
        c.get("shell")
            .and_then(|s| s.as_str())
            .map(str::to_owned)
            .or_else(|| c.get("exec").and_then(|e| serde_json::to_string(e).ok()))
    });
    match command {
        Some(c) => format!("{name} {c}"),
        None => name.to_owned(),
    }
}

impl CacheUsage {
    /// The build cache of `store` as it is now.
    pub fn read(store: &Store) -> Result<CacheUsage, BuildError> {
        let images = store.image_layers().map_err(super::store_err)?;
        Ok(Self::read_with(store, &images))
    }

    pub(super) fn read_with(store: &Store, image_layers: &HashSet<Digest>) -> CacheUsage {
        let root = cache_root(store);
        let mut objects = Vec::new();
        for path in list(&root.join("records")) {
            let Some(hex) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .map(str::to_owned)
            else {
                continue;
            };
            let record: Option<Record> = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let layer: Option<Digest> = record
                .as_ref()
                .and_then(|r| r.diff_id.as_deref())
                .and_then(|d| d.parse().ok());
            // A layer the store holds only remotely takes no local bytes but keeps the
            // record useful; a layer it lacks altogether makes the record a miss.
            let (layer, layer_size) = match layer {
                Some(d) if store.has_blob(&d) || store.has_layer(&d) => {
                    let size = store.layer_size(&d).unwrap_or(0);
                    (Some(d), size)
                }
                Some(d) if store.remote_layer(&d).ok().flatten().is_some() => (Some(d), 0),
                _ => (None, 0),
            };
            let mut paths = vec![path.clone()];
            let list = root.join("copies").join(&hex);
            if list.exists() {
                paths.push(list);
            }
            let own = paths.iter().map(|p| file_len(p)).sum();
            let (created, modified) = times(&path);
            // Its making is its first use; hits are counted apart.
            let (uses, count, last) = uses_of(&path).unwrap_or_default();
            paths.push(uses);
            objects.push(CacheObject {
                id: hex.chars().take(25).collect(),
                kind: CacheKind::Regular,
                description: record.as_ref().map_or("broken record".into(), describe),
                size: own + layer_size,
                shared: layer.as_ref().is_some_and(|l| image_layers.contains(l)),
                created,
                last_used: last.unwrap_or(modified).max(modified),
                usage_count: 1 + count,
                own,
                layer,
                layer_size,
                paths,
            });
        }
        for dir in list(&root.join("mounts")) {
            if !dir.is_dir() {
                continue;
            }
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            let (created, modified) = times(&dir);
            let (uses, count, last) = uses_of(&dir).unwrap_or_default();
            let paths = vec![dir.clone(), uses, dir.with_extension("lock")];
            objects.push(CacheObject::local(
                &name,
                CacheKind::CacheMount,
                rbuild_store::dir_size(&dir, u64::MAX),
                (created, last.unwrap_or(modified), count),
                paths,
            ));
        }
        for file in list(&root.join("context")) {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            let Some(stem) = name.strip_suffix(".digests") else {
                continue;
            };
            let (created, modified) = times(&file);
            let (uses, count, last) = uses_of(&file).unwrap_or_default();
            objects.push(CacheObject::local(
                stem,
                CacheKind::SourceLocal,
                file_len(&file),
                (created, last.unwrap_or(modified).max(modified), count),
                vec![file.clone(), uses],
            ));
        }
        objects.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.id.cmp(&b.id)));
        // A layer several records point at counts once, in the most recently used one's
        // size, so the sizes add up to what the cache takes (docker's clients sum them).
        let mut counted = HashSet::new();
        for o in &mut objects {
            if let Some(l) = &o.layer
                && !counted.insert(l.clone())
            {
                o.size = o.own;
            }
        }
        CacheUsage { objects }
    }

    /// The cache's bytes: the objects' own files and each stored layer once.
    pub fn size(&self) -> u64 {
        self.bytes(|_| true)
    }

    /// The bytes a prune of everything would free: what no image shares (each layer once).
    pub fn reclaimable(&self) -> u64 {
        self.bytes(|o| !o.shared)
    }

    fn bytes(&self, counted: impl Fn(&CacheObject) -> bool) -> u64 {
        let mut layers = HashSet::new();
        let mut total = 0;
        for o in self.objects.iter().filter(|o| counted(o)) {
            total += o.own;
            if let Some(l) = &o.layer
                && layers.insert(l)
            {
                total += o.layer_size;
            }
        }
        total
    }
}

/// The entries of `dir`, sorted (none when it does not exist).
pub(super) fn list(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}
