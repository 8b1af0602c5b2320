//! Layer creation (changeset rules, determinism) and application (whiteouts, metadata).
#![allow(clippy::print_stderr)] // tests print why they skip

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rbuild_store::layer::{
    ApplyOptions, CreateOptions, LayerSource, Whiteouts, apply_layer, write_layer,
};

fn tar_of(src: &LayerSource, opts: &CreateOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_layer(src, &mut out, opts).unwrap();
    out
}

fn names(tar: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(tar);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn apply(tar: &[u8], target: &Path, whiteouts: Whiteouts) -> rbuild_store::Result<()> {
    let scratch = tempfile::tempdir().unwrap();
    let opts = ApplyOptions {
        whiteouts,
        ..ApplyOptions::default()
    };
    apply_layer(tar, target, &opts, "test-layer", scratch.path())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A tree with every kind of entry.
fn rich_tree(dir: &Path) {
    fs::create_dir_all(dir.join("etc/sub")).unwrap();
    fs::write(dir.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(dir.join("etc/sub/file"), "x").unwrap();
    fs::set_permissions(dir.join("etc/sub/file"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(dir.join("etc/hosts"), dir.join("etc/hosts.link")).unwrap();
    std::os::unix::fs::symlink("../etc/hosts", dir.join("etc/sub/rel")).unwrap();
    std::os::unix::fs::symlink("/etc/hosts", dir.join("abs")).unwrap();
    nix::unistd::mkfifo(
        &dir.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    xattr::set(dir.join("etc/hosts"), "user.test", b"value").unwrap();
    if is_root() {
        nix::sys::stat::mknod(
            &dir.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        std::os::unix::fs::lchown(dir.join("etc/sub"), Some(1000), Some(1001)).unwrap();
        std::os::unix::fs::lchown(dir.join("abs"), Some(7), Some(8)).unwrap();
    }
}

#[test]
fn tree_round_trips_every_kind_of_entry_and_metadata() {
    let src = tempfile::tempdir().unwrap();
    rich_tree(src.path());
    let tar = tar_of(
        &LayerSource::Tree(src.path().into()),
        &CreateOptions::default(),
    );
    let dst = tempfile::tempdir().unwrap();
    apply(&tar, dst.path(), Whiteouts::Delete).unwrap();
    let d = dst.path();
    assert_eq!(
        fs::read_to_string(d.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    assert_eq!(
        fs::metadata(d.join("etc/sub/file")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::metadata(d.join("etc/hosts")).unwrap().ino(),
        fs::metadata(d.join("etc/hosts.link")).unwrap().ino(),
        "hardlink preserved"
    );
    assert_eq!(
        fs::read_link(d.join("etc/sub/rel")).unwrap(),
        Path::new("../etc/hosts")
    );
    assert_eq!(
        fs::read_link(d.join("abs")).unwrap(),
        Path::new("/etc/hosts")
    );
    assert!(
        fs::symlink_metadata(d.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        xattr::get(d.join("etc/hosts"), "user.test")
            .unwrap()
            .as_deref(),
        Some(&b"value"[..])
    );
    let src_mtime = fs::metadata(src.path().join("etc/hosts")).unwrap().mtime();
    assert_eq!(
        fs::metadata(d.join("etc/hosts")).unwrap().mtime(),
        src_mtime
    );
    if is_root() {
        let null = fs::symlink_metadata(d.join("null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
        let sub = fs::metadata(d.join("etc/sub")).unwrap();
        assert_eq!((sub.uid(), sub.gid()), (1000, 1001));
        let abs = fs::symlink_metadata(d.join("abs")).unwrap();
        assert_eq!((abs.uid(), abs.gid()), (7, 8));
    }
}

#[test]
fn identical_content_gives_an_identical_tar_and_epoch_clamps_times() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [a.path(), b.path()] {
        fs::create_dir(d.join("dir")).unwrap();
        fs::write(d.join("dir/z"), "zz").unwrap();
        fs::write(d.join("a"), "aa").unwrap();
    }
    // Different mtimes: identical only once clamped.
    let t = nix::sys::time::TimeSpec::new(2_000_000_000, 0);
    for p in ["a", "dir/z", "dir"] {
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &b.path().join(p),
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
    let t2 = nix::sys::time::TimeSpec::new(1_900_000_000, 0);
    for p in ["a", "dir/z", "dir"] {
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &a.path().join(p),
            &t2,
            &t2,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
    let plain = CreateOptions::default();
    assert_eq!(
        tar_of(&LayerSource::Tree(a.path().into()), &plain),
        tar_of(&LayerSource::Tree(a.path().into()), &plain)
    );
    assert_ne!(
        tar_of(&LayerSource::Tree(a.path().into()), &plain),
        tar_of(&LayerSource::Tree(b.path().into()), &plain)
    );
    let clamp = CreateOptions {
        source_date_epoch: Some(1_000_000),
    };
    let ta = tar_of(&LayerSource::Tree(a.path().into()), &clamp);
    assert_eq!(ta, tar_of(&LayerSource::Tree(b.path().into()), &clamp));
    assert_eq!(names(&ta), vec!["a", "dir/", "dir/z"], "sorted names");
    let mut ar = tar::Archive::new(&ta[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().mtime().unwrap(), 1_000_000);
        assert_eq!(e.header().username().unwrap(), Some(""));
    }
}

#[test]
fn diff_against_base_emits_changes_parents_and_whiteouts() {
    let base = tempfile::tempdir().unwrap();
    let (b, c) = (base.path(), tempfile::tempdir().unwrap());
    fs::create_dir_all(b.join("keep/deep")).unwrap();
    fs::write(b.join("keep/deep/same"), "s").unwrap();
    fs::write(b.join("keep/deep/changed"), "old").unwrap();
    fs::create_dir_all(b.join("gone/dir")).unwrap();
    fs::write(b.join("gone/dir/f"), "f").unwrap();
    fs::write(b.join("removed"), "r").unwrap();
    // The changed tree: a copy, then edits.
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            &format!("{}/.", b.display()),
            &c.path().display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    fs::write(c.path().join("keep/deep/changed"), "new content").unwrap();
    fs::remove_dir_all(c.path().join("gone")).unwrap();
    fs::remove_file(c.path().join("removed")).unwrap();
    fs::write(c.path().join("added"), "a").unwrap();
    let tar = tar_of(
        &LayerSource::Diff {
            base: b.into(),
            changed: c.path().into(),
        },
        &CreateOptions::default(),
    );
    assert_eq!(
        names(&tar),
        vec![
            ".wh.gone",
            ".wh.removed",
            "added",
            "keep/",
            "keep/deep/",
            "keep/deep/changed"
        ]
    );
    // Applying the diff on a copy of the base reproduces the changed tree.
    let target = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            &format!("{}/.", b.display()),
            &target.path().display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    apply(&tar, target.path(), Whiteouts::Delete).unwrap();
    assert!(!target.path().join("gone").exists());
    assert!(!target.path().join("removed").exists());
    assert_eq!(
        fs::read_to_string(target.path().join("keep/deep/changed")).unwrap(),
        "new content"
    );
    assert_eq!(
        fs::read_to_string(target.path().join("keep/deep/same")).unwrap(),
        "s"
    );
    assert_eq!(
        fs::read_to_string(target.path().join("added")).unwrap(),
        "a"
    );
}

#[test]
fn overlay_upper_whiteouts_and_opaque_dirs_are_converted_both_ways() {
    if !is_root() {
        eprintln!("skipped: overlay whiteout devices and trusted.* xattrs need root");
        return;
    }
    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    nix::sys::stat::mknod(
        &u.join("deleted"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    fs::create_dir(u.join("opaque")).unwrap();
    xattr::set(u.join("opaque"), "trusted.overlay.opaque", b"y").unwrap();
    fs::write(u.join("opaque/new"), "n").unwrap();
    let tar = tar_of(
        &LayerSource::OverlayUpper(u.into()),
        &CreateOptions::default(),
    );
    assert_eq!(
        names(&tar),
        vec![
            ".wh.deleted",
            "opaque/",
            "opaque/.wh..wh..opq",
            "opaque/new"
        ]
    );
    // Flattening: whiteouts delete, the opaque dir hides what was below.
    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    fs::write(t.join("deleted"), "d").unwrap();
    fs::create_dir(t.join("opaque")).unwrap();
    fs::write(t.join("opaque/old"), "o").unwrap();
    apply(&tar, t, Whiteouts::Delete).unwrap();
    assert!(!t.join("deleted").exists());
    assert!(!t.join("opaque/old").exists());
    assert!(t.join("opaque/new").exists());
    // Overlay form: back to char 0/0 and the opaque xattr, ready as a lower dir.
    let snap = tempfile::tempdir().unwrap();
    apply(&tar, snap.path(), Whiteouts::Overlay).unwrap();
    let wh = fs::symlink_metadata(snap.path().join("deleted")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert_eq!(
        xattr::get(snap.path().join("opaque"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!snap.path().join("opaque/.wh..wh..opq").exists());
}

/// Type, permission bits, content or link target of every entry under `dir`.
fn listing(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let md = fs::symlink_metadata(e.path()).unwrap();
        let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
        let what = if md.file_type().is_symlink() {
            format!("link {}", fs::read_link(e.path()).unwrap().display())
        } else if md.is_dir() {
            format!("dir {:o}", md.mode() & 0o7777)
        } else {
            format!(
                "file {:o} {:?}",
                md.mode() & 0o7777,
                fs::read(e.path()).unwrap()
            )
        };
        out.push((rel, what));
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Any small tree survives create → apply unchanged, and creating twice gives the same bytes.
    #[test]
    fn random_trees_round_trip(
        entries in proptest::collection::vec(
            ("[a-c]{1,2}(/[a-c]{1,2}){0,2}", 0u8..3, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0o400u32..0o777),
            1..12,
        )
    ) {
        let src = tempfile::tempdir().unwrap();
        for (path, kind, data, mode) in &entries {
            let p = src.path().join(path);
            if fs::symlink_metadata(&p).is_ok() || p.ancestors().skip(1).any(|a| a.is_file() || a.is_symlink()) {
                continue;
            }
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            match kind {
                0 => {
                    fs::write(&p, data).unwrap();
                    fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
                }
                1 => fs::create_dir(&p).unwrap(),
                _ => std::os::unix::fs::symlink(format!("target-{}", data.len()), &p).unwrap(),
            }
        }
        let source = LayerSource::Tree(src.path().into());
        let tar = tar_of(&source, &CreateOptions::default());
        proptest::prop_assert_eq!(&tar, &tar_of(&source, &CreateOptions::default()));
        let dst = tempfile::tempdir().unwrap();
        apply(&tar, dst.path(), Whiteouts::Delete).unwrap();
        proptest::prop_assert_eq!(listing(src.path()), listing(dst.path()));
    }
}

#[test]
fn big_files_round_trip_through_direct_writes() {
    // Files of 8 MiB and more are written around the page cache when applied (unaligned
    // ends buffered): the tree made again from what was applied gives the same tar.
    let src = tempfile::tempdir().unwrap();
    let d = src.path();
    let bytes = |len: usize, seed: usize| -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 131 + seed) ^ (i >> 13)) as u8)
            .collect()
    };
    fs::create_dir_all(d.join("big")).unwrap();
    fs::write(d.join("big/odd.bin"), bytes((8 << 20) + 777, 1)).unwrap();
    fs::write(d.join("big/even.bin"), bytes(12 << 20, 2)).unwrap();
    fs::write(d.join("big/small.txt"), "small\n").unwrap();
    fs::set_permissions(d.join("big/odd.bin"), fs::Permissions::from_mode(0o4750)).unwrap();
    xattr::set(d.join("big/odd.bin"), "user.big", b"yes").unwrap();
    fs::hard_link(d.join("big/odd.bin"), d.join("big/again.bin")).unwrap();
    let tar = tar_of(&LayerSource::Tree(d.into()), &CreateOptions::default());
    let dst = tempfile::tempdir().unwrap();
    apply(&tar, dst.path(), Whiteouts::Delete).unwrap();
    for name in ["odd.bin", "even.bin", "small.txt"] {
        let (a, b) = (d.join("big").join(name), dst.path().join("big").join(name));
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{name}");
    }
    let odd = fs::metadata(dst.path().join("big/odd.bin")).unwrap();
    assert_eq!(odd.mode() & 0o7777, 0o4750);
    assert_eq!(
        odd.ino(),
        fs::metadata(dst.path().join("big/again.bin"))
            .unwrap()
            .ino()
    );
    assert_eq!(
        tar_of(
            &LayerSource::Tree(dst.path().into()),
            &CreateOptions::default()
        ),
        tar,
        "the applied tree is the layer again"
    );
}
