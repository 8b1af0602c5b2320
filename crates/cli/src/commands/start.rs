//! `rbuild start [-a] CONTAINER...` (through `Engine::start`), and the hidden
//! `container-monitor` the engine re-executes this binary as for a detached container (also
//! for `run -d` and `restart`): handed the claimed `monitor.lock` as descriptor 3, it serves
//! as the container's monitor (`Engine::serve_monitor`) and lives on after the starting
//! command exits.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;

use clap::Args;
use nix::libc;

use super::Globals;

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
    let attach = args.attach || args.interactive;
    let keys = args.detach.keys()?;
    if attach && args.containers.len() > 1 {
        anyhow::bail!("you cannot start and attach multiple containers at once");
    }
    let engine = super::common::engine(globals);
    let mut failed = false;
    for name in &args.containers {
        let c = match engine.container(name).map_err(anyhow::Error::from) {
            Ok(c) => c,
            Err(e) => {
                crate::report::print_error(&e);
                failed = true;
                continue;
            }
        };
        let from = rbuild_engine::LogPosition::end_of(&c);
        if let Err(e) = engine.start(&c) {
            if attach {
                return Err(e.into());
            }
            crate::report::print_error(&e.into());
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
    let st = super::common::engine(globals).serve_monitor(&args.id, claim)?;
    Ok(ExitCode::from(st.exit_code.clamp(0, 255) as u8))
}
