//! Layers held only remotely (reused from a lazily imported build cache): images committed
//! with them, clear errors for readers until the bytes arrive, garbage collection.

use std::io::Read;

use rbuild_oci::{Compression, Digest};
use rbuild_store::{LayerLocation, RemoteLayer, Store, StoreError};

fn config_of(diff_id: &Digest) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created_by": "test"}],
    }))
    .unwrap()
}

/// A store holding a one-file layer: (store, its dir, diffID, tar bytes, gzip blob, gzip bytes).
fn source() -> (Store, tempfile::TempDir, Digest, Vec<u8>, Digest, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "hello", &b"world"[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let info = store.add_layer_tar(&tar[..], "test layer").unwrap();
    let (gz, _) = store
        .compressed_layer(&info.diff_id, Compression::Gzip)
        .unwrap();
    let gz_bytes = store.blobs().read(&gz).unwrap();
    (store, dir, info.diff_id, tar, gz, gz_bytes)
}

#[test]
fn an_image_commits_with_a_remote_layer_and_its_readers_are_told_to_fetch_it() {
    let (a, _a_dir, diff_id, tar, gz, gz_bytes) = source();
    let built = a.commit_image(&config_of(&diff_id), &[]).unwrap();

    let b_dir = tempfile::tempdir().unwrap();
    let b = Store::open(b_dir.path()).unwrap();
    let remote = RemoteLayer {
        blob: gz.clone(),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        size: gz_bytes.len() as u64,
        location: LayerLocation::Registry {
            registry: "127.0.0.1:5000".into(),
            repository: "cache/app".into(),
        },
    };
    b.record_remote_layer(&diff_id, &remote, Some(tar.len() as u64))
        .unwrap();
    let lazy = b
        .commit_image(&config_of(&diff_id), &["app:1".parse().unwrap()])
        .unwrap();
    // The manifest a build with the bytes writes: same image, same manifest.
    assert_eq!(lazy.id, built.id);
    assert_eq!(lazy.manifest_digest, built.manifest_digest);
    assert!(!b.has_layer(&diff_id) && !b.has_blob(&diff_id));
    assert_eq!(
        b.remote_layers(&lazy).unwrap(),
        vec![(diff_id.clone(), remote.clone())]
    );
    assert_eq!(b.image_size(&lazy), tar.len() as u64);

    // Readers get an error naming the layer and where it is; nothing is left half-made.
    let err = b.layer_reader(&diff_id).err().unwrap();
    assert!(matches!(err, StoreError::LayerNotLocal { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("registry 127.0.0.1:5000/cache/app"),
        "{err}"
    );
    let err = b.snapshot(&diff_id).unwrap_err();
    assert!(matches!(err, StoreError::LayerNotLocal { .. }), "{err}");
    assert!(matches!(
        b.blob_reader(&diff_id).err().unwrap(),
        StoreError::LayerNotLocal { .. }
    ));
    assert_eq!(std::fs::read_dir(b.tmp_dir()).unwrap().count(), 0);

    // Pruning keeps what the image needs to be fetched later.
    b.prune(&Default::default()).unwrap();
    assert_eq!(b.remote_layer(&diff_id).unwrap(), Some(remote.clone()));

    // The bytes arrive (as the engine stores a fetched blob): an ordinary layer now, whose
    // origin is still known (a push mounts from there).
    b.blobs().put(&gz_bytes, Some(&gz)).unwrap();
    b.record_layer_blob(
        &diff_id,
        Compression::Gzip,
        &gz,
        gz_bytes.len() as u64,
        None,
    )
    .unwrap();
    assert_eq!(b.remote_layer(&diff_id).unwrap(), None);
    assert!(b.remote_layers(&lazy).unwrap().is_empty());
    assert_eq!(b.layer_origin(&diff_id), Some(remote));
    let mut read = Vec::new();
    b.layer_reader(&diff_id)
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    assert_eq!(read, tar);

    // Removing the image removes the layer's record.
    b.remove("app:1", false).unwrap();
    assert_eq!(b.layer_origin(&diff_id), None);
}

#[test]
fn without_its_size_a_remote_layer_is_listed_by_its_blob() {
    let (_a, _a_dir, diff_id, _tar, gz, gz_bytes) = source();
    let b_dir = tempfile::tempdir().unwrap();
    let b = Store::open(b_dir.path()).unwrap();
    let remote = RemoteLayer {
        blob: gz.clone(),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        size: gz_bytes.len() as u64,
        location: LayerLocation::Layout {
            dir: "/srv/cache".into(),
        },
    };
    b.record_remote_layer(&diff_id, &remote, None).unwrap();
    let lazy = b.commit_image(&config_of(&diff_id), &[]).unwrap();
    let layers = lazy.manifest.layers();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].digest().to_string(), gz.to_string());
    assert_eq!(layers[0].size(), gz_bytes.len() as u64);
    let err = b.layer_reader(&diff_id).err().unwrap().to_string();
    assert!(err.contains("OCI layout /srv/cache"), "{err}");
}

#[test]
fn several_remote_layers_are_recorded_in_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids: Vec<Digest> = (0..3u8).map(|i| Digest::sha256_of(&[i])).collect();
    let remotes: Vec<RemoteLayer> = (0..3u8)
        .map(|i| RemoteLayer {
            blob: Digest::sha256_of(&[i, i]),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size: 100 + u64::from(i),
            location: LayerLocation::Registry {
                registry: "127.0.0.1:5000".into(),
                repository: format!("cache/app{i}"),
            },
        })
        .collect();
    let batch: Vec<_> = ids
        .iter()
        .zip(&remotes)
        .enumerate()
        .map(|(i, (d, r))| (d, r, (i != 1).then_some(1000 + i as u64)))
        .collect();
    store.record_remote_layers(&batch).unwrap();
    // A new handle reads what was written: every layer's location, and the sizes given.
    let again = Store::open(dir.path()).unwrap();
    for (i, (d, r)) in ids.iter().zip(&remotes).enumerate() {
        assert_eq!(
            again.remote_layer(d).unwrap().as_ref(),
            Some(r),
            "layer {i}"
        );
        assert_eq!(again.layer_origin(d).as_ref(), Some(r));
    }
    assert_eq!(again.layer_size(&ids[0]), Some(1000));
    assert_eq!(again.layer_size(&ids[1]), None);
    assert_eq!(again.layer_size(&ids[2]), Some(1002));
    // Recording the same again changes nothing, and nothing is left in the staging dir.
    let record = std::fs::read_dir(dir.path().join("layers/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(&ids[0].hex()[..16]))
        .unwrap();
    let before = std::fs::metadata(&record).unwrap().modified().unwrap();
    store.record_remote_layers(&batch[..1]).unwrap();
    assert_eq!(
        std::fs::metadata(&record).unwrap().modified().unwrap(),
        before
    );
    let staged = std::fs::read_dir(store.tmp_dir()).map_or(0, |d| d.count());
    assert_eq!(staged, 0, "temporary record files left behind");
}
