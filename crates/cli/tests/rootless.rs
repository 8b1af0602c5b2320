//! Rootless mode end to end: the `rbuild` binary run by an unprivileged user (`rbuild-test`,
//! with subordinate ids; `rbuild-test-noid` without; `rbuild-test-small` with too few — made by
//! scripts/lib/peers.sh's `peers_rootless_users`), through `setpriv`, never with root's rights.
//! The tests start as root (to become those users) and skip with a message otherwise.
#![allow(clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{peers_required, tar_dir};

/// A user's private world: a temporary HOME, XDG directories and a copy of the binary the
/// user may execute; the user's pause process is ended and everything removed on drop.
struct User {
    name: &'static str,
    dir: tempfile::TempDir,
}

impl User {
    /// The user, or `None` (skip, with the reason printed) when not root or not set up.
    fn new(name: &'static str, test: &str) -> Option<User> {
        if !nix::unistd::geteuid().is_root() {
            assert!(!peers_required(), "{test}: needs root under scripts/test");
            eprintln!("skipping {test}: needs root (to run rbuild as the unprivileged {name})");
            return None;
        }
        let Ok(Some(pw)) = nix::unistd::User::from_name(name) else {
            assert!(
                !peers_required(),
                "{test}: user {name} missing (peers_rootless_users)"
            );
            eprintln!(
                "skipping {test}: no user {name} (source scripts/lib/peers.sh; peers_install)"
            );
            return None;
        };
        if Command::new("setpriv").arg("--version").output().is_err() {
            assert!(!peers_required(), "{test}: setpriv missing");
            eprintln!("skipping {test}: setpriv missing");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rbuild-rootless.")
            .tempdir_in("/tmp")
            .unwrap();
        let base = dir.path();
        fs::set_permissions(base, fs::Permissions::from_mode(0o755)).unwrap();
        let bin = base.join("rbuild");
        fs::copy(env!("CARGO_BIN_EXE_rbuild"), &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["home", "home/.local/share", "home/.config", "run", "work"] {
            fs::create_dir_all(base.join(d)).unwrap();
        }
        fs::set_permissions(base.join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        for d in [
            "home",
            "home/.local",
            "home/.local/share",
            "home/.config",
            "run",
            "work",
        ] {
            std::os::unix::fs::chown(base.join(d), Some(pw.uid.as_raw()), Some(pw.gid.as_raw()))
                .unwrap();
        }
        Some(User { name, dir })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command run as the user, with only the user's environment.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid",
            self.name,
            "--regid",
            self.name,
            "--init-groups",
            "--",
        ])
        .arg(program)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", self.path("home"))
        .env("XDG_DATA_HOME", self.path("home/.local/share"))
        .env("XDG_CONFIG_HOME", self.path("home/.config"))
        .env("XDG_RUNTIME_DIR", self.path("run"))
        .env("USER", self.name)
        .current_dir(self.path("work"));
        cmd
    }

    /// `rbuild ARGS` as the user (the default store: `$XDG_DATA_HOME/rbuild`).
    fn rbuild(&self, args: &[&str]) -> Output {
        self.command(&self.path("rbuild"))
            .args(args)
            .output()
            .unwrap()
    }

    fn rbuild_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = self.command(&self.path("rbuild"));
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// `rbuild ARGS` as the user, asserting success; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.rbuild(args);
        assert!(
            out.status.success(),
            "rbuild {args:?} as {} failed: {}\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A file in the user's work directory, readable by the user.
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path("work").join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        let mut cur = p.clone();
        while cur != self.path("work") {
            fs::set_permissions(
                &cur,
                fs::Permissions::from_mode(if cur.is_dir() { 0o755 } else { 0o644 }),
            )
            .unwrap();
            cur = cur.parent().unwrap().to_path_buf();
        }
        p
    }

    /// The busybox rootfs imported as `name` by the user (the tarball made by root).
    fn busybox(&self, name: &str) -> Option<()> {
        let rootfs = common::busybox_rootfs(&self.path("bb"))?;
        let tarball = self.path("work/busybox.tar");
        tar_dir(&rootfs, &tarball);
        fs::set_permissions(&tarball, fs::Permissions::from_mode(0o644)).unwrap();
        self.ok(&[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            "busybox.tar",
            name,
        ]);
        Some(())
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // The pause process holding the user's namespace, and anything still in it.
        if let Ok(pid) = fs::read_to_string(self.path("run/rbuild/pause.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Each layer of a `docker save` archive: path → (uid, gid) of its entries.
fn layer_owners(archive: &Path) -> Vec<BTreeMap<String, (u64, u64)>> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tar = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(path, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let mut owners = BTreeMap::new();
            let mut layer = tar::Archive::new(&files[l.as_str().unwrap()][..]);
            for e in layer.entries().unwrap() {
                let e = e.unwrap();
                let h = e.header();
                let path = e
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_owned();
                owners.insert(path, (h.uid().unwrap(), h.gid().unwrap()));
            }
            owners
        })
        .collect()
}

/// The layer file names (`blobs/sha256/<diffID>`) of a `docker save` archive.
fn layer_names(archive: &Path) -> Vec<String> {
    let mut tar = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("manifest.json") {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            let m: serde_json::Value = serde_json::from_str(&s).unwrap();
            return m[0]["Layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_owned())
                .collect();
        }
    }
    panic!("no manifest.json in {}", archive.display());
}

const OWNERS_DOCKERFILE: &str = r#"FROM busybox
RUN echo "u:x:1001:1001::/home/u:/bin/sh" >> /etc/passwd && mkdir -p /home/u && chown 1001:1001 /home/u && touch /f && chown 1000:1000 /f && touch /rootfile
COPY --chown=1000:1000 a.txt /a.txt
COPY b.txt /b.txt
RUN rm /a.txt && rm -rf /home/user && mkdir -p /etc/opq && touch /etc/opq/new
"#;

#[test]
fn rootless_build_records_image_ids_in_layers_same_bytes_as_root() {
    let Some(u) = User::new("rbuild-test", "rootless_build_records_image_ids_in_layers") else {
        return;
    };
    if u.busybox("busybox").is_none() {
        return;
    }
    u.write("ctx/Dockerfile", OWNERS_DOCKERFILE);
    u.write("ctx/a.txt", "a\n");
    u.write("ctx/b.txt", "b\n");
    let build = u.rbuild_env(
        &[("SOURCE_DATE_EPOCH", "0")],
        &["build", "-t", "owners", "ctx"],
    );
    assert!(build.status.success(), "build: {}", stderr(&build));
    // The store is the user's, under XDG_DATA_HOME, and nothing is in root's.
    assert!(u.path("home/.local/share/rbuild/images.json").exists());
    u.ok(&["save", "-o", "owners.tar", "owners"]);
    let layers = layer_owners(&u.path("work/owners.tar"));
    assert_eq!(
        layers.len(),
        5,
        "base, RUN, COPY, COPY, RUN: {:?}",
        &layers[1..]
    );
    let run = &layers[1];
    assert_eq!(run["f"], (1000, 1000), "{run:?}");
    assert_eq!(run["home/u"], (1001, 1001), "{run:?}");
    assert_eq!(run["rootfile"], (0, 0), "{run:?}");
    assert_eq!(run["etc/passwd"], (0, 0), "{run:?}");
    assert_eq!(layers[2]["a.txt"], (1000, 1000));
    assert_eq!(layers[3]["b.txt"], (0, 0));
    assert_eq!(
        layers[0]["home/user"],
        (1000, 1000),
        "the base keeps its owners"
    );
    // Whiteouts of a RUN step in a user namespace's overlay.
    let last = layer_owners(&u.path("work/owners.tar")).pop().unwrap();
    assert!(last.contains_key(".wh.a.txt"), "{last:?}");
    assert!(last.contains_key("home/.wh.user"), "{last:?}");
    // Run as the same image by root: the same layers, byte for byte (diffIDs).
    let root = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_rbuild");
    let as_root = |args: &[&str]| {
        let out = Command::new(bin)
            .arg("--root")
            .arg(root.path())
            .args(args)
            .current_dir(u.path("work"))
            .env("SOURCE_DATE_EPOCH", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "root rbuild {args:?}: {}",
            stderr(&out)
        );
    };
    as_root(&["import", "busybox.tar", "busybox"]);
    as_root(&["build", "--network", "none", "-t", "owners", "ctx"]);
    let root_tar = root.path().join("owners.tar");
    as_root(&["save", "-o", root_tar.to_str().unwrap(), "owners"]);
    assert_eq!(
        layer_names(&root_tar),
        layer_names(&u.path("work/owners.tar"))
    );
}

#[test]
fn rootless_run_is_root_inside_and_user_option_works() {
    let Some(u) = User::new("rbuild-test", "rootless_run_is_root_inside") else {
        return;
    };
    if u.busybox("busybox").is_none() {
        return;
    }
    let out = u.rbuild(&["run", "--rm", "--network", "none", "busybox", "id", "-u"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0");
    // No cgroups here (cgroup v1 host, nothing delegated): said once, and the run works.
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let warnings = stderr(&out).matches("running without cgroups").count();
        assert_eq!(warnings, 1, "{}", stderr(&out));
    }
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-u",
            "1000",
            "busybox",
            "id",
            "-u"
        ])
        .trim(),
        "1000"
    );
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-u",
            "1000:1000",
            "busybox",
            "stat",
            "-c",
            "%u:%g",
            "/home/user"
        ])
        .trim(),
        "1000:1000"
    );
    // The namespace is shared by the user's commands: its pause process is recorded under
    // XDG_RUNTIME_DIR, and is the user's.
    let pid = fs::read_to_string(u.path("run/rbuild/pause.pid")).unwrap();
    let status = fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let uid = nix::unistd::User::from_name("rbuild-test")
        .unwrap()
        .unwrap()
        .uid;
    assert!(
        status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())),
        "{status}"
    );
}

#[test]
fn rootless_memory_limit_works_or_is_refused_clearly() {
    let Some(u) = User::new("rbuild-test", "rootless_memory_limit") else {
        return;
    };
    if u.busybox("busybox").is_none() {
        return;
    }
    for (flag, value) in [("-m", "32m"), ("--pids-limit", "10"), ("--cpus", "0.5")] {
        let out = u.rbuild(&[
            "run",
            "--rm",
            "--network",
            "none",
            flag,
            value,
            "busybox",
            "true",
        ]);
        if out.status.success() {
            // A delegated cgroup v2 subtree: the limit holds.
            assert!(Path::new("/sys/fs/cgroup/cgroup.controllers").exists());
            continue;
        }
        let err = stderr(&out);
        let option = match flag {
            "-m" => "--memory",
            f => f,
        };
        assert!(
            err.contains(&format!(
                "error: {option} needs cgroups, which rootless mode cannot use here"
            )),
            "{err}"
        );
        assert!(err.contains("hint: delegate a cgroup v2 subtree"), "{err}");
        // Refused before anything was made.
        assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");
    }
}

#[test]
fn rootless_without_subordinate_ids_maps_one_id_and_warns() {
    let Some(u) = User::new("rbuild-test-noid", "rootless_without_subordinate_ids") else {
        return;
    };
    if u.busybox("busybox").is_none() {
        return;
    }
    let out = u.rbuild(&["run", "--rm", "--network", "none", "busybox", "id", "-u"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0");
    assert!(
        stderr(&out).contains(
            "has no subordinate ids in /etc/subuid and /etc/subgid, so only one id is mapped"
        ),
        "{}",
        stderr(&out)
    );
    // Owners other than root cannot exist: a chown fails inside, as the warning says.
    let out = u.rbuild(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "chown",
        "1000",
        "/tmp",
    ]);
    assert!(!out.status.success());
}

#[test]
fn rootless_with_too_few_subordinate_ids_is_refused_naming_the_fix() {
    let Some(u) = User::new("rbuild-test-small", "rootless_with_too_few_subordinate_ids") else {
        return;
    };
    let out = u.rbuild(&["images"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error: rbuild-test-small has 1000 subordinate uids in /etc/subuid; rootless mode needs at least 65535"),
        "{err}"
    );
    assert!(
        err.contains("hint: give rbuild-test-small 65536 ids: usermod --add-subuids"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");
}
