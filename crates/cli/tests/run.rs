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

fn busybox() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("rbuild-cli-bb-")
            .tempdir()
            .unwrap()
            .keep();
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
