//! Exit status, init, limits and failures — and that nothing is left behind (needs root).

mod common;

use common::*;
use rbuild_runner::{Error, ExitStatus, Rootfs, spec::bind_mount};

fn layers() -> Rootfs {
    Rootfs::Layers(vec![busybox().to_path_buf()])
}

#[test]
fn exit_codes_and_signals_propagate() {
    if !can_run("exit status") {
        return;
    }
    assert_eq!(run_sh("exit 42").0, 42);
    let ran = run(layers(), sh("kill -9 $$"), false, true);
    // PID 1 cannot be killed from inside its namespace: SIGKILL from itself is ignored.
    assert_eq!(ran.result.unwrap().status, ExitStatus::Exited(0));
    let ran = run(
        layers(),
        sh("sleep 1 & kill -TERM $!; wait $!; echo $?"),
        false,
        true,
    );
    assert_eq!(ran.stdout, "143\n");
}

#[test]
fn init_is_pid_1_reaps_and_reports_the_commands_status() {
    if !can_run("init") {
        return;
    }
    let ran = run(
        layers(),
        sh("echo $$; ps -o pid,ppid,comm | awk '$1==1{print $3}'; (sleep 0 &); exit 3"),
        true,
        true,
    );
    assert_eq!(
        ran.result.unwrap().status,
        ExitStatus::Exited(3),
        "{}",
        ran.stderr
    );
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines[0], "2", "the command is init's child");
    assert_eq!(lines.len(), 2, "{}", ran.stdout);
    let ran = run(layers(), sh("kill -KILL $$"), true, true);
    assert_eq!(
        ran.result.unwrap().status,
        ExitStatus::Exited(137),
        "init reports 128+signal"
    );
}

#[test]
fn memory_limit_kills_with_oom_and_says_so() {
    if !can_run("memory limit") {
        return;
    }
    let mut opts = sh("dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo survived");
    opts.memory = Some(16 << 20);
    let ran = run(layers(), opts, true, true);
    let outcome = ran.result.unwrap();
    assert!(outcome.oom_killed, "{outcome:?} {}", ran.stdout);
    let mut fits = sh("dd if=/dev/zero of=/dev/null bs=1M count=1 2>/dev/null && echo fine");
    fits.memory = Some(16 << 20);
    let ran = run(layers(), fits, false, true);
    let outcome = ran.result.unwrap();
    assert!(!outcome.oom_killed);
    assert_eq!(ran.stdout, "fine\n");
}

#[test]
fn a_memory_hog_as_pid_1_dies_with_137() {
    if !can_run("oom exit status") {
        return;
    }
    let mut opts = sh("x");
    opts.args = vec![
        "dd".into(),
        "if=/dev/zero".into(),
        "of=/dev/null".into(),
        "bs=64M".into(),
        "count=1".into(),
    ];
    opts.memory = Some(16 << 20);
    let ran = run(layers(), opts, false, true);
    let outcome = ran.result.unwrap();
    assert!(outcome.oom_killed);
    assert_eq!(outcome.status, ExitStatus::Signaled(9));
    assert_eq!(outcome.status.code(), 137);
}

#[test]
fn pids_limit_stops_fork_bombs() {
    if !can_run("pids limit") {
        return;
    }
    let mut opts = sh("for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; echo started");
    opts.pids_limit = Some(4);
    let ran = run(layers(), opts, false, true);
    let _ = ran.result.unwrap();
    assert!(ran.stderr.contains("can't fork"), "stderr: {}", ran.stderr);
}

#[test]
fn missing_binary_is_not_found_127() {
    if !can_run("missing binary") {
        return;
    }
    let mut opts = sh("");
    opts.args = vec!["no-such-command".into()];
    let ran = run(layers(), opts.clone(), false, true);
    match ran.result {
        Err(Error::CommandNotFound { command, searched }) => {
            assert_eq!(command, "no-such-command");
            assert!(searched.contains("/bin/no-such-command"), "{searched}");
        }
        other => panic!("{other:?}"),
    }
    opts.args = vec!["/etc/passwd".into()];
    let ran = run(layers(), opts.clone(), true, true);
    assert!(
        matches!(ran.result, Err(Error::NotExecutable { .. })),
        "{:?}",
        ran.result
    );
}

#[test]
fn bad_mount_source_fails_cleanly() {
    if !can_run("bad mount source") {
        return;
    }
    let mut opts = sh("true");
    opts.mounts = vec![bind_mount("/no/such/source", "/data", false)];
    let ran = run(layers(), opts, false, true);
    let err = ran.result.unwrap_err().to_string();
    assert!(err.contains("/no/such/source"), "{err}");
}

#[test]
fn a_failing_setup_step_is_named_and_cleaned_up() {
    if !can_run("setup failure") {
        return;
    }
    // A working directory below a file cannot be created.
    let mut opts = sh("true");
    opts.cwd = "/etc/passwd/sub".into();
    let ran = run(layers(), opts, false, true);
    let err = ran.result.unwrap_err().to_string();
    assert!(
        err.contains("/etc/passwd/sub") && err.contains("ENOTDIR"),
        "{err}"
    );
}

#[test]
fn a_container_killed_mid_run_is_cleaned_up() {
    if !can_run("kill mid-run") {
        return;
    }
    let dir = container_dir();
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut opts = sh("sleep 100");
    opts.memory = Some(64 << 20);
    opts.cpus = Some(0.5);
    opts.pids_limit = Some(10);
    let config = rbuild_runner::ContainerConfig {
        id: id.clone(),
        dir: dir.clone(),
        spec: rbuild_runner::docker_spec(&opts).unwrap(),
        rootfs: layers(),
        init: true,
        stdio: Default::default(),
        remove: true,
        volatile: true,
        etc: rbuild_runner::EtcFiles::Docker,
    };
    let running = rbuild_runner::spawn(config).unwrap();
    assert_eq!(cgroups_named(&id).len(), running.cgroup_paths().len());
    assert!(!running.cgroup_paths().is_empty());
    // The limits are in the kernel's files while the container runs.
    let value = |file: &str| {
        let dir = running
            .cgroup_paths()
            .into_iter()
            .find(|d| d.join(file).exists());
        std::fs::read_to_string(
            dir.unwrap_or_else(|| panic!("no cgroup has {file}"))
                .join(file),
        )
        .unwrap()
        .trim()
        .to_owned()
    };
    if rbuild_runner::cgroup::detect() == rbuild_runner::cgroup::Version::V1 {
        assert_eq!(value("memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(value("cpu.cfs_quota_us"), "50000");
    } else {
        assert_eq!(value("memory.max"), (64u64 << 20).to_string());
        assert_eq!(value("cpu.max"), "50000 100000");
    }
    assert_eq!(value("pids.max"), "10");
    let procs = value("cgroup.procs");
    assert!(
        procs.lines().any(|p| p == running.pid().to_string()),
        "{procs}"
    );
    running.signal(9).unwrap();
    let outcome = running.wait().unwrap();
    assert_eq!(outcome.status, ExitStatus::Signaled(9));
    assert!(cgroups_named(&id).is_empty());
    assert!(mounts_mentioning(&dir).is_empty());
    assert!(!dir.exists());
}

#[test]
fn a_console_is_a_terminal_in_the_containers_own_devpts() {
    if !can_run("console") {
        return;
    }
    let dir = container_dir();
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let opts = sh("tty; stty size; stat -c %u $(tty); ls -1 /dev/pts");
    let mut spec_opts = opts.clone();
    spec_opts.user = Some(rbuild_runner::Identity {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![],
        home: "/".into(),
    });
    let config = rbuild_runner::ContainerConfig {
        id: id.clone(),
        dir: dir.clone(),
        spec: rbuild_runner::docker_spec(&spec_opts).unwrap(),
        rootfs: layers(),
        init: false,
        stdio: rbuild_runner::Stdio {
            console: Some(rbuild_runner::ConsoleSize { rows: 24, cols: 80 }),
            ..Default::default()
        },
        remove: true,
        volatile: false,
        etc: rbuild_runner::EtcFiles::Docker,
    };
    let mut running = rbuild_runner::spawn(config).unwrap();
    let master = running.take_console().expect("the console's master side");
    let mut out = Vec::new();
    let mut f = std::fs::File::from(master);
    // Reading ends with EIO once the container's side is closed.
    let _ = std::io::Read::read_to_end(&mut f, &mut out);
    let outcome = running.wait().unwrap();
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    let text = String::from_utf8_lossy(&out).replace("\r\n", "\n");
    assert_eq!(text, "/dev/pts/0\n24 80\n1000\n0\nptmx\n");
    assert!(mounts_mentioning(&dir).is_empty() && cgroups_named(&id).is_empty());
}
