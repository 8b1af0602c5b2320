//! Isolation proven from inside the container (needs root).

mod common;

use common::*;
use rbuild_runner::{ExitStatus, Rootfs, RunOptions, spec::bind_mount};

#[test]
fn the_command_is_pid_1_and_sees_no_host_process() {
    if !can_run("pid namespace") {
        return;
    }
    let (code, out, err) = run_sh("echo $$; ps -o pid,comm | tail -n +2");
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"));
    let pids: Vec<u32> = lines
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(
        pids.contains(&1) && pids.len() <= 3,
        "processes visible: {out}"
    );
}

#[test]
fn hostname_differs_and_etc_files_are_provided() {
    if !can_run("uts namespace") {
        return;
    }
    let (code, out, err) = run_sh(
        "hostname; cat /etc/hostname; grep -c localhost /etc/hosts; test -f /etc/resolv.conf && echo resolv",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "box\nbox\n2\nresolv\n");
    assert_ne!(nix::unistd::gethostname().unwrap(), "box");
}

#[test]
fn host_files_outside_mounts_are_invisible() {
    if !can_run("mount namespace") {
        return;
    }
    let marker = tempfile::NamedTempFile::new().unwrap();
    let path = marker.path().display().to_string();
    let (code, out, _) = run_sh(&format!(
        "test -e {path} && echo visible; ls /; test -e /work && echo work"
    ));
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("visible") && !out.contains("work\n"), "{out}");
    assert!(out.contains("bin\n") && out.contains("proc\n"), "{out}");
}

#[test]
fn proc_sys_is_read_only_and_kcore_is_masked() {
    if !can_run("masked paths") {
        return;
    }
    let (code, out, err) = run_sh(
        "echo x > /proc/sys/kernel/domainname && echo wrote; grep ' /proc/sys ' /proc/mounts",
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!out.contains("wrote") && out.contains(" ro,"), "{out}");
    // Every masked path the host has is hidden: files behind /dev/null, directories empty.
    for path in rbuild_runner::spec::MASKED_PATHS {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let script = if meta.is_dir() {
            format!("ls -A {path} | wc -l")
        } else {
            format!("stat -c %t:%T {path}; wc -c < {path}")
        };
        let (code, out, err) = run_sh(&script);
        assert_eq!(code, 0, "{path}: {err}");
        let expected = if meta.is_dir() { "0\n" } else { "1:3\n0\n" };
        assert_eq!(out, expected, "{path} is not masked");
    }
}

#[test]
fn capabilities_are_dockers_defaults_with_no_new_privs_and_seccomp() {
    if !can_run("capabilities") {
        return;
    }
    let mut opts =
        sh("grep -E '^(CapBnd|CapEff|CapPrm|CapInh|NoNewPrivs|Seccomp):' /proc/self/status");
    opts.no_new_privileges = true;
    let caps = rbuild_runner::caps::docker_default();
    opts.seccomp = Some(rbuild_runner::seccomp::docker_default(&caps).unwrap());
    let ran = run(
        Rootfs::Layers(vec![busybox().to_path_buf()]),
        opts,
        false,
        true,
    );
    assert_eq!(
        ran.result.unwrap().status,
        ExitStatus::Exited(0),
        "{}",
        ran.stderr
    );
    let field = |k: &str| {
        ran.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("CapBnd"), "00000000a80425fb");
    assert_eq!(field("CapEff"), "00000000a80425fb");
    assert_eq!(field("CapInh"), "0000000000000000");
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2");
}

#[test]
fn seccomp_denies_what_docker_denies() {
    if !can_run("seccomp") {
        return;
    }
    // With CAP_SYS_ADMIN added the capability check passes; the profile is built for
    // docker's default set, so seccomp alone refuses the mount.
    let mut opts = sh("mkdir /m && mount -t tmpfs none /m && echo mounted");
    opts.cap_add = vec!["SYS_ADMIN".into()];
    let caps = rbuild_runner::caps::docker_default();
    opts.seccomp = Some(rbuild_runner::seccomp::docker_default(&caps).unwrap());
    let ran = run(
        Rootfs::Layers(vec![busybox().to_path_buf()]),
        opts.clone(),
        false,
        true,
    );
    assert_ne!(ran.result.unwrap().status, ExitStatus::Exited(0));
    assert!(
        ran.stderr.contains("permission denied"),
        "{} {}",
        ran.stderr,
        ran.stdout
    );
    opts.seccomp = None;
    let ran = run(
        Rootfs::Layers(vec![busybox().to_path_buf()]),
        opts,
        false,
        true,
    );
    assert_eq!(
        ran.result.unwrap().status,
        ExitStatus::Exited(0),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.stdout, "mounted\n");
}

#[test]
fn network_none_has_only_loopback_and_it_is_up() {
    if !can_run("network namespace") {
        return;
    }
    let (code, out, err) = run_sh("ls /sys/class/net; cat /sys/class/net/lo/flags");
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("lo"));
    let flags = u32::from_str_radix(lines.next().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "IFF_UP: {out}");
}

#[test]
fn bind_mounts_are_writable_and_ro_ones_are_not() {
    if !can_run("bind mounts") {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    let mut opts = sh("echo hi > /rw/file && echo ok; echo no > /ro/file || echo refused");
    opts.mounts = vec![
        bind_mount(host.path(), "/rw", false),
        bind_mount(host.path(), "/ro", true),
    ];
    let ran = run(
        Rootfs::Layers(vec![busybox().to_path_buf()]),
        opts,
        false,
        true,
    );
    assert_eq!(
        ran.result.unwrap().status,
        ExitStatus::Exited(0),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.stdout, "ok\nrefused\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("file")).unwrap(),
        "hi\n"
    );
}

#[test]
fn root_filesystem_changes_land_in_the_upper_dir_only() {
    if !can_run("overlay") {
        return;
    }
    let lower = busybox();
    let ran = run(
        Rootfs::Layers(vec![lower.to_path_buf()]),
        sh("echo new > /etc/created; rm /etc/group; echo ok"),
        false,
        false,
    );
    assert_eq!(
        ran.result.unwrap().status,
        ExitStatus::Exited(0),
        "{}",
        ran.stderr
    );
    let upper = ran.dir.join("upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/created")).unwrap(),
        "new\n"
    );
    assert!(!lower.join("etc/created").exists());
    assert!(
        lower.join("etc/group").exists(),
        "the lower layer lost a file"
    );
    // overlayfs records the deletion as a whiteout (a 0:0 character device).
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(upper.join("etc/group"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    std::fs::remove_dir_all(&ran.dir).unwrap();
}

#[test]
fn user_working_dir_and_rlimits_are_applied() {
    if !can_run("user") {
        return;
    }
    let passwd = std::fs::read_to_string(busybox().join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(busybox().join("etc/group")).unwrap();
    let mut opts =
        sh("id; pwd; ulimit -n; grep CapEff /proc/self/status; touch /tmp/x && stat -c %u /tmp/x");
    opts.user = Some(rbuild_runner::resolve_user("user", Some(&passwd), Some(&group)).unwrap());
    opts.cwd = "/made/for/you".into();
    let ran = run(
        Rootfs::Layers(vec![busybox().to_path_buf()]),
        opts,
        false,
        true,
    );
    assert_eq!(
        ran.result.unwrap().status,
        ExitStatus::Exited(0),
        "{}",
        ran.stderr
    );
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    let expected = format!(
        "uid=1000(user) gid=1000(user) groups=10(wheel),1000(user)\n/made/for/you\n{}\nCapEff:\t0000000000000000\n1000\n",
        hard.min(1_048_576)
    );
    assert_eq!(ran.stdout, expected);
}

#[test]
fn read_only_root_refuses_writes_but_tmpfs_accepts_them() {
    if !can_run("read-only root") {
        return;
    }
    let mut opts = sh("touch /file || echo refused; touch /scratch/file && echo tmpfs");
    opts.readonly_root = true;
    opts.mounts = vec![rbuild_runner::spec::tmpfs_mount("/scratch")];
    let ran = run(
        Rootfs::Layers(vec![busybox().to_path_buf()]),
        opts,
        false,
        true,
    );
    assert_eq!(
        ran.result.unwrap().status,
        ExitStatus::Exited(0),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.stdout, "refused\ntmpfs\n");
}

#[test]
fn a_directory_rootfs_is_used_in_place() {
    if !can_run("directory rootfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", busybox().display()))
        .arg(dir.path())
        .status();
    assert!(status.unwrap().success());
    let ran = run(
        Rootfs::Directory(dir.path().to_path_buf()),
        sh("echo in-place > /marker"),
        false,
        true,
    );
    assert_eq!(
        ran.result.unwrap().status,
        ExitStatus::Exited(0),
        "{}",
        ran.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("marker")).unwrap(),
        "in-place\n"
    );
    let _ = RunOptions::default();
}
