//! Content digests of context files, cached by stat so unchanged files are hashed once.
//!
//! The key is (device, inode, size, mtime, ctime) of the file: a `touch` changes mtime and
//! forces a re-hash, but the *digest* is of content, so the step's cache key (which uses
//! digests, never times) still hits. A fresh clone has new inodes and is re-hashed once.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rbuild_oci::{Algorithm, Digest, Hasher};
use serde::{Deserialize, Serialize};

use crate::error::BuildError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct StatKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl StatKey {
    fn of(meta: &std::fs::Metadata) -> Self {
        StatKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    path: PathBuf,
    stat: StatKey,
    digest: Digest,
}

/// A stat-keyed cache of file content digests, persisted as JSON lines.
#[derive(Debug, Default)]
pub struct DigestCache {
    file: Option<PathBuf>,
    entries: HashMap<PathBuf, (StatKey, Digest)>,
    hashed: u64,
    dirty: bool,
}

impl DigestCache {
    /// An empty cache that is never saved.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Load the cache persisted at `file` (missing or unreadable entries are ignored).
    pub fn load(file: &Path) -> Self {
        let mut cache = DigestCache {
            file: Some(file.to_path_buf()),
            ..Default::default()
        };
        if let Ok(text) = std::fs::read_to_string(file) {
            for line in text.lines() {
                if let Ok(e) = serde_json::from_str::<Entry>(line) {
                    cache.entries.insert(e.path, (e.stat, e.digest));
                }
            }
        }
        cache
    }

    /// The sha256 of a regular file's content, from the cache when its stat is unchanged.
    pub fn digest(&mut self, path: &Path, meta: &std::fs::Metadata) -> Result<Digest, BuildError> {
        let key = StatKey::of(meta);
        if let Some((stat, digest)) = self.entries.get(path)
            && *stat == key
        {
            return Ok(digest.clone());
        }
        let digest = hash_file(path)?;
        self.hashed += 1;
        self.entries
            .insert(path.to_path_buf(), (key, digest.clone()));
        self.dirty = true;
        Ok(digest)
    }

    /// How many files were actually read and hashed by this instance.
    pub fn files_hashed(&self) -> u64 {
        self.hashed
    }

    /// Write the cache back (atomically) if anything changed.
    pub fn save(&mut self) -> Result<(), BuildError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let mut text = String::new();
        for (path, (stat, digest)) in &self.entries {
            let entry = Entry {
                path: path.clone(),
                stat: *stat,
                digest: digest.clone(),
            };
            text.push_str(&serde_json::to_string(&entry).expect("serializable"));
            text.push('\n');
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
        }
        let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| BuildError::io(&tmp, e))?;
        std::fs::rename(&tmp, file).map_err(|e| BuildError::io(file, e))?;
        self.dirty = false;
        Ok(())
    }
}

/// sha256 of a file's content, streamed.
pub fn hash_file(path: &Path) -> Result<Digest, BuildError> {
    let mut f = std::fs::File::open(path).map_err(|e| BuildError::io(path, e))?;
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| BuildError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_until_stat_changes_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").unwrap();
        let store = dir.path().join("cache/digests.jsonl");
        let mut cache = DigestCache::load(&store);
        let meta = std::fs::metadata(&file).unwrap();
        let d1 = cache.digest(&file, &meta).unwrap();
        assert_eq!(d1, Digest::sha256_of(b"hello"));
        assert_eq!(cache.digest(&file, &meta).unwrap(), d1);
        assert_eq!(cache.files_hashed(), 1);
        cache.save().unwrap();

        let mut reloaded = DigestCache::load(&store);
        assert_eq!(reloaded.digest(&file, &meta).unwrap(), d1);
        assert_eq!(
            reloaded.files_hashed(),
            0,
            "a reloaded cache must not re-hash"
        );

        std::fs::write(&file, b"changed").unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(
            reloaded.digest(&file, &meta).unwrap(),
            Digest::sha256_of(b"changed")
        );
        assert_eq!(reloaded.files_hashed(), 1);
    }
}
