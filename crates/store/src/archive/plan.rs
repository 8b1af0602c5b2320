//! Verifying an archive's images before anything is published: docker-archive
//! (`manifest.json`) and OCI layout (`index.json`, nested indexes resolved for this platform).

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::Path;

use rbuild_oci::manifest::{self, Descriptor};
use rbuild_oci::{Algorithm, Compression, Digest, Hasher, MediaType, Platform, Reference};

use super::load::{Archive, Member, hash_file};
use crate::archive::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::error::{IoContext, Result, StoreError};
use crate::store::manifest_for;

/// A verified image ready to publish.
pub(super) struct Planned {
    pub(super) manifest_digest: Digest,
    pub(super) manifest_bytes: Vec<u8>,
    pub(super) id: Digest,
    pub(super) names: Vec<Reference>,
    pub(super) blobs: Vec<(Member, Digest)>,
    pub(super) layers: Vec<PlannedLayer>,
}

/// A multi-platform image kept whole (`load --all-platforms`): its index and names.
pub(super) struct PlannedIndex {
    pub(super) digest: Digest,
    pub(super) bytes: Vec<u8>,
    pub(super) names: Vec<Reference>,
}

pub(super) struct PlannedLayer {
    pub(super) diff_id: Digest,
    pub(super) blob: Digest,
    pub(super) compression: Compression,
    pub(super) size: u64,
    pub(super) uncompressed: u64,
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

pub(super) fn plan_docker(archive: &Archive) -> Result<Vec<Planned>> {
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

/// The images of an OCI layout; a multi-platform entry gives this machine's platform's image,
/// or, with `all_platforms`, every image it lists and the index itself.
pub(super) fn plan_oci(
    archive: &Archive,
    all_platforms: bool,
) -> Result<(Vec<Planned>, Vec<PlannedIndex>)> {
    let bytes = archive.read("index.json")?;
    let index = manifest::decode_index(&bytes).map_err(|source| StoreError::Manifest {
        what: format!("{}:index.json", archive.name),
        source,
    })?;
    let mut out: Vec<Planned> = Vec::new();
    let mut lists: Vec<PlannedIndex> = Vec::new();
    let add = |out: &mut Vec<Planned>, mut planned: Planned, names: Vec<Reference>| {
        if let Some(existing) = out
            .iter_mut()
            .find(|p| p.manifest_digest == planned.manifest_digest)
        {
            existing.names.extend(names);
            return;
        }
        planned.names = names;
        out.push(planned);
    };
    for d in index.manifests() {
        let names = names_of(d, archive)?;
        let is_index = manifest::descriptor_media_type(d).is_some_and(MediaType::is_index);
        if all_platforms && is_index {
            let digest = manifest::descriptor_digest(d).map_err(|source| StoreError::Digest {
                what: format!("{}:index.json", archive.name),
                source,
            })?;
            let m = archive.blob(&digest, Some(d.size()))?;
            let bytes = fs::read(&m.path).at("reading", &m.path)?;
            archive.verify(&m, &digest, "index")?;
            let nested = manifest::decode_index(&bytes).map_err(|source| StoreError::Manifest {
                what: format!("{}:blobs/{}", archive.name, digest),
                source,
            })?;
            for (_, _, entry) in manifest::index_images(&nested) {
                let planned = plan_oci_manifest(archive, entry, 1)?;
                add(&mut out, planned, Vec::new());
            }
            match lists.iter_mut().find(|l| l.digest == digest) {
                Some(l) => l.names.extend(names),
                None => lists.push(PlannedIndex {
                    digest,
                    bytes,
                    names,
                }),
            }
            continue;
        }
        let planned = plan_oci_manifest(archive, d, 0)?;
        add(&mut out, planned, names);
    }
    if out.is_empty() {
        return Err(archive.bad("index.json lists no images"));
    }
    Ok((out, lists))
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
