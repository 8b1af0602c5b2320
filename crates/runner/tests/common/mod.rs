//! Shared helpers for the runner's integration tests: a busybox rootfs, running a container
//! with captured output, and checks that nothing (mount, cgroup, directory) is left behind.
#![allow(dead_code, clippy::print_stderr)]

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use rbuild_runner::{ContainerConfig, Outcome, Rootfs, RunOptions, Stdio};

/// Whether these tests can run: they need root. Without `RBUILD_TEST_PEERS=1` they skip
/// with a message; with it (CI), not being root is a failure.
pub fn can_run(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("RBUILD_TEST_PEERS").is_err(),
        "{test}: needs root under scripts/test"
    );
    eprintln!("skipping {test}: needs root");
    false
}

/// Remove `dir` when the test binary exits (the harness returns from `main`, which runs the C
/// library's exit handlers), unless something is still mounted under it: a directory kept
/// for the whole binary in a `static` is otherwise never removed.
fn removed_at_exit(dir: PathBuf) -> PathBuf {
    static DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    extern "C" fn remove_all() {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dirs = DIRS.lock().map(|d| d.clone()).unwrap_or_default();
        for d in dirs {
            if !mounts.contains(d.to_string_lossy().as_ref()) {
                let _ = std::fs::remove_dir_all(&d);
            }
        }
    }
    let mut dirs = DIRS.lock().unwrap();
    if dirs.is_empty() {
        // SAFETY: registers a function without arguments that only touches the file system
        // and this module's own static.
        unsafe { nix::libc::atexit(remove_all) };
    }
    dirs.push(dir.clone());
    dir
}

/// A busybox root filesystem made once per test binary by `scripts/busybox-rootfs`.
pub fn busybox() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = removed_at_exit(
            tempfile::Builder::new()
                .prefix("rbuild-busybox-")
                .tempdir()
                .unwrap()
                .keep(),
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs");
        let status = std::process::Command::new(script)
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "scripts/busybox-rootfs failed (is busybox-static installed?)"
        );
        dir
    })
}

/// What a finished container left: its outcome, output, and directory.
pub struct Ran {
    /// The container's outcome, or why it could not run.
    pub result: Result<Outcome, rbuild_runner::Error>,
    /// Captured standard output.
    pub stdout: String,
    /// Captured standard error.
    pub stderr: String,
    /// The container's directory.
    pub dir: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh container directory path (not created) under a temp root.
pub fn container_dir() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        removed_at_exit(
            tempfile::Builder::new()
                .prefix("rbuild-ctr-")
                .tempdir()
                .unwrap()
                .keep(),
        )
    });
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    root.join(format!("c{}-{n}", std::process::id()))
}

/// Mount table lines that mention `path`.
pub fn mounts_mentioning(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_string_lossy();
    text.lines()
        .filter(|l| l.contains(p.as_ref()))
        .map(str::to_owned)
        .collect()
}

/// cgroup directories named after this container id on the host.
pub fn cgroups_named(id: &str) -> Vec<PathBuf> {
    let name = format!("rbuild-{id}");
    walk(Path::new("/sys/fs/cgroup"), &name, 0)
}

fn walk(dir: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if depth > 6 {
        return out;
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let p = e.path();
            if e.file_name().to_string_lossy() == name {
                out.push(p.clone());
            }
            out.extend(walk(&p, name, depth + 1));
        }
    }
    out
}

/// Run `opts` on `rootfs` with stdout and stderr captured, then assert no mount, cgroup or
/// (with `remove`) directory of the container is left.
pub fn run(rootfs: Rootfs, opts: RunOptions, init: bool, remove: bool) -> Ran {
    let dir = container_dir();
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let spec = rbuild_runner::docker_spec(&opts).unwrap();
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let config = ContainerConfig {
        id: id.clone(),
        dir: dir.clone(),
        spec,
        rootfs,
        init,
        stdio: Stdio {
            stdin: Some(OwnedFd::from(File::open("/dev/null").unwrap())),
            stdout: Some(OwnedFd::from(out.try_clone().unwrap())),
            stderr: Some(OwnedFd::from(err.try_clone().unwrap())),
            tty: false,
            console: None,
        },
        remove,
        // Containers removed at their end need no durable upper layer.
        volatile: remove,
        etc: rbuild_runner::EtcFiles::Docker,
    };
    let result = rbuild_runner::run(config);
    let read = |mut f: File| {
        use std::io::Seek;
        f.rewind().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    };
    assert_eq!(
        mounts_mentioning(&dir),
        Vec::<String>::new(),
        "mounts left behind"
    );
    assert_eq!(
        cgroups_named(&id),
        Vec::<PathBuf>::new(),
        "cgroups left behind"
    );
    if remove || result.is_err() {
        assert!(
            !dir.exists(),
            "container directory {} left behind",
            dir.display()
        );
    }
    Ran {
        result,
        stdout: read(out),
        stderr: read(err),
        dir,
    }
}

/// `sh -c SCRIPT` with docker's defaults otherwise.
pub fn sh(script: &str) -> RunOptions {
    RunOptions {
        args: vec!["sh".into(), "-c".into(), script.into()],
        hostname: "box".into(),
        ..Default::default()
    }
}

/// Run `sh -c script` on the busybox rootfs as an overlay; returns (exit code, stdout, stderr).
pub fn run_sh(script: &str) -> (i32, String, String) {
    let ran = run(
        Rootfs::Layers(vec![busybox().to_path_buf()]),
        sh(script),
        false,
        true,
    );
    let outcome = ran.result.unwrap_or_else(|e| panic!("{script}: {e}"));
    (outcome.status.code(), ran.stdout, ran.stderr)
}
