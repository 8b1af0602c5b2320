//! Reading docker-archive and OCI archives (tar, gzip'd or not, or an OCI layout directory).
//!
//! A tar stream is read once: every file is staged in the store's `tmp/` while being hashed.
//! Then everything is verified (digests, sizes, diffIDs, media types). Only when all of it is
//! good are the staged files renamed into place and the images named, so a bad archive leaves
//! the store as it was.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use rbuild_oci::manifest::{self, Descriptor};
use rbuild_oci::{Algorithm, Compression, Digest, Hasher, MediaType, Platform, Reference};

use crate::archive::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::error::{IoContext, Result, StoreError};
use crate::store::{Store, manifest_for};

/// Where an archive comes from.
pub enum LoadSource<'a> {
    /// A tar stream (file or stdin), plain or gzip/zstd-compressed; `name` is used in errors.
    Stream {
        /// The stream.
        reader: Box<dyn Read + 'a>,
        /// Its name (a path, or `stdin`).
        name: String,
    },
    /// An OCI image layout directory.
    Dir(PathBuf),
}

/// An image loaded into the store.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Manifest digest.
    pub manifest_digest: Digest,
    /// Image ID (config digest).
    pub id: Digest,
    /// Names given to it.
    pub names: Vec<Reference>,
}

/// A file of the archive: where its bytes are, and (for staged files) their sha256.
#[derive(Debug, Clone)]
struct Member {
    path: PathBuf,
    sha256: Option<Digest>,
    size: u64,
    staged: bool,
}

struct Archive {
    name: String,
    files: HashMap<String, Member>,
    links: HashMap<String, String>,
}

impl Archive {
    fn bad(&self, problem: impl Into<String>) -> StoreError {
        StoreError::BadArchive {
            archive: self.name.clone(),
            problem: problem.into(),
        }
    }

    fn get(&self, path: &str) -> Option<&Member> {
        let mut p = normalize(path)?;
        for _ in 0..16 {
            if let Some(m) = self.files.get(&p) {
                return Some(m);
            }
            let target = self.links.get(&p)?;
            p = target.clone();
        }
        None
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let m = self
            .get(path)
            .ok_or_else(|| self.bad(format!("{path} is missing")))?;
        fs::read(&m.path).at("reading", &m.path)
    }

    /// The member for `d`, checked against its digest (and size when given).
    fn blob(&self, d: &Digest, size: Option<u64>) -> Result<Member> {
        let path = format!("blobs/{}/{}", d.algorithm(), d.hex());
        let m = self
            .get(&path)
            .cloned()
            .ok_or_else(|| StoreError::MissingBlob {
                digest: d.clone(),
                in_archive: Some(format!("{}:{path}", self.name)),
            })?;
        self.verify(&m, d, &format!("{}:{path}", self.name))?;
        if let Some(s) = size
            && s != m.size
        {
            return Err(StoreError::SizeMismatch {
                what: format!("{}:{path}", self.name),
                expected: s,
                actual: m.size,
            });
        }
        Ok(m)
    }

    fn verify(&self, m: &Member, d: &Digest, what: &str) -> Result<()> {
        let actual = match (&m.sha256, d.algorithm()) {
            (Some(h), Algorithm::Sha256) => h.clone(),
            _ => hash_file(&m.path, d.algorithm())?,
        };
        if actual != *d {
            return Err(StoreError::DigestMismatch {
                what: what.to_string(),
                expected: d.clone(),
                actual,
            });
        }
        Ok(())
    }
}

fn hash_file(path: &Path, alg: Algorithm) -> Result<Digest> {
    let mut h = Hasher::new(alg);
    let mut f = File::open(path).at("reading", path)?;
    crate::blobs::copy(&mut f, &mut h).at("reading", path)?;
    Ok(h.finish())
}

/// `./a//b` → `a/b`; `None` for paths leaving the archive.
fn normalize(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            _ => return None,
        }
    }
    Some(out.join("/"))
}

/// Load every image of an archive into `store`.
pub fn load(store: &Store, source: LoadSource<'_>) -> Result<Vec<Loaded>> {
    let _hold = store.hold()?;
    let staging = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(store.tmp_dir())
        .at("creating staging directory in", store.tmp_dir())?;
    let archive = match source {
        LoadSource::Stream { reader, name } => stage(reader, &name, staging.path())?,
        LoadSource::Dir(dir) => scan_dir(&dir)?,
    };
    let plan = if archive.get("index.json").is_some() {
        plan_oci(&archive)?
    } else if archive.get("manifest.json").is_some() {
        plan_docker(&archive, store)?
    } else {
        return Err(archive.bad("neither manifest.json (docker-archive) nor index.json (OCI layout) found; not an image archive, or truncated"));
    };
    // Everything verified: publish blobs, layer records, then names.
    let mut loaded = Vec::new();
    for img in plan {
        for (m, d) in &img.blobs {
            if m.staged {
                store.blobs().adopt(&m.path, d)?;
            } else if !store.blobs().contains(d) {
                let f = File::open(&m.path).at("reading", &m.path)?;
                store
                    .blobs()
                    .ingest(f, Some(d), &m.path.display().to_string())?;
            }
        }
        if !store.blobs().contains(&img.manifest_digest) {
            store
                .blobs()
                .put(&img.manifest_bytes, Some(&img.manifest_digest))?;
        }
        for l in &img.layers {
            store.record_layer_blob(
                &l.diff_id,
                l.compression,
                &l.blob,
                l.size,
                Some(l.uncompressed),
            )?;
        }
        store.name_image(&img.manifest_digest, &img.names)?;
        loaded.push(Loaded {
            manifest_digest: img.manifest_digest,
            id: img.id,
            names: img.names,
        });
    }
    Ok(loaded)
}

fn stage(reader: Box<dyn Read + '_>, name: &str, dir: &Path) -> Result<Archive> {
    let err = |e: io::Error| StoreError::BadArchive {
        archive: name.to_string(),
        problem: format!("corrupt or truncated: {e}"),
    };
    let (_, reader) = crate::compress::decompress(reader).map_err(err)?;
    let mut ar = tar::Archive::new(reader);
    let mut archive = Archive {
        name: name.to_string(),
        files: HashMap::new(),
        links: HashMap::new(),
    };
    let mut n = 0;
    for e in ar.entries().map_err(err)? {
        let mut e = e.map_err(err)?;
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let Some(path) = normalize(&raw) else {
            return Err(archive.bad(format!("entry {raw:?} leaves the archive")));
        };
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                n += 1;
                let file = dir.join(format!("{n}"));
                let mut out = io::BufWriter::with_capacity(
                    1 << 20,
                    File::create(&file).at("creating", &file)?,
                );
                let mut h = Hasher::new(Algorithm::Sha256);
                let size = crate::blobs::copy(&mut e, &mut crate::store::TeeHash(&mut out, &mut h))
                    .map_err(|io| {
                        if io.kind() == io::ErrorKind::UnexpectedEof
                            || io.kind() == io::ErrorKind::InvalidData
                            || io.kind() == io::ErrorKind::Other
                        {
                            err(io)
                        } else {
                            StoreError::Io {
                                op: "staging",
                                path: file.clone(),
                                source: io,
                            }
                        }
                    })?;
                out.flush().at("writing", &file)?;
                archive.files.insert(
                    path,
                    Member {
                        path: file,
                        sha256: Some(h.finish()),
                        size,
                        staged: true,
                    },
                );
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let resolved = if e.header().entry_type() == tar::EntryType::Symlink {
                    let parent = Path::new(&path).parent().unwrap_or(Path::new(""));
                    normalize(&parent.join(&target).to_string_lossy())
                } else {
                    normalize(&target)
                };
                if let Some(t) = resolved {
                    archive.links.insert(path, t);
                }
            }
            _ => {}
        }
    }
    Ok(archive)
}

fn scan_dir(dir: &Path) -> Result<Archive> {
    let mut archive = Archive {
        name: dir.display().to_string(),
        files: HashMap::new(),
        links: HashMap::new(),
    };
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.map_err(|e| StoreError::Io {
            op: "reading",
            path: dir.to_path_buf(),
            source: e.into(),
        })?;
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(dir)
            .expect("under dir")
            .to_string_lossy()
            .into_owned();
        let size = e.metadata().map(|m| m.len()).unwrap_or(0);
        archive.files.insert(
            rel,
            Member {
                path: e.path().to_path_buf(),
                sha256: None,
                size,
                staged: false,
            },
        );
    }
    Ok(archive)
}

/// A verified image ready to publish.
struct Planned {
    manifest_digest: Digest,
    manifest_bytes: Vec<u8>,
    id: Digest,
    names: Vec<Reference>,
    blobs: Vec<(Member, Digest)>,
    layers: Vec<PlannedLayer>,
}

struct PlannedLayer {
    diff_id: Digest,
    blob: Digest,
    compression: Compression,
    size: u64,
    uncompressed: u64,
}

/// Check a layer file against its diffID; returns its compression and uncompressed size.
fn check_layer(
    archive: &Archive,
    m: &Member,
    diff_id: &Digest,
    what: &str,
) -> Result<(Compression, u64)> {
    let mut f = BufReader::with_capacity(1 << 20, File::open(&m.path).at("reading", &m.path)?);
    let head = io::BufRead::fill_buf(&mut f).at("reading", &m.path)?;
    let kind = Compression::sniff(head);
    if kind == Compression::None && diff_id.algorithm() == Algorithm::Sha256 && m.sha256.is_some() {
        archive.verify(m, diff_id, &format!("{what} (diffID)"))?;
        return Ok((kind, m.size));
    }
    let mut r = crate::compress::decoder(kind, f).at("reading", &m.path)?;
    let mut h = Hasher::new(diff_id.algorithm());
    let n = crate::blobs::copy(&mut r, &mut h)
        .map_err(|e| archive.bad(format!("{what}: corrupt {} layer: {e}", kind.as_str())))?;
    let actual = h.finish();
    if actual != *diff_id {
        return Err(StoreError::DigestMismatch {
            what: format!("{what} (diffID)"),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok((kind, n))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn plan_docker(archive: &Archive, _store: &Store) -> Result<Vec<Planned>> {
    let bytes = archive.read("manifest.json")?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&bytes).map_err(|e| archive.bad(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for entry in entries {
        let cm = archive
            .get(&entry.config)
            .cloned()
            .ok_or_else(|| archive.bad(format!("config {} is missing", entry.config)))?;
        let config_bytes = fs::read(&cm.path).at("reading", &cm.path)?;
        let id = Digest::sha256_of(&config_bytes);
        // Docker names configs by their digest; a mismatch means the file was altered.
        let stem = Path::new(&entry.config)
            .file_name()
            .map(|f| f.to_string_lossy().trim_end_matches(".json").to_string())
            .unwrap_or_default();
        if stem.len() == 64 && stem != id.hex() {
            let expected: Digest =
                format!("sha256:{stem}")
                    .parse()
                    .map_err(|source| StoreError::Digest {
                        what: entry.config.clone(),
                        source,
                    })?;
            return Err(StoreError::DigestMismatch {
                what: format!("{}:{}", archive.name, entry.config),
                expected,
                actual: id,
            });
        }
        let config =
            manifest::decode_config(&config_bytes).map_err(|source| StoreError::Manifest {
                what: format!("{}:{}", archive.name, entry.config),
                source,
            })?;
        let diff_ids = manifest::diff_ids(&config).map_err(|source| StoreError::Digest {
            what: entry.config.clone(),
            source,
        })?;
        if diff_ids.len() != entry.layers.len() {
            return Err(archive.bad(format!(
                "{} lists {} layers but config {} has {} diff_ids",
                "manifest.json",
                entry.layers.len(),
                entry.config,
                diff_ids.len()
            )));
        }
        let mut blobs = vec![(cm, id.clone())];
        let mut layers = Vec::new();
        let mut descs = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
            let m = archive
                .get(path)
                .cloned()
                .ok_or_else(|| StoreError::MissingBlob {
                    digest: diff_id.clone(),
                    in_archive: Some(format!("{}:{path}", archive.name)),
                })?;
            let what = format!("{}:{path}", archive.name);
            let (kind, uncompressed) = check_layer(archive, &m, diff_id, &what)?;
            let blob = match (&m.sha256, kind) {
                (_, Compression::None) => diff_id.clone(),
                (Some(d), _) => d.clone(),
                (None, _) => hash_file(&m.path, Algorithm::Sha256)?,
            };
            descs.push(manifest::descriptor(
                MediaType::oci_layer(kind),
                &blob,
                m.size,
            ));
            layers.push(PlannedLayer {
                diff_id: diff_id.clone(),
                blob: blob.clone(),
                compression: kind,
                size: m.size,
                uncompressed,
            });
            blobs.push((m, blob));
        }
        let man = manifest_for(
            manifest::descriptor(MediaType::OciConfig, &id, config_bytes.len() as u64),
            descs,
        );
        let manifest_bytes = serde_json::to_vec(&man).expect("a manifest serializes");
        let names = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| t.parse::<Reference>())
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Planned {
            manifest_digest: Digest::sha256_of(&manifest_bytes),
            manifest_bytes,
            id,
            names,
            blobs,
            layers,
        });
    }
    Ok(out)
}

fn plan_oci(archive: &Archive) -> Result<Vec<Planned>> {
    let bytes = archive.read("index.json")?;
    let index = manifest::decode_index(&bytes).map_err(|source| StoreError::Manifest {
        what: format!("{}:index.json", archive.name),
        source,
    })?;
    let mut out: Vec<Planned> = Vec::new();
    for d in index.manifests() {
        let names = names_of(d, archive)?;
        let mut planned = plan_oci_manifest(archive, d, 0)?;
        if let Some(existing) = out
            .iter_mut()
            .find(|p| p.manifest_digest == planned.manifest_digest)
        {
            existing.names.extend(names);
            continue;
        }
        planned.names = names;
        out.push(planned);
    }
    if out.is_empty() {
        return Err(archive.bad("index.json lists no images"));
    }
    Ok(out)
}

/// Names from an index entry's annotations: the full containerd name, else a ref.name that is a
/// whole reference (a bare tag names nothing without a repository).
fn names_of(d: &Descriptor, archive: &Archive) -> Result<Vec<Reference>> {
    let Some(ann) = d.annotations() else {
        return Ok(vec![]);
    };
    if let Some(n) = ann.get(ANNOTATION_IMAGE_NAME) {
        return Ok(vec![n.parse().map_err(|e| {
            archive.bad(format!(
                "index.json: annotation {ANNOTATION_IMAGE_NAME}: {e}"
            ))
        })?]);
    }
    if let Some(n) = ann.get(ANNOTATION_REF_NAME)
        && (n.contains('/') || n.contains(':'))
        && let Ok(r) = n.parse::<Reference>()
    {
        return Ok(vec![r]);
    }
    Ok(vec![])
}

fn plan_oci_manifest(archive: &Archive, d: &Descriptor, depth: usize) -> Result<Planned> {
    let digest = manifest::descriptor_digest(d).map_err(|source| StoreError::Digest {
        what: format!("{}:index.json", archive.name),
        source,
    })?;
    let m = archive.blob(&digest, Some(d.size()))?;
    let bytes = fs::read(&m.path).at("reading", &m.path)?;
    let what = format!(
        "{}:blobs/{}/{}",
        archive.name,
        digest.algorithm(),
        digest.hex()
    );
    let media: Option<MediaType> = manifest::descriptor_media_type(d);
    if media.is_some_and(MediaType::is_index) {
        if depth > 2 {
            return Err(archive.bad("nested indexes are too deep"));
        }
        let idx = manifest::decode_index(&bytes).map_err(|source| StoreError::Manifest {
            what: what.clone(),
            source,
        })?;
        let host = Platform::host();
        let chosen = manifest::select_platform(&idx, &host)
            .ok_or_else(|| archive.bad(format!("{what}: no image for platform {host}")))?;
        return plan_oci_manifest(archive, chosen, depth + 1);
    }
    if media.is_none() {
        return Err(archive.bad(format!(
            "index.json: unknown media type {:?}",
            d.media_type().to_string()
        )));
    }
    let man = manifest::decode_manifest(&bytes).map_err(|source| StoreError::Manifest {
        what: what.clone(),
        source,
    })?;
    let id = manifest::descriptor_digest(man.config()).map_err(|source| StoreError::Digest {
        what: what.clone(),
        source,
    })?;
    let cm = archive.blob(&id, Some(man.config().size()))?;
    let config_bytes = fs::read(&cm.path).at("reading", &cm.path)?;
    let config = manifest::decode_config(&config_bytes).map_err(|source| StoreError::Manifest {
        what: format!("config {id}"),
        source,
    })?;
    let diff_ids = manifest::diff_ids(&config).map_err(|source| StoreError::Digest {
        what: format!("config {id}"),
        source,
    })?;
    if diff_ids.len() != man.layers().len() {
        return Err(archive.bad(format!(
            "{what}: {} layers but config has {} diff_ids",
            man.layers().len(),
            diff_ids.len()
        )));
    }
    let mut blobs = vec![(m, digest.clone()), (cm, id.clone())];
    let mut layers = Vec::new();
    for (l, diff_id) in man.layers().iter().zip(&diff_ids) {
        let ld = manifest::descriptor_digest(l).map_err(|source| StoreError::Digest {
            what: what.clone(),
            source,
        })?;
        let lm = archive.blob(&ld, Some(l.size()))?;
        let lwhat = format!("{}:blobs/{}/{}", archive.name, ld.algorithm(), ld.hex());
        let (kind, uncompressed) = check_layer(archive, &lm, diff_id, &lwhat)?;
        layers.push(PlannedLayer {
            diff_id: diff_id.clone(),
            blob: ld.clone(),
            compression: kind,
            size: l.size(),
            uncompressed,
        });
        blobs.push((lm, ld));
    }
    Ok(Planned {
        manifest_digest: digest,
        manifest_bytes: bytes,
        id,
        names: vec![],
        blobs,
        layers,
    })
}
