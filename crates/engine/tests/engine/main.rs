//! Engine integration tests: real stores in temporary directories, real containers (as
//! root), the Distribution registry of `RBUILD_TEST_REGISTRY` — through the engine's API, not
//! the CLI binary. Without the peers (root, busybox, the registry) a test is skipped with a
//! note, unless `RBUILD_TEST_PEERS=1`, when it fails.
//!
//! The binary has its own `main` (no libtest harness) because it doubles as the engine's
//! container monitor: the engine starts a detached container's monitor as
//! `PROGRAM --root ROOT container-monitor ID`, PROGRAM being this test binary.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

mod build_push;
mod lifecycle;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;

/// The tests: name and body.
const TESTS: &[(&str, fn())] = &[
    (
        "pull_create_start_logs_stop_remove",
        lifecycle::pull_create_start_logs_stop_remove,
    ),
    (
        "inspect_shows_the_fields_docker_users_script_against",
        lifecycle::inspect_shows_the_fields_docker_users_script_against,
    ),
    (
        "foreground_run_records_its_exit_and_removes_an_rm_container",
        lifecycle::foreground_run_records_its_exit_and_removes_an_rm_container,
    ),
    (
        "build_then_push_and_run_the_pulled_image",
        build_push::build_then_push_and_run_the_pulled_image,
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, root, cmd, id] = args.as_slice()
        && flag == "--root"
        && cmd == "container-monitor"
    {
        return monitor(root, id);
    }
    // libtest's conventions that cargo and users pass: a name filter, --list, --exact.
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    // The first free argument filters; options that take a value do not.
    let mut filter = None;
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--test-threads" | "--skip" | "--color" | "--format" | "-Z" | "--logfile" => {
                rest.next();
            }
            a if a.starts_with('-') => {}
            _ => {
                filter = Some(a);
                break;
            }
        }
    }
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in TESTS {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        println!("test {name} ...");
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failures: {failed:?}");
        ExitCode::FAILURE
    }
}

/// Be the monitor of container `id` under `root`, as the CLI's `container-monitor` is.
fn monitor(root: &str, id: &str) -> ExitCode {
    // SAFETY: the engine handed over descriptor 3, the claimed monitor lock; it is ours alone.
    let claim = unsafe { OwnedFd::from_raw_fd(3) };
    // SAFETY: marking our own descriptor close-on-exec.
    unsafe { nix::libc::fcntl(claim.as_raw_fd(), nix::libc::F_SETFD, nix::libc::FD_CLOEXEC) };
    match rbuild_engine::Engine::new(root).serve_monitor(id, claim) {
        Ok(st) => ExitCode::from(st.exit_code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("monitor: {e}");
            ExitCode::FAILURE
        }
    }
}
