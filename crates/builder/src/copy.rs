//! Materialising a COPY/ADD: the selected context files are written into a staging tree
//! (what becomes the step's layer) at the destination, with Docker's rules: a directory
//! destination (trailing `/`, several sources, a directory source, a wildcard, or an existing
//! directory in the stage) receives the entries under it, otherwise a single file becomes the
//! destination path; new files are owned by root unless `--chown`, keep their mode unless
//! `--chmod`, keep their mtime; parent directories that already exist in the stage keep their
//! metadata in the layer, new ones are 0755 and owned like the files.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use rbuild_oci::Digest;
use rbuild_store::direct::{self, AlignedBuf, CHUNK, DirectFile};
use rbuild_store::layer::FileContents;

use crate::context::{EntryKind, Selection};
use crate::error::BuildError;
use crate::lower;

/// How to write a selection.
#[derive(Debug, Clone)]
pub struct CopyOptions<'a> {
    /// Absolute destination in the image (already resolved against WORKDIR).
    pub dest: &'a str,
    /// `--chown` as numeric ids.
    pub owner: Option<(u32, u32)>,
    /// Without `--chown`, the sources keep their owners (`COPY --from` a stage or an image,
    /// as BuildKit and docker's builder since moby#38599 do) instead of becoming 0:0 (files
    /// of the build context).
    pub keep_owner: bool,
    /// `--chmod` bits.
    pub chmod: Option<u32>,
    /// The stage's layers (bottom first), to find existing directories.
    pub lower: &'a [PathBuf],
    /// The content digest of each selected entry that is a regular file (aligned with the
    /// selection's entries): then the copy lists its files with their digests
    /// ([`Copied::files`]) and may link unchanged ones from `donor`.
    pub digests: Option<&'a [Option<Digest>]>,
    /// An earlier COPY's layer whose unchanged files are linked instead of copied.
    pub donor: Option<&'a Donor>,
}

/// The layer of an earlier COPY, from which a COPY links the files that are the same in
/// every respect the layer's tar records (content, size, mode, owner, mtime), instead of
/// writing them again: a hard link shares the inode, so the new layer's tree, tar and diffID
/// are exactly those of a copy, and neither tree is ever written in place (snapshots are
/// read-only lowers; a RUN step above changes a file in its overlay's upper, a new inode).
/// The content is decided by digest, as the step cache decides it: the digest recorded for
/// the file when the earlier COPY made it against the digest of the source now. A link is
/// taken only where reusing the earlier layer whole would have been (a cache hit trusts the
/// same per-file digests).
#[derive(Debug)]
pub struct Donor {
    /// The earlier layer's snapshot directory.
    dir: PathBuf,
    /// Its regular files by image path, with the content digest each was copied with.
    files: std::collections::HashMap<String, Digest>,
}

impl Donor {
    /// The layer whose snapshot is `dir`, with the file list a COPY wrote for it
    /// ([`write_file_list`]) at `list`; `None` when the list is missing or damaged.
    pub fn load(dir: PathBuf, list: &Path) -> Option<Donor> {
        let bytes = std::fs::read(list).ok()?;
        let mut files = std::collections::HashMap::new();
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let nul = rest.iter().position(|&b| b == 0)?;
            let path = std::str::from_utf8(&rest[..nul]).ok()?;
            let hex = rest.get(nul + 1..nul + 65)?;
            if rest.get(nul + 65) != Some(&b'\n') {
                return None;
            }
            let digest: Digest = format!(
                "{}:{}",
                crate::checksum::CONTENT_ALGORITHM,
                std::str::from_utf8(hex).ok()?
            )
            .parse()
            .ok()?;
            files.insert(path.to_string(), digest);
            rest = &rest[nul + 66..];
        }
        Some(Donor { dir, files })
    }

    /// The donor's file to link for image path `target` when it has the content `digest`
    /// and, on disk, exactly the size, mode, owner and mtime the copy would give it.
    fn file_for(&self, target: &str, digest: &Digest, job: &FileJob<'_>) -> Option<PathBuf> {
        if self.files.get(target) != Some(digest) {
            return None;
        }
        let path = self.dir.join(target.trim_start_matches('/'));
        let m = std::fs::symlink_metadata(&path).ok()?;
        let same = m.file_type().is_file()
            && m.len() == job.meta.len()
            && m.mode() & 0o7777 == job.mode
            && (m.uid(), m.gid()) == (job.uid, job.gid)
            && (m.mtime(), m.mtime_nsec()) == (job.meta.mtime(), job.meta.mtime_nsec());
        same.then_some(path)
    }
}

/// Write the file list of a COPY's layer ([`Copied::files`]) to `path`, through a temporary
/// file and a rename: each file as its image path, a NUL, its content digest in hex (of
/// [`crate::checksum::CONTENT_ALGORITHM`]) and a newline.
pub fn write_file_list(path: &Path, files: &[(String, Digest)]) -> Result<(), BuildError> {
    let mut out = Vec::with_capacity(files.len() * 100);
    for (target, digest) in files {
        if digest.algorithm() != crate::checksum::CONTENT_ALGORITHM || target.contains('\0') {
            continue;
        }
        out.extend_from_slice(target.as_bytes());
        out.push(0);
        out.extend_from_slice(digest.hex().as_bytes());
        out.push(b'\n');
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
    }
    crate::build::write_atomic(path, &out)
}

/// What a COPY wrote.
#[derive(Default)]
pub struct Copied {
    /// The image paths written.
    pub written: Vec<String>,
    /// Its large files, still to be filled ([`materialize_deferring`]).
    pub deferred: Deferred,
    /// With [`CopyOptions::digests`]: each regular file in the layer by image path, with its
    /// content digest (what [`write_file_list`] keeps for a later COPY's [`Donor`]).
    pub files: Vec<(String, Digest)>,
    /// How many files were linked from the donor.
    pub linked: usize,
}

/// Write `selection` into `staging` (the new layer's tree). Returns the image paths written.
pub fn materialize(
    selection: &Selection,
    opts: &CopyOptions<'_>,
    staging: &Path,
) -> Result<Vec<String>, BuildError> {
    Ok(materialize_into(selection, opts, staging, false)?.written)
}

/// [`materialize`], leaving files of [`DEFERRED_BYTES`] or more empty (unless files were
/// linked from a [`Donor`]): created with their size, owner, mode and times, and filled by
/// the returned [`Deferred`] while the layer's tar is hashed from `staging`. Nothing may
/// write into `staging` before that.
pub fn materialize_deferring(
    selection: &Selection,
    opts: &CopyOptions<'_>,
    staging: &Path,
) -> Result<Copied, BuildError> {
    materialize_into(selection, opts, staging, true)
}

fn materialize_into(
    selection: &Selection,
    opts: &CopyOptions<'_>,
    staging: &Path,
    defer: bool,
) -> Result<Copied, BuildError> {
    let dest = opts.dest.trim_end_matches('/');
    let into_dir =
        selection.dest_is_dir || opts.dest.ends_with('/') || lower::is_dir(opts.lower, dest);
    let (uid, gid) = opts.owner.unwrap_or((0, 0));
    let mut written = Vec::with_capacity(selection.entries.len());
    let mut dirs: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
    // Image directories known to exist in `staging` (so each file's parents are not looked up
    // again), and whether any directory made here is set-group-ID (then new files take its
    // group and must be chowned whatever the ids).
    let mut made = Made::default();
    // Regular files are copied after the tree's directories exist, on several threads (a
    // large COPY is bound by the kernel's page copying, one core each); a later entry for
    // the same path replaces an earlier one, as copying in order would.
    let mut files: Vec<Option<FileJob<'_>>> = Vec::new();
    let mut queued: std::collections::HashMap<PathBuf, usize> = Default::default();
    for (i, e) in selection.entries.iter().enumerate() {
        let target = if into_dir {
            format!("{dest}/{}", e.dest_path)
        } else {
            dest.to_string()
        };
        let target = if target.is_empty() {
            "/".to_string()
        } else {
            target
        };
        let parent = Path::new(&target)
            .parent()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        if !made.dirs.contains(&parent) {
            ensure_parents(staging, &parent, opts, &mut dirs, &mut made)?;
        }
        let out = staging.join(target.trim_start_matches('/'));
        let meta = match &e.meta {
            Some(m) => m.clone(),
            None => {
                std::fs::symlink_metadata(&e.path).map_err(|err| BuildError::io(&e.path, err))?
            }
        };
        let mode = opts.chmod.unwrap_or(meta.permissions().mode() & 0o7777);
        let (uid, gid) = if opts.keep_owner && opts.owner.is_none() {
            (meta.uid(), meta.gid())
        } else {
            (uid, gid)
        };
        match e.kind {
            EntryKind::Dir => {
                if let Some(i) = queued.remove(&out) {
                    files[i] = None;
                }
                if !out.is_dir() {
                    std::fs::create_dir(&out).map_err(|err| BuildError::io(&out, err))?;
                }
                set_owner_mode(&out, uid, gid, Some(mode))?;
                made.setgid |= mode & 0o2000 != 0;
                made.dirs.insert(target.clone());
                dirs.push((out.clone(), meta));
            }
            EntryKind::File => {
                let job = FileJob {
                    src: &e.path,
                    out: out.clone(),
                    target: target.clone(),
                    digest: opts.digests.and_then(|d| d.get(i)?.as_ref()),
                    mode,
                    uid,
                    gid,
                    meta,
                };
                match queued.get(&out) {
                    Some(&i) => files[i] = Some(job),
                    None => {
                        queued.insert(out, files.len());
                        files.push(Some(job));
                    }
                }
            }
            EntryKind::Symlink => {
                if let Some(i) = queued.remove(&out) {
                    files[i] = None;
                }
                let link =
                    std::fs::read_link(&e.path).map_err(|err| BuildError::io(&e.path, err))?;
                let _ = std::fs::remove_file(&out);
                made.dirs.remove(&target);
                std::os::unix::fs::symlink(&link, &out).map_err(|err| BuildError::io(&out, err))?;
                set_owner_mode(&out, uid, gid, None)?;
                set_times(&out, &meta)?;
            }
        }
        written.push(target);
    }
    let mut copied = Copied::default();
    if opts.digests.is_some() {
        copied.files = files
            .iter()
            .flatten()
            .filter_map(|j| Some((j.target.clone(), j.digest?.clone())))
            .collect();
    }
    if let Some(donor) = opts.donor {
        for j in files.iter_mut() {
            if j.as_ref().is_some_and(|j| link_from(donor, j)) {
                *j = None;
                copied.linked += 1;
            }
        }
    }
    // Deferring saves the page cache a large copy's pages, but makes the layer's hash part
    // of the step. With files linked from a donor, what is left to write is what changed,
    // usually little: it is copied now, and the layer hashed beside the next steps.
    if defer && copied.linked == 0 {
        for j in files.iter_mut() {
            if let Some(job) = j.take_if(|j| j.meta.len() >= DEFERRED_BYTES) {
                copied.deferred.add(job)?;
            }
        }
    }
    let born = Born::new(made.setgid || is_setgid(staging));
    copy_files(&files, &born)?;
    // Directory times last: writing their entries changed them.
    for (dir, meta) in dirs.iter().rev() {
        set_times(dir, meta)?;
    }
    copied.written = written;
    Ok(copied)
}

/// Link `job`'s destination to the donor's same file when it has one; whether it did (a
/// failed link, e.g. across filesystems or past the link limit, leaves the file to copy).
fn link_from(donor: &Donor, job: &FileJob<'_>) -> bool {
    let Some(from) = job.digest.and_then(|d| donor.file_for(&job.target, d, job)) else {
        return false;
    };
    match std::fs::hard_link(&from, &job.out) {
        Ok(()) => true,
        // An earlier entry of the same COPY put something there (e.g. a symlink).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&job.out).is_ok() && std::fs::hard_link(&from, &job.out).is_ok()
        }
        Err(_) => false,
    }
}

/// A COPY of at least this many bytes copies its files on several threads.
const PARALLEL_COPY_BYTES: u64 = 32 << 20;

/// One regular file of a COPY: from `src` to `out` with `mode` and owner `uid`:`gid`, the
/// source's times.
struct FileJob<'a> {
    src: &'a Path,
    out: PathBuf,
    /// The image path (`/app/src/a.txt`).
    target: String,
    /// The source's content digest, when the caller gave them.
    digest: Option<&'a Digest>,
    mode: u32,
    uid: u32,
    gid: u32,
    meta: std::fs::Metadata,
}

/// Copy `jobs` (holes skipped) on up to four threads; the first failure is returned.
fn copy_files(jobs: &[Option<FileJob<'_>>], born: &Born) -> Result<(), BuildError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let copy = |j: &FileJob<'_>| copy_file(j, born);
    // Small files stay on this thread: creating many in one directory from several threads
    // contends on the directory's lock and costs more than it saves.
    let bytes: u64 = jobs.iter().flatten().map(|j| j.meta.len()).sum();
    let workers = if bytes < PARALLEL_COPY_BYTES {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4)
            .min(jobs.len())
    };
    if workers <= 1 {
        return jobs.iter().flatten().try_for_each(copy);
    }
    let next = AtomicUsize::new(0);
    let work = || -> Result<(), BuildError> {
        while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
            if let Some(j) = job {
                copy(j)?;
            }
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..workers).map(|_| s.spawn(work)).collect();
        let mine = work();
        helpers
            .into_iter()
            .map(|h| h.join().expect("a copy thread does not panic"))
            .fold(mine, Result::and)
    })
}

/// Image directories a COPY has made (or found) in its staging tree.
#[derive(Default)]
struct Made {
    /// Their image paths (`/app/src`).
    dirs: std::collections::HashSet<String>,
    /// Whether one of them is set-group-ID.
    setgid: bool,
}

fn is_setgid(dir: &Path) -> bool {
    std::fs::metadata(dir).map_or(true, |m| m.mode() & 0o2000 != 0)
}

/// What a file this process creates already has, so that [`copy_file`] skips the `fchown`
/// and `fchmod` that would only set it again (two of a small file's system calls).
struct Born {
    /// The owner created files get (this process's effective ids), unless a directory of
    /// the tree is set-group-ID.
    ids: Option<(u32, u32)>,
    /// The process's umask, when known (`/proc/self/status`).
    umask: Option<u32>,
}

impl Born {
    fn new(setgid_dirs: bool) -> Born {
        let ids = (!setgid_dirs).then(|| {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        });
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("Umask:"))?;
                u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
            });
        Born { ids, umask }
    }

    /// Whether a created file is already owned by `uid`:`gid`.
    fn owns(&self, uid: u32, gid: u32) -> bool {
        self.ids == Some((uid, gid))
    }

    /// Whether creating with `mode` gives exactly `mode` (no set-id or sticky bits, none
    /// masked off by the umask).
    fn keeps(&self, mode: u32) -> bool {
        mode & 0o7000 == 0 && self.umask.is_some_and(|m| mode & m == 0)
    }
}

/// Files up to this size are copied with one `read` into a buffer and one `write`, instead
/// of `std::io::copy`'s two `fstat`s and `copy_file_range`s.
const SMALL_FILE: usize = 64 << 10;

/// Copy one small file: created new (replacing only what an earlier entry of the same COPY
/// put there, e.g. a symlink), owner, mode and times set through the descriptor. Per file
/// that is one path lookup for the copy instead of five (unlink, create, lchown, chmod,
/// utimensat), which is most of a COPY of many small files; owner and mode are set only
/// when creating the file did not already give them ([`Born`]).
fn copy_file(j: &FileJob<'_>, born: &Born) -> Result<(), BuildError> {
    use std::os::unix::fs::{OpenOptionsExt, fchown};
    let io = |err| BuildError::io(&j.out, err);
    let mut src = std::fs::File::open(j.src).map_err(|err| BuildError::io(j.src, err))?;
    let mode_at_create = born.keeps(j.mode);
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if mode_at_create { j.mode } else { 0o600 })
            .open(&j.out)
    };
    let mut dst = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&j.out).map_err(io)?;
            create()
        }
        other => other,
    }
    .map_err(io)?;
    if j.meta.len() <= SMALL_FILE as u64 {
        copy_small(&mut src, &mut dst).map_err(io)?;
    } else {
        std::io::copy(&mut src, &mut dst).map_err(io)?;
    }
    // Owner before mode: chown clears set-id bits (a mode given at creation has none).
    if !born.owns(j.uid, j.gid) {
        fchown(&dst, Some(j.uid), Some(j.gid)).map_err(io)?;
    }
    if !mode_at_create {
        dst.set_permissions(std::fs::Permissions::from_mode(j.mode))
            .map_err(io)?;
    }
    let mtime = TimeSpec::new(j.meta.mtime(), j.meta.mtime_nsec());
    nix::sys::stat::futimens(&dst, &mtime, &mtime)
        .map_err(|errno| BuildError::io(&j.out, std::io::Error::from(errno)))
}

/// Copy a file expected to be at most [`SMALL_FILE`] bytes through a buffer on the stack;
/// one that has grown since is copied whole all the same.
fn copy_small(src: &mut std::fs::File, dst: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::Write;
    let mut buf = [0u8; SMALL_FILE + 1];
    let mut n = 0;
    loop {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(r) => n += r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if n == buf.len() {
            dst.write_all(&buf)?;
            std::io::copy(src, dst)?;
            return Ok(());
        }
    }
    dst.write_all(&buf[..n])
}

/// COPY leaves files of this size or more to [`Deferred`].
pub const DEFERRED_BYTES: u64 = direct::MIN_FILE;

/// Large files of a COPY, created empty (with their final size, owner, mode and times) and
/// filled while the layer's tar is hashed from the staging tree, as the store asks for their
/// content ([`FileContents`]): each source is read once, into memory that is handed both to
/// the hash and to a writer thread that writes the copy with O_DIRECT. So the copy costs no
/// page-cache pages (allocating and dirtying one per 4 KiB is what a buffered copy of 400 MB
/// spends its time on, and on a VM whose free memory goes back to the host, each is a fault)
/// and no second read of the copy to hash it. Call [`Deferred::finish`] after the tar.
#[derive(Default)]
pub struct Deferred {
    files: std::collections::HashMap<PathBuf, DeferredFile>,
    /// Aligned buffers kept between files.
    pool: Vec<AlignedBuf>,
}

struct DeferredFile {
    src: PathBuf,
    uid: u32,
    gid: u32,
    mode: u32,
    meta: std::fs::Metadata,
    opened: bool,
}

impl Deferred {
    /// Whether no file was left to fill.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn add(&mut self, job: FileJob<'_>) -> Result<(), BuildError> {
        let (uid, gid) = (job.uid, job.gid);
        let _ = std::fs::remove_file(&job.out);
        let f = std::fs::File::create_new(&job.out).map_err(|e| BuildError::io(&job.out, e))?;
        f.set_len(job.meta.len())
            .map_err(|e| BuildError::io(&job.out, e))?;
        drop(f);
        set_owner_mode(&job.out, uid, gid, Some(job.mode))?;
        set_times(&job.out, &job.meta)?;
        self.files.insert(
            job.out,
            DeferredFile {
                src: job.src.to_path_buf(),
                uid,
                gid,
                mode: job.mode,
                meta: job.meta,
                opened: false,
            },
        );
        Ok(())
    }

    /// After the layer's tar was made: every file must have been filled; their owner, mode
    /// and times are set again (writing changed the times, and may clear set-id bits).
    pub fn finish(&mut self) -> Result<(), BuildError> {
        for (out, f) in &self.files {
            if !f.opened {
                return Err(BuildError::io(
                    out,
                    std::io::Error::other("the layer's tar never asked for this copied file"),
                ));
            }
            set_owner_mode(out, f.uid, f.gid, Some(f.mode))?;
            set_times(out, &f.meta)?;
        }
        Ok(())
    }
}

impl FileContents for Deferred {
    fn open(&mut self, path: &Path, len: u64) -> Option<std::io::Result<Box<dyn Read + '_>>> {
        let f = self.files.get_mut(path)?;
        if f.opened || f.meta.len() != len {
            return Some(Err(std::io::Error::other(
                "the staged copy changed before it was filled",
            )));
        }
        f.opened = true;
        let src = f.src.clone();
        Some(Filler::start(&src, path, len, &mut self.pool).map(|r| Box::new(r) as Box<dyn Read>))
    }
}

/// Buffers a [`Filler`] uses at most: one being read, the others being written.
const FILL_BUFFERS: usize = 3;

type Chunk = (std::sync::Arc<AlignedBuf>, usize);

/// Reads one source file for the layer's tar while a writer thread writes the same buffers
/// into the staged copy.
struct Filler<'a> {
    src: std::fs::File,
    src_path: PathBuf,
    /// Source bytes still to read.
    left: u64,
    current: Option<std::sync::Arc<AlignedBuf>>,
    pos: usize,
    filled: usize,
    to_writer: Option<std::sync::mpsc::SyncSender<Chunk>>,
    back: std::sync::mpsc::Receiver<std::sync::Arc<AlignedBuf>>,
    writer: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    /// Buffers this filler took from the pool or made.
    taken: usize,
    pool: &'a mut Vec<AlignedBuf>,
}

impl<'a> Filler<'a> {
    fn start(
        src_path: &Path,
        out: &Path,
        len: u64,
        pool: &'a mut Vec<AlignedBuf>,
    ) -> std::io::Result<Filler<'a>> {
        let src = std::fs::File::open(src_path)?;
        let file = DirectFile::new(std::fs::OpenOptions::new().write(true).open(out)?);
        let (to_writer, chunks) = std::sync::mpsc::sync_channel::<Chunk>(FILL_BUFFERS);
        let (give_back, back) = std::sync::mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("rbuild-copy".into())
            .spawn(move || write_chunks(file, chunks, give_back))?;
        Ok(Filler {
            src,
            src_path: src_path.to_path_buf(),
            left: len,
            current: None,
            pos: 0,
            filled: 0,
            to_writer: Some(to_writer),
            back,
            writer: Some(writer),
            taken: 0,
            pool,
        })
    }

    /// A free buffer: one the writer is done with, one from the pool, a new one, or the next
    /// the writer gives back.
    fn buffer(&mut self) -> std::io::Result<AlignedBuf> {
        let unique = |b: std::sync::Arc<AlignedBuf>| {
            std::sync::Arc::try_unwrap(b).unwrap_or_else(|_| AlignedBuf::new(CHUNK))
        };
        if let Ok(b) = self.back.try_recv() {
            return Ok(unique(b));
        }
        if self.taken < FILL_BUFFERS {
            self.taken += 1;
            return Ok(self.pool.pop().unwrap_or_else(|| AlignedBuf::new(CHUNK)));
        }
        match self.back.recv() {
            Ok(b) => Ok(unique(b)),
            Err(_) => Err(self.writer_failed()),
        }
    }

    /// Why the writer stopped early: its error.
    fn writer_failed(&mut self) -> std::io::Error {
        self.stop()
            .err()
            .unwrap_or_else(|| std::io::Error::other("the copy's writer stopped"))
    }

    /// Read the next chunk of the source and hand it to the writer.
    fn next_chunk(&mut self) -> std::io::Result<()> {
        let mut buf = self.buffer()?;
        let want = CHUNK.min(usize::try_from(self.left).unwrap_or(usize::MAX));
        match self.src.read_exact(&mut buf.bytes_mut()[..want]) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(changed(&self.src_path, "shorter"));
            }
            r => r?,
        }
        self.left -= want as u64;
        if self.left == 0 && self.src.read(&mut [0u8; 1])? > 0 {
            return Err(changed(&self.src_path, "longer"));
        }
        let buf = std::sync::Arc::new(buf);
        let sent = match &self.to_writer {
            Some(tx) => tx.send((buf.clone(), want)).is_ok(),
            None => false,
        };
        if !sent {
            return Err(self.writer_failed());
        }
        self.current = Some(buf);
        self.pos = 0;
        self.filled = want;
        Ok(())
    }

    /// Wait for the writer and put the buffers back in the pool; its error, if any.
    fn stop(&mut self) -> std::io::Result<()> {
        self.current = None;
        drop(self.to_writer.take());
        let result = match self.writer.take() {
            Some(w) => w
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the copy's writer panicked"))),
            None => Ok(()),
        };
        while let Ok(b) = self.back.try_recv() {
            if let Ok(b) = std::sync::Arc::try_unwrap(b) {
                self.pool.push(b);
            }
        }
        result
    }
}

impl Read for Filler<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.filled {
            self.current = None;
            if self.left == 0 {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let buf = self.current.as_ref().expect("a chunk is being read");
        let n = out.len().min(self.filled - self.pos);
        out[..n].copy_from_slice(&buf.bytes()[self.pos..self.pos + n]);
        self.pos += n;
        // The last bytes: the copy is complete only when the writer is, and its errors
        // (a full disk) are this read's.
        if self.pos == self.filled && self.left == 0 {
            self.stop()?;
        }
        Ok(n)
    }
}

impl Drop for Filler<'_> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn changed(src: &Path, how: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "{} is {how} than when the COPY started (changed during the build)",
        src.display()
    ))
}

/// The writer thread of a [`Filler`]: writes the chunks in order (direct where the
/// filesystem allows), giving each buffer back. After an error it only gives buffers back,
/// and returns the error at the end.
fn write_chunks(
    mut out: DirectFile,
    chunks: std::sync::mpsc::Receiver<Chunk>,
    give_back: std::sync::mpsc::Sender<std::sync::Arc<AlignedBuf>>,
) -> std::io::Result<()> {
    let mut result = Ok(());
    for (buf, n) in chunks {
        if result.is_ok() {
            result = out.write(&buf.bytes()[..n]);
        }
        let _ = give_back.send(buf);
    }
    result
}

/// Create directory `dir` (an absolute image path) and its ancestors in `staging` as
/// [`materialize`] does: directories the stage already has keep its metadata, new ones are
/// 0755 and owned like the copied files (`opts.owner`).
pub fn ensure_dir(staging: &Path, dir: &str, opts: &CopyOptions<'_>) -> Result<(), BuildError> {
    let mut dirs = Vec::new();
    ensure_parents(staging, dir, opts, &mut dirs, &mut Made::default())?;
    for (d, meta) in dirs.iter().rev() {
        set_times(d, meta)?;
    }
    Ok(())
}

/// Create `dir`'s ancestors (and itself) in `staging`, copying metadata from the stage when
/// the directory already exists there.
fn ensure_parents(
    staging: &Path,
    dir: &str,
    opts: &CopyOptions<'_>,
    dirs: &mut Vec<(PathBuf, std::fs::Metadata)>,
    made: &mut Made,
) -> Result<(), BuildError> {
    let mut path = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        path.push('/');
        path.push_str(part);
        if made.dirs.contains(&path) {
            continue;
        }
        let out = staging.join(path.trim_start_matches('/'));
        if out.is_dir() {
            made.setgid |= is_setgid(&out);
            made.dirs.insert(path.clone());
            continue;
        }
        std::fs::create_dir(&out).map_err(|err| BuildError::io(&out, err))?;
        made.dirs.insert(path.clone());
        match lower::lookup(opts.lower, &path) {
            Some((_, meta)) if meta.is_dir() => {
                made.setgid |= meta.permissions().mode() & 0o2000 != 0;
                set_owner_mode(
                    &out,
                    meta.uid(),
                    meta.gid(),
                    Some(meta.permissions().mode() & 0o7777),
                )?;
                dirs.push((out, meta));
            }
            _ => {
                let (uid, gid) = opts.owner.unwrap_or((0, 0));
                set_owner_mode(&out, uid, gid, Some(0o755))?;
            }
        }
    }
    Ok(())
}

fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: Option<u32>) -> Result<(), BuildError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|err| BuildError::io(path, err))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|err| BuildError::io(path, err))?;
    }
    Ok(())
}

fn set_times(path: &Path, meta: &std::fs::Metadata) -> Result<(), BuildError> {
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &mtime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|errno| BuildError::io(path, std::io::Error::from(errno)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::context::BuildContext;

    fn setup() -> (tempfile::TempDir, BuildContext, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ctx_dir = dir.path().join("ctx");
        std::fs::create_dir_all(ctx_dir.join("src/sub")).unwrap();
        std::fs::write(ctx_dir.join("src/a.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            ctx_dir.join("src/a.sh"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::fs::write(ctx_dir.join("src/sub/b.txt"), "b").unwrap();
        std::os::unix::fs::symlink("a.sh", ctx_dir.join("src/link")).unwrap();
        let lower = dir.path().join("lower");
        std::fs::create_dir_all(lower.join("tmp")).unwrap();
        std::fs::set_permissions(lower.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let ctx = BuildContext::open(&ctx_dir, None).unwrap();
        (dir, ctx, lower, staging)
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn unchanged_files_are_linked_from_a_donor_and_the_layer_is_a_copys() {
        use rbuild_store::LayerSource;
        let (d, ctx_unused, lower, first) = setup();
        drop(ctx_unused);
        let ctx_dir = d.path().join("ctx");
        std::fs::write(ctx_dir.join("src/c.txt"), "cccc").unwrap();
        std::fs::write(ctx_dir.join("src/d.txt"), "dddd").unwrap();
        let lowers = vec![lower];
        let select = || {
            let ctx = BuildContext::open(&ctx_dir, None).unwrap();
            let sel = ctx
                .select("COPY", &["src".to_string()], "/app", &[], false)
                .unwrap();
            let mut cache = crate::checksum::DigestCache::in_memory();
            let digests = crate::cache_key::selection_digests(&sel, &mut cache).unwrap();
            (sel, digests)
        };
        let opts = |digests, donor| CopyOptions {
            dest: "/app",
            owner: Some((1000, 1001)),
            keep_owner: false,
            chmod: None,
            lower: &lowers,
            digests,
            donor,
        };
        let (sel, digests) = select();
        let made = materialize_deferring(&sel, &opts(Some(&digests), None), &first).unwrap();
        assert_eq!(made.linked, 0);
        let mut listed: Vec<&str> = made.files.iter().map(|(p, _)| p.as_str()).collect();
        listed.sort();
        assert_eq!(
            listed,
            ["/app/a.sh", "/app/c.txt", "/app/d.txt", "/app/sub/b.txt"]
        );
        let list = d.path().join("list");
        write_file_list(&list, &made.files).unwrap();
        let donor = Donor::load(first.clone(), &list).unwrap();
        assert_eq!(donor.files.len(), 4);

        // c.txt: new content of the same size, its mtime put back; d.txt: the same content
        // but the donor's copy has another mode (as if made with another --chmod).
        let c = ctx_dir.join("src/c.txt");
        let before = std::fs::metadata(&c).unwrap();
        std::fs::write(&c, "CCCC").unwrap();
        set_times(&c, &before).unwrap();
        std::fs::set_permissions(
            first.join("app/d.txt"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let (sel, digests) = select();
        let second = staging_in(&d, "second");
        let made =
            materialize_deferring(&sel, &opts(Some(&digests), Some(&donor)), &second).unwrap();
        let ino = |p: &Path| std::fs::symlink_metadata(p).unwrap().ino();
        for same in ["app/a.sh", "app/sub/b.txt"] {
            assert_eq!(
                ino(&first.join(same)),
                ino(&second.join(same)),
                "{same} linked"
            );
        }
        for other in ["app/c.txt", "app/d.txt"] {
            assert_ne!(
                ino(&first.join(other)),
                ino(&second.join(other)),
                "{other} copied"
            );
        }
        assert_eq!(made.linked, 2);
        assert_eq!(std::fs::read(second.join("app/c.txt")).unwrap(), b"CCCC");
        assert_eq!(std::fs::read(first.join("app/c.txt")).unwrap(), b"cccc");

        // The layer is exactly a plain copy's.
        let plain = staging_in(&d, "plain");
        materialize(&sel, &opts(None, None), &plain).unwrap();
        let hash = |dir: &Path| {
            rbuild_store::hash_layer_dir(
                &LayerSource::Tree(dir.to_path_buf()),
                &mut rbuild_store::layer::ReadFiles,
            )
            .unwrap()
            .diff_id
        };
        assert_eq!(hash(&second), hash(&plain));

        // A damaged list is no donor.
        std::fs::write(&list, b"/app/a.sh\0abc\n").unwrap();
        assert!(Donor::load(first.clone(), &list).is_none());
    }

    #[test]
    fn directory_contents_with_chown_and_kept_modes() {
        let (_d, ctx, lower, staging) = setup();
        let sel = ctx
            .select("COPY", &["src".to_string()], "/app", &[], false)
            .unwrap();
        let lowers = vec![lower];
        let opts = CopyOptions {
            dest: "/app",
            owner: Some((1000, 1000)),
            keep_owner: false,
            chmod: None,
            lower: &lowers,
            digests: None,
            donor: None,
        };
        let written = materialize(&sel, &opts, &staging).unwrap();
        assert_eq!(
            written,
            ["/app/a.sh", "/app/link", "/app/sub", "/app/sub/b.txt"]
        );
        assert_eq!(mode(&staging.join("app/a.sh")), 0o750);
        assert_eq!(
            std::fs::read_link(staging.join("app/link")).unwrap(),
            Path::new("a.sh")
        );
        let meta = std::fs::metadata(staging.join("app/sub/b.txt")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
        assert_eq!(
            std::fs::metadata(staging.join("app")).unwrap().uid(),
            1000,
            "new parents are owned like the files"
        );
    }

    #[test]
    fn single_file_and_existing_parent_metadata() {
        let (_d, ctx, lower, staging) = setup();
        let lowers = vec![lower];
        let sel = ctx
            .select(
                "COPY",
                &["src/sub/b.txt".to_string()],
                "/tmp/x/renamed",
                &[],
                false,
            )
            .unwrap();
        let opts = CopyOptions {
            dest: "/tmp/x/renamed",
            owner: None,
            keep_owner: false,
            chmod: Some(0o600),
            lower: &lowers,
            digests: None,
            donor: None,
        };
        materialize(&sel, &opts, &staging).unwrap();
        assert_eq!(
            std::fs::read_to_string(staging.join("tmp/x/renamed")).unwrap(),
            "b"
        );
        assert_eq!(mode(&staging.join("tmp/x/renamed")), 0o600);
        assert_eq!(
            mode(&staging.join("tmp")),
            0o1777,
            "an existing parent keeps its mode in the layer"
        );
        assert_eq!(mode(&staging.join("tmp/x")), 0o755);
        // An existing directory in the stage receives the file under its own name.
        let sel = ctx
            .select("COPY", &["src/a.sh".to_string()], "/tmp", &[], false)
            .unwrap();
        let opts = CopyOptions {
            dest: "/tmp",
            owner: None,
            keep_owner: false,
            chmod: None,
            lower: &lowers,
            digests: None,
            donor: None,
        };
        assert_eq!(materialize(&sel, &opts, &staging).unwrap(), ["/tmp/a.sh"]);
    }

    /// Files are created with their final mode and owner when the process's umask and ids
    /// give them (no fchmod/fchown then): every mode comes out exact, those the umask would
    /// cut and set-id ones included, and a set-group-ID directory of the stage with another
    /// group does not pass its group on to the copied files.
    #[test]
    fn modes_and_owner_exact_whatever_the_umask_and_a_setgid_parent() {
        let (dir, _ctx, lower, staging) = setup();
        let ctx_dir = dir.path().join("modes");
        std::fs::create_dir(&ctx_dir).unwrap();
        let modes = [
            0o644, 0o666, 0o444, 0o600, 0o777, 0o4755, 0o2711, 0o1700, 0o000,
        ];
        for m in modes {
            let p = ctx_dir.join(format!("f{m:o}"));
            std::fs::write(&p, format!("{m:o}").repeat(100)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        // A grown file: bigger than the one-read buffer.
        std::fs::write(ctx_dir.join("big"), vec![7u8; SMALL_FILE + 10]).unwrap();
        std::fs::create_dir(lower.join("srv")).unwrap();
        std::os::unix::fs::chown(lower.join("srv"), Some(0), Some(50)).unwrap();
        std::fs::set_permissions(lower.join("srv"), std::fs::Permissions::from_mode(0o2775))
            .unwrap();
        let ctx = BuildContext::open(&ctx_dir, None).unwrap();
        let lowers = vec![lower];
        let sel = ctx
            .select("COPY", &[".".to_string()], "/srv/", &[], false)
            .unwrap();
        let opts = CopyOptions {
            dest: "/srv/",
            owner: None,
            keep_owner: false,
            chmod: None,
            lower: &lowers,
            digests: None,
            donor: None,
        };
        materialize(&sel, &opts, &staging).unwrap();
        let srv = std::fs::metadata(staging.join("srv")).unwrap();
        assert_eq!((srv.gid(), srv.mode() & 0o7777), (50, 0o2775));
        for m in modes {
            let p = staging.join(format!("srv/f{m:o}"));
            let meta = std::fs::metadata(&p).unwrap();
            assert_eq!(meta.mode() & 0o7777, m, "{}", p.display());
            assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", p.display());
            assert_eq!(
                std::fs::read(&p).unwrap(),
                format!("{m:o}").repeat(100).as_bytes()
            );
        }
        assert_eq!(
            std::fs::read(staging.join("srv/big")).unwrap(),
            vec![7u8; SMALL_FILE + 10]
        );
    }

    #[test]
    fn mtimes_are_kept() {
        let (d, ctx, lower, staging) = setup();
        let f = std::fs::File::options()
            .write(true)
            .open(d.path().join("ctx/src/sub/b.txt"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
        let lowers = vec![lower];
        let sel = ctx
            .select("COPY", &["src/sub".to_string()], "/d/", &[], false)
            .unwrap();
        let opts = CopyOptions {
            dest: "/d/",
            owner: None,
            keep_owner: false,
            chmod: None,
            lower: &lowers,
            digests: None,
            donor: None,
        };
        materialize(&sel, &opts, &staging).unwrap();
        assert_eq!(
            std::fs::metadata(staging.join("d/b.txt")).unwrap().mtime(),
            1_000_000
        );
    }

    /// Bytes that differ along the file (so a misplaced chunk changes the digest).
    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// A context with large files (an unaligned size, an exact multiple of the fill chunk,
    /// one just under the threshold, a set-uid one) beside the small ones.
    fn large_setup() -> (tempfile::TempDir, BuildContext, PathBuf) {
        let (d, _, lower, _) = setup();
        let src = d.path().join("ctx/src");
        let sizes = [
            ("big/odd.bin", (8 << 20) + 12_345),
            ("big/even.bin", 2 * CHUNK),
            ("big/under.bin", (8 << 20) - 1),
            ("suid.bin", 9 << 20),
        ];
        for (i, (name, len)) in sizes.iter().enumerate() {
            let p = src.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, pattern(*len, i as u32 + 1)).unwrap();
        }
        std::fs::set_permissions(
            src.join("suid.bin"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        let ctx = BuildContext::open(&d.path().join("ctx"), None).unwrap();
        (d, ctx, lower)
    }

    fn staging_in(d: &tempfile::TempDir, name: &str) -> PathBuf {
        let p = d.path().join(name);
        std::fs::create_dir(&p).unwrap();
        p
    }

    #[test]
    fn deferred_large_files_give_the_same_layer_and_tree_as_a_plain_copy() {
        use rbuild_store::LayerSource;
        let (d, ctx, lower) = large_setup();
        let lowers = vec![lower];
        let sel = ctx
            .select("COPY", &["src".to_string()], "/app", &[], false)
            .unwrap();
        let opts = CopyOptions {
            dest: "/app",
            owner: Some((1000, 1001)),
            keep_owner: false,
            chmod: None,
            lower: &lowers,
            digests: None,
            donor: None,
        };
        let plain = staging_in(&d, "plain");
        let written = materialize(&sel, &opts, &plain).unwrap();
        let filled = staging_in(&d, "filled");
        let Copied {
            written: written2,
            mut deferred,
            ..
        } = materialize_deferring(&sel, &opts, &filled).unwrap();
        assert_eq!(written, written2);
        let mut left: Vec<_> = deferred.files.keys().cloned().collect();
        left.sort();
        assert_eq!(
            left,
            ["app/big/even.bin", "app/big/odd.bin", "app/suid.bin"].map(|p| filled.join(p)),
            "files of 8 MiB and more are left to fill"
        );
        let expected = rbuild_store::hash_layer_dir(
            &LayerSource::Tree(plain.clone()),
            &mut rbuild_store::layer::ReadFiles,
        )
        .unwrap();
        let got = rbuild_store::hash_layer_dir(&LayerSource::Tree(filled.clone()), &mut deferred)
            .unwrap();
        deferred.finish().unwrap();
        assert_eq!(got, expected);
        // And the tree left behind is the same, metadata included (the writes changed the
        // times and could clear the set-uid bit; finish sets them again).
        for rel in [
            "app/big/odd.bin",
            "app/big/even.bin",
            "app/big/under.bin",
            "app/suid.bin",
        ] {
            let (a, b) = (plain.join(rel), filled.join(rel));
            assert_eq!(
                std::fs::read(&a).unwrap(),
                std::fs::read(&b).unwrap(),
                "{rel}"
            );
            let (ma, mb) = (
                std::fs::metadata(&a).unwrap(),
                std::fs::metadata(&b).unwrap(),
            );
            assert_eq!(
                (ma.mode(), ma.uid(), ma.gid(), ma.mtime(), ma.mtime_nsec()),
                (mb.mode(), mb.uid(), mb.gid(), mb.mtime(), mb.mtime_nsec()),
                "{rel}"
            );
        }
        assert_eq!(mode(&filled.join("app/suid.bin")), 0o4755);
        let again = rbuild_store::hash_layer_dir(
            &LayerSource::Tree(filled.clone()),
            &mut rbuild_store::layer::ReadFiles,
        )
        .unwrap();
        assert_eq!(
            again, expected,
            "the filled tree hashes as it was hashed while filling"
        );
    }

    #[test]
    fn a_source_changed_before_it_is_filled_is_an_error() {
        use rbuild_store::LayerSource;
        for (how, change) in [("shorter", -1i64), ("longer", 1)] {
            let (d, ctx, lower) = large_setup();
            let lowers = vec![lower];
            let sel = ctx
                .select("COPY", &["src/suid.bin".to_string()], "/x", &[], false)
                .unwrap();
            let opts = CopyOptions {
                dest: "/x",
                owner: None,
                keep_owner: false,
                chmod: None,
                lower: &lowers,
                digests: None,
                donor: None,
            };
            let staging = staging_in(&d, "s");
            let mut deferred = materialize_deferring(&sel, &opts, &staging)
                .unwrap()
                .deferred;
            let src = d.path().join("ctx/src/suid.bin");
            let len = std::fs::metadata(&src).unwrap().len();
            let f = std::fs::File::options().write(true).open(&src).unwrap();
            f.set_len(len.checked_add_signed(change).unwrap()).unwrap();
            let err = rbuild_store::hash_layer_dir(&LayerSource::Tree(staging), &mut deferred)
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("is {how} than when the COPY started")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_deferred_file_never_filled_is_an_error() {
        let (d, ctx, lower) = large_setup();
        let lowers = vec![lower];
        let sel = ctx
            .select("COPY", &["src/big".to_string()], "/b/", &[], false)
            .unwrap();
        let opts = CopyOptions {
            dest: "/b/",
            owner: None,
            keep_owner: false,
            chmod: None,
            lower: &lowers,
            digests: None,
            donor: None,
        };
        let staging = staging_in(&d, "s");
        let mut deferred = materialize_deferring(&sel, &opts, &staging)
            .unwrap()
            .deferred;
        assert!(!deferred.is_empty());
        let err = deferred.finish().unwrap_err();
        assert!(err.to_string().contains("never asked for"), "{err}");
    }
}
