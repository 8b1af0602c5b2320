use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A tar of a small tree, built with the tar crate: directories, files with their own modes,
/// owners and mtimes, a symlink, a hard link, an xattr and a whiteout-named file.
fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = |name: &str, mode: u32, mtime: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        b.append_data(&mut h, name, &[][..]).unwrap();
    };
    dir("app/", 0o750, 1_000_000);
    dir("app/bin/", 0o755, 1_000_001);
    let file = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_mtime(1_234_567);
        h.set_uid(1000);
        h.set_gid(2000);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut b = b;
    file(&mut b, "app/bin/run.sh", b"#!/bin/sh\necho hi\n", 0o4755);
    file(&mut b, "app/.wh.hidden", b"not a whiteout", 0o644);
    // An xattr, as docker's tar writer records it.
    b.append_pax_extensions([("SCHILY.xattr.user.rbuild", &b"yes"[..])])
        .unwrap();
    file(&mut b, "app/data.txt", b"data", 0o640);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_mtime(1_000);
    h.set_size(0);
    b.append_link(&mut h, "app/link", "bin/run.sh").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_mode(0o640);
    h.set_size(0);
    b.append_link(&mut h, "app/hard", "app/data.txt").unwrap();
    // A file whose parent directory has no entry of its own.
    file(&mut b, "implied/deep/f", b"f", 0o600);
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

struct Sandbox {
    dir: tempfile::TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("layer/dest");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&dest).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), "original").unwrap();
        Sandbox { dir, dest, outside }
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, data).unwrap();
        p
    }

    fn extract(&self, name: &str, data: &[u8]) -> Result<(), BuildError> {
        let p = self.write(name, data);
        assert!(is_archive(&p), "{name} is detected as an archive");
        extract(&p, &self.dest, &ExtractOptions::default())
    }

    /// Nothing was written outside `dest`: `outside/` holds only the untouched victim and the
    /// layer directory holds only `dest`.
    fn assert_confined(&self) {
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&self.outside), ["victim"]);
        assert_eq!(
            fs::read_to_string(self.outside.join("victim")).unwrap(),
            "original"
        );
        assert_eq!(names(self.dest.parent().unwrap()), ["dest"]);
    }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn assert_sample_tree(dest: &Path) {
    assert_eq!(
        fs::read_to_string(dest.join("app/bin/run.sh")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    assert_eq!(mode(&dest.join("app/bin/run.sh")), 0o4755);
    assert_eq!(mode(&dest.join("app/data.txt")), 0o640);
    assert_eq!(mode(&dest.join("app")), 0o750);
    let meta = fs::metadata(dest.join("app/data.txt")).unwrap();
    assert_eq!(meta.mtime(), 1_234_567);
    assert_eq!(
        fs::metadata(dest.join("app")).unwrap().mtime(),
        1_000_000,
        "directory mtimes are set after their contents are written"
    );
    assert_eq!(
        fs::read_link(dest.join("app/link")).unwrap(),
        Path::new("bin/run.sh")
    );
    assert_eq!(
        fs::metadata(dest.join("app/hard")).unwrap().ino(),
        meta.ino(),
        "a hard link inside the archive stays a hard link"
    );
    assert_eq!(
        fs::read_to_string(dest.join("app/.wh.hidden")).unwrap(),
        "not a whiteout",
        "ADD does not apply whiteouts"
    );
    assert_eq!(
        fs::read_to_string(dest.join("implied/deep/f")).unwrap(),
        "f"
    );
    assert_eq!(mode(&dest.join("implied")), 0o755);
    assert_eq!(mode(&dest.join("implied/deep")), 0o755);
    if is_root() {
        assert_eq!(
            (meta.uid(), meta.gid()),
            (1000, 2000),
            "owners from the tar"
        );
    }
    match xattr::get(dest.join("app/data.txt"), "user.rbuild") {
        Ok(v) => assert_eq!(v.as_deref(), Some(&b"yes"[..])),
        Err(e) => assert_eq!(e.raw_os_error(), Some(95), "only EOPNOTSUPP is tolerated"),
    }
}

#[test]
fn every_compression_is_detected_and_extracted() {
    let tar = sample_tar();
    for (name, data, kind) in [
        ("plain.tar", tar.clone(), Compression::None),
        ("a.tar.gz", gzip(&tar), Compression::Gzip),
        ("a.tar.bz2", bzip2(&tar), Compression::Bzip2),
        ("a.tar.xz", xz(&tar), Compression::Xz),
        ("a.tar.zst", zstd(&tar), Compression::Zstd),
    ] {
        assert_eq!(Compression::sniff(&data), kind, "{name}");
        let sb = Sandbox::new();
        sb.extract(name, &data)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_sample_tree(&sb.dest);
        sb.assert_confined();
    }
}

#[test]
fn detection_is_by_content_not_by_name() {
    let sb = Sandbox::new();
    let tar = sample_tar();
    // A tar without an archive-like name is still an archive.
    assert!(is_archive(&sb.write("no-extension", &gzip(&tar))));
    // Files named like archives that are not tars are copied as plain files.
    assert!(!is_archive(&sb.write("text.tar.gz", b"hello, not a tar\n")));
    assert!(!is_archive(
        &sb.write("text.gz", &gzip(b"compressed, but not a tar"))
    ));
    assert!(!is_archive(
        &sb.write("text.xz", &xz(b"compressed, but not a tar"))
    ));
    assert!(!is_archive(&sb.write("empty.tar", b"")));
    assert!(!is_archive(&sb.write("zeros.tar", &[0u8; 1024])));
    assert!(!is_archive(
        &sb.write("bad.gz", &[0x1f, 0x8b, 0x08, 0, 0, 0])
    ));
    // Not regular files.
    let link = sb.dir.path().join("link.tar");
    std::os::unix::fs::symlink(sb.write("real.tar", &tar), &link).unwrap();
    assert!(!is_archive(&link), "a symlink is not an archive");
    assert!(!is_archive(sb.dir.path()), "a directory is not an archive");
    assert!(!is_archive(&sb.dir.path().join("missing")));
}

#[test]
fn concatenated_streams_are_read_to_the_end() {
    // pigz / pbzip2 / `cat a.gz b.gz` output: one archive split over several members.
    let tar = sample_tar();
    let (head, tail) = tar.split_at(1536);
    for (name, data) in [
        ("multi.tar.gz", [gzip(head), gzip(tail)].concat()),
        ("multi.tar.bz2", [bzip2(head), bzip2(tail)].concat()),
        ("multi.tar.xz", [xz(head), xz(tail)].concat()),
        ("multi.tar.zst", [zstd(head), zstd(tail)].concat()),
    ] {
        let sb = Sandbox::new();
        sb.extract(name, &data)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_sample_tree(&sb.dest);
    }
}

#[test]
fn chown_overrides_the_tar_owners() {
    if !is_root() {
        return; // lchown to other ids needs root
    }
    let sb = Sandbox::new();
    let p = sb.write("a.tar", &sample_tar());
    let opts = ExtractOptions {
        owner: Some((33, 44)),
        preserve_owners: true,
    };
    extract(&p, &sb.dest, &opts).unwrap();
    for f in ["app", "app/bin/run.sh", "app/data.txt", "app/link"] {
        let m = fs::symlink_metadata(sb.dest.join(f)).unwrap();
        assert_eq!((m.uid(), m.gid()), (33, 44), "{f}");
    }
}

#[test]
fn extracting_over_existing_entries_replaces_them() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.dest.join("app/data.txt/sub")).unwrap();
    fs::write(sb.dest.join("keep"), "kept").unwrap();
    sb.extract("a.tar", &sample_tar()).unwrap();
    assert_eq!(
        fs::read_to_string(sb.dest.join("app/data.txt")).unwrap(),
        "data"
    );
    assert_eq!(fs::read_to_string(sb.dest.join("keep")).unwrap(), "kept");
}

#[test]
fn missing_destination_is_created() {
    let sb = Sandbox::new();
    let p = sb.write("a.tar", &sample_tar());
    let dest = sb.dest.join("new/dir");
    extract(&p, &dest, &ExtractOptions::default()).unwrap();
    assert_sample_tree(&dest);
}

/// Entries with raw names and link targets (the tar crate's builder refuses `..`).
enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

fn raw_tar(entries: &[E<'_>]) -> Vec<u8> {
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

fn refused(entries: &[E<'_>], why: &str) {
    let sb = Sandbox::new();
    let err = sb
        .extract("evil.tar.gz", &gzip(&raw_tar(entries)))
        .expect_err("the archive must be refused");
    let msg = err.to_string();
    assert!(matches!(err, BuildError::Archive { .. }), "{msg}");
    assert!(
        msg.contains("evil.tar.gz"),
        "the error names the archive: {msg}"
    );
    assert!(msg.contains(why), "the error says {why:?}: {msg}");
    sb.assert_confined();
}

#[test]
fn dotdot_escapes_are_refused() {
    refused(
        &[E::File("../../outside/victim", b"pwned")],
        "`..` leads outside the target directory",
    );
    refused(
        &[E::File("a/../../x", b"pwned")],
        "`..` leads outside the target directory",
    );
    refused(
        &[
            E::File("ok", b"x"),
            E::Hardlink("h", "../../outside/victim"),
        ],
        "`..` leads outside",
    );
}

#[test]
fn dotdot_inside_the_destination_is_resolved() {
    let sb = Sandbox::new();
    sb.extract("a.tar", &raw_tar(&[E::File("a/b/../../c", b"c")]))
        .unwrap();
    assert_eq!(fs::read_to_string(sb.dest.join("c")).unwrap(), "c");
    sb.assert_confined();
}

#[test]
fn absolute_names_land_inside_the_destination() {
    let sb = Sandbox::new();
    sb.extract("a.tar", &raw_tar(&[E::File("/etc/rbuild-test", b"x")]))
        .unwrap();
    assert_eq!(
        fs::read_to_string(sb.dest.join("etc/rbuild-test")).unwrap(),
        "x"
    );
    assert!(!Path::new("/etc/rbuild-test").exists());
    sb.assert_confined();
}

#[test]
fn absolute_symlink_then_write_through_it_stays_inside() {
    // `esc -> <the real outside dir>` then `esc/victim`: like a chroot, the absolute target
    // resolves against the destination, so the write lands in dest/<that path>/victim.
    let sb = Sandbox::new();
    let outside = sb.outside.to_str().unwrap().to_string();
    sb.extract(
        "evil.tar",
        &raw_tar(&[
            E::Symlink("esc", &outside),
            E::File("esc/victim", b"pwned"),
            E::Symlink("root", "/"),
            E::File("root/at-root", b"r"),
        ]),
    )
    .unwrap();
    sb.assert_confined();
    let inner = sb.dest.join(outside.trim_start_matches('/')).join("victim");
    assert_eq!(fs::read_to_string(inner).unwrap(), "pwned");
    assert_eq!(fs::read_to_string(sb.dest.join("at-root")).unwrap(), "r");
    assert_eq!(
        fs::read_link(sb.dest.join("esc")).unwrap(),
        Path::new(&outside)
    );
}

#[test]
fn relative_symlink_escapes_are_refused() {
    refused(
        &[
            E::Symlink("esc", "../../outside"),
            E::File("esc/victim", b"pwned"),
        ],
        "leads outside the target directory",
    );
    refused(
        &[
            E::Dir("d"),
            E::Symlink("d/up", "../.."),
            E::File("d/up/outside/new", b"pwned"),
        ],
        "leads outside the target directory",
    );
    refused(
        &[
            E::Symlink("esc", "../../outside"),
            E::Hardlink("h", "esc/victim"),
        ],
        "leads outside the target directory",
    );
}

#[test]
fn a_symlink_in_the_final_component_is_replaced_not_followed() {
    let sb = Sandbox::new();
    let victim = sb.outside.join("victim");
    sb.extract(
        "a.tar",
        &raw_tar(&[
            E::Symlink("v", victim.to_str().unwrap()),
            E::File("v", b"pwned"),
        ]),
    )
    .unwrap();
    sb.assert_confined();
    assert_eq!(fs::read_to_string(sb.dest.join("v")).unwrap(), "pwned");
    assert!(
        !fs::symlink_metadata(sb.dest.join("v"))
            .unwrap()
            .is_symlink()
    );
}

#[test]
fn a_symlink_already_in_the_destination_is_confined_too() {
    // The layer tree may already hold a symlink (an earlier source of the same ADD).
    let sb = Sandbox::new();
    std::os::unix::fs::symlink("../../outside", sb.dest.join("pre")).unwrap();
    let err = sb
        .extract("a.tar", &raw_tar(&[E::File("pre/victim", b"pwned")]))
        .unwrap_err();
    assert!(err.to_string().contains("leads outside"), "{err}");
    sb.assert_confined();
}

#[test]
fn hard_links_must_name_an_existing_entry_inside() {
    refused(&[E::Hardlink("h", "/etc/passwd")], "does not exist");
    let sb = Sandbox::new();
    sb.extract(
        "a.tar",
        &raw_tar(&[E::File("f", b"x"), E::Hardlink("/g", "/f")]),
    )
    .unwrap();
    assert_eq!(
        fs::metadata(sb.dest.join("g")).unwrap().ino(),
        fs::metadata(sb.dest.join("f")).unwrap().ino()
    );
}

#[test]
fn truncated_and_corrupt_archives_fail_cleanly() {
    let tar = sample_tar();
    let gz = gzip(&tar);
    let sb = Sandbox::new();
    let cut = sb.write("cut.tar.gz", &gz[..gz.len() / 2]);
    assert!(is_archive(&cut), "the first header is intact");
    let err = extract(&cut, &sb.dest, &ExtractOptions::default()).unwrap_err();
    assert!(matches!(err, BuildError::Archive { .. }), "{err}");
    assert!(err.to_string().contains("cut.tar.gz"), "{err}");
    sb.assert_confined();

    let mut garbled = tar.clone();
    for b in &mut garbled[1024..1536] {
        *b = b'x';
    }
    let p = sb.write("garbled.tar", &garbled);
    assert!(extract(&p, &sb.dest, &ExtractOptions::default()).is_err());
    sb.assert_confined();
}
