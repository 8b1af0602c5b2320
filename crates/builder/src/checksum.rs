//! Content digests of context files, cached by stat so unchanged files are hashed once.
//!
//! The key is (device, inode, size, mtime, ctime) of the file: a `touch` changes mtime and
//! forces a re-hash, but the *digest* is of content, so the step's cache key (which uses
//! digests, never times) still hits. A fresh clone has new inodes and is re-hashed once.
//!
//! The cache is persisted in a small binary file (a header line, then one record per file:
//! the stat key, the digest and the path, length-prefixed), read in one go: a cached build
//! of a large context loads it on every run.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rbuild_oci::{Algorithm, Digest, Hasher};

use crate::error::BuildError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// The persisted form: dev, ino, size, mtime and ctime, little-endian.
    fn to_bytes(self) -> [u8; STAT_LEN] {
        let mut out = [0u8; STAT_LEN];
        out[0..8].copy_from_slice(&self.dev.to_le_bytes());
        out[8..16].copy_from_slice(&self.ino.to_le_bytes());
        out[16..24].copy_from_slice(&self.size.to_le_bytes());
        out[24..40].copy_from_slice(&self.mtime_ns.to_le_bytes());
        out[40..56].copy_from_slice(&self.ctime_ns.to_le_bytes());
        out
    }
}

/// The persisted file's first bytes; a file without them (another version's) is ignored.
const MAGIC: &[u8] = b"rbuild digest cache v3\n";
/// A record is the stat key ([`StatKey::to_bytes`]), the path's length (4 bytes,
/// little-endian), the digest (`blake3:` and 64 hex digits) and the path. Records are
/// written sorted by path.
const STAT_LEN: usize = 8 * 3 + 16 * 2;
const DIGEST_LEN: usize = 7 + 64;
const FIXED: usize = STAT_LEN + 4 + DIGEST_LEN;

/// A stat-keyed cache of file content digests, persisted in a binary file.
///
/// The persisted records stay as read, with an index sorted by path: loading costs one read
/// and a scan, and a lookup is a binary search and a comparison of the stat's bytes.
#[derive(Debug, Default)]
pub struct DigestCache {
    file: Option<PathBuf>,
    /// The persisted file as read.
    loaded: Vec<u8>,
    /// Where each persisted record starts in `loaded`, sorted by the records' paths.
    index: Vec<usize>,
    /// The index position after the last persisted hit: a walk asks in path order, so the
    /// next question is usually about that record.
    next: usize,
    /// Digests made by this instance, by the path's bytes (they replace persisted ones).
    fresh: HashMap<Vec<u8>, (StatKey, Digest)>,
    hashed: u64,
    dirty: bool,
}

impl DigestCache {
    /// An empty cache that is never saved.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Load the cache persisted at `file` (a missing, foreign or damaged file, or the
    /// damaged rest of one, is ignored: those files are hashed again).
    pub fn load(file: &Path) -> Self {
        let mut cache = DigestCache {
            file: Some(file.to_path_buf()),
            ..Default::default()
        };
        if let Ok(bytes) = std::fs::read(file)
            && bytes.starts_with(MAGIC)
        {
            let mut at = MAGIC.len();
            while let Some(next) = record_end(&bytes, at) {
                cache.index.push(at);
                at = next;
            }
            cache.loaded = bytes;
            let path = |at: &usize| record_path(&cache.loaded, *at);
            if !cache.index.is_sorted_by(|a, b| path(a) <= path(b)) {
                let mut index = std::mem::take(&mut cache.index);
                index.sort_by(|a, b| path(a).cmp(path(b)));
                cache.index = index;
            }
        }
        cache
    }

    /// The content digest ([`CONTENT_ALGORITHM`]) of a regular file, from the cache when its
    /// stat is unchanged.
    pub fn digest(&mut self, path: &Path, meta: &std::fs::Metadata) -> Result<Digest, BuildError> {
        let key = StatKey::of(meta);
        let bytes = path.as_os_str().as_bytes();
        if let Some((stat, digest)) = self.fresh.get(bytes) {
            if *stat == key {
                return Ok(digest.clone());
            }
        } else if let Some(digest) = self.persisted(bytes, &key) {
            return Ok(digest);
        }
        let digest = hash_file_of_size(path, Some(key.size))?;
        self.hashed += 1;
        self.fresh.insert(bytes.to_vec(), (key, digest.clone()));
        self.dirty = true;
        Ok(digest)
    }

    /// Hash ahead, on several threads, the files among `files` (paths with the stat they will
    /// be asked with) that the cache does not hold, so that the [`DigestCache::digest`] calls
    /// that follow find them: a fresh machine's first build hashes its context on every core
    /// instead of one (one file's digest is made on one core). Done for the large files
    /// ([`PARALLEL_FILE_BYTES`] and more) when two or more are missing, and for all missing
    /// ones when [`PARALLEL_FILES`] or more are (many small files: opening and reading them
    /// is the cost); anything else is left to `digest`.
    pub fn prefetch(&mut self, files: &[(&Path, &std::fs::Metadata)]) -> Result<(), BuildError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let mut todo: Vec<(&Path, StatKey)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (path, meta) in files {
            let key = StatKey::of(meta);
            let bytes = path.as_os_str().as_bytes();
            let held = match self.fresh.get(bytes) {
                Some((stat, _)) => *stat == key,
                None => self.persisted(bytes, &key).is_some(),
            };
            if !held && seen.insert(bytes) {
                todo.push((path, key));
            }
        }
        if todo.len() < PARALLEL_FILES {
            todo.retain(|(_, key)| key.size >= PARALLEL_FILE_BYTES);
        }
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(todo.len());
        if workers < 2 {
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let hashed: Vec<std::sync::Mutex<Option<Digest>>> =
            todo.iter().map(|_| Default::default()).collect();
        let work = || -> Result<(), BuildError> {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, key)) = todo.get(i) else {
                    return Ok(());
                };
                *hashed[i].lock().expect("digest slot") =
                    Some(hash_file_of_size(path, Some(key.size))?);
            }
        };
        std::thread::scope(|s| {
            let helpers: Vec<_> = (1..workers).map(|_| s.spawn(work)).collect();
            let mine = work();
            helpers
                .into_iter()
                .map(|h| h.join().expect("a hashing thread does not panic"))
                .fold(mine, Result::and)
        })?;
        for ((path, key), digest) in todo.into_iter().zip(hashed) {
            if let Some(digest) = digest.into_inner().expect("digest slot") {
                self.hashed += 1;
                self.fresh
                    .insert(path.as_os_str().as_bytes().to_vec(), (key, digest));
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// The persisted digest of `path` if it was recorded with stat `key`.
    fn persisted(&mut self, path: &[u8], key: &StatKey) -> Option<Digest> {
        let path_at = |i: usize| record_path(&self.loaded, self.index[i]);
        let i = if self.next < self.index.len() && path_at(self.next) == path {
            self.next
        } else {
            self.index
                .binary_search_by(|at| record_path(&self.loaded, *at).cmp(path))
                .ok()?
        };
        self.next = i + 1;
        let record = &self.loaded[self.index[i]..];
        if record[..STAT_LEN] != key.to_bytes() {
            return None;
        }
        let digest = &record[STAT_LEN + 4..FIXED];
        std::str::from_utf8(digest).ok()?.parse().ok()
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
        // Persisted records not replaced, and the fresh ones, sorted by path.
        let mut records: Vec<(&[u8], &[u8])> = self
            .index
            .iter()
            .map(|at| (record_path(&self.loaded, *at), *at))
            .filter(|(path, _)| !self.fresh.contains_key(*path))
            .map(|(path, at)| (path, &self.loaded[at..at + FIXED + path.len()]))
            .collect();
        let fresh: Vec<(&[u8], Vec<u8>)> = self
            .fresh
            .iter()
            .filter_map(|(path, (stat, digest))| {
                Some((path.as_slice(), encode(path, stat, digest)?))
            })
            .collect();
        records.extend(fresh.iter().map(|(path, r)| (*path, r.as_slice())));
        records.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = MAGIC.to_vec();
        for (_, record) in records {
            out.extend_from_slice(record);
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
        }
        let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, &out).map_err(|e| BuildError::io(&tmp, e))?;
        std::fs::rename(&tmp, file).map_err(|e| BuildError::io(file, e))?;
        // The JSON-lines cache older versions kept beside it is read no more.
        let _ = std::fs::remove_file(file.with_extension("json"));
        self.dirty = false;
        Ok(())
    }
}

/// One record as persisted; `None` for a digest of another length than
/// [`CONTENT_ALGORITHM`]'s (none is made here).
fn encode(path: &[u8], stat: &StatKey, digest: &Digest) -> Option<Vec<u8>> {
    let text = digest.to_string();
    if text.len() != DIGEST_LEN {
        return None;
    }
    let mut out = Vec::with_capacity(FIXED + path.len());
    out.extend_from_slice(&stat.to_bytes());
    out.extend_from_slice(&u32::try_from(path.len()).ok()?.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(path);
    Some(out)
}

/// Where the record starting at `at` ends; `None` at the end or at a truncated record.
fn record_end(bytes: &[u8], at: usize) -> Option<usize> {
    let fixed = bytes.get(at..at + FIXED)?;
    let len = u32::from_le_bytes(fixed[STAT_LEN..STAT_LEN + 4].try_into().expect("4 bytes"));
    let end = at + FIXED + len as usize;
    (end <= bytes.len()).then_some(end)
}

/// The path of the record starting at `at` (which [`record_end`] accepted).
fn record_path(bytes: &[u8], at: usize) -> &[u8] {
    let len = u32::from_le_bytes(
        bytes[at + STAT_LEN..at + STAT_LEN + 4]
            .try_into()
            .expect("4 bytes"),
    );
    &bytes[at + FIXED..at + FIXED + len as usize]
}

/// Files from this size are hashed in parallel by [`DigestCache::prefetch`].
pub const PARALLEL_FILE_BYTES: u64 = 4 << 20;

/// From this many files to hash, [`DigestCache::prefetch`] hashes small ones in parallel too.
pub const PARALLEL_FILES: usize = 64;

/// What context files are keyed by: BLAKE3, about three times as fast as SHA-256 with the
/// CPU's SHA extensions here (5 against 1.4 GB/s a core), so a fresh machine's first build
/// of a large context, the usual CI build, spends a third of the time hashing it. These
/// digests only go into the builder's own cache keys, file lists and miss explanations; the
/// layers and images a build makes are addressed by SHA-256 as OCI says.
pub const CONTENT_ALGORITHM: Algorithm = Algorithm::Blake3;

/// The [`CONTENT_ALGORITHM`] digest of a file's content, streamed.
pub fn hash_file(path: &Path) -> Result<Digest, BuildError> {
    hash_file_of_size(path, None)
}

/// [`hash_file`] of a file whose stat said it holds `size` bytes: once exactly that many are
/// read, the read that would only say "end of file" is skipped (one system call of the three
/// a small file costs). A file whose size changed since is read to its end, as by
/// [`hash_file`].
fn hash_file_of_size(path: &Path, size: Option<u64>) -> Result<Digest, BuildError> {
    // One read buffer per thread: a context of thousands of small files would otherwise
    // allocate and zero 256 KiB for each (that memset was a third of a cached build's time).
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
    }
    let mut f = std::fs::File::open(path).map_err(|e| BuildError::io(path, e))?;
    let mut hasher = Hasher::new(CONTENT_ALGORITHM);
    BUF.with_borrow_mut(|buf| -> Result<(), BuildError> {
        let mut read = 0u64;
        loop {
            let n = f.read(buf).map_err(|e| BuildError::io(path, e))?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
            read += n as u64;
            if size == Some(read) {
                return Ok(());
            }
        }
    })?;
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_of(bytes: &[u8]) -> Digest {
        let mut h = Hasher::new(CONTENT_ALGORITHM);
        h.update(bytes);
        h.finish()
    }

    #[test]
    fn a_file_of_its_stat_size_is_hashed_whole_without_the_read_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        // Across the 256 KiB read buffer, and empty.
        for len in [0usize, 1, 256 * 1024, 256 * 1024 + 7, 600 * 1024] {
            let path = dir.path().join(format!("f{len}"));
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            let want = content_of(&bytes);
            assert_eq!(hash_file(&path).unwrap(), want, "{len}");
            assert_eq!(
                hash_file_of_size(&path, Some(len as u64)).unwrap(),
                want,
                "{len}"
            );
        }
        // A stat older than the file (it grew or shrank since): read to its end.
        let path = dir.path().join("grown");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(
            hash_file_of_size(&path, Some(4)).unwrap(),
            content_of(b"0123456789")
        );
        assert_eq!(
            hash_file_of_size(&path, Some(99)).unwrap(),
            content_of(b"0123456789")
        );
    }

    #[test]
    fn large_files_are_hashed_ahead_in_parallel_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<_> = (0..3u8)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, vec![i; PARALLEL_FILE_BYTES as usize + usize::from(i)]).unwrap();
                p
            })
            .collect();
        let small = dir.path().join("small");
        std::fs::write(&small, b"small").unwrap();
        let metas: Vec<_> = paths
            .iter()
            .chain([&small])
            .map(|p| std::fs::metadata(p).unwrap())
            .collect();
        let listed: Vec<(&Path, &std::fs::Metadata)> = paths
            .iter()
            .chain([&small])
            .map(|p| p.as_path())
            .zip(metas.iter())
            .collect();
        let mut cache = DigestCache::in_memory();
        cache.prefetch(&listed).unwrap();
        assert_eq!(
            cache.files_hashed(),
            3,
            "the small file is left to digest()"
        );
        for (path, meta) in &listed {
            assert_eq!(cache.digest(path, meta).unwrap(), hash_file(path).unwrap());
        }
        assert_eq!(cache.files_hashed(), 4);
        // Held now: nothing is hashed again.
        cache.prefetch(&listed).unwrap();
        assert_eq!(cache.files_hashed(), 4);
    }

    #[test]
    fn many_small_files_are_hashed_ahead_too() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<_> = (0..PARALLEL_FILES + 3)
            .map(|i| {
                let p = dir.path().join(format!("s{i}"));
                std::fs::write(&p, format!("small {i}")).unwrap();
                p
            })
            .collect();
        let metas: Vec<_> = paths
            .iter()
            .map(|p| std::fs::metadata(p).unwrap())
            .collect();
        let listed: Vec<(&Path, &std::fs::Metadata)> = paths
            .iter()
            .map(|p| p.as_path())
            .zip(metas.iter())
            .collect();
        let mut cache = DigestCache::in_memory();
        // Too few to be worth threads: left to digest().
        cache.prefetch(&listed[..PARALLEL_FILES - 1]).unwrap();
        assert_eq!(cache.files_hashed(), 0);
        cache.prefetch(&listed).unwrap();
        assert_eq!(cache.files_hashed(), listed.len() as u64);
        for (path, meta) in &listed {
            assert_eq!(cache.digest(path, meta).unwrap(), hash_file(path).unwrap());
        }
        assert_eq!(cache.files_hashed(), listed.len() as u64);
    }

    #[test]
    fn cached_until_stat_changes_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").unwrap();
        let store = dir.path().join("cache/digests");
        let legacy = dir.path().join("cache/digests.json");
        std::fs::create_dir_all(legacy.parent().unwrap()).unwrap();
        std::fs::write(&legacy, b"{}\n").unwrap();
        let mut cache = DigestCache::load(&store);
        let meta = std::fs::metadata(&file).unwrap();
        let d1 = cache.digest(&file, &meta).unwrap();
        assert_eq!(d1, content_of(b"hello"));
        assert_eq!(cache.digest(&file, &meta).unwrap(), d1);
        assert_eq!(cache.files_hashed(), 1);
        cache.save().unwrap();
        assert!(!legacy.exists(), "the old JSON cache is removed");

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
            content_of(b"changed")
        );
        assert_eq!(reloaded.files_hashed(), 1);
    }

    #[test]
    fn merged_on_save_and_damage_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["c", "a", "b"];
        for n in names {
            std::fs::write(dir.path().join(n), n).unwrap();
        }
        let meta = |n: &str| std::fs::metadata(dir.path().join(n)).unwrap();
        let store = dir.path().join("digests");
        // Two builds each hash some files; the second's save keeps the first's.
        let mut first = DigestCache::load(&store);
        first.digest(&dir.path().join("c"), &meta("c")).unwrap();
        first.save().unwrap();
        let mut second = DigestCache::load(&store);
        for n in ["a", "b"] {
            second.digest(&dir.path().join(n), &meta(n)).unwrap();
        }
        second.save().unwrap();
        let mut third = DigestCache::load(&store);
        for n in names {
            assert_eq!(
                third.digest(&dir.path().join(n), &meta(n)).unwrap(),
                content_of(n.as_bytes())
            );
        }
        assert_eq!(third.files_hashed(), 0);

        // A record cut short is dropped (its file hashed again), the ones before it kept.
        let bytes = std::fs::read(&store).unwrap();
        std::fs::write(&store, &bytes[..bytes.len() - 1]).unwrap();
        let mut cut = DigestCache::load(&store);
        for n in names {
            cut.digest(&dir.path().join(n), &meta(n)).unwrap();
        }
        assert_eq!(cut.files_hashed(), 1);
        // Another version's file is ignored as a whole.
        std::fs::write(&store, b"{\"path\":\"/x\"}\n").unwrap();
        let mut foreign = DigestCache::load(&store);
        foreign.digest(&dir.path().join("a"), &meta("a")).unwrap();
        assert_eq!(foreign.files_hashed(), 1);
    }
}
