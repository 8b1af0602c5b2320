//! Context digests hashed ahead of the build.
//!
//! A COPY's cache key holds the content digests of the context files it selects, so on a
//! fresh machine (a CI runner, a new clone) the first COPY reads and hashes every file before
//! it can even look up its cache record. [`ContextPrefetch::start`] does that on a thread of
//! its own, begun by the front end before anything slow that precedes the build (importing a
//! cache from a registry) and going on while the build resolves its base image and runs or
//! looks up the steps before the COPY. The build takes the cache the thread filled
//! ([`Digests`]) when it first needs a digest, waiting for the thread only then.
//!
//! The thread hashes what the Dockerfile's COPY and ADD instructions name in the context, in
//! the stages up to the target, as written: a source naming a variable (`$VAR`), a heredoc or
//! a URL is left to the step itself, as is a source that does not exist (the step reports
//! it). A file hashed ahead is only a cache entry keyed by its stat, like any other, so a file
//! that changes after being hashed is hashed again when the step asks for it: hashing ahead
//! never changes a key, it only moves work earlier.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use rbuild_parser::instructions::{Instruction, parse_dockerfile};
use rbuild_store::Store;

use crate::checksum::DigestCache;
use crate::context::BuildContext;

use super::BuildOptions;

/// Context files being hashed on a thread for a build that has not reached its COPY steps
/// yet (see the module documentation). Put into [`BuildOptions::prefetch`].
pub struct ContextPrefetch {
    thread: Mutex<Option<JoinHandle<Option<Prefetched>>>>,
}

/// What the thread ends with: the digest cache file it loaded, and the cache it filled.
type Prefetched = (PathBuf, DigestCache);

impl std::fmt::Debug for ContextPrefetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextPrefetch").finish_non_exhaustive()
    }
}

impl ContextPrefetch {
    /// Start hashing, into `store`'s digest cache of `opts.context`, the context files that
    /// `opts.dockerfile`'s COPY and ADD steps name, on a new thread. Nothing here fails: a
    /// Dockerfile or context the thread cannot read is left for the build to report.
    pub fn start(store: &Store, opts: &BuildOptions) -> ContextPrefetch {
        let root = store.root().to_path_buf();
        let context = opts.context.clone();
        let dockerfile = opts.dockerfile.clone();
        let dockerfile_path = opts.dockerfile_path.clone();
        let target = opts.target.clone();
        let thread = std::thread::Builder::new()
            .name("context-prefetch".into())
            .spawn(move || {
                hash_ahead(
                    &root,
                    &context,
                    &dockerfile,
                    dockerfile_path.as_deref(),
                    target.as_deref(),
                )
            })
            .ok();
        ContextPrefetch {
            thread: Mutex::new(thread),
        }
    }

    /// The cache the thread filled, once it is done, if it was loaded from `file` (the build's
    /// digest cache of the same context); `None` if it was taken already, the thread found
    /// nothing to do, or it was for another file.
    fn take(&self, file: &Path) -> Option<DigestCache> {
        let thread = self.thread.lock().ok()?.take()?;
        match thread.join() {
            Ok(Some((loaded_from, cache))) if loaded_from == file => Some(cache),
            _ => None,
        }
    }
}

/// The thread's work: see [`ContextPrefetch::start`].
fn hash_ahead(
    store_root: &Path,
    context: &Path,
    dockerfile: &str,
    dockerfile_path: Option<&Path>,
    target: Option<&str>,
) -> Option<Prefetched> {
    let dockerfile = parse_dockerfile(dockerfile).ok()?;
    let last = match target {
        Some(t) => dockerfile.stage(t)?.0,
        None => dockerfile.stages.len().checked_sub(1)?,
    };
    let context = BuildContext::open(context, dockerfile_path).ok()?;
    let file = super::digest_cache_file(store_root, context.root());
    let mut cache = DigestCache::load(&file);
    for stage in &dockerfile.stages[..=last] {
        for ins in &stage.instructions {
            let (keyword, sources, dest, exclude, parents) = match &ins.instruction {
                Instruction::Copy(c) if c.from.is_none() => {
                    ("COPY", &c.sources, &c.dest, &c.exclude, c.parents)
                }
                Instruction::Add(a) => ("ADD", &a.sources, &a.dest, &a.exclude, false),
                _ => continue,
            };
            for source in sources {
                if source.contains('$') || source.starts_with("<<") || crate::remote::is_url(source)
                {
                    continue;
                }
                // One source at a time: a missing one is the step's error to report, and
                // must not keep the others from being hashed.
                let Ok(selection) = context.select(
                    keyword,
                    std::slice::from_ref(source),
                    dest,
                    exclude,
                    parents,
                ) else {
                    continue;
                };
                // What cannot be read now is the step's error to report.
                if crate::cache_key::prefetch_selection(&selection, &mut cache).is_ok() {
                    let _ = crate::cache_key::selection_digests(&selection, &mut cache);
                }
            }
        }
    }
    Some((file, cache))
}

/// The build's digest cache of its context: the one a [`ContextPrefetch`] filled, taken when
/// the build first needs a digest (waiting for its thread then), or else the persisted one,
/// loaded then.
pub(crate) struct Digests<'a> {
    file: PathBuf,
    prefetch: Option<&'a ContextPrefetch>,
    cache: OnceLock<Mutex<DigestCache>>,
}

impl<'a> Digests<'a> {
    /// The digest cache persisted at `file`, or `prefetch`'s if it filled that one.
    pub(crate) fn new(file: PathBuf, prefetch: Option<&'a ContextPrefetch>) -> Self {
        Digests {
            file,
            prefetch,
            cache: OnceLock::new(),
        }
    }

    /// The cache, for one caller at a time.
    pub(crate) fn lock(&self) -> MutexGuard<'_, DigestCache> {
        self.cache
            .get_or_init(|| {
                let taken = self.prefetch.and_then(|p| p.take(&self.file));
                Mutex::new(taken.unwrap_or_else(|| DigestCache::load(&self.file)))
            })
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// At the end of a build: save the cache if it changed (the prefetch's work too, though
    /// no step asked for it) and say how many files were hashed.
    pub(crate) fn finish(&self) -> u64 {
        if self.cache.get().is_none() && self.prefetch.is_none() {
            return 0;
        }
        let mut cache = self.lock();
        let _ = cache.save();
        cache.files_hashed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn options(context: &Path, dockerfile: &str) -> BuildOptions {
        BuildOptions {
            context: context.to_path_buf(),
            dockerfile: dockerfile.into(),
            ..BuildOptions::default()
        }
    }

    #[test]
    fn the_named_context_files_are_hashed_ahead_and_taken_by_the_build() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open(store_dir.path()).unwrap();
        let ctx = tempfile::tempdir().unwrap();
        for i in 0..70 {
            write(ctx.path(), &format!("src/f{i}.txt"), &format!("file {i}\n"));
        }
        write(ctx.path(), "one.txt", "one\n");
        write(ctx.path(), "added.txt", "added\n");
        write(ctx.path(), "by-variable.txt", "not named as written\n");
        write(ctx.path(), "later/x.txt", "a stage after the target\n");
        write(ctx.path(), "unused.txt", "named by nothing\n");
        let dockerfile = "FROM scratch AS first\n\
                          COPY src/ missing.txt one.txt /app/\n\
                          ADD added.txt https://example.invalid/x /\n\
                          ARG F=by-variable.txt\n\
                          COPY $F /\n\
                          COPY --from=other /x /y\n\
                          FROM scratch AS second\n\
                          COPY later/ /later/\n";
        let mut opts = options(ctx.path(), dockerfile);
        opts.target = Some("first".into());
        let prefetch = ContextPrefetch::start(&store, &opts);
        let context = BuildContext::open(ctx.path(), None).unwrap();
        let file = super::super::digest_cache_file(store.root(), context.root());
        let digests = Digests::new(file.clone(), Some(&prefetch));
        // src/ (70), one.txt, added.txt: the missing source, the URL, the variable, the
        // other stage's source, the stage after the target and the unnamed file are not.
        assert_eq!(digests.lock().files_hashed(), 72);
        let canonical = context.root().to_path_buf();
        let digest_of = |rel: &str| {
            let path = canonical.join(rel);
            let meta = std::fs::symlink_metadata(&path).unwrap();
            digests.lock().digest(&path, &meta).unwrap()
        };
        assert_eq!(
            digest_of("one.txt"),
            crate::checksum::hash_file(&canonical.join("one.txt")).unwrap()
        );
        // Asking again hashes nothing; a file not hashed ahead is hashed when asked.
        assert_eq!(digests.lock().files_hashed(), 72);
        digest_of("unused.txt");
        assert_eq!(digests.lock().files_hashed(), 73);
        // The end of the build saves it: a new build loads every digest.
        assert_eq!(digests.finish(), 73);
        let again = Digests::new(file, None);
        let path = canonical.join("src/f3.txt");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        again.lock().digest(&path, &meta).unwrap();
        assert_eq!(again.lock().files_hashed(), 0);
    }

    #[test]
    fn a_prefetch_of_another_context_or_a_broken_dockerfile_is_not_taken() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open(store_dir.path()).unwrap();
        let ctx = tempfile::tempdir().unwrap();
        write(ctx.path(), "a.txt", "a\n");
        let prefetch =
            ContextPrefetch::start(&store, &options(ctx.path(), "FROM scratch\nCOPY a.txt /\n"));
        let digests = Digests::new(store_dir.path().join("elsewhere.digests"), Some(&prefetch));
        assert_eq!(digests.lock().files_hashed(), 0);
        let broken = ContextPrefetch::start(&store, &options(ctx.path(), "COPY a.txt /\n"));
        assert!(broken.take(Path::new("/nowhere")).is_none());
        // Taken once only.
        let prefetch =
            ContextPrefetch::start(&store, &options(ctx.path(), "FROM scratch\nCOPY a.txt /\n"));
        let context = BuildContext::open(ctx.path(), None).unwrap();
        let file = super::super::digest_cache_file(store.root(), context.root());
        assert_eq!(prefetch.take(&file).map(|c| c.files_hashed()), Some(1));
        assert!(prefetch.take(&file).is_none());
    }
}
