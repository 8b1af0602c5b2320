//! What the build cache holds and how it is pruned (`rbuild builder prune`, `system df`'s
//! Build Cache row): the objects under `<store root>/buildcache/`, as BuildKit lists its
//! cache records —
//!
//! - `regular`: a step record (`records/<key hex>.json`, with its COPY file list
//!   `copies/<key hex>`) and the layer it points at; *shared* when an image uses that layer;
//! - `exec.cachemount`: a `RUN --mount=type=cache` directory (`mounts/<id hash>`);
//! - `source.local`: a context's stat-keyed digest cache (`context/<id>.digests`).
//!
//! Pruning follows BuildKit's rules: without `all` only what no image shares goes (BuildKit's
//! "dangling" cache: records whose layer is gone or is only the cache's, cache mounts, context
//! digests); with `all` every object. `until` spares what was used more recently; a
//! `keep_storage` budget removes the least recently used candidates only until the cache
//! fits. A record's layer is freed when no image and no remaining record uses it, through the
//! store's own collection, under its exclusive gc lock (builds hold it shared for their whole
//! run, so none sees a half-removed record).

use std::collections::{HashMap, HashSet};
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
    own: u64,
    layer: Option<Digest>,
    layer_size: u64,
    paths: Vec<PathBuf>,
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

/// What `builder prune` removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachePruneOptions {
    /// Every object, not only those no image shares (`-a`).
    pub all: bool,
    /// Only objects last used before this time (nanoseconds since the epoch; `--filter until=`).
    pub until: Option<i64>,
    /// Keep the most recently used objects up to this many bytes (`--keep-storage`).
    pub keep_storage: Option<u64>,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachePruneReport {
    /// The removed objects' IDs.
    pub deleted: Vec<String>,
    /// The bytes freed: the objects' files and the layers no longer used.
    pub reclaimed: u64,
}

/// The build cache of one store.
#[derive(Debug, Clone, Default)]
pub struct CacheUsage {
    /// Every object, most recently used first.
    pub objects: Vec<CacheObject>,
}

fn cache_root(store: &Store) -> PathBuf {
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

fn dir_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
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

    fn read_with(store: &Store, image_layers: &HashSet<Digest>) -> CacheUsage {
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
                dir_size(&dir),
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

    /// The objects `opts` removes (indexes into `objects`), and the layers then freed.
    fn select(&self, opts: &CachePruneOptions) -> (Vec<usize>, HashSet<Digest>) {
        // How many records point at each layer: it is freed with the last of them.
        let mut users: HashMap<&Digest, usize> = HashMap::new();
        for o in &self.objects {
            if let Some(l) = &o.layer {
                *users.entry(l).or_default() += 1;
            }
        }
        let mut candidates: Vec<usize> = (0..self.objects.len())
            .filter(|&i| {
                let o = &self.objects[i];
                (opts.all || !o.shared) && opts.until.is_none_or(|t| o.last_used < t)
            })
            .collect();
        // Least recently used first: a storage budget keeps the newest.
        candidates.sort_by(|&a, &b| {
            let (a, b) = (&self.objects[a], &self.objects[b]);
            a.last_used.cmp(&b.last_used).then(a.id.cmp(&b.id))
        });
        let mut remaining = self.size();
        let mut chosen = Vec::new();
        let mut freed = HashSet::new();
        for i in candidates {
            if opts.keep_storage.is_some_and(|keep| remaining <= keep) {
                break;
            }
            let o = &self.objects[i];
            remaining = remaining.saturating_sub(o.own);
            if let Some(l) = &o.layer {
                let n = users.get_mut(l).expect("counted");
                *n -= 1;
                if *n == 0 {
                    remaining = remaining.saturating_sub(o.layer_size);
                    if !o.shared {
                        freed.insert(l.clone());
                    }
                }
            }
            chosen.push(i);
        }
        (chosen, freed)
    }
}

/// The entries of `dir`, sorted (none when it does not exist).
fn list(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Remove what `opts` selects from `store`'s build cache (`rbuild builder prune`), then the
/// layers only removed records used. Images are never touched: their layers stay.
pub fn prune_build_cache(
    store: &Store,
    opts: &CachePruneOptions,
) -> Result<CachePruneReport, BuildError> {
    // Builds, pulls and commits hold the gc lock shared while they add content and records:
    // holding it exclusively, nothing reads a record being removed or writes one meanwhile.
    let gc = store.lock_gc().map_err(super::store_err)?;
    let images = store.image_layers().map_err(super::store_err)?;
    let usage = CacheUsage::read_with(store, &images);
    let (chosen, freed) = usage.select(opts);
    let mut report = CachePruneReport::default();
    let tmp = store.tmp_dir();
    for &i in &chosen {
        let o = &usage.objects[i];
        for p in &o.paths {
            remove(p, &tmp)?;
        }
        report.deleted.push(o.id.clone());
        report.reclaimed += o.own;
    }
    report.reclaimed += usage
        .objects
        .iter()
        .filter_map(|o| {
            o.layer
                .as_ref()
                .filter(|l| freed.contains(l))
                .map(|l| (l, o))
        })
        .collect::<HashMap<_, _>>()
        .values()
        .map(|o| o.layer_size)
        .sum::<u64>();
    sweep_index(store);
    if !chosen.is_empty() {
        let keep: HashSet<Digest> = (0..usage.objects.len())
            .filter(|i| !chosen.contains(i))
            .filter_map(|i| usage.objects[i].layer.clone())
            .collect();
        store
            .collect_garbage_locked(&gc, &keep)
            .map_err(super::store_err)?;
    }
    Ok(report)
}

/// Remove a file, or a directory by first renaming it into the store's staging directory
/// (one atomic step: a build never sees half of it).
fn remove(path: &Path, tmp: &Path) -> Result<(), BuildError> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BuildError::io(path, e)),
            _ => Ok(()),
        };
    }
    fs::create_dir_all(tmp).map_err(|e| BuildError::io(tmp, e))?;
    let gone = tempfile::Builder::new()
        .prefix("pruned-")
        .tempdir_in(tmp)
        .map_err(|e| BuildError::io(tmp, e))?;
    let target = gone.path().join("dir");
    fs::rename(path, &target).map_err(|e| BuildError::io(path, e))?;
    // Dropping the temporary directory removes it with what was renamed into it.
    gone.close().map_err(|e| BuildError::io(&target, e))
}

/// Remove index entries, COPY file lists and use counts whose object is gone.
fn sweep_index(store: &Store) {
    let root = cache_root(store);
    let records = root.join("records");
    let has_record = |hex: &str| records.join(format!("{hex}.json")).exists();
    for file in list(&root.join("copies")) {
        if let Some(hex) = file.file_name().and_then(|n| n.to_str())
            && !has_record(hex)
        {
            let _ = fs::remove_file(&file);
        }
    }
    for file in list(&root.join("uses")) {
        let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let target = if let Some(hash) = name.strip_prefix("mount-") {
            root.join("mounts").join(hash)
        } else if let Some(id) = name.strip_prefix("context-") {
            root.join("context").join(format!("{id}.digests"))
        } else {
            records.join(format!("{name}.json"))
        };
        if !target.exists() {
            let _ = fs::remove_file(&file);
        }
    }
    for kind in ["parent", "step"] {
        for dir in list(&root.join("index").join(kind)) {
            for entry in list(&dir) {
                if let Some(hex) = entry.file_name().and_then(|n| n.to_str())
                    && !has_record(hex)
                {
                    let _ = fs::remove_file(&entry);
                }
            }
            let _ = fs::remove_dir(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(
        id: &str,
        last_used: i64,
        own: u64,
        layer: Option<(&str, u64)>,
        shared: bool,
    ) -> CacheObject {
        CacheObject {
            id: id.into(),
            kind: if layer.is_some() {
                CacheKind::Regular
            } else {
                CacheKind::CacheMount
            },
            description: String::new(),
            size: own + layer.map_or(0, |l| l.1),
            shared,
            created: 0,
            last_used,
            usage_count: 1,
            own,
            layer: layer.map(|(l, _)| Digest::sha256_of(l.as_bytes())),
            layer_size: layer.map_or(0, |l| l.1),
            paths: Vec::new(),
        }
    }

    fn ids(u: &CacheUsage, opts: &CachePruneOptions) -> Vec<String> {
        let (chosen, _) = u.select(opts);
        let mut ids: Vec<String> = chosen.iter().map(|&i| u.objects[i].id.clone()).collect();
        ids.sort();
        ids
    }

    fn usage() -> CacheUsage {
        CacheUsage {
            objects: vec![
                object("in-image", 50, 10, Some(("a", 1000)), true),
                object("only-cache", 40, 10, Some(("b", 500)), false),
                object("dangling", 10, 10, None, false),
                object("mount", 30, 200, None, false),
                object("same-layer-1", 20, 10, Some(("c", 300)), false),
                object("same-layer-2", 60, 10, Some(("c", 300)), false),
            ],
        }
    }

    #[test]
    fn without_all_only_what_no_image_shares_goes() {
        let u = usage();
        assert_eq!(
            ids(&u, &CachePruneOptions::default()),
            [
                "dangling",
                "mount",
                "only-cache",
                "same-layer-1",
                "same-layer-2"
            ]
        );
        let all = CachePruneOptions {
            all: true,
            ..Default::default()
        };
        assert_eq!(ids(&u, &all).len(), 6);
        let (_, freed) = u.select(&all);
        assert!(
            !freed.contains(&Digest::sha256_of(b"a")),
            "an image's layer is never freed"
        );
        assert_eq!(freed.len(), 2);
    }

    #[test]
    fn prune_removes_records_and_frees_only_the_cache_s_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let records = super::super::Records::new(&store);
        let layer = store.blobs().put(b"layer bytes", None).unwrap();
        let record = |d: &Digest| Record {
            diff_id: Some(d.to_string()),
            created: "2024-01-01T00:00:00Z".into(),
            inputs: None,
        };
        let live = Digest::sha256_of(b"live");
        let dangling = Digest::sha256_of(b"dangling");
        records.put(&live, &record(&layer)).unwrap();
        records
            .put(&dangling, &record(&Digest::sha256_of(b"gone")))
            .unwrap();
        records.note_use(&live);
        records.note_use(&live);
        let usage = CacheUsage::read(&store).unwrap();
        assert_eq!(usage.objects.len(), 2);
        let count = |hex: &str| {
            usage
                .objects
                .iter()
                .find(|o| hex.starts_with(&o.id))
                .unwrap()
                .usage_count
        };
        assert_eq!(count(live.hex()), 3, "made, then two hits");
        assert_eq!(count(dangling.hex()), 1);
        assert_eq!(
            usage.objects[0].id,
            live.hex()[..25],
            "most recently used first"
        );
        assert!(usage.size() >= 11, "the layer's bytes count");
        let report = prune_build_cache(&store, &CachePruneOptions::default()).unwrap();
        assert_eq!(
            report.deleted.len(),
            2,
            "nothing here is an image's: {report:?}"
        );
        assert!(report.reclaimed >= 11);
        assert!(
            !store.has_blob(&layer),
            "the layer only the cache used is freed"
        );
        assert!(!records.exists(&live) && !records.exists(&dangling));
        assert!(CacheUsage::read(&store).unwrap().objects.is_empty());
        let uses = tmp.path().join("buildcache/uses");
        assert_eq!(
            std::fs::read_dir(&uses).unwrap().count(),
            0,
            "use counts go too"
        );
    }

    #[test]
    fn until_spares_recent_use() {
        let u = usage();
        let opts = CachePruneOptions {
            all: true,
            until: Some(35),
            keep_storage: None,
        };
        assert_eq!(ids(&u, &opts), ["dangling", "mount", "same-layer-1"]);
        let (_, freed) = u.select(&opts);
        assert!(freed.is_empty(), "layer c is still used by same-layer-2");
    }

    #[test]
    fn keep_storage_removes_least_recently_used_until_it_fits() {
        let u = usage();
        // Sizes: own 6 * 10 + mount's 190 more = 250, layers a 1000 + b 500 + c 300 = 2050.
        assert_eq!(u.size(), 2050);
        assert_eq!(u.reclaimable(), 1040);
        let opts = |keep| CachePruneOptions {
            all: true,
            until: None,
            keep_storage: Some(keep),
        };
        assert!(ids(&u, &opts(5000)).is_empty());
        // Oldest first: dangling (10) → 2040, same-layer-1 (10, c still used) → 2030,
        // mount (200) → 1830, only-cache (510) → 1320, then 1320 <= 1500 stops.
        assert_eq!(
            ids(&u, &opts(1500)),
            ["dangling", "mount", "only-cache", "same-layer-1"]
        );
        assert_eq!(ids(&u, &opts(1)).len(), 6);
    }
}
