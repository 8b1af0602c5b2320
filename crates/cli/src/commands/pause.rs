//! `rbuild pause` / `rbuild unpause`: freeze and thaw a container's processes with the
//! cgroup freezer (v1 `freezer.state`, v2 `cgroup.freeze`).

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rbuild_runner::lifecycle::{Container, Status};

use super::Globals;
use super::common::store_root;
use super::containers::find;

/// Arguments of `rbuild pause` and `rbuild unpause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Containers (name, ID or ID prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn set_paused(c: &Container, paused: bool) -> anyhow::Result<()> {
    c.state()?;
    let lock = c.lock()?;
    let mut st = c.stored_state()?;
    match (st.status, paused) {
        (Status::Running, true) | (Status::Paused, false) => {}
        (Status::Paused, true) => bail!("container {} is already paused", c.id()),
        (_, true) => bail!("container {} is not running", c.id()),
        (_, false) => bail!("container {} is not paused", c.id()),
    }
    rbuild_runner::cgroup::freeze(&st.cgroups, paused)?;
    st.status = if paused {
        Status::Paused
    } else {
        Status::Running
    };
    c.write_state(&lock, &st)?;
    Ok(())
}

/// Thaw a paused container so a stop or kill signal reaches it (docker does the same).
pub fn thaw_for_stop(c: &Container) {
    if c.stored_state().is_ok_and(|s| s.status == Status::Paused) {
        let _ = set_paused(c, false);
    }
}

fn each(args: PauseArgs, globals: &Globals, paused: bool) -> ExitCode {
    let root = store_root(globals);
    let mut failed = false;
    for name in &args.containers {
        match find(&root, name).and_then(|c| set_paused(&c, paused)) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                crate::report::print_error(&e);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Run `rbuild pause`.
pub fn run_pause(args: PauseArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    Ok(each(args, globals, true))
}

/// Run `rbuild unpause`.
pub fn run_unpause(args: PauseArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    Ok(each(args, globals, false))
}
