//! Rootless mode end to end: the `rbuild` binary run by an unprivileged user (`rbuild-test`,
//! with subordinate ids; `rbuild-test-noid` without; `rbuild-test-small` with too few — made by
//! scripts/lib/peers.sh's `peers_rootless_users`), through `setpriv`, never with root's rights.
//! The tests start as root (to become those users) and skip with a message otherwise.
#![allow(clippy::print_stderr)]

mod common;
#[path = "../../registry/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
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
        self.command_via(&[], program)
    }

    /// A command run as the user by `setpriv`, itself run (as root) by `wrapper` (a program
    /// and its arguments, ending with the command it runs), with only the user's environment.
    fn command_via(&self, wrapper: &[&std::ffi::OsStr], program: &Path) -> Command {
        // Absolute: a PATH given to the user's command must not change which setpriv runs.
        let setpriv = tool_path("setpriv");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&setpriv);
                c
            }
            None => Command::new(&setpriv),
        };
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

    /// User `rbuild-test` with the busybox rootfs imported as `busybox`, or `None` (skip).
    fn with_busybox(test: &str) -> Option<User> {
        let u = User::new("rbuild-test", test)?;
        u.busybox("busybox")?;
        Some(u)
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
        // Containers left by a failed test, then the pause process holding the namespace.
        if let Ok(out) = self
            .command(&self.path("rbuild"))
            .args(["ps", "-aq"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.rbuild(&["rm", "-f", id]);
            }
        }
        // The pause process holding the user's namespace, and anything still in it.
        if let Ok(pid) = fs::read_to_string(self.path("run/rbuild/pause.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `tool`'s path on the test's PATH (the tool itself when not found).
fn tool_path(tool: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| tool.into())
}

/// Assert that `out` failed with exit `code` and a standard error holding every one of
/// `needles`; returns that standard error.
fn refused(out: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in:\n{err}");
    }
    err
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
    let Some(u) = User::with_busybox("rootless_build_records_image_ids_in_layers") else {
        return;
    };
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
    let Some(u) = User::with_busybox("rootless_run_is_root_inside") else {
        return;
    };
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
    let Some(u) = User::with_busybox("rootless_memory_limit") else {
        return;
    };
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
    let err = refused(
        &u.rbuild(&["images"]),
        1,
        &[
            "error: rbuild-test-small has 1000 subordinate uids in /etc/subuid; rootless mode needs at least 65535",
            "hint: give rbuild-test-small 65536 ids: usermod --add-subuids",
        ],
    );
    assert_eq!(err.lines().count(), 2, "{err}");
}

/// An HTTP GET of `path` on 127.0.0.1:`port` from the host; the body, when it answered 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.lines()
        .next()
        .is_some_and(|l| l.contains(" 200 "))
        .then(|| body.to_owned())
}

#[test]
fn rootless_networks_none_host_and_default_bridge_with_egress() {
    let Some(u) = User::with_busybox("rootless_networks") else {
        return;
    };
    // none: loopback only.
    let links = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    // host: the host's interfaces (the user's namespace shares the host's network).
    let host_links: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let seen = u.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    let mut seen: Vec<&str> = seen.split_whitespace().collect();
    seen.sort();
    let mut want: Vec<&str> = host_links.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(seen, want);
    // The default bridge: an address on docker's subnet and the outside through slirp4netns
    // (Debian's mirror: a package registry, which the machine may reach).
    let out = u.rbuild(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0 && wget -q -O- http://deb.debian.org/debian/dists/bookworm/Release | head -3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("inet 172.17."), "{text}");
    assert!(text.contains("Origin: Debian"), "{text}");
    // Nothing of it runs as root on the host: the hub and its uplink are the user's.
    let uid = nix::unistd::User::from_name("rbuild-test")
        .unwrap()
        .unwrap()
        .uid;
    let hub_json =
        fs::read_to_string(u.path("home/.local/share/rbuild/networks/hub.json")).unwrap();
    let hub: serde_json::Value = serde_json::from_str(&hub_json).unwrap();
    if let Some(pid) = hub["pid"].as_i64() {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(
            status.is_empty()
                || status.lines().any(|l| l.starts_with("Uid:")
                    && l.split_whitespace().nth(1) == Some(&uid.to_string())),
            "{status}"
        );
    }
}

#[test]
fn rootless_detached_container_publishes_a_port_and_lives_its_lifecycle() {
    let Some(u) = User::with_busybox("rootless_detached_container") else {
        return;
    };
    let port = support::free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = u.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, "busybox", "sh", "-c",
        "mkdir -p /www && echo rootless-page > /www/index.html && echo started && exec httpd -f -p 80 -h /www",
    ]);
    let id = id.trim();
    let mut body = None;
    for _ in 0..100 {
        body = http_get(port, "/index.html");
        if body.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(body.as_deref(), Some("rootless-page\n"));
    let ps = u.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(
        ps.contains(&format!("web 127.0.0.1:{port}->80/tcp")),
        "{ps}"
    );
    assert_eq!(u.ok(&["exec", "web", "id", "-u"]).trim(), "0");
    assert_eq!(
        u.ok(&["exec", "-u", "1000", "web", "id", "-u"]).trim(),
        "1000"
    );
    let ps_inside = u.ok(&["exec", "web", "ps", "-o", "pid,args"]);
    assert!(
        ps_inside.contains("1 httpd -f -p 80 -h /www"),
        "{ps_inside}"
    );
    assert_eq!(u.ok(&["logs", "web"]).trim(), "started");
    u.ok(&["stop", "-t", "1", "web"]);
    let state = u.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(state.starts_with("web Exited ("), "{state}");
    assert!(
        http_get(port, "/index.html").is_none(),
        "stopped, yet served"
    );
    // Started again, it serves again (its logs keep both runs); rm -f ends it.
    u.ok(&["start", "web"]);
    let mut body = None;
    for _ in 0..100 {
        body = http_get(port, "/index.html");
        if body.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(body.as_deref(), Some("rootless-page\n"));
    assert_eq!(u.ok(&["logs", "web"]), "started\nstarted\n");
    u.ok(&["rm", "-f", id]);
    assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");
    assert!(
        http_get(port, "/index.html").is_none(),
        "removed, yet served"
    );
}

#[test]
fn rootless_volumes_and_save_load() {
    let Some(u) = User::with_busybox("rootless_volumes_and_save_load") else {
        return;
    };
    u.ok(&["volume", "create", "data"]);
    u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f && chown 1000:1000 /data/f",
    ]);
    let seen = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "data:/data",
        "busybox",
        "stat",
        "-c",
        "%u:%g %n",
        "/data/f",
    ]);
    assert_eq!(seen.trim(), "1000:1000 /data/f");
    // The volume's file is the subordinate id 1000 maps to, on the host.
    let host_file = u.path("home/.local/share/rbuild/volumes/data/_data/f");
    let meta = fs::metadata(&host_file).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        meta.uid(),
        100000 + 999,
        "1000 inside is the range's 1000th id"
    );
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "kept\n");
    u.ok(&["save", "-o", "bb.tar", "busybox"]);
    u.ok(&["rmi", "busybox"]);
    assert!(!u.rbuild(&["inspect", "busybox"]).status.success());
    let loaded = u.ok(&["load", "-i", "bb.tar"]);
    assert!(loaded.contains("Loaded image: busybox:latest"), "{loaded}");
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "stat",
            "-c",
            "%u",
            "/home/user"
        ])
        .trim(),
        "1000"
    );
    u.ok(&["volume", "rm", "data"]);
}

#[test]
fn rootless_push_uses_the_users_docker_credentials() {
    let Some(u) = User::new("rbuild-test", "rootless_push_uses_the_users_credentials") else {
        return;
    };
    let Some(registry) = support::RegistryProcess::start(
        support::Auth::Htpasswd {
            user: "alice".into(),
            password: "s3cret".into(),
        },
        "rootless_push",
    ) else {
        return;
    };
    if u.busybox("busybox").is_none() {
        return;
    }
    let target = format!("{}/rootless/busybox:1", registry.addr);
    u.ok(&["tag", "busybox", &target]);
    let denied = u.rbuild(&["push", &target]);
    assert!(!denied.status.success(), "pushed without credentials");
    let mut login = u.command(&u.path("rbuild"));
    login
        .args(["login", "-u", "alice", "--password-stdin", &registry.addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "login: {}", stderr(&out));
    let config = fs::read_to_string(u.path("home/.docker/config.json")).unwrap();
    assert!(config.contains(&registry.addr), "{config}");
    u.ok(&["push", &target]);
    // Read back by root's rbuild with the same credentials: the image is there.
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("docker");
    fs::create_dir_all(&cfg).unwrap();
    fs::write(cfg.join("config.json"), &config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root.path().join("store"))
        .args(["pull", &target])
        .env("DOCKER_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "pull as root: {}", stderr(&out));
}

/// The shared libraries `binary` loads (from `ldd`), to mount into a container without them.
fn shared_libraries(binary: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = match l.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect()
}

#[test]
fn chroot_isolation_builds_inside_an_unprivileged_docker_container() {
    if !nix::unistd::geteuid().is_root() {
        assert!(!peers_required(), "needs root under scripts/test");
        eprintln!(
            "skipping chroot_isolation_builds_inside_an_unprivileged_docker_container: needs root (dockerd)"
        );
        return;
    }
    if !common::have_peer("docker", &["version"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some(tarball) = common::busybox_tarball(work.path()) else {
        return;
    };
    // The container's image: the busybox userland (imported, never pulled).
    let image = format!("rbuild-chroot-test-{}", std::process::id());
    let imported = Command::new("docker")
        .args(["import", tarball.to_str().unwrap(), &image])
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "docker import: {}",
        stderr(&imported)
    );
    let ctx = work.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo hi > /hello && chown 1000:1000 /hello && mkdir /d && touch /d/x\nCOPY --chown=1000:1000 a.txt /a.txt\nRUN rm /d/x && cat /a.txt /hello\n",
    )
    .unwrap();
    fs::write(ctx.join("a.txt"), "aaa\n").unwrap();
    let out_dir = work.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let bin = env!("CARGO_BIN_EXE_rbuild");
    let mut run = Command::new("docker");
    // Docker's defaults: no --privileged, default capabilities and seccomp profile.
    run.args(["run", "--rm", "--network", "host"])
        .arg("-v")
        .arg(format!("{bin}:/usr/local/bin/rbuild:ro"));
    for lib in shared_libraries(bin) {
        run.arg("-v").arg(format!("{lib}:{lib}:ro"));
    }
    run.arg("-v")
        .arg(format!("{}:/in/busybox.tar:ro", tarball.display()))
        .arg("-v")
        .arg(format!("{}:/ctx:ro", ctx.display()))
        .arg("-v")
        .arg(format!("{}:/out", out_dir.display()))
        .arg(&image)
        .args([
            "sh",
            "-c",
            "rbuild --root /store import /in/busybox.tar busybox && rbuild --root /store build --progress plain -t built /ctx && rbuild --root /store save -o /out/built.tar built",
        ]);
    let out = run.output().unwrap();
    let _ = Command::new("docker").args(["rmi", &image]).output();
    let err = stderr(&out);
    assert!(out.status.success(), "build in docker: {err}");
    assert!(
        err.contains("note: RUN steps use chroot isolation (namespaces cannot be created here)"),
        "{err}"
    );
    assert!(err.contains("#4 aaa") && err.contains("#4 hi"), "{err}");
    let layers = layer_owners(&out_dir.join("built.tar"));
    assert_eq!(layers.len(), 4, "{:?}", &layers[1..]);
    assert_eq!(layers[1]["hello"], (1000, 1000), "{:?}", layers[1]);
    assert_eq!(layers[1]["d/x"], (0, 0));
    assert_eq!(layers[2]["a.txt"], (1000, 1000));
    assert!(layers[3].contains_key("d/.wh.x"), "{:?}", layers[3]);
    assert_eq!(
        layers[3].len(),
        2,
        "only the whiteout and its directory: {:?}",
        layers[3]
    );
}

/// Every entry of every layer of a `docker save` archive: (layer index, path, contents).
fn layer_files(archive: &Path) -> Vec<(usize, String, Vec<u8>)> {
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tar = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        blobs.insert(path, data);
    }
    let mut out = Vec::new();
    for (i, name) in layer_names(archive).iter().enumerate() {
        let mut layer = tar::Archive::new(&blobs[name.as_str()][..]);
        for e in layer.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((i, path, data));
        }
    }
    out
}

const CACHE_SECRET_DOCKERFILE: &str = r#"FROM busybox
ARG ROUND
RUN --mount=type=cache,target=/cache,uid=1000,gid=1000 echo "round $ROUND" >> /cache/log && cp /cache/log /seen && stat -c %u:%g /cache > /cache-owner
RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /secret-length && stat -c %a /run/secrets/token > /secret-mode
RUN test ! -e /run/secrets/token && echo gone > /secret-after
"#;

#[test]
fn rootless_build_cache_mounts_persist_and_secrets_stay_out_of_layers() {
    let Some(u) = User::with_busybox("rootless_build_cache_mounts_and_secrets") else {
        return;
    };
    u.write("ctx/Dockerfile", CACHE_SECRET_DOCKERFILE);
    let secret = "rootless-secret-value-7f3a";
    u.write("token.txt", secret);
    for round in ["1", "2"] {
        let arg = format!("ROUND={round}");
        u.ok(&[
            "build",
            "--network",
            "none",
            "--secret",
            "id=token,src=token.txt",
            "--build-arg",
            &arg,
            "-t",
            "cached",
            "ctx",
        ]);
    }
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none", "cached"];
        all.extend_from_slice(args);
        u.ok(&all)
    };
    // The second build's step saw what the first left in the cache, owned as asked.
    assert_eq!(run(&["cat", "/seen"]), "round 1\nround 2\n");
    assert_eq!(run(&["cat", "/cache-owner"]).trim(), "1000:1000");
    // The secret was there during its step (readable, 0400 as BuildKit mounts it) and only then.
    assert_eq!(
        run(&["cat", "/secret-length"]).trim(),
        secret.len().to_string()
    );
    assert_eq!(run(&["cat", "/secret-mode"]).trim(), "400");
    assert_eq!(run(&["cat", "/secret-after"]).trim(), "gone");
    // Nothing of the secret or the cache is in the image's layers.
    u.ok(&["save", "-o", "cached.tar", "cached"]);
    for (layer, path, data) in layer_files(&u.path("work/cached.tar")) {
        assert!(
            !path.contains("secrets/token") && !path.starts_with("cache/"),
            "layer {layer} holds {path}"
        );
        assert!(
            !data.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "layer {layer}'s {path} holds the secret"
        );
    }
}

#[test]
fn rootless_pull_from_a_registry_into_a_fresh_store_and_run() {
    let Some(u) = User::new("rbuild-test", "rootless_pull_from_a_registry") else {
        return;
    };
    let Ok(registry) = std::env::var("RBUILD_TEST_REGISTRY") else {
        assert!(!peers_required(), "RBUILD_TEST_REGISTRY is not set");
        eprintln!("skipping rootless_pull_from_a_registry: RBUILD_TEST_REGISTRY is not set");
        return;
    };
    // Root's rbuild puts busybox (with its files owned by 1000) into the registry.
    let root = tempfile::tempdir().unwrap();
    let Some(tarball) = common::busybox_tarball(root.path()) else {
        return;
    };
    let target = format!("{registry}/rootless-pull/busybox:{}", std::process::id());
    let store = root.path().join("store");
    for args in [
        vec![
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            tarball.to_str().unwrap(),
            &target,
        ],
        vec!["push", &target],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(&store)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "root rbuild {args:?}: {}",
            stderr(&out)
        );
    }
    // The user pulls it into a store that has never seen it, and runs it.
    let pulled = u.rbuild(&["pull", &target]);
    assert!(pulled.status.success(), "pull: {}", stderr(&pulled));
    assert_eq!(stdout(&pulled).trim(), target);
    assert!(u.path("home/.local/share/rbuild/images.json").exists());
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &target,
            "stat",
            "-c",
            "%u:%g",
            "/home/user"
        ])
        .trim(),
        "1000:1000"
    );
    // And pushes its own build back, which root then reads.
    u.write(
        "ctx/Dockerfile",
        &format!("FROM {target}\nRUN echo from-user > /mark && chown 1000 /mark\n"),
    );
    let built = format!("{target}-user");
    u.ok(&["build", "--network", "none", "-t", &built, "ctx"]);
    u.ok(&["push", &built]);
    let as_root = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .arg("--root")
            .arg(&store)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "root rbuild {args:?}: {}",
            stderr(&out)
        );
        stdout(&out)
    };
    as_root(&["pull", &built]);
    let mark = as_root(&[
        "run",
        "--rm",
        "--network",
        "none",
        &built,
        "stat",
        "-c",
        "%u %n",
        "/mark",
    ]);
    assert_eq!(mark.trim(), "1000 /mark");
}

#[test]
fn rootless_ports_below_the_unprivileged_start_are_refused_naming_the_sysctl() {
    let Some(u) = User::new("rbuild-test", "rootless_ports_below_the_unprivileged_start") else {
        return;
    };
    let start: u16 = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if start <= 80 {
        eprintln!("skipping: net.ipv4.ip_unprivileged_port_start is {start}, port 80 is allowed");
        return;
    }
    if u.busybox("busybox").is_none() {
        return;
    }
    for detach in [true, false] {
        let mut args = vec!["run", "--rm", "-p", "127.0.0.1:80:80"];
        if detach {
            args = vec!["run", "-d", "--name", "low", "-p", "127.0.0.1:80:80"];
        }
        args.extend(["busybox", "true"]);
        refused(
            &u.rbuild(&args),
            125,
            &[
                &format!(
                    "rootless mode cannot publish port 80 (127.0.0.1:80/tcp): ports below {start} need root (net.ipv4.ip_unprivileged_port_start = {start})"
                ),
                "sysctl net.ipv4.ip_unprivileged_port_start=80",
            ],
        );
        // Refused before anything was made.
        assert_eq!(u.ok(&["ps", "-aq"]).trim(), "", "{args:?}");
    }
}

#[test]
fn rootless_without_newuidmap_is_refused_naming_the_package() {
    let Some(u) = User::new("rbuild-test", "rootless_without_newuidmap") else {
        return;
    };
    // A PATH without shadow's newuidmap (Debian installs it in /usr/bin).
    let bin = u.path("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let err = refused(
        &u.rbuild_env(&[("PATH", bin.to_str().unwrap())], &["images"]),
        1,
        &[
            "error: rootless mode needs newuidmap to map rbuild-test's subordinate ids, and it is not on PATH",
            "hint: install the uidmap package (apt-get install uidmap)",
        ],
    );
    assert_eq!(err.lines().count(), 2, "{err}");
    // Nothing was left: no namespace, no runtime state, no store.
    assert!(!u.path("run/rbuild").exists());
    assert!(!u.path("home/.local/share/rbuild").exists());
}

/// Wait up to 20 s for `what` to hold.
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !ok() {
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "{what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

const COMPOSE_PROJECT: &str = r#"services:
  web:
    image: busybox
    command: sh -c 'mkdir -p /www && echo compose-rootless > /www/index.html && exec httpd -f -p 80 -h /www'
  client:
    image: busybox
    command: sleep 300
    depends_on: [web]
"#;

#[test]
fn rootless_compose_project_goes_up_reaches_services_by_name_and_down() {
    let Some(u) = User::with_busybox("rootless_compose_project") else {
        return;
    };
    u.write("proj/compose.yaml", COMPOSE_PROJECT);
    let compose = |args: &[&str]| {
        let mut cmd = u.command(&u.path("rbuild"));
        cmd.arg("compose")
            .args(args)
            .current_dir(u.path("work/proj"))
            .env("RBUILD_NETWORK_LINGER", "0.3")
            .stdin(std::process::Stdio::null());
        cmd.output().unwrap()
    };
    let up = compose(&["up", "-d"]);
    assert!(up.status.success(), "up: {}", stderr(&up));
    for line in [
        "Network proj_default  Created",
        "Container proj-web-1  Started",
        "Container proj-client-1  Started",
    ] {
        assert!(
            stderr(&up).lines().any(|l| l == line),
            "{line:?} in {}",
            stderr(&up)
        );
    }
    // The client reaches the web service by its name on the project's network.
    let mut body = String::new();
    wait_for("client reaches http://web/", || {
        let o = compose(&["exec", "-T", "client", "wget", "-q", "-O-", "http://web/"]);
        body = stdout(&o);
        o.status.success()
    });
    assert_eq!(body, "compose-rootless\n");
    let ps = compose(&["ps", "--format", "json"]);
    assert!(ps.status.success(), "ps: {}", stderr(&ps));
    let mut running: Vec<String> = stdout(&ps)
        .lines()
        .map(|l| {
            let c: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {}",
                c["Name"].as_str().unwrap(),
                c["State"].as_str().unwrap()
            )
        })
        .collect();
    running.sort();
    assert_eq!(running, ["proj-client-1 running", "proj-web-1 running"]);
    let down = compose(&["down", "-t", "1"]);
    assert!(down.status.success(), "down: {}", stderr(&down));
    assert!(
        stderr(&down)
            .lines()
            .any(|l| l == "Network proj_default  Removed"),
        "{}",
        stderr(&down)
    );
    // Nothing of the project is left: containers, its network.
    assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");
    let networks = u.ok(&["network", "ls", "--format", "{{.Name}}"]);
    let mut networks: Vec<&str> = networks.split_whitespace().collect();
    networks.sort();
    assert_eq!(networks, ["bridge", "host", "none"]);
}

#[test]
fn rootless_api_service_on_the_users_socket_serves_the_docker_cli() {
    let Some(u) = User::new("rbuild-test", "rootless_api_service") else {
        return;
    };
    let docker = Path::new("/usr/local/bin/docker");
    if !docker.exists() {
        assert!(!peers_required(), "{} is missing", docker.display());
        eprintln!(
            "skipping rootless_api_service: no docker CLI at {}",
            docker.display()
        );
        return;
    }
    if u.busybox("busybox").is_none() {
        return;
    }
    // The default socket: the user's runtime directory.
    let service = u
        .command(&u.path("rbuild"))
        .args(["system", "service", "--time", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sock = u.path("run/rbuild/rbuild.sock");
    wait_for(
        "the service listens on $XDG_RUNTIME_DIR/rbuild/rbuild.sock",
        || std::os::unix::net::UnixStream::connect(&sock).is_ok(),
    );
    let uid = nix::unistd::User::from_name("rbuild-test")
        .unwrap()
        .unwrap()
        .uid;
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(&sock).unwrap().uid(), uid.as_raw());
    }
    let host = format!("unix://{}", sock.display());
    let docker_as_user = |args: &[&str]| {
        let out = u
            .command(docker)
            .args(args)
            .env("DOCKER_HOST", &host)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}{}",
            stderr(&out),
            stdout(&out)
        );
        stdout(&out)
    };
    assert_eq!(
        docker_as_user(&["run", "--rm", "busybox", "echo", "hi"]),
        "hi\n"
    );
    assert_eq!(
        docker_as_user(&["run", "--rm", "--network", "none", "busybox", "id", "-u"]),
        "0\n"
    );
    let images = docker_as_user(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.lines().any(|l| l == "busybox:latest"), "{images}");
    let id = docker_as_user(&["run", "-d", "--name", "svc", "busybox", "sleep", "60"]);
    let ps = docker_as_user(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("svc Up "), "{ps}");
    // The same containers as the user's own rbuild sees.
    assert_eq!(u.ok(&["ps", "-q"]).trim(), &id.trim()[..12]);
    docker_as_user(&["rm", "-f", "svc"]);
    assert_eq!(docker_as_user(&["ps", "-aq"]).trim(), "");
    // The service is the user's (no root on the host).
    let status = fs::read_to_string(format!("/proc/{}/status", service.id())).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())),
        "{status}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(service.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = service.wait_with_output().unwrap();
    assert!(out.status.success(), "service: {}", stderr(&out));
    // It runs containers: without cgroups it says so, once, when it starts.
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let warnings = stderr(&out).matches("running without cgroups").count();
        assert_eq!(warnings, 1, "{}", stderr(&out));
    }
}

#[test]
fn rootless_bridge_without_a_usable_tun_device_is_refused_naming_the_cause() {
    let Some(u) = User::with_busybox("rootless_bridge_without_a_usable_tun_device") else {
        return;
    };
    // /dev/net/tun shut to the user in a mount namespace of the test's own (the host's device
    // is not touched): a root-owned 0600 file bound over it.
    let fake = u.path("fake-tun");
    fs::write(&fake, "").unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o600)).unwrap();
    let script = "mount --bind \"$0\" /dev/net/tun && exec \"$@\"";
    let unshare = tool_path("unshare");
    let wrapper: Vec<&std::ffi::OsStr> = vec![
        unshare.as_os_str(),
        "-m".as_ref(),
        "--propagation".as_ref(),
        "private".as_ref(),
        "--".as_ref(),
        "/bin/sh".as_ref(),
        "-c".as_ref(),
        script.as_ref(),
        fake.as_os_str(),
    ];
    let run = |args: &[&str]| {
        u.command_via(&wrapper, &u.path("rbuild"))
            .args(args)
            .env("RBUILD_NETWORK_LINGER", "0.3")
            .output()
            .unwrap()
    };
    // Without a bridge the run is fine there.
    let out = run(&["run", "--rm", "--network", "none", "busybox", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["run", "--rm", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("network bridge has no way out: rootless mode: /dev/net/tun cannot be opened by this user (Permission denied"),
        "{err}"
    );
    assert!(err.contains("chmod 0666 /dev/net/tun"), "{err}");
    // Nothing left: the container of the failed run is gone.
    assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");
}

const EVERY_INSTRUCTION_DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
FROM busybox AS base
ARG GREETING=hello
ENV APP=/app
WORKDIR $APP
SHELL ["/bin/sh", "-c"]
ADD files.tar extracted/
COPY --chmod=0750 run.sh run.sh
RUN <<EOS
echo "$GREETING from a heredoc" > heredoc.txt
echo "app:x:1500:1500::/home/app:/bin/sh" >> /etc/passwd
EOS
RUN --mount=type=bind,source=bound.txt,target=/mnt/bound.txt cp /mnt/bound.txt bound-copy.txt
USER user
RUN id -u > /tmp/uid && touch /tmp/mine
USER root

FROM busybox
WORKDIR /app
COPY --from=base /app /app
COPY --from=base --chown=1500:1500 /tmp/mine /tmp/uid /owned/
COPY --from=base /etc/passwd /etc/passwd
LABEL org.example.rootless=yes
EXPOSE 8080/tcp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "/app/run.sh"]
CMD ["from-cmd"]
"#;

#[test]
fn rootless_build_runs_every_instruction() {
    let Some(u) = User::with_busybox("rootless_build_runs_every_instruction") else {
        return;
    };
    u.write("ctx/Dockerfile", EVERY_INSTRUCTION_DOCKERFILE);
    u.write("ctx/run.sh", "echo \"$(cat /app/heredoc.txt); args: $*\"\n");
    u.write("ctx/bound.txt", "bound\n");
    // A tarball whose file belongs to 1234: ADD extracts it with that owner.
    let tarball = u.write("ctx/files.tar", "");
    {
        let mut tar = tar::Builder::new(fs::File::create(&tarball).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_uid(1234);
        h.set_gid(1234);
        h.set_cksum();
        tar.append_data(&mut h, "x.txt", &b"tar\n"[..]).unwrap();
        tar.finish().unwrap();
    }
    let build = u.rbuild(&[
        "build",
        "--network",
        "none",
        "--build-arg",
        "GREETING=bonjour",
        "-t",
        "every",
        "ctx",
    ]);
    assert!(build.status.success(), "build: {}", stderr(&build));
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(args);
        u.ok(&all)
    };
    assert_eq!(run(&["every"]), "bonjour from a heredoc; args: from-cmd\n");
    let seen = run(&[
        "--entrypoint",
        "sh",
        "every",
        "-c",
        "stat -c '%u:%g %a %n' /app/run.sh /owned/mine /owned/uid && cat /app/extracted/x.txt /app/bound-copy.txt /owned/uid",
    ]);
    assert_eq!(
        seen,
        "0:0 750 /app/run.sh\n1500:1500 644 /owned/mine\n1500:1500 644 /owned/uid\ntar\nbound\n1000\n"
    );
    // The first stage alone (--target, from the cache): ADD kept the tarball's owner.
    u.ok(&[
        "build",
        "--network",
        "none",
        "--build-arg",
        "GREETING=bonjour",
        "--target",
        "base",
        "-t",
        "every-base",
        "ctx",
    ]);
    assert_eq!(
        run(&[
            "every-base",
            "stat",
            "-c",
            "%u:%g %n",
            "/app/extracted/x.txt"
        ]),
        "1234:1234 /app/extracted/x.txt\n"
    );
    let config = u.ok(&["inspect", "--format", "{{json .Config}}", "every"]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["WorkingDir"], "/app", "{config}");
    assert_eq!(config["Labels"]["org.example.rootless"], "yes", "{config}");
    assert!(config["ExposedPorts"].get("8080/tcp").is_some(), "{config}");
    assert!(config["Volumes"].get("/data").is_some(), "{config}");
    assert_eq!(config["StopSignal"], "SIGINT", "{config}");
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"]),
        "{config}"
    );
    assert_eq!(
        config["OnBuild"],
        serde_json::json!(["RUN echo child"]),
        "{config}"
    );
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/bin/sh", "/app/run.sh"]),
        "{config}"
    );
    assert_eq!(config["Cmd"], serde_json::json!(["from-cmd"]), "{config}");
}

#[test]
fn rootless_without_xdg_runtime_dir_keeps_state_in_a_private_tmp_directory() {
    let Some(u) = User::new("rbuild-test-noid", "rootless_without_xdg_runtime_dir") else {
        return;
    };
    // rbuild-test-noid: no other test of this file uses /tmp/rbuild-UID for that user.
    let uid = nix::unistd::User::from_name(u.name).unwrap().unwrap().uid;
    let dir = PathBuf::from(format!("/tmp/rbuild-{uid}"));
    let kill_pause = |dir: &Path| {
        if let Ok(pid) = fs::read_to_string(dir.join("pause.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = fs::remove_dir_all(dir);
    };
    kill_pause(&dir);
    let images = || {
        u.command(&u.path("rbuild"))
            .env_remove("XDG_RUNTIME_DIR")
            .args(["images", "-q"])
            .output()
            .unwrap()
    };
    // One that someone else made first (here root, 0755) is refused, not used.
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let refused = images();
    let _ = fs::remove_dir(&dir);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(&format!(
            "error: rootless setup: {}: not a private directory of this user",
            dir.display()
        )),
        "{}",
        stderr(&refused)
    );
    let out = images();
    let made = fs::symlink_metadata(&dir);
    let pid = fs::read_to_string(dir.join("pause.pid"));
    kill_pause(&dir);
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::MetadataExt;
    let made = made.expect("the runtime directory under /tmp");
    assert!(made.is_dir());
    assert_eq!(made.uid(), uid.as_raw());
    assert_eq!(made.mode() & 0o777, 0o700);
    assert!(pid.is_ok(), "the pause process is recorded there");
    assert!(!u.path("run/rbuild").exists());
}
