//! Layers kept only as their snapshot directory (`Store::add_layer_from_dir`): no tar is
//! written when they are made, yet every reader gets the very bytes that were hashed, a
//! changed snapshot is refused rather than passed on, and gc removes them with their image.
#![allow(clippy::print_stderr)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use rbuild_oci::{Compression, Digest};
use rbuild_store::archive::{ArchiveFormat, save};
use rbuild_store::layer::{CreateOptions, write_layer};
use rbuild_store::{LayerSource, Store};

/// A tree with a file, an executable, a symlink, a hardlink and a nested directory, in the
/// store's staging area (the same filesystem, as the builder's are).
fn make_tree(store: &Store, name: &str) -> std::path::PathBuf {
    let dir = store.tmp_dir().join(name);
    fs::create_dir_all(dir.join("app/sub")).unwrap();
    fs::write(dir.join("app/data"), vec![7u8; 300_000]).unwrap();
    fs::write(dir.join("app/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(dir.join("app/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("run.sh", dir.join("app/link")).unwrap();
    fs::hard_link(dir.join("app/data"), dir.join("app/sub/again")).unwrap();
    dir
}

fn tar_of(source: &LayerSource) -> Vec<u8> {
    let mut out = Vec::new();
    write_layer(source, &mut out, &CreateOptions::default()).unwrap();
    out
}

fn read_all(mut r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

fn config_of(diff_ids: &[&Digest]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|d| d.to_string()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
        "history": ids.iter().map(|_| serde_json::json!({"created_by": "test"})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

#[test]
fn a_layer_kept_as_its_snapshot_gives_the_hashed_bytes_to_every_reader() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let _hold = store.hold().unwrap();
    let dir = make_tree(&store, "tree");
    let expected = tar_of(&LayerSource::Tree(dir.clone()));
    let (info, snapshot) = store
        .add_layer_from_dir(&LayerSource::Tree(dir.clone()))
        .unwrap();
    assert_eq!(info.diff_id, Digest::sha256_of(&expected));
    assert_eq!(info.size, expected.len() as u64);
    assert!(!dir.exists(), "the directory was renamed into place");
    assert_eq!(
        fs::read(snapshot.join("app/run.sh")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert!(
        !store.blobs().contains(&info.diff_id),
        "no tar was written when the layer was made"
    );
    assert!(store.has_blob(&info.diff_id));
    assert_eq!(
        store.layer_blob(&info.diff_id, Compression::None).unwrap(),
        Some((info.diff_id.clone(), info.size))
    );
    assert_eq!(
        read_all(store.blob_reader(&info.diff_id).unwrap()).unwrap(),
        expected
    );
    assert_eq!(
        read_all(store.layer_reader(&info.diff_id).unwrap()).unwrap(),
        expected
    );

    // An image of it: committed, compressed for a push, saved as both archive formats.
    let image = store
        .commit_image(&config_of(&[&info.diff_id]), &["snap:1".parse().unwrap()])
        .unwrap();
    let (gz, _) = store
        .compressed_layer(&info.diff_id, Compression::Gzip)
        .unwrap();
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(store.blobs().open(&gz).unwrap())
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, expected);
    for format in [ArchiveFormat::Docker, ArchiveFormat::Oci] {
        let mut archive = Vec::new();
        let names = vec!["snap:1".parse().unwrap()];
        save(&store, &[(image.clone(), names)], format, &mut archive).unwrap();
        let mut ar = tar::Archive::new(archive.as_slice());
        let found = ar.entries().unwrap().any(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            path.contains(info.diff_id.hex()) && read_all(&mut e).unwrap() == expected
        });
        assert!(found, "the {format:?} archive holds the layer's bytes");
    }
    // Unpacking elsewhere (an export) reads it too.
    let flat = tempfile::tempdir().unwrap();
    store.unpack(&image, flat.path()).unwrap();
    assert_eq!(
        fs::read(flat.path().join("app/sub/again")).unwrap().len(),
        300_000
    );
}

#[test]
fn a_changed_snapshot_is_an_error_never_other_bytes() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let _hold = store.hold().unwrap();
    let dir = make_tree(&store, "tree");
    let (info, snapshot) = store.add_layer_from_dir(&LayerSource::Tree(dir)).unwrap();
    fs::write(snapshot.join("app/run.sh"), "#!/bin/sh\necho tampered\n").unwrap();
    let err = read_all(store.blob_reader(&info.diff_id).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("snapshot changed")
            && err.to_string().contains(info.diff_id.hex()),
        "{err}"
    );
    let err = store
        .compressed_layer(&info.diff_id, Compression::Gzip)
        .unwrap_err();
    assert!(err.to_string().contains("snapshot"), "{err}");
    // The kernel-copied export checks the size the layer had (a change within the tar's
    // 512-byte blocks gets through: whoever reads the export verifies its digest).
    fs::write(snapshot.join("app/run.sh"), "x".repeat(2000)).unwrap();
    let out = tempfile::tempfile().unwrap();
    let err = store
        .write_blob_file(&info.diff_id, &mut { out })
        .unwrap_err();
    assert!(err.to_string().contains("snapshot changed"), "{err}");
    // A snapshot gone altogether: the layer is missing, not empty.
    fs::remove_dir_all(&snapshot).unwrap();
    assert!(!store.has_blob(&info.diff_id));
    assert!(store.blob_reader(&info.diff_id).is_err());
}

#[test]
fn a_layer_with_a_blob_keeps_it_and_gc_removes_snapshot_layers_with_their_image() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: whiteout devices and trusted.* xattrs need root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    {
        let _hold = store.hold().unwrap();
        // The same tree stored as a tar first: building it again keeps reading the blob.
        let first = make_tree(&store, "first");
        let stored = store
            .add_layer(&LayerSource::Tree(first.clone()), &CreateOptions::default())
            .unwrap();
        let again = make_tree(&store, "again");
        // Same content, same times: copy the first tree's mtimes over.
        copy_times(&first, &again);
        let (info, _) = store.add_layer_from_dir(&LayerSource::Tree(again)).unwrap();
        assert_eq!(info.diff_id, stored.diff_id);
        assert!(store.blobs().contains(&info.diff_id));
        let record = fs::read_to_string(
            root.path()
                .join("layers/sha256")
                .join(format!("{}.json", info.diff_id.hex())),
        )
        .unwrap();
        assert!(!record.contains("\"tree\""), "{record}");

        // An upper directory (whiteout device, opaque directory) made into a layer.
        let upper = store.tmp_dir().join("upper");
        fs::create_dir_all(upper.join("etc/opaque")).unwrap();
        fs::write(upper.join("etc/opaque/new"), "n").unwrap();
        nix::sys::stat::mknod(
            &upper.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        xattr_set(&upper.join("etc/opaque"), "trusted.overlay.opaque", b"y");
        let expected = tar_of(&LayerSource::OverlayUpper(upper.clone()));
        let (up, _) = store
            .add_layer_from_dir(&LayerSource::OverlayUpper(upper))
            .unwrap();
        assert_eq!(
            read_all(store.blob_reader(&up.diff_id).unwrap()).unwrap(),
            expected
        );
        let names: Vec<String> = tar::Archive::new(expected.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(
            names.iter().any(|n| n.ends_with("etc/.wh.gone")),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n.ends_with("etc/opaque/.wh..wh..opq")),
            "{names:?}"
        );
        store
            .commit_image(
                &config_of(&[&info.diff_id, &up.diff_id]),
                &["two:1".parse().unwrap()],
            )
            .unwrap();
    }
    let snapshot = root.path().join("snapshots/sha256");
    assert_eq!(fs::read_dir(&snapshot).unwrap().count(), 2);
    let img = store.resolve("two:1").unwrap();
    store
        .remove(&img.manifest_digest.to_string(), false)
        .unwrap_or_else(|e| panic!("{e}"));
    store.collect_garbage().unwrap();
    assert_eq!(
        fs::read_dir(&snapshot).unwrap().count(),
        0,
        "snapshots go with the image"
    );
    assert_eq!(
        fs::read_dir(root.path().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
}

fn copy_times(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from).contents_first(true) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(from).unwrap();
        let target = to.join(rel);
        let md = fs::symlink_metadata(e.path()).unwrap();
        let t = nix::sys::time::TimeSpec::new(
            std::os::unix::fs::MetadataExt::mtime(&md),
            std::os::unix::fs::MetadataExt::mtime_nsec(&md),
        );
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &target,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) {
    xattr::set(path, name, value).unwrap_or_else(|e| panic!("setting {name} on {path:?}: {e}"));
}

/// Gives `data` as the content of one file, and counts what it was asked for.
struct Given {
    path: std::path::PathBuf,
    data: Vec<u8>,
    asked: Vec<(std::path::PathBuf, u64)>,
}

impl rbuild_store::layer::FileContents for Given {
    fn open(&mut self, path: &Path, len: u64) -> Option<std::io::Result<Box<dyn Read + '_>>> {
        self.asked.push((path.to_path_buf(), len));
        (path == self.path).then(|| Ok(Box::new(&self.data[..]) as Box<dyn Read>))
    }
}

#[test]
fn hashing_a_directory_gives_the_digest_of_its_tar_and_takes_given_contents() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let dir = make_tree(&store, "tree");
    // Large enough to cross the hashing thread's chunks several times.
    fs::write(
        dir.join("app/big"),
        (0..3_500_000u32)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let source = LayerSource::Tree(dir.clone());
    let tar = tar_of(&source);
    let info = rbuild_store::hash_layer_dir(&source, &mut rbuild_store::layer::ReadFiles).unwrap();
    assert_eq!(info.diff_id, Digest::sha256_of(&tar));
    assert_eq!(info.size, tar.len() as u64);

    // A file whose content is given (here: its own bytes, the file emptied to a hole of
    // the same size) hashes as if it had been read.
    let data = fs::read(dir.join("app/run.sh")).unwrap();
    let mtime = fs::metadata(dir.join("app/big"))
        .unwrap()
        .modified()
        .unwrap();
    // run.sh's content, or a hole of its size, with one fixed mtime.
    let set_run_sh = |hole: bool| {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.join("app/run.sh"))
            .unwrap();
        f.set_len(0).unwrap();
        if hole {
            f.set_len(data.len() as u64).unwrap();
        } else {
            (&f).write_all(&data).unwrap();
        }
        f.set_modified(mtime).unwrap();
    };
    set_run_sh(true);
    let mut given = Given {
        path: dir.join("app/run.sh"),
        data: data.clone(),
        asked: Vec::new(),
    };
    let with_given = rbuild_store::hash_layer_dir(&source, &mut given).unwrap();
    let mut expected_tree = tar_of(&source);
    assert_ne!(
        Digest::sha256_of(&expected_tree),
        with_given.diff_id,
        "the hole reads as zeros"
    );
    set_run_sh(false);
    expected_tree = tar_of(&source);
    assert_eq!(Digest::sha256_of(&expected_tree), with_given.diff_id);
    // Asked for regular files only, each once, with their sizes; a hardlink's second name
    // is a link entry, not asked for.
    let mut asked: Vec<_> = given
        .asked
        .iter()
        .map(|(p, _)| p.strip_prefix(&dir).unwrap().to_path_buf())
        .collect();
    asked.sort();
    assert_eq!(
        asked,
        ["app/big", "app/data", "app/run.sh"].map(std::path::PathBuf::from)
    );
    assert!(
        given
            .asked
            .contains(&(dir.join("app/run.sh"), data.len() as u64))
    );

    // Content that ends before the file's size is an error, not a short tar entry.
    let mut short = Given {
        path: dir.join("app/run.sh"),
        data: data[..data.len() - 3].to_vec(),
        asked: Vec::new(),
    };
    let err = rbuild_store::hash_layer_dir(&source, &mut short).unwrap_err();
    assert!(err.to_string().contains("before the file's size"), "{err}");
}
