//! The store: root directory layout, image index, resolving and naming images.

mod gc;
mod layers;
mod lists;
mod remote;
pub use gc::GcLock;
pub use layers::hash_layer_dir;
pub use remote::{LayerLocation, RemoteLayer};

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rbuild_oci::manifest::{self, ImageManifest};
use rbuild_oci::{Digest, Reference};

use crate::blobs::{Blobs, publish};
use crate::error::{IoContext, Result, StoreError};
use crate::image::Image;
use crate::index::ImageTable;
use crate::lock::Lock;

/// The bytes of the regular files under `dir`, not following symlinks; the count stops early
/// once it passes `limit`.
pub fn dir_size(dir: &Path, limit: u64) -> u64 {
    let mut total = 0;
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if let Ok(m) = e.metadata()
            && m.is_file()
        {
            total += m.len();
            if total > limit {
                break;
            }
        }
    }
    total
}

/// The default store root: `/var/lib/rbuild` for root, `$XDG_DATA_HOME/rbuild`
/// (`~/.local/share/rbuild`) otherwise, also in rootless mode's user namespace.
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() && !crate::userns::in_user_namespace() {
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
    pub(crate) root: PathBuf,
    pub(crate) blobs: Blobs,
}

/// Per-layer record: where each form of a layer lives. `layers/<alg>/<hex>.json`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct LayerRecord {
    /// Uncompressed size, when known.
    pub(crate) size: Option<u64>,
    /// Bytes of file content in the layer (what docker reports as a layer's size), when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content_size: Option<u64>,
    /// Compression (`none`, `gzip`, `zstd`) → blob.
    pub(crate) blobs: BTreeMap<String, BlobRef>,
    /// Set for a layer made by [`Store::add_layer_from_dir`]: its uncompressed tar is not kept
    /// as a blob but made again, byte for byte, from its snapshot directory read as this kind
    /// of source, when something needs the bytes (checked against the diffID as it goes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tree: Option<TreeForm>,
    /// Where the layer can be fetched from when the store holds none of its forms yet (a
    /// layer of a lazily imported build cache): see [`Store::remote_layer`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remote: Option<RemoteLayer>,
}

/// How a snapshot-backed layer's tar is made from its snapshot directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TreeForm {
    /// [`crate::LayerSource::Tree`].
    Tree,
    /// [`crate::LayerSource::OverlayUpper`].
    Upper,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct BlobRef {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
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

pub(crate) fn now() -> u64 {
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
        let before = serde_json::to_vec_pretty(&table).expect("the index serializes");
        let r = f(&mut table)?;
        let bytes = serde_json::to_vec_pretty(&table).expect("the index serializes");
        // Naming an image that already has the name (a cached rebuild) writes nothing.
        if bytes != before {
            write_atomic(&self.tmp_dir(), &self.index_path(), &bytes)?;
        }
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
    /// or manifest digest — docker's order: names first, then IDs. A multi-platform image
    /// (an index) gives its image for this machine's platform.
    pub fn resolve(&self, what: &str) -> Result<Image> {
        self.resolve_platform(what, &rbuild_oci::Platform::host())
    }

    /// [`Store::resolve`] for single images only: an index is not looked at.
    pub(crate) fn resolve_image(&self, what: &str) -> Result<Image> {
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
        if let Some(list) = self.resolve_index(what)? {
            return self.remove_index(&list, what, force);
        }
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

    /// Remove every name of the image `manifest` but keep the image, dangling (`rmi -f` of
    /// an image a container uses). Returns the names removed.
    pub fn untag_all(&self, manifest: &Digest) -> Result<Vec<Reference>> {
        self.update_table(|t| {
            Ok(t.images
                .get_mut(manifest)
                .map(|e| std::mem::take(&mut e.names))
                .unwrap_or_default())
        })
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
    let tmp = write_synced_temp(tmp_dir, bytes)?;
    // On failure the temporary path removes its file.
    publish(&tmp, dest)?;
    // Renamed: nothing is left to remove.
    let _ = tmp.keep();
    Ok(())
}

/// `bytes` in a new temporary file in `tmp_dir`, synced: the first half of [`write_atomic`]
/// (removed when dropped unless renamed and kept).
pub(crate) fn write_synced_temp(tmp_dir: &Path, bytes: &[u8]) -> Result<tempfile::TempPath> {
    let mut f =
        tempfile::NamedTempFile::new_in(tmp_dir).at("creating temporary file in", tmp_dir)?;
    f.write_all(bytes).at("writing", f.path().to_path_buf())?;
    f.as_file()
        .sync_all()
        .at("syncing", f.path().to_path_buf())?;
    Ok(f.into_temp_path())
}

pub(crate) fn remove_path(p: &Path) -> Result<()> {
    let md = fs::symlink_metadata(p).at("reading", p)?;
    if md.is_dir() {
        fs::remove_dir_all(p).at("removing", p)
    } else {
        fs::remove_file(p).at("removing", p)
    }
}

#[derive(Clone)]
pub(crate) struct SharedWriter(std::rc::Rc<std::cell::RefCell<Option<crate::BlobWriter>>>);

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
