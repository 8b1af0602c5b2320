//! `rbuild builder prune`: which build cache objects go ([`CachePruneOptions`]: BuildKit's
//! rules, see [`super::cache_usage`]) and their removal, then the layers only they used,
//! through the store's collection under its exclusive gc lock.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use rbuild_oci::Digest;
use rbuild_store::Store;

use super::cache_usage::{CacheUsage, cache_root, list};
use crate::error::BuildError;

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

impl CacheUsage {
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
    use super::super::Record;
    use super::super::cache_usage::{CacheKind, CacheObject};
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
