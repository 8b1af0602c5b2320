//! Every way a layer could write outside its target fails, and nothing outside is touched.

use std::fs;

use proptest::prelude::*;
use rbuild_store::StoreError;
use rbuild_store::layer::{ApplyOptions, apply_layer};

enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// A tar with raw names (the tar crate refuses to build `..` and absolute names itself).
fn evil_tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_old();
        let (name, kind, link, data): (&str, tar::EntryType, &str, &[u8]) = match e {
            E::File(n, d) => (n, tar::EntryType::Regular, "", d),
            E::Dir(n) => (n, tar::EntryType::Directory, "", b""),
            E::Symlink(n, t) => (n, tar::EntryType::Symlink, t, b""),
            E::Hardlink(n, t) => (n, tar::EntryType::Link, t, b""),
        };
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A sandbox: `target/` to apply into and `outside/` that must stay untouched.
struct Sandbox {
    _dir: tempfile::TempDir,
    target: std::path::PathBuf,
    outside: std::path::PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&target).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), "original").unwrap();
        Sandbox {
            _dir: dir,
            target,
            outside,
        }
    }

    fn apply(&self, tar: &[u8]) -> Result<(), StoreError> {
        let scratch = tempfile::tempdir().unwrap();
        apply_layer(
            tar,
            &self.target,
            &ApplyOptions::default(),
            "evil.tar",
            scratch.path(),
        )
    }

    fn assert_outside_untouched(&self) {
        let entries: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            entries,
            vec!["victim"],
            "something was created outside the target"
        );
        assert_eq!(
            fs::read_to_string(self.outside.join("victim")).unwrap(),
            "original"
        );
        let parent_entries: Vec<_> = fs::read_dir(self.target.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            parent_entries.len(),
            2,
            "something was created next to the target: {parent_entries:?}"
        );
    }
}

fn rejected(sb: &Sandbox, tar: &[u8], why: &str) {
    let err = sb.apply(tar).expect_err("the layer must be rejected");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::BadLayer { .. }), "{msg}");
    assert!(msg.contains("evil.tar"), "error names the layer: {msg}");
    assert!(msg.contains(why), "error says {why:?}: {msg}");
    sb.assert_outside_untouched();
}

#[test]
fn dotdot_path_is_rejected() {
    let sb = Sandbox::new();
    rejected(
        &sb,
        &evil_tar(&[E::File("../outside/victim", b"pwned")]),
        "`..`",
    );
    rejected(
        &sb,
        &evil_tar(&[E::File("a/../../outside/new", b"pwned")]),
        "`..`",
    );
    // Nothing was written at all: names are checked before anything is applied.
    assert_eq!(fs::read_dir(&sb.target).unwrap().count(), 0);
}

#[test]
fn absolute_path_is_rejected() {
    let sb = Sandbox::new();
    let abs = format!("{}/victim", sb.outside.display());
    rejected(&sb, &evil_tar(&[E::File(&abs, b"pwned")]), "absolute path");
}

#[test]
fn symlink_in_the_layer_to_an_absolute_outside_dir_is_rejected() {
    let sb = Sandbox::new();
    let out = sb.outside.display().to_string();
    rejected(
        &sb,
        &evil_tar(&[E::Symlink("link", &out), E::File("link/victim", b"pwned")]),
        "absolute symlink",
    );
}

#[test]
fn relative_symlink_climbing_out_is_rejected() {
    let sb = Sandbox::new();
    rejected(
        &sb,
        &evil_tar(&[
            E::Symlink("link", "../outside"),
            E::File("link/victim", b"pwned"),
        ]),
        "outside the target",
    );
}

#[test]
fn chained_symlinks_climbing_out_are_rejected() {
    let sb = Sandbox::new();
    rejected(
        &sb,
        &evil_tar(&[
            E::Dir("a/"),
            E::Symlink("a/up", ".."),
            E::Symlink("b", "a/up/a/up/../outside"),
            E::File("b/victim", b"pwned"),
        ]),
        "outside the target",
    );
}

#[test]
fn symlink_already_on_disk_is_not_followed_out() {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink(&sb.outside, sb.target.join("disk-abs")).unwrap();
    std::os::unix::fs::symlink("../outside", sb.target.join("disk-rel")).unwrap();
    rejected(
        &sb,
        &evil_tar(&[E::File("disk-abs/victim", b"pwned")]),
        "absolute symlink",
    );
    rejected(
        &sb,
        &evil_tar(&[E::File("disk-rel/new", b"pwned")]),
        "outside the target",
    );
}

#[test]
fn existing_symlink_as_final_component_is_replaced_not_written_through() {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink(sb.outside.join("victim"), sb.target.join("file")).unwrap();
    sb.apply(&evil_tar(&[E::File("file", b"inside")])).unwrap();
    assert_eq!(
        fs::read_to_string(sb.target.join("file")).unwrap(),
        "inside"
    );
    assert!(
        !fs::symlink_metadata(sb.target.join("file"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_escapes_are_rejected() {
    let sb = Sandbox::new();
    rejected(
        &sb,
        &evil_tar(&[E::Hardlink("h", "../outside/victim")]),
        "hardlink target leaves the layer",
    );
    let abs = format!("{}/victim", sb.outside.display());
    rejected(
        &sb,
        &evil_tar(&[E::Hardlink("h", &abs)]),
        "hardlink target leaves the layer",
    );
    let out = sb.outside.display().to_string();
    rejected(
        &sb,
        &evil_tar(&[E::Symlink("l", &out), E::Hardlink("h", "l/victim")]),
        "absolute symlink",
    );
}

#[test]
fn hardlink_to_a_symlink_links_the_symlink_itself() {
    let sb = Sandbox::new();
    let victim = sb.outside.join("victim").display().to_string();
    sb.apply(&evil_tar(&[
        E::Symlink("s", &victim),
        E::Hardlink("h", "s"),
    ]))
    .unwrap();
    assert!(
        fs::symlink_metadata(sb.target.join("h"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Writing a file over the hardlinked name replaces it; the outside file is untouched.
    sb.apply(&evil_tar(&[E::File("h", b"inside")])).unwrap();
    sb.assert_outside_untouched();
}

#[test]
fn in_target_relative_symlinks_are_followed() {
    let sb = Sandbox::new();
    sb.apply(&evil_tar(&[
        E::Dir("usr/"),
        E::Dir("usr/lib/"),
        E::Symlink("lib", "usr/lib"),
        E::File("lib/libc.so", b"c"),
    ]))
    .unwrap();
    assert_eq!(
        fs::read_to_string(sb.target.join("usr/lib/libc.so")).unwrap(),
        "c"
    );
    sb.assert_outside_untouched();
}

#[test]
fn truncated_layer_is_rejected_before_writing() {
    let sb = Sandbox::new();
    let mut tar = evil_tar(&[E::File("a", b"hello"), E::File("big", &[1u8; 4096])]);
    tar.truncate(1024 + 100);
    let err = sb.apply(&tar).expect_err("truncated");
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_eq!(
        fs::read_dir(&sb.target).unwrap().count(),
        0,
        "nothing applied from a truncated layer"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random bytes: an error or success, never a panic, never a write outside.
    #[test]
    fn random_bytes_never_panic_or_escape(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let sb = Sandbox::new();
        let _ = sb.apply(&bytes);
        sb.assert_outside_untouched();
    }

    /// Random mutations of a valid tar with a symlink and files.
    #[test]
    fn mutated_tars_never_panic_or_escape(pos in 0usize..3584, val in any::<u8>()) {
        let sb = Sandbox::new();
        let mut tar = evil_tar(&[E::Dir("d/"), E::Symlink("d/l", "../d"), E::File("d/l/f", b"data")]);
        if pos < tar.len() { tar[pos] = val; }
        let _ = sb.apply(&tar);
        sb.assert_outside_untouched();
    }
}

/// The archive rules (`ADD` of a local tar): names are rooted at the target instead of
/// refused, absolute symlinks resolve against it, whiteouts are plain files, and what would
/// still leave the target is refused.
mod rooted {
    use super::*;
    use rbuild_store::layer::{Paths, Whiteouts, apply_stream};

    fn opts() -> ApplyOptions {
        ApplyOptions {
            whiteouts: Whiteouts::Keep,
            paths: Paths::Rooted,
            ..ApplyOptions::default()
        }
    }

    #[test]
    fn rooted_names_and_symlinks_stay_inside() {
        let sb = Sandbox::new();
        fs::write(sb.target.join("old"), "kept").unwrap();
        let outside = sb.outside.to_str().unwrap().to_string();
        let tar = evil_tar(&[
            E::File("/abs", b"a"),
            E::File("x/../dotdot", b"d"),
            E::Symlink("esc", &outside),
            E::File("esc/victim", b"inside"),
            E::File(".wh.old", b"w"),
            E::Dir("d"),
            E::File("d/.wh..wh..opq", b"o"),
            E::Hardlink("/h", "/abs"),
        ]);
        apply_stream(&tar[..], &sb.target, &opts(), "a.tar").unwrap();
        sb.assert_outside_untouched();
        let t = &sb.target;
        assert_eq!(fs::read_to_string(t.join("abs")).unwrap(), "a");
        assert_eq!(fs::read_to_string(t.join("dotdot")).unwrap(), "d");
        let inner = t.join(outside.trim_start_matches('/')).join("victim");
        assert_eq!(fs::read_to_string(inner).unwrap(), "inside");
        assert_eq!(fs::read_to_string(t.join("old")).unwrap(), "kept");
        assert_eq!(fs::read_to_string(t.join(".wh.old")).unwrap(), "w");
        assert_eq!(fs::read_to_string(t.join("d/.wh..wh..opq")).unwrap(), "o");
        assert_eq!(fs::read_to_string(t.join("h")).unwrap(), "a");
    }

    #[test]
    fn rooted_escapes_are_refused() {
        for (entries, why) in [
            (
                vec![E::File("../outside/victim", b"p")],
                "`..` leads outside",
            ),
            (
                vec![E::Symlink("up", ".."), E::File("up/outside/victim", b"p")],
                "leads outside the target directory",
            ),
            (
                vec![E::Hardlink("h", "../outside/victim")],
                "`..` leads outside",
            ),
        ] {
            let sb = Sandbox::new();
            let err = apply_stream(&evil_tar(&entries)[..], &sb.target, &opts(), "evil.tar")
                .expect_err("refused");
            assert!(err.to_string().contains(why), "{err}");
            sb.assert_outside_untouched();
        }
    }
}
