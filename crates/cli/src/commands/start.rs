//! `rbuild start [-a] CONTAINER...`, and starting a detached container's monitor (also for
//! `run -d` and `restart`): a re-execution of this binary (`container-monitor`, hidden) in
//! its own session, handed the claimed `monitor.lock` as descriptor 3; it reports the first
//! start on a pipe and lives on after this command exits.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use clap::Args;
use nix::libc;
use rbuild_runner::lifecycle::{Container, monitor};

use super::Globals;
use super::common::store_root;
use super::containers::find;
use crate::report::ExitStatus;

/// Arguments of `rbuild start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach: print the container's output and return its exit status
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach standard input (a container created with -i)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[command(flatten)]
    pub detach: super::attach::DetachKeys,
    /// Containers (name, ID or ID prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild start`.
pub fn run(args: StartArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let root = store_root(globals);
    let attach = args.attach || args.interactive;
    let keys = args.detach.keys()?;
    if attach && args.containers.len() > 1 {
        anyhow::bail!("you cannot start and attach multiple containers at once");
    }
    let mut failed = false;
    for name in &args.containers {
        let c = match find(&root, name) {
            Ok(c) => c,
            Err(e) => {
                crate::report::print_error(&e);
                failed = true;
                continue;
            }
        };
        let from = super::logs::Position::end_of(&c);
        if let Err(e) = start_detached(&c, &root) {
            if attach {
                return Err(e);
            }
            crate::report::print_error(&e);
            failed = true;
            continue;
        }
        let raw = if args.interactive {
            super::attach::forward_stdin(&c, &keys)?
        } else {
            None
        };
        if attach {
            super::logs::follow(&c, from, false)?;
            drop(raw);
            let st = c.state()?;
            return Ok(ExitCode::from(st.exit_code.clamp(0, 255) as u8));
        }
        println!("{name}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Start `c`'s monitor and wait for its first start; `Ok(false)` if it was already running.
/// Errors carry docker's status (125, or 126/127 for the command).
pub fn start_detached(c: &Container, root: &Path) -> anyhow::Result<bool> {
    c.state()?;
    let lock = c.lock()?;
    let Some(claim) = c.claim_monitor()? else {
        return Ok(false);
    };
    let mut st = c.stored_state()?;
    st.manually_stopped = false;
    st.restart_count = 0;
    c.write_state(&lock, &st)?;
    let errors = File::options()
        .create(true)
        .append(true)
        .open(c.dir().join("monitor.log"))
        .with_context(|| format!("opening {}", c.dir().join("monitor.log").display()))?;
    let fd = claim.as_raw_fd();
    // The monitor works from /, so it holds no directory of the caller's busy.
    let root =
        std::path::absolute(root).with_context(|| format!("store root {}", root.display()))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("--root")
        .arg(&root)
        .arg("container-monitor")
        .arg(c.id())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(errors);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::chdir(c"/".as_ptr());
            if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting the monitor of container {}", c.id()))?;
    drop(claim);
    drop(lock);
    let mut report = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut report);
    }
    // The monitor lives on; it is reparented when we exit.
    std::mem::forget(child);
    let report = report.trim();
    if report.starts_with("ok ") {
        return Ok(true);
    }
    let (code, message) = report
        .strip_prefix("error ")
        .and_then(|r| r.split_once(' '))
        .and_then(|(code, msg)| Some((code.parse::<u8>().ok()?, msg.to_owned())))
        .unwrap_or((
            125,
            format!(
                "the monitor of container {} ended without reporting (see {})",
                c.id(),
                c.dir().join("monitor.log").display()
            ),
        ));
    Err(anyhow::anyhow!(message).context(ExitStatus(code)))
}

/// Arguments of the hidden `rbuild container-monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The container's ID
    pub id: String,
    /// The inherited descriptor of the claimed monitor.lock
    #[arg(long = "lock-fd", default_value_t = 3)]
    pub lock_fd: i32,
}

/// Run the monitor of a detached container (started by [`start_detached`]).
pub fn monitor(args: MonitorArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    // In its own session without a terminal, the monitor gets no terminal signals; it
    // ignores none either (the container would inherit an ignored disposition).
    // SAFETY: the descriptor was handed over by `start_detached` and is ours alone.
    let claim = unsafe { OwnedFd::from_raw_fd(args.lock_fd) };
    // SAFETY: marking our own descriptor close-on-exec.
    unsafe { libc::fcntl(claim.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    let c = find(&store_root(globals), &args.id)?;
    let report = |r: Result<i32, &rbuild_runner::Error>| {
        use std::io::Write;
        let line = match r {
            Ok(pid) => format!("ok {pid}\n"),
            Err(e) => format!(
                "error {} {}\n",
                monitor::start_failure_code(e),
                e.to_string().replace('\n', " ")
            ),
        };
        let mut out = std::io::stdout();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
        // Close the report pipe: the starting command reads until EOF.
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            // SAFETY: replacing our own standard output.
            unsafe { libc::dup2(null.as_raw_fd(), 1) };
        }
    };
    let st = monitor::supervise(&c, claim, report)?;
    Ok(ExitCode::from(st.exit_code.clamp(0, 255) as u8))
}
