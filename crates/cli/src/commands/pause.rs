//! `rbuild pause` / `rbuild unpause`: freeze and thaw a container's processes with the
//! cgroup freezer (v1 `freezer.state`, v2 `cgroup.freeze`).

use std::process::ExitCode;

use clap::Args;

use super::Globals;

/// Arguments of `rbuild pause` and `rbuild unpause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Containers (name, ID or ID prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn each(args: PauseArgs, globals: &Globals, paused: bool) -> ExitCode {
    let engine = super::common::engine(globals);
    let mut failed = false;
    for name in &args.containers {
        match engine
            .container(name)
            .map_err(anyhow::Error::from)
            .and_then(|c| {
                if paused {
                    engine.pause(&c)?;
                } else {
                    engine.unpause(&c)?;
                }
                Ok(())
            }) {
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
