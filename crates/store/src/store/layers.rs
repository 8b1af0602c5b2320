//! Layers in the store: per-layer records (every compressed form remembered), readers,
//! compression on demand, adding layers, committing images, snapshots.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rbuild_oci::manifest;
use rbuild_oci::{Algorithm, Compression, Digest, MediaType, Reference};

use super::{
    BlobRef, LayerRecord, SharedWriter, Store, TeeHash, TreeForm, manifest_for, write_atomic,
};
use crate::error::{IoContext, Result, StoreError};
use crate::image::Image;
use crate::layer::{self, ApplyOptions, CreateOptions, LayerInfo, LayerSource, Whiteouts};
use crate::lock::Lock;

impl Store {
    pub(super) fn layer_record_path(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(diff_id.algorithm().as_str())
            .join(format!("{}.json", diff_id.hex()))
    }

    pub(crate) fn layer_record(&self, diff_id: &Digest) -> Result<LayerRecord> {
        let path = self.layer_record_path(diff_id);
        match fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|source| StoreError::Corrupt { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LayerRecord::default()),
            Err(e) => Err(e).at("reading", path),
        }
    }

    /// Remember that blob `digest` holds layer `diff_id` in `compression`.
    pub fn record_layer_blob(
        &self,
        diff_id: &Digest,
        compression: Compression,
        digest: &Digest,
        size: u64,
        uncompressed: Option<u64>,
    ) -> Result<()> {
        self.update_layer_record(diff_id, |rec| {
            rec.blobs.insert(
                compression.as_str().to_string(),
                BlobRef {
                    digest: digest.clone(),
                    size,
                },
            );
            if uncompressed.is_some() {
                rec.size = uncompressed;
            }
            true
        })
    }

    /// Change layer `diff_id`'s record under the index lock; `change` says whether to write it.
    pub(super) fn update_layer_record(
        &self,
        diff_id: &Digest,
        change: impl FnOnce(&mut LayerRecord) -> bool,
    ) -> Result<()> {
        let _lock = Lock::exclusive(&self.root.join("locks/index"))?;
        let mut rec = self.layer_record(diff_id)?;
        if !change(&mut rec) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&rec).expect("a layer record serializes");
        write_atomic(&self.tmp_dir(), &self.layer_record_path(diff_id), &bytes)
    }

    /// The blob holding layer `diff_id` in `compression`, when the store has one: a form
    /// recorded for the layer whose blob is still present, or for [`Compression::None`] the
    /// uncompressed blob named by the diffID itself. Only looks; never compresses (that is
    /// [`Store::compressed_layer`]). Returns digest and size.
    pub fn layer_blob(
        &self,
        diff_id: &Digest,
        compression: Compression,
    ) -> Result<Option<(Digest, u64)>> {
        let rec = self.layer_record(diff_id)?;
        if let Some(b) = rec.blobs.get(compression.as_str())
            && self.blobs.contains(&b.digest)
        {
            return Ok(Some((b.digest.clone(), b.size)));
        }
        if compression == Compression::None && self.blobs.contains(diff_id) {
            return Ok(Some((diff_id.clone(), self.blobs.size(diff_id)?)));
        }
        if compression == Compression::None
            && let (Some(_), Some(size)) = (self.tree_source(diff_id, &rec), rec.size)
        {
            return Ok(Some((diff_id.clone(), size)));
        }
        Ok(None)
    }

    /// Whether the store can give the bytes of blob `digest`: a blob file, or a layer kept
    /// only as its snapshot (see [`Store::add_layer_from_dir`]).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.contains(digest)
            || self
                .layer_record(digest)
                .is_ok_and(|rec| self.tree_source(digest, &rec).is_some())
    }

    /// The bytes of blob `digest`: its file, or for a layer kept only as its snapshot the tar
    /// made again from the snapshot (verified against the digest at its end).
    pub fn blob_reader(&self, digest: &Digest) -> Result<Box<dyn Read + Send>> {
        self.open_blob(digest, true)
    }

    /// [`Store::blob_reader`] without hashing a snapshot's tar on the way: for a receiver that
    /// checks the digest itself, as a registry does before it keeps a pushed blob (a changed
    /// snapshot is then refused there, never kept as the layer). Saves a sha256 pass over
    /// every byte of the push.
    pub fn blob_reader_for_push(&self, digest: &Digest) -> Result<Box<dyn Read + Send>> {
        self.open_blob(digest, false)
    }

    fn open_blob(&self, digest: &Digest, verify: bool) -> Result<Box<dyn Read + Send>> {
        if self.blobs.contains(digest) {
            return Ok(Box::new(self.blobs.open(digest)?));
        }
        let rec = self.layer_record(digest)?;
        tree_reader(self.snapshot_source(digest, &rec)?, digest, verify)
    }

    /// Write blob `digest` into `dest` (a new, empty file): the bytes [`Store::blob_reader`]
    /// gives, copied by the kernel. A blob file is copied whole; a snapshot-backed layer's tar
    /// is made again with each file's content copied from the snapshot
    /// ([`layer::write_layer_file`]) and, unlike `blob_reader`'s, is not hashed, only checked
    /// against the size the store recorded: this serves exports of a build cache, whose every
    /// reader verifies each blob by its digest. Returns the size.
    pub fn write_blob_file(&self, digest: &Digest, dest: &mut std::fs::File) -> Result<u64> {
        if self.blobs.contains(digest) {
            let mut src = self.blobs.open(digest)?;
            return std::io::copy(&mut src, dest).at("copying", format!("blob {digest}"));
        }
        let rec = self.layer_record(digest)?;
        let n = layer::write_layer_file(&self.snapshot_source(digest, &rec)?, dest)?;
        match rec.size {
            Some(size) if size != n => Err(StoreError::Io {
                op: "making the layer from its snapshot",
                path: self.snapshot_dir(digest),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{n} bytes, the layer has {size}: the snapshot changed after the layer was built"
                    ),
                ),
            }),
            _ => Ok(n),
        }
    }

    /// The source layer `digest`'s tar is made from ([`Store::tree_source`]), or the error for
    /// a layer held only remotely ([`StoreError::LayerNotLocal`]) or not at all.
    fn snapshot_source(&self, digest: &Digest, rec: &LayerRecord) -> Result<LayerSource> {
        match (self.tree_source(digest, rec), &rec.remote) {
            (Some(source), _) => Ok(source),
            (None, Some(remote)) => Err(Store::not_local(digest, remote)),
            (None, None) => Err(StoreError::MissingBlob {
                digest: digest.clone(),
                in_archive: None,
            }),
        }
    }

    /// The source a snapshot-backed layer's tar is made from, when `rec` says the layer is
    /// kept that way and its snapshot is there.
    fn tree_source(&self, diff_id: &Digest, rec: &LayerRecord) -> Option<LayerSource> {
        let dir = self.snapshot_dir(diff_id);
        let form = rec.tree?;
        if !dir.is_dir() {
            return None;
        }
        Some(match form {
            TreeForm::Tree => LayerSource::Tree(dir),
            TreeForm::Upper => LayerSource::OverlayUpper(dir),
        })
    }

    /// The uncompressed size of a layer, when the store knows it.
    pub fn layer_size(&self, diff_id: &Digest) -> Option<u64> {
        self.layer_record(diff_id).ok()?.size
    }

    /// A layer's size as docker reports it: the bytes of file content it holds (file sizes plus
    /// symlink target lengths, whiteouts excluded). Computed from the tar headers once, then remembered.
    pub fn layer_content_size(&self, diff_id: &Digest) -> Result<u64> {
        let rec = self.layer_record(diff_id)?;
        if let Some(n) = rec.content_size {
            return Ok(n);
        }
        let mut total = 0u64;
        let mut ar = tar::Archive::new(self.layer_reader(diff_id)?);
        let what = || format!("layer {diff_id}");
        for e in ar.entries().at("reading", what())? {
            let e = e.at("reading", what())?;
            let is_whiteout = e
                .path_bytes()
                .rsplit(|b| *b == b'/')
                .find(|c| !c.is_empty())
                .is_some_and(|name| name.starts_with(crate::layer::WHITEOUT_PREFIX.as_bytes()));
            // Docker sums what `lstat` reports for files and symlinks (a symlink's size is its
            // target's length); directories, hardlinks and whiteouts count nothing.
            if !is_whiteout {
                total += match e.header().entry_type() {
                    tar::EntryType::Symlink => e.link_name_bytes().map_or(0, |l| l.len() as u64),
                    _ => e.header().size().unwrap_or(0),
                };
            }
        }
        self.update_layer_record(diff_id, |rec| {
            rec.content_size = Some(total);
            true
        })?;
        Ok(total)
    }

    /// An image's size as docker reports it: the file content of its layers. A layer held
    /// only remotely (not read yet) counts its uncompressed size.
    pub fn image_size(&self, image: &Image) -> u64 {
        let layers = image.diff_ids().unwrap_or_default();
        let known: Option<u64> = layers
            .iter()
            .map(|d| {
                self.layer_content_size(d)
                    .ok()
                    .or_else(|| self.remote_layer(d).ok().flatten().and(self.layer_size(d)))
            })
            .sum();
        known.unwrap_or_else(|| image.size())
    }

    /// Whether the store holds layer `diff_id` in some form [`Store::layer_reader`] reads:
    /// a compressed or uncompressed blob, or its snapshot.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        let Ok(rec) = self.layer_record(diff_id) else {
            return false;
        };
        [Compression::None, Compression::Zstd, Compression::Gzip]
            .iter()
            .any(|c| {
                rec.blobs
                    .get(c.as_str())
                    .is_some_and(|b| self.blobs.contains(&b.digest))
            })
            || self.blobs.contains(diff_id)
            || self.tree_source(diff_id, &rec).is_some()
    }

    /// The uncompressed tar of a layer, from whichever form the store holds.
    pub fn layer_reader(&self, diff_id: &Digest) -> Result<Box<dyn Read>> {
        let rec = self.layer_record(diff_id)?;
        for c in [Compression::None, Compression::Zstd, Compression::Gzip] {
            if let Some(b) = rec.blobs.get(c.as_str())
                && self.blobs.contains(&b.digest)
            {
                let f = self.blobs.open(&b.digest)?;
                let r = crate::compress::decoder(c, std::io::BufReader::with_capacity(1 << 20, f))
                    .at("opening", self.blobs.path(&b.digest))?;
                return Ok(r);
            }
        }
        // An uncompressed layer blob is its own diffID.
        if self.blobs.contains(diff_id) {
            return Ok(Box::new(self.blobs.open(diff_id)?));
        }
        let source = self.snapshot_source(diff_id, &rec)?;
        tree_reader(source, diff_id, true).map(|r| r as Box<dyn Read>)
    }

    /// The blob holding layer `diff_id` in `compression`, creating and remembering it if needed
    /// (so a second push or save never compresses twice). Returns digest and size.
    pub fn compressed_layer(
        &self,
        diff_id: &Digest,
        compression: Compression,
    ) -> Result<(Digest, u64)> {
        let _hold = self.hold()?;
        if let Some(known) = self.layer_blob(diff_id, compression)? {
            return Ok(known);
        }
        let mut src = self.layer_reader(diff_id)?;
        let writer = self.blobs.writer(Algorithm::Sha256)?;
        let shared = SharedWriter(std::rc::Rc::new(std::cell::RefCell::new(Some(writer))));
        let mut enc = crate::compress::encoder(compression, shared.clone())
            .at("compressing layer", diff_id.to_string())?;
        let mut hasher = rbuild_oci::Hasher::new(diff_id.algorithm());
        let usize_ = crate::blobs::copy(&mut src, &mut TeeHash(&mut enc, &mut hasher))
            .at("compressing layer", diff_id.to_string())?;
        enc.finish().at("compressing layer", diff_id.to_string())?;
        let actual = hasher.finish();
        if actual != *diff_id {
            return Err(StoreError::DigestMismatch {
                what: format!("layer {diff_id}"),
                expected: diff_id.clone(),
                actual,
            });
        }
        let writer = shared.0.borrow_mut().take().expect("writer present");
        let (digest, size) = writer.commit(None, "compressed layer")?;
        self.record_layer_blob(diff_id, compression, &digest, size, Some(usize_))?;
        Ok((digest, size))
    }

    /// Create a layer from a directory diff and store it uncompressed. Hold [`Store::hold`]
    /// until the image using it is committed.
    pub fn add_layer(&self, source: &LayerSource, opts: &CreateOptions) -> Result<LayerInfo> {
        let mut w = self.blobs.writer(Algorithm::Sha256)?;
        layer::write_layer(source, &mut w, opts)?;
        let (diff_id, size) = w.commit(None, "layer")?;
        self.record_layer_blob(&diff_id, Compression::None, &diff_id, size, Some(size))?;
        Ok(LayerInfo { diff_id, size })
    }

    /// Make a layer of directory `source` (a [`LayerSource::Tree`] or
    /// [`LayerSource::OverlayUpper`]) without writing its tar: the tar is only hashed, the
    /// directory becomes the layer's snapshot (renamed into place, so it must be on the store's
    /// filesystem and nothing may change it afterwards), and the tar is made again from the
    /// snapshot, byte for byte, whenever its bytes are needed (save, push, compression). As
    /// docker's overlay2 keeps layers as directories. A layer the store already holds as a
    /// blob keeps it. Returns the layer and its snapshot. Hold [`Store::hold`] until the image
    /// using it is committed.
    pub fn add_layer_from_dir(&self, source: &LayerSource) -> Result<(LayerInfo, PathBuf)> {
        if let LayerSource::Diff { .. } = source {
            let info = self.add_layer(source, &CreateOptions::default())?;
            let snapshot = self.snapshot(&info.diff_id)?;
            return Ok((info, snapshot));
        }
        let info = hash_layer_dir(source, &mut layer::ReadFiles)?;
        let snapshot = self.adopt_layer_dir(source, &info)?;
        Ok((info, snapshot))
    }

    /// The second half of [`Store::add_layer_from_dir`]: make directory `source`, hashed as
    /// `info` by [`hash_layer_dir`] (on any thread, while the directory was not changed), the
    /// layer's snapshot. Returns the snapshot. Hold [`Store::hold`] until the image using it is
    /// committed.
    ///
    /// # Panics
    /// If `source` is a [`LayerSource::Diff`].
    pub fn adopt_layer_dir(&self, source: &LayerSource, info: &LayerInfo) -> Result<PathBuf> {
        let (dir, form) = match source {
            LayerSource::Tree(d) => (d, TreeForm::Tree),
            LayerSource::OverlayUpper(d) => (d, TreeForm::Upper),
            LayerSource::Diff { .. } => panic!("adopt_layer_dir takes a directory, not a diff"),
        };
        let LayerInfo { diff_id, size } = info;
        let snapshot = self.adopt_snapshot(diff_id, dir)?;
        // A layer with any blob keeps reading that. Without one, the snapshot was adopted from
        // a tree with this very tar (here or by a concurrent build): it gives the bytes again.
        self.update_layer_record(diff_id, |rec| {
            let blobless = rec.blobs.is_empty() && !self.blobs.contains(diff_id);
            if blobless {
                rec.tree = Some(form);
                rec.size = Some(*size);
            }
            blobless
        })?;
        Ok(snapshot)
    }

    /// Store an uncompressed layer tar from a stream (`rbuild import`).
    pub fn add_layer_tar(&self, tar: impl Read, what: &str) -> Result<LayerInfo> {
        let (diff_id, size) = self.blobs.ingest(tar, None, what)?;
        self.record_layer_blob(&diff_id, Compression::None, &diff_id, size, Some(size))?;
        Ok(LayerInfo { diff_id, size })
    }

    /// Write `config` and a manifest of `layers` (uncompressed, in order) and name the image.
    /// The config's `rootfs.diff_ids` must list the same layers. A layer the store knows only
    /// remotely ([`Store::record_remote_layer`]) is listed as well without being fetched: by
    /// its diffID and size when the size is known (the manifest a build that has the bytes
    /// writes), else by its remote blob.
    pub fn commit_image(&self, config: &[u8], names: &[Reference]) -> Result<Image> {
        let cfg = manifest::decode_config(config).map_err(|source| StoreError::Manifest {
            what: "new image config".into(),
            source,
        })?;
        let diff_ids = manifest::diff_ids(&cfg).map_err(|source| StoreError::Digest {
            what: "new image config".into(),
            source,
        })?;
        let mut layers = Vec::new();
        for d in &diff_ids {
            if self.layer_blob(d, Compression::None)?.is_none()
                && let Some(remote) = self.remote_layer(d)?
            {
                layers.push(match self.layer_size(d) {
                    Some(size) => manifest::descriptor(MediaType::OciLayer, d, size),
                    None => {
                        let media_type =
                            remote.media_type.parse().unwrap_or(MediaType::OciLayerGzip);
                        manifest::descriptor(media_type, &remote.blob, remote.size)
                    }
                });
                continue;
            }
            let (digest, size) = self.compressed_layer(d, Compression::None)?;
            layers.push(manifest::descriptor(MediaType::OciLayer, &digest, size));
        }
        let config_digest = self.blobs.put(config, None)?;
        let man = manifest_for(
            manifest::descriptor(MediaType::OciConfig, &config_digest, config.len() as u64),
            layers,
        );
        let man_bytes = serde_json::to_vec(&man).expect("a manifest serializes");
        let man_digest = self.blobs.put(&man_bytes, None)?;
        self.name_image(&man_digest, names)?;
        self.image(&man_digest)
    }

    fn snapshot_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("snapshots")
            .join(diff_id.algorithm().as_str())
            .join(diff_id.hex())
    }

    /// The snapshot directory of layer `diff_id` when it is already unpacked.
    pub fn existing_snapshot(&self, diff_id: &Digest) -> Option<PathBuf> {
        let dir = self.snapshot_dir(diff_id);
        dir.is_dir().then_some(dir)
    }

    /// The unpacked snapshot directory of layer `diff_id`, unpacked on first use. Its whiteouts
    /// are in overlay form, so it can serve directly as an overlay lower directory.
    pub fn snapshot(&self, diff_id: &Digest) -> Result<PathBuf> {
        let dest = self.snapshot_dir(diff_id);
        if dest.is_dir() {
            return Ok(dest);
        }
        let _hold = self.hold()?;
        let tmp = tempfile::Builder::new()
            .prefix("snapshot-")
            .tempdir_in(self.tmp_dir())
            .at("creating snapshot in", self.tmp_dir())?;
        let opts = ApplyOptions {
            whiteouts: Whiteouts::Overlay,
            ..ApplyOptions::default()
        };
        self.apply(diff_id, tmp.path(), &opts)?;
        let staged = tmp.keep();
        match fs::rename(&staged, &dest) {
            Ok(()) => Ok(dest),
            // Another process unpacked it first: use theirs.
            Err(_) if dest.is_dir() => {
                let _ = fs::remove_dir_all(&staged);
                Ok(dest)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staged);
                Err(e).at("renaming snapshot into", dest)
            }
        }
    }

    /// Make `dir` the snapshot of layer `diff_id` by renaming it into place (same filesystem),
    /// instead of unpacking the layer again: for a directory that holds exactly the layer's
    /// content in overlay form, such as the upper directory the layer was made from. When the
    /// snapshot already exists `dir` is removed and the existing one returned.
    pub fn adopt_snapshot(&self, diff_id: &Digest, dir: &Path) -> Result<PathBuf> {
        let dest = self.snapshot_dir(diff_id);
        if dest.is_dir() {
            let _ = fs::remove_dir_all(dir);
            return Ok(dest);
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).at("creating", parent)?;
        }
        match fs::rename(dir, &dest) {
            Ok(()) => Ok(dest),
            Err(_) if dest.is_dir() => {
                let _ = fs::remove_dir_all(dir);
                Ok(dest)
            }
            Err(e) => Err(e).at("renaming snapshot into", dest),
        }
    }

    /// Apply every layer of `image` onto `target` with whiteouts deleting (a flat rootfs).
    pub fn unpack(&self, image: &Image, target: &Path) -> Result<()> {
        for d in image.diff_ids()? {
            self.apply(&d, target, &ApplyOptions::default())?;
        }
        Ok(())
    }

    /// Apply layer `diff_id` onto `target`: straight from its uncompressed blob when the store
    /// has one (no copy), else decompressed through a spool file in `tmp/`.
    pub fn apply(&self, diff_id: &Digest, target: &Path, opts: &ApplyOptions) -> Result<()> {
        let name = diff_id.to_string();
        let rec = self.layer_record(diff_id)?;
        let plain = rec
            .blobs
            .get(Compression::None.as_str())
            .map_or(diff_id, |b| &b.digest);
        if self.blobs.contains(plain) {
            let mut f = self.blobs.open(plain)?;
            return layer::apply_layer_file(&mut f, target, opts, &name);
        }
        let r = self.layer_reader(diff_id)?;
        layer::apply_layer(r, target, opts, &name, &self.tmp_dir())
    }
}

/// The layer a directory ([`LayerSource::Tree`] or [`LayerSource::OverlayUpper`]) makes: its
/// tar is made and hashed, not written, with the content of some files from `contents`
/// ([`layer::ReadFiles`] reads them all from the directory). Needs no store, so a build can
/// hash one step's layer on another thread while its next step runs;
/// [`Store::adopt_layer_dir`] then stores it.
pub fn hash_layer_dir(
    source: &LayerSource,
    contents: &mut dyn layer::FileContents,
) -> Result<LayerInfo> {
    let what = match source {
        LayerSource::Tree(d) | LayerSource::OverlayUpper(d) => d.display().to_string(),
        LayerSource::Diff { changed, .. } => changed.display().to_string(),
    };
    let mut sink = ThreadedHash::new().at("starting to hash layer", what.clone())?;
    layer::write_layer_with(source, &mut sink, &CreateOptions::default(), contents)?;
    let (diff_id, size) = sink.finish().at("hashing layer", what)?;
    Ok(LayerInfo { diff_id, size })
}

/// How much [`ThreadedHash`] hands to its hashing thread at a time.
const HASH_CHUNK: usize = 1 << 20;

/// Hashes (sha256) and counts what is written, keeping nothing, on a second thread: making a
/// tar (reading files into memory) and hashing it then use a core each.
struct ThreadedHash {
    chunk: Vec<u8>,
    full: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    empty: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Chunks that may still be allocated (the rest are in flight and come back).
    spare: usize,
    hashing: Option<std::thread::JoinHandle<(Digest, u64)>>,
}

impl ThreadedHash {
    fn new() -> std::io::Result<ThreadedHash> {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let hashing = std::thread::Builder::new()
            .name("rbuild-sha256".into())
            .spawn(move || {
                let mut hasher = rbuild_oci::Hasher::new(Algorithm::Sha256);
                let mut size = 0u64;
                for chunk in full_rx {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    let _ = empty_tx.send(chunk);
                }
                (hasher.finish(), size)
            })?;
        Ok(ThreadedHash {
            chunk: Vec::with_capacity(HASH_CHUNK),
            full: Some(full_tx),
            empty: empty_rx,
            spare: 4,
            hashing: Some(hashing),
        })
    }

    /// Hand the current chunk over and take an empty one.
    fn hand_over(&mut self) -> std::io::Result<()> {
        let gone = || std::io::Error::other("the hashing thread stopped");
        let mut next = match self.empty.try_recv() {
            Ok(c) => c,
            Err(_) if self.spare > 0 => {
                self.spare -= 1;
                Vec::with_capacity(HASH_CHUNK)
            }
            Err(_) => self.empty.recv().map_err(|_| gone())?,
        };
        next.clear();
        let full = std::mem::replace(&mut self.chunk, next);
        let tx = self.full.as_ref().ok_or_else(gone)?;
        tx.send(full).map_err(|_| gone())
    }

    /// The digest and size of everything written.
    fn finish(mut self) -> std::io::Result<(Digest, u64)> {
        if !self.chunk.is_empty() {
            self.hand_over()?;
        }
        drop(self.full.take());
        let hashing = self.hashing.take().expect("hashing runs until finish");
        hashing
            .join()
            .map_err(|_| std::io::Error::other("the hashing thread panicked"))
    }
}

impl std::io::Write for ThreadedHash {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(HASH_CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&b[..n]);
        if self.chunk.len() == HASH_CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ThreadedHash {
    fn drop(&mut self) {
        // Unfinished (an error while making the tar): stop the thread.
        drop(self.full.take());
        if let Some(h) = self.hashing.take() {
            let _ = h.join();
        }
    }
}

/// The tar of `source` made on a thread and read through a pipe, checked against `digest`
/// when it ends (`verify`): a snapshot changed since its layer was made is an error, never
/// wrong bytes passed on as the layer. Either way, a failure to make the tar is an error at
/// its end.
fn tree_reader(source: LayerSource, digest: &Digest, verify: bool) -> Result<Box<dyn Read + Send>> {
    let what = format!("layer {digest}");
    let (r, w) = std::io::pipe().at("creating a pipe for", what.clone())?;
    // A larger pipe means fewer switches between the two threads; a refusal costs only speed.
    // SAFETY: fcntl on a pipe descriptor this function owns.
    unsafe {
        nix::libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&w),
            nix::libc::F_SETPIPE_SZ,
            1 << 20,
        )
    };
    let failure = std::sync::Arc::new(std::sync::Mutex::new(None));
    let told = failure.clone();
    std::thread::spawn(move || {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, w);
        if let Err(e) = layer::write_layer(&source, &mut out, &CreateOptions::default()) {
            *told.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        // Only now may the reader see the end: the failure, if any, is recorded.
        drop(out);
    });
    Ok(Box::new(Verified {
        inner: r,
        hasher: verify.then(|| rbuild_oci::Hasher::new(digest.algorithm())),
        ended: false,
        expected: digest.clone(),
        failure,
    }))
}

/// A reader that fails at the end if its maker did, and, with a `hasher`, hashes what passes
/// and fails at the end unless it was `expected`.
struct Verified<R> {
    inner: R,
    hasher: Option<rbuild_oci::Hasher>,
    ended: bool,
    expected: Digest,
    failure: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            return Ok(n);
        }
        if self.ended {
            return Ok(0);
        }
        self.ended = true;
        let what = &self.expected;
        if let Some(e) = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(std::io::Error::other(format!(
                "making layer {what} from its snapshot: {e}"
            )));
        }
        let Some(h) = self.hasher.take() else {
            return Ok(0);
        };
        let actual = h.finish();
        if actual != *what {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "layer {what} made from its snapshot has digest {actual}: the snapshot changed after the layer was built"
                ),
            ));
        }
        Ok(0)
    }
}
