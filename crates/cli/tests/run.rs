//! `rbuild run` end to end: docker's exit status conventions, stdin, environment, user,
//! working directory and volumes, on a busybox root filesystem (needs root).
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn can_run(test: &str) -> bool {
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

fn busybox() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = removed_at_exit(
            tempfile::Builder::new()
                .prefix("rbuild-cli-bb-")
                .tempdir()
                .unwrap()
                .keep(),
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs");
        assert!(Command::new(script).arg(&dir).status().unwrap().success());
        dir
    })
}

fn rbuild(root: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbuild"));
    cmd.arg("--root")
        .arg(root)
        .arg("run")
        .arg("--rm")
        .arg("--rootfs")
        .arg(busybox())
        .args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn exit_codes_follow_docker() {
    if !can_run("rbuild run exit codes") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let r = |args: &[&str]| rbuild(root.path(), args, None);
    assert_eq!(r(&["sh", "-c", "exit 3"]).status.code(), Some(3));
    let missing = r(&["no-such-binary"]);
    assert_eq!(missing.status.code(), Some(127));
    assert!(text(&missing.stderr).contains("no-such-binary: executable file not found"));
    assert_eq!(r(&["/etc/passwd"]).status.code(), Some(126));
    let bad_user = r(&["-u", "ghost", "id"]);
    assert_eq!(bad_user.status.code(), Some(125));
    assert!(text(&bad_user.stderr).contains("ghost"));
    let oom = r(&[
        "-m",
        "16m",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(oom.status.code(), Some(137));
    assert!(
        text(&oom.stderr).contains("out of memory"),
        "{}",
        text(&oom.stderr)
    );
    let bad_volume = r(&["-v", "/no/such/dir:/data", "true"]);
    assert_eq!(bad_volume.status.code(), Some(125));
    assert!(text(&bad_volume.stderr).contains("/no/such/dir"));
    assert_eq!(
        r(&["sh", "-c", "kill -TERM $$; sleep 1"]).status.code(),
        Some(0),
        "PID 1 ignores its own SIGTERM"
    );
    assert_eq!(
        r(&["--init", "sh", "-c", "kill -TERM $$; sleep 1"])
            .status
            .code(),
        Some(143)
    );
    // Nothing is left in the root's containers directory.
    assert_eq!(
        std::fs::read_dir(root.path().join("containers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn stdin_env_user_workdir_and_volumes() {
    if !can_run("rbuild run options") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let without_i = rbuild(root.path(), &["cat"], Some("ignored\n"));
    assert_eq!(text(&without_i.stdout), "");
    let with_i = rbuild(root.path(), &["-i", "cat"], Some("piped\n"));
    assert_eq!(text(&with_i.stdout), "piped\n");
    let env_file = root.path().join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=1\nSHARED=file\n").unwrap();
    let out = rbuild(
        root.path(),
        &[
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "SHARED=flag",
            "-w",
            "/work/here",
            "-u",
            "user",
            "--hostname",
            "named",
            "sh",
            "-c",
            "echo $FROM_FILE $SHARED $HOME; pwd; id -u; hostname",
        ],
        None,
    );
    assert_eq!(
        text(&out.stdout),
        "1 flag /home/user\n/work/here\n1000\nnamed\n",
        "{}",
        text(&out.stderr)
    );
    let host = tempfile::tempdir().unwrap();
    let vol = format!("{}:/vol", host.path().display());
    let ro = format!("{}:/ro:ro", host.path().display());
    let out = rbuild(
        root.path(),
        &[
            "-v",
            &vol,
            "-v",
            &ro,
            "sh",
            "-c",
            "echo x > /vol/f; echo y > /ro/g || echo refused",
        ],
        None,
    );
    assert_eq!(text(&out.stdout), "refused\n");
    assert!(host.path().join("f").exists() && !host.path().join("g").exists());
}

#[test]
fn dash_t_gives_the_container_its_own_terminal() {
    if !can_run("rbuild run -t") {
        return;
    }
    use std::io::{Read, Write};
    let root = tempfile::tempdir().unwrap();
    let ws = nix::pty::Winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root.path())
        .args(["run", "--rm", "-it", "--rootfs"])
        .arg(busybox())
        .args([
            "sh",
            "-c",
            "tty; stty size; read line; echo got:$line; exit 5",
        ])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    std::thread::sleep(std::time::Duration::from_millis(300));
    master.write_all(b"typed\r").unwrap();
    let status = child.wait().unwrap();
    // rbuild has exited, so its copies of our slave are closed: drain what it printed.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status.code(), Some(5), "{text}");
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("33 101"), "{text}");
    assert!(text.contains("got:typed"), "{text}");
}

#[test]
fn signals_to_rbuild_reach_the_container() {
    if !can_run("rbuild run signal forwarding") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let run = |init: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbuild"));
        cmd.arg("--root")
            .arg(root.path())
            .args(["run", "--rm", "--rootfs"])
            .arg(busybox());
        if init {
            cmd.arg("--init");
        }
        // Without init the shell is PID 1 and needs a handler to react to SIGTERM.
        let script = "trap 'echo got-term; exit 9' TERM; echo ready; while :; do sleep 0.1; done";
        let mut child = cmd
            .args([
                "sh",
                "-c",
                if init {
                    "echo ready; sleep 100"
                } else {
                    script
                },
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 6];
        std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
        assert_eq!(&first, b"ready\n");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        (status.code(), rest)
    };
    assert_eq!(
        run(true),
        (Some(143), String::new()),
        "init forwards SIGTERM to sleep"
    );
    assert_eq!(run(false), (Some(9), "got-term\n".to_owned()));
    assert_eq!(
        std::fs::read_dir(root.path().join("containers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn security_opt_seccomp_profiles_and_caps() {
    if !can_run("rbuild run --security-opt") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let profile = root.path().join("deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let denied = rbuild(
        root.path(),
        &[
            "--security-opt",
            &opt,
            "sh",
            "-c",
            "mkdir /x || echo denied",
        ],
        None,
    );
    assert_eq!(text(&denied.stdout), "denied\n", "{}", text(&denied.stderr));
    let caps = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["grep", "CapBnd", "/proc/self/status"]);
        text(&rbuild(root.path(), &a, None).stdout)
    };
    assert_eq!(caps(&[]), "CapBnd:\t00000000a80425fb\n");
    assert_eq!(
        caps(&["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"]),
        "CapBnd:\t0000000000000400\n"
    );
    // Privileged gets every capability rbuild itself has.
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own = own.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    assert_eq!(caps(&["--privileged"]), format!("{own}\n"));
    // Unconfined and privileged containers have no filter; the default has docker's.
    let seccomp = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["grep", "^Seccomp:", "/proc/self/status"]);
        text(&rbuild(root.path(), &a, None).stdout)
    };
    assert_eq!(seccomp(&[]), "Seccomp:\t2\n");
    assert_eq!(
        seccomp(&["--security-opt", "seccomp=unconfined"]),
        "Seccomp:\t0\n"
    );
    assert_eq!(seccomp(&["--privileged"]), "Seccomp:\t0\n");
    let bad = rbuild(root.path(), &["--security-opt", "apparmor=x", "true"], None);
    assert_eq!(bad.status.code(), Some(125));
    assert!(text(&bad.stderr).contains("apparmor=x"));
}

#[test]
fn dash_t_without_i_shows_output_only() {
    if !can_run("rbuild run -t") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let status = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root.path())
        .args(["run", "--rm", "-t", "--rootfs"])
        .arg(busybox())
        .args(["sh", "-c", "tty; exit 4"])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(4));
    let mut master = std::fs::File::from(pty.master);
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&out).trim(), "/dev/pts/0");
}
