//! The store: root directory layout, image index, layer records, snapshots.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rbuild_oci::manifest::{self, ImageManifest};
use rbuild_oci::{Algorithm, Compression, Digest, MediaType, Reference};

use crate::blobs::{Blobs, publish};
use crate::error::{IoContext, Result, StoreError};
use crate::image::Image;
use crate::index::ImageTable;
use crate::layer::{self, ApplyOptions, CreateOptions, LayerInfo, LayerSource, Whiteouts};
use crate::lock::Lock;

/// The default store root: `/var/lib/rbuild` for root, `$XDG_DATA_HOME/rbuild`
/// (`~/.local/share/rbuild`) otherwise.
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/rbuild");
    }
    match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x).join("rbuild"),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
            PathBuf::from(home).join(".local/share/rbuild")
        }
    }
}

/// A local image store rooted at a directory. Cheap to open; several handles and processes may
/// use one root at once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    blobs: Blobs,
}

/// Per-layer record: where each form of a layer lives. `layers/<alg>/<hex>.json`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct LayerRecord {
    /// Uncompressed size, when known.
    size: Option<u64>,
    /// Compression (`none`, `gzip`, `zstd`) → blob.
    blobs: BTreeMap<String, BlobRef>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct BlobRef {
    digest: Digest,
    size: u64,
}

/// What [`Store::remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// A name was removed; the image still has others.
    Untagged(Reference),
    /// The image itself was deleted (with the names it had).
    Deleted {
        /// Its ID (config digest).
        id: Digest,
        /// The names it had.
        untagged: Vec<Reference>,
    },
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for sub in [
            "blobs/sha256",
            "blobs/sha512",
            "layers/sha256",
            "layers/sha512",
            "snapshots/sha256",
            "snapshots/sha512",
            "tmp",
            "locks",
        ] {
            let p = root.join(sub);
            fs::create_dir_all(&p).at("creating store directory", &p)?;
        }
        let blobs = Blobs::new(root.join("blobs"), root.join("tmp"));
        Ok(Store { root, blobs })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob store.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The staging directory (same filesystem as the blobs).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Keep `prune`/`rmi` garbage collection away while content is being added; hold the
    /// returned lock from the first blob written until the image is named.
    pub fn hold(&self) -> Result<Lock> {
        Lock::shared(&self.root.join("locks/gc"))
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    /// The image index as it is now (a consistent snapshot; no lock needed to read).
    pub fn table(&self) -> Result<ImageTable> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ImageTable::default()),
            Err(e) => Err(e).at("reading", path),
        }
    }

    /// Change the index under the exclusive index lock; the new file replaces the old atomically.
    pub fn update_table<R>(&self, f: impl FnOnce(&mut ImageTable) -> Result<R>) -> Result<R> {
        let _lock = Lock::exclusive(&self.root.join("locks/index"))?;
        let mut table = self.table()?;
        let r = f(&mut table)?;
        let bytes = serde_json::to_vec_pretty(&table).expect("the index serializes");
        write_atomic(&self.tmp_dir(), &self.index_path(), &bytes)?;
        Ok(r)
    }

    /// Load the image whose manifest is `manifest_digest`.
    pub fn image(&self, manifest_digest: &Digest) -> Result<Image> {
        let table = self.table()?;
        let entry = table
            .images
            .get(manifest_digest)
            .cloned()
            .unwrap_or_default();
        let bytes = self.blobs.read(manifest_digest)?;
        let manifest =
            manifest::decode_manifest(&bytes).map_err(|source| StoreError::Manifest {
                what: format!("manifest {manifest_digest}"),
                source,
            })?;
        let id = manifest::descriptor_digest(manifest.config()).map_err(|source| {
            StoreError::Digest {
                what: format!("manifest {manifest_digest}"),
                source,
            }
        })?;
        let config_bytes = self.blobs.read(&id)?;
        let config =
            manifest::decode_config(&config_bytes).map_err(|source| StoreError::Manifest {
                what: format!("config {id}"),
                source,
            })?;
        Ok(Image {
            manifest_digest: manifest_digest.clone(),
            manifest,
            id,
            config,
            config_bytes,
            names: entry.names,
            added: entry.added,
        })
    }

    /// Every image in the store.
    pub fn images(&self) -> Result<Vec<Image>> {
        self.table()?.images.keys().map(|d| self.image(d)).collect()
    }

    /// Find an image by name (`alpine`, `alpine:3`), `name@digest`, full or short image ID,
    /// or manifest digest — docker's order: names first, then IDs.
    pub fn resolve(&self, what: &str) -> Result<Image> {
        let d = self.resolve_manifest(what)?;
        self.image(&d)
    }

    fn resolve_manifest(&self, what: &str) -> Result<Digest> {
        let table = self.table()?;
        if let Ok(r) = what.parse::<Reference>() {
            if let Some(d) = r.digest() {
                if table.images.contains_key(d) {
                    return Ok(d.clone());
                }
            } else if let Some(d) = table.find_name(&r) {
                return Ok(d.clone());
            }
        }
        let hex = what.strip_prefix("sha256:").unwrap_or(what);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut hits: Vec<Digest> = Vec::new();
            for m in table.images.keys() {
                let id = self.image(m).map(|i| i.id).ok();
                let matches = m.hex().starts_with(hex)
                    || id.as_ref().is_some_and(|i| i.hex().starts_with(hex));
                if matches {
                    hits.push(m.clone());
                }
            }
            // Several manifests may share one config (same image ID): that is still one image ID.
            let ids: HashSet<Digest> = hits
                .iter()
                .filter_map(|m| self.image(m).ok().map(|i| i.id))
                .collect();
            match (hits.len(), ids.len()) {
                (0, _) => {}
                (1, _) => return Ok(hits.remove(0)),
                (_, 1) => return Ok(hits.remove(0)),
                _ => return Err(StoreError::AmbiguousId(what.to_string())),
            }
        }
        Err(StoreError::ImageNotFound(what.to_string()))
    }

    /// Name an image (`rbuild tag`), moving the name off any other image.
    pub fn tag(&self, image: &Image, name: &Reference) -> Result<()> {
        let name = match name.digest() {
            Some(_) => {
                return Err(StoreError::BadArchive {
                    archive: name.to_string(),
                    problem: "cannot tag with a digest reference".into(),
                });
            }
            None => name.clone(),
        };
        self.update_table(|t| {
            t.set_name(&image.manifest_digest, name, now());
            Ok(())
        })
    }

    /// Remove a name or an image (`rbuild rmi`). A name is untagged; the image goes when its
    /// last name goes. An ID removes the image only if it has at most one name, unless `force`.
    /// Unreferenced blobs and snapshots are then collected.
    pub fn remove(&self, what: &str, force: bool) -> Result<RemoveOutcome> {
        let manifest = self.resolve_manifest(what)?;
        let image = self.image(&manifest)?;
        let by_name = what
            .parse::<Reference>()
            .ok()
            .filter(|r| r.digest().is_none() && image.names.contains(r));
        let outcome = self.update_table(|t| {
            if let Some(name) = &by_name {
                t.remove_name(name);
                let left = t.images.get(&manifest).map_or(0, |e| e.names.len());
                if left > 0 {
                    return Ok(RemoveOutcome::Untagged(name.clone()));
                }
                t.images.remove(&manifest);
                return Ok(RemoveOutcome::Deleted {
                    id: image.id.clone(),
                    untagged: vec![name.clone()],
                });
            }
            let names = t
                .images
                .get(&manifest)
                .map(|e| e.names.clone())
                .unwrap_or_default();
            if names.len() > 1 && !force {
                return Err(StoreError::ImageInUse {
                    image: image.id.short().to_string(),
                    count: names.len(),
                });
            }
            t.images.remove(&manifest);
            Ok(RemoveOutcome::Deleted {
                id: image.id.clone(),
                untagged: names,
            })
        })?;
        if matches!(outcome, RemoveOutcome::Deleted { .. }) {
            self.collect_garbage()?;
        }
        Ok(outcome)
    }

    /// `rbuild image prune`: delete dangling (unnamed) images, then everything no image refers
    /// to (blobs, layer records, snapshots, stale staging files). Returns the deleted image IDs.
    pub fn prune(&self) -> Result<Vec<Digest>> {
        let dangling = self.update_table(|t| {
            let gone: Vec<Digest> = t
                .images
                .iter()
                .filter(|(_, e)| e.names.is_empty())
                .map(|(d, _)| d.clone())
                .collect();
            for d in &gone {
                t.images.remove(d);
            }
            Ok(gone)
        })?;
        let ids = dangling
            .iter()
            .filter_map(|m| self.blobs.read(m).ok())
            .filter_map(|b| manifest::decode_manifest(&b).ok())
            .filter_map(|m| manifest::descriptor_digest(m.config()).ok())
            .collect();
        self.collect_garbage()?;
        Ok(ids)
    }

    /// Delete blobs, layer records and snapshots no image refers to. Waits for writers
    /// holding [`Store::hold`].
    pub fn collect_garbage(&self) -> Result<()> {
        let _gc = Lock::exclusive(&self.root.join("locks/gc"))?;
        let table = self.table()?;
        let mut keep_blobs: HashSet<Digest> = HashSet::new();
        let mut keep_layers: HashSet<Digest> = HashSet::new();
        for m in table.images.keys() {
            keep_blobs.insert(m.clone());
            let Ok(bytes) = self.blobs.read(m) else {
                continue;
            };
            let Ok(man) = manifest::decode_manifest(&bytes) else {
                continue;
            };
            for d in std::iter::once(man.config()).chain(man.layers()) {
                if let Ok(d) = manifest::descriptor_digest(d) {
                    keep_blobs.insert(d);
                }
            }
            if let Ok(cfg) = manifest::descriptor_digest(man.config())
                .ok()
                .and_then(|c| self.blobs.read(&c).ok())
                .ok_or(())
                .and_then(|b| manifest::decode_config(&b).map_err(|_| ()))
            {
                keep_layers.extend(manifest::diff_ids(&cfg).unwrap_or_default());
            }
        }
        // Every remembered form of a kept layer stays (a later push or save reuses it).
        for l in &keep_layers {
            if let Ok(rec) = self.layer_record(l) {
                keep_blobs.extend(rec.blobs.values().map(|b| b.digest.clone()));
            }
        }
        for b in self.blobs.list()? {
            if !keep_blobs.contains(&b) {
                self.blobs.remove(&b)?;
            }
        }
        for alg in ["sha256", "sha512"] {
            for (dir, suffix) in [("layers", ".json"), ("snapshots", "")] {
                let d = self.root.join(dir).join(alg);
                let Ok(rd) = fs::read_dir(&d) else { continue };
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let hex = name.strip_suffix(suffix).unwrap_or(&name);
                    let keep = format!("{alg}:{hex}")
                        .parse::<Digest>()
                        .is_ok_and(|dg| keep_layers.contains(&dg));
                    if !keep {
                        remove_path(&e.path())?;
                    }
                }
            }
        }
        // No writer holds the gc lock now, so staging files are leftovers of dead processes.
        let tmp = self.tmp_dir();
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten() {
                remove_path(&e.path())?;
            }
        }
        Ok(())
    }

    fn layer_record_path(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(diff_id.algorithm().as_str())
            .join(format!("{}.json", diff_id.hex()))
    }

    fn layer_record(&self, diff_id: &Digest) -> Result<LayerRecord> {
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
        let _lock = Lock::exclusive(&self.root.join("locks/index"))?;
        let mut rec = self.layer_record(diff_id)?;
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
        let bytes = serde_json::to_vec(&rec).expect("a layer record serializes");
        write_atomic(&self.tmp_dir(), &self.layer_record_path(diff_id), &bytes)
    }

    /// The uncompressed size of a layer, when the store knows it.
    pub fn layer_size(&self, diff_id: &Digest) -> Option<u64> {
        self.layer_record(diff_id).ok()?.size
    }

    /// An image's size as docker reports it: the sum of its uncompressed layers.
    pub fn image_size(&self, image: &Image) -> u64 {
        let layers = image.diff_ids().unwrap_or_default();
        let known: Option<u64> = layers.iter().map(|d| self.layer_size(d)).sum();
        known.unwrap_or_else(|| image.size())
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
        Err(StoreError::MissingBlob {
            digest: diff_id.clone(),
            in_archive: None,
        })
    }

    /// The blob holding layer `diff_id` in `compression`, creating and remembering it if needed
    /// (so a second push or save never compresses twice). Returns digest and size.
    pub fn compressed_layer(
        &self,
        diff_id: &Digest,
        compression: Compression,
    ) -> Result<(Digest, u64)> {
        let _hold = self.hold()?;
        let rec = self.layer_record(diff_id)?;
        if let Some(b) = rec.blobs.get(compression.as_str())
            && self.blobs.contains(&b.digest)
        {
            return Ok((b.digest.clone(), b.size));
        }
        if compression == Compression::None && self.blobs.contains(diff_id) {
            let size = self.blobs.size(diff_id)?;
            return Ok((diff_id.clone(), size));
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

    /// Store an uncompressed layer tar from a stream (`rbuild import`).
    pub fn add_layer_tar(&self, tar: impl Read, what: &str) -> Result<LayerInfo> {
        let (diff_id, size) = self.blobs.ingest(tar, None, what)?;
        self.record_layer_blob(&diff_id, Compression::None, &diff_id, size, Some(size))?;
        Ok(LayerInfo { diff_id, size })
    }

    /// Write `config` and a manifest of `layers` (uncompressed, in order) and name the image.
    /// The config's `rootfs.diff_ids` must list the same layers.
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

    /// Record `manifest` as an image with `names` (which move off other images).
    pub fn name_image(&self, manifest: &Digest, names: &[Reference]) -> Result<()> {
        let t = now();
        self.update_table(|table| {
            table.insert(manifest, t);
            for n in names {
                table.set_name(manifest, n.clone(), t);
            }
            Ok(())
        })
    }

    /// The unpacked snapshot directory of layer `diff_id`, unpacked on first use. Its whiteouts
    /// are in overlay form, so it can serve directly as an overlay lower directory.
    pub fn snapshot(&self, diff_id: &Digest) -> Result<PathBuf> {
        let dest = self
            .root
            .join("snapshots")
            .join(diff_id.algorithm().as_str())
            .join(diff_id.hex());
        if dest.is_dir() {
            return Ok(dest);
        }
        let _hold = self.hold()?;
        let tmp = tempfile::Builder::new()
            .prefix("snapshot-")
            .tempdir_in(self.tmp_dir())
            .at("creating snapshot in", self.tmp_dir())?;
        let reader = self.layer_reader(diff_id)?;
        let opts = ApplyOptions {
            whiteouts: Whiteouts::Overlay,
            ..ApplyOptions::default()
        };
        layer::apply_layer(
            reader,
            tmp.path(),
            &opts,
            &diff_id.to_string(),
            &self.tmp_dir(),
        )?;
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

    /// Apply every layer of `image` onto `target` with whiteouts deleting (a flat rootfs).
    pub fn unpack(&self, image: &Image, target: &Path) -> Result<()> {
        for d in image.diff_ids()? {
            let r = self.layer_reader(&d)?;
            layer::apply_layer(
                r,
                target,
                &ApplyOptions::default(),
                &d.to_string(),
                &self.tmp_dir(),
            )?;
        }
        Ok(())
    }
}

/// An OCI manifest for `config` and `layers`.
pub(crate) fn manifest_for(
    config: rbuild_oci::Descriptor,
    layers: Vec<rbuild_oci::Descriptor>,
) -> ImageManifest {
    rbuild_oci::oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(rbuild_oci::oci_spec::image::MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .expect("all manifest fields are set")
}

/// Replace `dest` with `bytes` atomically (temp file, fsync, rename, fsync dir).
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut f =
        tempfile::NamedTempFile::new_in(tmp_dir).at("creating temporary file in", tmp_dir)?;
    f.write_all(bytes).at("writing", f.path().to_path_buf())?;
    f.as_file()
        .sync_all()
        .at("syncing", f.path().to_path_buf())?;
    let (_, path) = f.keep().map_err(|e| e.error).at("keeping", tmp_dir)?;
    publish(&path, dest).inspect_err(|_| {
        let _ = fs::remove_file(&path);
    })
}

fn remove_path(p: &Path) -> Result<()> {
    let md = fs::symlink_metadata(p).at("reading", p)?;
    if md.is_dir() {
        fs::remove_dir_all(p).at("removing", p)
    } else {
        fs::remove_file(p).at("removing", p)
    }
}

#[derive(Clone)]
struct SharedWriter(std::rc::Rc<std::cell::RefCell<Option<crate::BlobWriter>>>);

impl Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .borrow_mut()
            .as_mut()
            .expect("writer present")
            .write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .borrow_mut()
            .as_mut()
            .expect("writer present")
            .flush()
    }
}

/// Write to `.0` and hash into `.1`.
pub(crate) struct TeeHash<'a, W: Write + ?Sized>(pub &'a mut W, pub &'a mut rbuild_oci::Hasher);

impl<W: Write + ?Sized> Write for TeeHash<'_, W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(b)?;
        self.1.update(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
