//! Writing docker-archive and OCI archives.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use rbuild_oci::{Compression, Digest, Reference};
use serde_json::json;

use crate::archive::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::error::{IoContext, Result};
use crate::image::Image;
use crate::store::Store;

/// The archive format `rbuild save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `manifest.json` + config + uncompressed layers: what `docker load` reads.
    Docker,
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/`), blobs exactly as stored.
    Oci,
}

/// Write `images` (each with the names to record for it) as an archive to `out`.
pub fn save(
    store: &Store,
    images: &[(Image, Vec<Reference>)],
    format: ArchiveFormat,
    out: impl Write,
) -> Result<()> {
    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, out));
    let mut written: HashSet<Digest> = HashSet::new();
    match format {
        ArchiveFormat::Docker => save_docker(store, images, &mut tar, &mut written)?,
        ArchiveFormat::Oci => save_oci(store, images, &mut tar, &mut written)?,
    }
    tar.into_inner()
        .at("finishing archive", "output")?
        .flush()
        .at("writing archive", "output")?;
    Ok(())
}

/// Write multi-platform images `lists` and single images `images` (each with the names to
/// record) as one OCI archive to `out`: every image an index lists (each must be in the store),
/// the indexes as blobs, and an `index.json` naming them (as `buildx build --output type=oci`
/// writes a multi-platform build).
pub fn save_index(
    store: &Store,
    lists: &[(crate::ImageList, Vec<Reference>)],
    images: &[(Image, Vec<Reference>)],
    out: impl Write,
) -> Result<()> {
    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, out));
    let mut written: HashSet<Digest> = HashSet::new();
    add_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add_dirs(&mut tar)?;
    let mut entries = Vec::new();
    for (list, names) in lists {
        for (digest, _) in list.entries() {
            let image = store.image(&digest)?;
            write_image_blobs(store, &image, &mut tar, &mut written)?;
        }
        if written.insert(list.digest.clone()) {
            add_bytes(&mut tar, &blob_path(&list.digest), &list.bytes)?;
        }
        let base = json!({
            "mediaType": rbuild_oci::MediaType::OciIndex.as_str(),
            "digest": list.digest.to_string(),
            "size": list.bytes.len(),
        });
        entries.extend(index_entries(&base, names));
    }
    for (image, names) in images {
        let manifest_size = write_image_blobs(store, image, &mut tar, &mut written)?;
        let base = json!({
            "mediaType": image.manifest.media_type().as_ref().map_or_else(
                || rbuild_oci::MediaType::OciManifest.as_str().to_string(),
                |m| m.to_string(),
            ),
            "digest": image.manifest_digest.to_string(),
            "size": manifest_size,
        });
        entries.extend(index_entries(&base, names));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": rbuild_oci::MediaType::OciIndex.as_str(),
        "manifests": entries,
    });
    add_bytes(
        &mut tar,
        "index.json",
        &serde_json::to_vec(&index).expect("index.json serializes"),
    )?;
    tar.into_inner()
        .at("finishing archive", "output")?
        .flush()
        .at("writing archive", "output")?;
    Ok(())
}

/// `index.json` entries for `base`: one per name (with the name annotations), or one bare.
fn index_entries(base: &serde_json::Value, names: &[Reference]) -> Vec<serde_json::Value> {
    if names.is_empty() {
        return vec![base.clone()];
    }
    names
        .iter()
        .map(|n| {
            let mut e = base.clone();
            e["annotations"] = json!({
                ANNOTATION_IMAGE_NAME: n.to_string(),
                ANNOTATION_REF_NAME: n.tag().unwrap_or_default(),
            });
            e
        })
        .collect()
}

/// An image's manifest, config and layer blobs, exactly as stored, each once.
fn write_image_blobs<W: Write>(
    store: &Store,
    image: &Image,
    tar: &mut tar::Builder<W>,
    written: &mut HashSet<Digest>,
) -> Result<usize> {
    let manifest_bytes = store.blobs().read(&image.manifest_digest)?;
    let mut blobs: Vec<(Digest, u64)> = vec![
        (image.manifest_digest.clone(), manifest_bytes.len() as u64),
        (image.id.clone(), image.config_bytes.len() as u64),
    ];
    for l in image.manifest.layers() {
        let d = rbuild_oci::manifest::descriptor_digest(l).map_err(|source| {
            crate::StoreError::Digest {
                what: format!("manifest {}", image.manifest_digest),
                source,
            }
        })?;
        blobs.push((d, l.size()));
    }
    for (d, size) in blobs {
        if written.insert(d.clone()) {
            let f = store.blob_reader(&d)?;
            add_reader(tar, &blob_path(&d), size, f)?;
        }
    }
    Ok(manifest_bytes.len())
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn add_bytes<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<()> {
    tar.append_data(&mut header(bytes.len() as u64), path, bytes)
        .at("writing archive entry", path)
}

fn add_reader<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    r: impl Read,
) -> Result<()> {
    tar.append_data(&mut header(size), path, r)
        .at("writing archive entry", path)
}

fn add_dirs<W: Write>(tar: &mut tar::Builder<W>) -> Result<()> {
    for d in ["blobs/", "blobs/sha256/"] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, d, io::empty())
            .at("writing archive entry", d)?;
    }
    Ok(())
}

fn save_docker<W: Write>(
    store: &Store,
    images: &[(Image, Vec<Reference>)],
    tar: &mut tar::Builder<W>,
    written: &mut HashSet<Digest>,
) -> Result<()> {
    add_dirs(tar)?;
    let mut manifest = Vec::new();
    for (image, names) in images {
        let config_path = blob_path(&image.id);
        if written.insert(image.id.clone()) {
            add_bytes(tar, &config_path, &image.config_bytes)?;
        }
        let mut layers = Vec::new();
        for diff_id in image.diff_ids()? {
            let path = blob_path(&diff_id);
            if written.insert(diff_id.clone()) {
                // The uncompressed form: made (and remembered) if only a compressed one exists.
                let (blob, size) = store.compressed_layer(&diff_id, Compression::None)?;
                let f = store.blob_reader(&blob)?;
                add_reader(tar, &path, size, f)?;
            }
            layers.push(path);
        }
        let tags: Vec<String> = names
            .iter()
            .filter(|n| n.tag().is_some())
            .map(|n| n.familiar())
            .collect();
        manifest.push(json!({
            "Config": config_path,
            "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { json!(tags) },
            "Layers": layers,
        }));
    }
    let bytes = serde_json::to_vec(&manifest).expect("manifest.json serializes");
    add_bytes(tar, "manifest.json", &bytes)
}

fn save_oci<W: Write>(
    store: &Store,
    images: &[(Image, Vec<Reference>)],
    tar: &mut tar::Builder<W>,
    written: &mut HashSet<Digest>,
) -> Result<()> {
    add_bytes(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add_dirs(tar)?;
    let mut entries = Vec::new();
    for (image, names) in images {
        let manifest_size = write_image_blobs(store, image, tar, written)?;
        let base = json!({
            "mediaType": image.manifest.media_type().as_ref().map_or_else(
                || rbuild_oci::MediaType::OciManifest.as_str().to_string(),
                |m| m.to_string(),
            ),
            "digest": image.manifest_digest.to_string(),
            "size": manifest_size,
        });
        entries.extend(index_entries(&base, names));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": rbuild_oci::MediaType::OciIndex.as_str(),
        "manifests": entries,
    });
    add_bytes(
        tar,
        "index.json",
        &serde_json::to_vec(&index).expect("index.json serializes"),
    )
}
