//! A store on a full disk: loading or importing fails with a clear error and the store keeps
//! what it had. Needs root (a small tmpfs); skipped otherwise.
#![allow(clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{rbuild, rbuild_ok};

/// A tmpfs of `size`, unmounted when dropped (also when the test panics).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a small tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "rbuild-full-disk",
            ])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs");
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn tarball(dir: &Path, name: &str, size: usize) -> PathBuf {
    let path = dir.join(format!("{name}.tar"));
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    // Incompressible content (a simple xorshift stream).
    let mut x: u64 = 0x9E3779B97F4A7C15 ^ size as u64;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, &data[..]).unwrap();
    b.into_inner().unwrap();
    path
}

fn snapshot(root: &Path) -> (String, Vec<String>) {
    let images = rbuild_ok(root, &["images", "-q", "--no-trunc"]);
    let mut blobs: Vec<String> = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    (images, blobs)
}

#[test]
fn full_disk_load_and_import_fail_cleanly_and_keep_the_store() {
    let Some(fs) = Tmpfs::mount("3m") else { return };
    let work = tempfile::tempdir().unwrap();
    let big = tarball(work.path(), "big", 5 << 20);
    let small = tarball(work.path(), "small", 10_000);
    // An archive too big for the disk, made in a roomy store.
    let roomy = work.path().join("roomy");
    rbuild_ok(&roomy, &["import", big.to_str().unwrap(), "big:1"]);
    let archive = work.path().join("big-archive.tar");
    rbuild_ok(&roomy, &["save", "-o", archive.to_str().unwrap(), "big:1"]);

    let store = fs.path().join("store");
    rbuild_ok(&store, &["import", small.to_str().unwrap(), "small:1"]);
    let before = snapshot(&store);
    assert_eq!(before.0.lines().count(), 1);

    for args in [
        vec!["load", "-i", archive.to_str().unwrap()],
        vec!["import", big.to_str().unwrap(), "big:1"],
    ] {
        let out = rbuild(&store, &args);
        assert!(!out.status.success(), "{args:?} should fail on a full disk");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No space left on device"), "{args:?}: {err}");
        assert!(
            err.contains(store.to_str().unwrap())
                || err.contains(archive.to_str().unwrap())
                || err.contains(big.to_str().unwrap()),
            "names a file: {err}"
        );
        assert_eq!(snapshot(&store), before, "{args:?} changed the store");
        assert_eq!(
            std::fs::read_dir(store.join("tmp")).unwrap().count(),
            0,
            "{args:?} left staging files"
        );
    }
    // Still usable once there is room again.
    assert!(rbuild_ok(&store, &["images"]).contains("small"));
}

#[test]
fn reloading_an_archive_of_blobs_the_store_has_needs_no_room() {
    let Some(fs) = Tmpfs::mount("3m") else { return };
    let work = tempfile::tempdir().unwrap();
    let mid = tarball(work.path(), "mid", 2 << 20);
    let store = fs.path().join("store");
    rbuild_ok(&store, &["import", mid.to_str().unwrap(), "mid:1"]);
    let archive = work.path().join("mid-oci.tar");
    rbuild_ok(
        &store,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            archive.to_str().unwrap(),
            "mid:1",
        ],
    );
    // Staging the 2 MiB layer again would not fit beside the stored one.
    let out = rbuild_ok(&store, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: mid:1\n");
}

#[test]
fn a_build_copying_more_than_the_disk_holds_fails_cleanly() {
    let Some(fs) = Tmpfs::mount("12m") else {
        return;
    };
    let store = fs.path().join("store");
    let Some(_) = common::busybox_image(&store, "busybox:local") else {
        return;
    };
    // A COPY of a file larger than the room left (filled while hashed: created at its size
    // as a hole, then written), and one of a small file that fits.
    let ctx = tempfile::tempdir().unwrap();
    let big = tarball(ctx.path(), "big", 16 << 20);
    std::fs::write(ctx.path().join("small.txt"), "fits\n").unwrap();
    let ctx_arg = ctx.path().to_str().unwrap();
    let before = snapshot(&store);
    for file in [big.file_name().unwrap().to_str().unwrap(), "small.txt"] {
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM busybox:local\nCOPY {file} /x\n"),
        )
        .unwrap();
        let out = rbuild(&store, &["build", "-q", "-t", "full:1", ctx_arg]);
        let err = String::from_utf8_lossy(&out.stderr);
        if file == "small.txt" {
            assert!(out.status.success(), "a build that fits: {err}");
            break;
        }
        assert!(!out.status.success(), "the COPY should not fit");
        assert!(err.contains("No space left on device"), "{err}");
        assert!(
            err.contains(store.to_str().unwrap()),
            "names the file: {err}"
        );
        assert_eq!(
            snapshot(&store),
            before,
            "the failed build changed the store"
        );
        assert_eq!(
            std::fs::read_dir(store.join("tmp")).unwrap().count(),
            0,
            "the failed build left staging files"
        );
    }
    assert!(rbuild_ok(&store, &["images"]).contains("full"));
}
