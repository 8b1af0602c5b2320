//! save/load round trips and bad archives.

mod common;

use std::fs;
use std::io::Write;

use rbuild_store::archive::{ArchiveFormat, LoadSource, load, save};
use rbuild_store::{Store, StoreError};

fn saved(store: &Store, name: &str, format: ArchiveFormat) -> Vec<u8> {
    let img = store.resolve(name).unwrap();
    let names = img.names.clone();
    let mut out = Vec::new();
    save(store, &[(img, names)], format, &mut out).unwrap();
    out
}

fn load_bytes(
    store: &Store,
    bytes: &[u8],
) -> Result<Vec<rbuild_store::archive::Loaded>, StoreError> {
    load(
        store,
        LoadSource::Stream {
            reader: Box::new(bytes),
            name: "test.tar".into(),
        },
    )
}

fn store_state(store: &Store) -> (Vec<String>, String) {
    let mut blobs: Vec<String> = store
        .blobs()
        .list()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    blobs.sort();
    let index = fs::read_to_string(store.root().join("images.json")).unwrap_or_default();
    (blobs, index)
}

#[test]
fn docker_and_oci_archives_round_trip_with_identical_ids_and_content() {
    let a = tempfile::tempdir().unwrap();
    let src = Store::open(a.path()).unwrap();
    let img = common::make_image(
        &src,
        "example.com/app:1",
        &[&[("etc/a", "A")], &[("etc/b", "B"), ("bin/x", "X")]],
    );
    for format in [ArchiveFormat::Docker, ArchiveFormat::Oci] {
        let bytes = saved(&src, "example.com/app:1", format);
        let b = tempfile::tempdir().unwrap();
        let dst = Store::open(b.path()).unwrap();
        let loaded = load_bytes(&dst, &bytes).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(
            loaded[0].id, img.id,
            "{format:?}: same config digest (image ID)"
        );
        assert_eq!(loaded[0].names[0].to_string(), "example.com/app:1");
        let back = dst.resolve("example.com/app:1").unwrap();
        assert_eq!(back.diff_ids().unwrap(), img.diff_ids().unwrap());
        if format == ArchiveFormat::Oci {
            assert_eq!(
                back.manifest_digest, img.manifest_digest,
                "OCI keeps the manifest as is"
            );
        }
        let (r1, r2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        src.unpack(&img, r1.path()).unwrap();
        dst.unpack(&back, r2.path()).unwrap();
        assert_eq!(common::tree(r1.path()), common::tree(r2.path()));
        assert_eq!(common::tree(r2.path()).len(), 3);
    }
}

#[test]
fn gzip_compressed_archive_and_oci_layout_directory_load() {
    let a = tempfile::tempdir().unwrap();
    let src = Store::open(a.path()).unwrap();
    let img = common::make_image(&src, "gz:1", &[&[("f", "data")]]);
    let bytes = saved(&src, "gz:1", ArchiveFormat::Oci);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let gz = gz.finish().unwrap();
    let b = tempfile::tempdir().unwrap();
    let dst = Store::open(b.path()).unwrap();
    assert_eq!(load_bytes(&dst, &gz).unwrap()[0].id, img.id);
    // The same archive unpacked as an OCI layout directory.
    let layout = tempfile::tempdir().unwrap();
    tar::Archive::new(&bytes[..]).unpack(layout.path()).unwrap();
    let c = tempfile::tempdir().unwrap();
    let dst2 = Store::open(c.path()).unwrap();
    let loaded = load(&dst2, LoadSource::Dir(layout.path().into())).unwrap();
    assert_eq!(loaded[0].id, img.id);
    assert!(dst2.resolve("gz:1").is_ok());
}

#[test]
fn compressed_forms_are_made_once_and_remembered() {
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let img = common::make_image(&store, "c:1", &[&[("f", &"x".repeat(100_000))]]);
    let diff_id = &img.diff_ids().unwrap()[0];
    for c in [rbuild_oci::Compression::Gzip, rbuild_oci::Compression::Zstd] {
        let (d1, s1) = store.compressed_layer(diff_id, c).unwrap();
        let mtime = fs::metadata(store.blobs().path(&d1))
            .unwrap()
            .modified()
            .unwrap();
        let (d2, s2) = store.compressed_layer(diff_id, c).unwrap();
        assert_eq!((d1.clone(), s1), (d2, s2));
        assert!(s1 < 10_000, "{c:?} compressed 100 kB of x to {s1}");
        assert_eq!(
            fs::metadata(store.blobs().path(&d1))
                .unwrap()
                .modified()
                .unwrap(),
            mtime,
            "not rewritten"
        );
        // Kept by gc while the image lives.
        store.collect_garbage().unwrap();
        assert!(store.blobs().contains(&d1));
    }
}

#[test]
fn layer_blob_only_looks_and_finds_recorded_forms() {
    use rbuild_oci::Compression;
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let img = common::make_image(&store, "l:1", &[&[("f", &"y".repeat(50_000))]]);
    let diff_id = &img.diff_ids().unwrap()[0];
    // Stored uncompressed: the diffID's own blob.
    let plain = store.layer_blob(diff_id, Compression::None).unwrap();
    assert_eq!(
        plain,
        Some((diff_id.clone(), store.blobs().size(diff_id).unwrap()))
    );
    // No gzip form yet, and asking does not make one.
    let before = store.blobs().list().unwrap().len();
    assert_eq!(store.layer_blob(diff_id, Compression::Gzip).unwrap(), None);
    assert_eq!(store.blobs().list().unwrap().len(), before);
    // Once made, it is found; once its blob is gone, it is not.
    let made = store.compressed_layer(diff_id, Compression::Gzip).unwrap();
    assert_eq!(
        store.layer_blob(diff_id, Compression::Gzip).unwrap(),
        Some(made.clone())
    );
    fs::remove_file(store.blobs().path(&made.0)).unwrap();
    assert_eq!(store.layer_blob(diff_id, Compression::Gzip).unwrap(), None);
    // A layer the store never saw.
    let unknown = rbuild_oci::Digest::sha256_of(b"no such layer");
    assert_eq!(store.layer_blob(&unknown, Compression::Zstd).unwrap(), None);
}

/// Apply `edit` to an unpacked OCI archive and expect load to fail with `expect` in the message,
/// leaving the store as it was.
fn bad_oci(edit: impl Fn(&std::path::Path, &rbuild_store::Image), expect: &str) {
    let a = tempfile::tempdir().unwrap();
    let src = Store::open(a.path()).unwrap();
    let img = common::make_image(&src, "bad:1", &[&[("f", "data")], &[("g", "more")]]);
    let bytes = saved(&src, "bad:1", ArchiveFormat::Oci);
    let layout = tempfile::tempdir().unwrap();
    tar::Archive::new(&bytes[..]).unpack(layout.path()).unwrap();
    edit(layout.path(), &img);
    let mut repacked = tar::Builder::new(Vec::new());
    repacked.append_dir_all(".", layout.path()).unwrap();
    let repacked = repacked.into_inner().unwrap();
    let b = tempfile::tempdir().unwrap();
    let dst = Store::open(b.path()).unwrap();
    common::make_image(&dst, "already:here", &[&[("k", "keep")]]);
    let before = store_state(&dst);
    let err = load_bytes(&dst, &repacked).expect_err("must fail");
    assert!(
        err.to_string().contains(expect),
        "expected {expect:?} in: {err}"
    );
    assert_eq!(store_state(&dst), before, "store changed by a failed load");
    assert_eq!(
        fs::read_dir(dst.tmp_dir()).unwrap().count(),
        0,
        "staging left behind"
    );
}

#[test]
fn wrong_layer_digest_is_rejected_naming_the_file() {
    bad_oci(
        |dir, img| {
            let l = rbuild_oci::manifest::descriptor_digest(&img.manifest.layers()[1]).unwrap();
            let p = dir.join("blobs/sha256").join(l.hex());
            let mut bytes = fs::read(&p).unwrap();
            bytes[600] ^= 1;
            fs::write(&p, bytes).unwrap();
        },
        "digest mismatch",
    );
}

#[test]
fn missing_blob_is_rejected_naming_it() {
    bad_oci(
        |dir, img| {
            let l = rbuild_oci::manifest::descriptor_digest(&img.manifest.layers()[0]).unwrap();
            fs::remove_file(dir.join("blobs/sha256").join(l.hex())).unwrap();
        },
        "missing blob",
    );
}

#[test]
fn unknown_media_type_is_rejected() {
    bad_oci(
        |dir, img| {
            // Rewrite the manifest with an unknown layer type and fix up index.json's digest.
            let p = dir.join("blobs/sha256").join(img.manifest_digest.hex());
            let old = fs::read_to_string(&p).unwrap();
            let m = old.replace(
                "application/vnd.oci.image.layer.v1.tar\"",
                "application/x-mystery\"",
            );
            fs::remove_file(&p).unwrap();
            let d = rbuild_oci::Digest::sha256_of(m.as_bytes());
            fs::write(dir.join("blobs/sha256").join(d.hex()), &m).unwrap();
            let idx = fs::read_to_string(dir.join("index.json"))
                .unwrap()
                .replace(&img.manifest_digest.to_string(), &d.to_string())
                .replace(
                    &format!("\"size\":{}", old.len()),
                    &format!("\"size\":{}", m.len()),
                );
            fs::write(dir.join("index.json"), idx).unwrap();
        },
        "application/x-mystery",
    );
}

#[test]
fn truncated_archive_is_rejected() {
    let a = tempfile::tempdir().unwrap();
    let src = Store::open(a.path()).unwrap();
    common::make_image(&src, "t:1", &[&[("f", &"y".repeat(50_000))]]);
    let bytes = saved(&src, "t:1", ArchiveFormat::Docker);
    let b = tempfile::tempdir().unwrap();
    let dst = Store::open(b.path()).unwrap();
    for cut in [bytes.len() / 3, bytes.len() - 2000, 100] {
        let before = store_state(&dst);
        let err = load_bytes(&dst, &bytes[..cut]).expect_err("truncated");
        let msg = err.to_string();
        assert!(msg.contains("test.tar"), "names the archive: {msg}");
        assert_eq!(store_state(&dst), before);
    }
}

#[test]
fn rmi_and_prune_remove_unreferenced_blobs_and_snapshots() {
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let shared: &[(&str, &str)] = &[("base", "b")];
    let one = common::make_image(&store, "one:1", &[shared, &[("x", "1")]]);
    let two = common::make_image(&store, "two:1", &[shared, &[("y", "2")]]);
    let snaps: Vec<_> = one
        .diff_ids()
        .unwrap()
        .iter()
        .map(|d| store.snapshot(d).unwrap())
        .collect();
    assert!(snaps[0].join("base").exists() && snaps[1].join("x").exists());
    store.remove("one:1", false).unwrap();
    assert!(store.resolve("one:1").is_err());
    assert!(snaps[0].exists(), "shared layer snapshot kept");
    assert!(!snaps[1].exists(), "unshared snapshot removed");
    assert!(!store.blobs().contains(&one.manifest_digest));
    assert!(store.blobs().contains(&two.manifest_digest));
    // A dangling image goes with prune.
    common::make_image(&store, "two:1", &[&[("z", "3")]]);
    assert!(
        store.blobs().contains(&two.manifest_digest),
        "dangling image still there"
    );
    // Not while a container uses it.
    let in_use = std::collections::HashSet::from([two.id.clone()]);
    assert!(store.prune(&in_use).unwrap().is_empty());
    assert!(store.blobs().contains(&two.manifest_digest));
    assert!(store.resolve(&two.id.to_string()).is_ok());
    let pruned = store.prune(&Default::default()).unwrap();
    assert_eq!(pruned, vec![two.id.clone()]);
    assert!(!store.blobs().contains(&two.manifest_digest));
}

#[test]
fn oci_archive_with_sha512_blobs_loads_and_verifies() {
    let a = tempfile::tempdir().unwrap();
    let src = Store::open(a.path()).unwrap();
    let img = common::make_image(&src, "five12:1", &[&[("f", "data")]]);
    let bytes = saved(&src, "five12:1", ArchiveFormat::Oci);
    let layout = tempfile::tempdir().unwrap();
    tar::Archive::new(&bytes[..]).unpack(layout.path()).unwrap();
    let sha512 = |b: &[u8]| {
        let mut h = rbuild_oci::Hasher::new(rbuild_oci::Algorithm::Sha512);
        h.update(b);
        h.finish()
    };
    // Move config and layer to blobs/sha512 and rewrite the manifest and index to match.
    fs::create_dir_all(layout.path().join("blobs/sha512")).unwrap();
    let man_path = layout
        .path()
        .join("blobs/sha256")
        .join(img.manifest_digest.hex());
    let mut manifest = fs::read_to_string(&man_path).unwrap();
    let old_len = manifest.len();
    let layer = rbuild_oci::manifest::descriptor_digest(&img.manifest.layers()[0]).unwrap();
    for d in [img.id.clone(), layer] {
        let content = fs::read(layout.path().join("blobs/sha256").join(d.hex())).unwrap();
        let d512 = sha512(&content);
        fs::write(
            layout.path().join("blobs/sha512").join(d512.hex()),
            &content,
        )
        .unwrap();
        manifest = manifest.replace(&d.to_string(), &d512.to_string());
    }
    fs::remove_file(&man_path).unwrap();
    let m512 = sha512(manifest.as_bytes());
    fs::write(
        layout.path().join("blobs/sha512").join(m512.hex()),
        &manifest,
    )
    .unwrap();
    let index = fs::read_to_string(layout.path().join("index.json"))
        .unwrap()
        .replace(&img.manifest_digest.to_string(), &m512.to_string())
        .replace(
            &format!("\"size\":{old_len}"),
            &format!("\"size\":{}", manifest.len()),
        );
    fs::write(layout.path().join("index.json"), index).unwrap();
    let b = tempfile::tempdir().unwrap();
    let dst = Store::open(b.path()).unwrap();
    let loaded = load(&dst, LoadSource::Dir(layout.path().into())).unwrap();
    assert_eq!(loaded[0].manifest_digest, m512);
    let back = dst.resolve("five12:1").unwrap();
    assert_eq!(back.diff_ids().unwrap(), img.diff_ids().unwrap());
    let root = tempfile::tempdir().unwrap();
    dst.unpack(&back, root.path()).unwrap();
    assert_eq!(fs::read_to_string(root.path().join("f")).unwrap(), "data");
    // A corrupted sha512 blob is caught.
    let c = tempfile::tempdir().unwrap();
    let dst2 = Store::open(c.path()).unwrap();
    let blob = layout
        .path()
        .join("blobs/sha512")
        .join(sha512(&img.config_bytes).hex());
    fs::write(&blob, b"{\"tampered\":true}").unwrap();
    let err = load(&dst2, LoadSource::Dir(layout.path().into())).unwrap_err();
    assert!(
        err.to_string().contains("digest mismatch") || err.to_string().contains("size mismatch"),
        "{err}"
    );
}
