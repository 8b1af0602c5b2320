//! Reading docker-archive and OCI archives (tar, gzip'd or not, or an OCI layout directory).
//!
//! A tar stream is read once: every file is staged in the store's `tmp/` while being hashed.
//! Then everything is verified (digests, sizes, diffIDs, media types). Only when all of it is
//! good are the staged files renamed into place and the images named, so a bad archive leaves
//! the store as it was.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use rbuild_oci::{Algorithm, Digest, Hasher, Reference};

use crate::error::{IoContext, Result, StoreError};
use crate::store::Store;

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
pub(super) struct Member {
    pub(super) path: PathBuf,
    pub(super) sha256: Option<Digest>,
    pub(super) size: u64,
    pub(super) staged: bool,
}

pub(super) struct Archive {
    pub(super) name: String,
    files: HashMap<String, Member>,
    links: HashMap<String, String>,
}

impl Archive {
    pub(super) fn bad(&self, problem: impl Into<String>) -> StoreError {
        StoreError::BadArchive {
            archive: self.name.clone(),
            problem: problem.into(),
        }
    }

    pub(super) fn get(&self, path: &str) -> Option<&Member> {
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

    pub(super) fn read(&self, path: &str) -> Result<Vec<u8>> {
        let m = self
            .get(path)
            .ok_or_else(|| self.bad(format!("{path} is missing")))?;
        fs::read(&m.path).at("reading", &m.path)
    }

    /// The member for `d`, checked against its digest (and size when given).
    pub(super) fn blob(&self, d: &Digest, size: Option<u64>) -> Result<Member> {
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

    pub(super) fn verify(&self, m: &Member, d: &Digest, what: &str) -> Result<()> {
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

pub(super) fn hash_file(path: &Path, alg: Algorithm) -> Result<Digest> {
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

/// Load every image of an archive into `store` (a multi-platform one as this machine's
/// platform's image).
pub fn load(store: &Store, source: LoadSource<'_>) -> Result<Vec<Loaded>> {
    load_with(store, source, false)
}

/// [`load`]; with `all_platforms`, a multi-platform image of an OCI archive is kept whole:
/// every image it lists, and its index under its names (a [`Loaded`] whose digests are the
/// index's).
pub fn load_with(
    store: &Store,
    source: LoadSource<'_>,
    all_platforms: bool,
) -> Result<Vec<Loaded>> {
    let _hold = store.hold()?;
    let staging = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(store.tmp_dir())
        .at("creating staging directory in", store.tmp_dir())?;
    let archive = match source {
        LoadSource::Stream { reader, name } => stage(reader, &name, staging.path(), store)?,
        LoadSource::Dir(dir) => scan_dir(&dir)?,
    };
    let (plan, lists) = if archive.get("index.json").is_some() {
        super::plan::plan_oci(&archive, all_platforms)?
    } else if archive.get("manifest.json").is_some() {
        (super::plan::plan_docker(&archive)?, Vec::new())
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
    for list in lists {
        store.blobs().put(&list.bytes, Some(&list.digest))?;
        store.name_index(&list.digest, &list.names)?;
        loaded.push(Loaded {
            manifest_digest: list.digest.clone(),
            id: list.digest,
            names: list.names,
        });
    }
    Ok(loaded)
}

fn stage(reader: Box<dyn Read + '_>, name: &str, dir: &Path, store: &Store) -> Result<Archive> {
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
                // A blob the store already has (verified when it entered) is not staged again.
                if let Some(d) = blob_digest(&path)
                    && store.blobs().contains(&d)
                {
                    let stored = store.blobs().path(&d);
                    let size = fs::metadata(&stored).at("reading", &stored)?.len();
                    io::copy(&mut e, &mut io::sink()).map_err(err)?;
                    let sha256 = (d.algorithm() == Algorithm::Sha256).then_some(d);
                    archive.files.insert(
                        path,
                        Member {
                            path: stored,
                            sha256,
                            size,
                            staged: false,
                        },
                    );
                    continue;
                }
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

/// The digest an OCI layout path `blobs/<alg>/<hex>` names.
fn blob_digest(path: &str) -> Option<Digest> {
    let rest = path.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
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
