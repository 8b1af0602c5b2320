//! `rbuild wait CONTAINER...`: block until each container's current run ends, print its
//! exit code.

use std::process::ExitCode;

use clap::Args;
use rbuild_runner::lifecycle::Status;

use super::Globals;
use super::common::store_root;
use super::containers::find;

/// Arguments of `rbuild wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Containers (name, ID or ID prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild wait`.
pub fn run(args: WaitArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let root = store_root(globals);
    let mut failed = false;
    for name in &args.containers {
        let waited = find(&root, name).and_then(|c| {
            // Docker's wait returns at the run's first exit, even when the restart policy
            // starts the container again.
            let st = c.state()?;
            if st.status == Status::Restarting {
                return Ok(st.exit_code);
            }
            if matches!(st.status, Status::Running | Status::Paused)
                && c.wait_run()?
                && let Ok(st) = c.stored_state()
                && matches!(st.status, Status::Restarting | Status::Running)
            {
                return Ok(st.exit_code);
            }
            // The end is final: wait for the monitor's clean-up (and --rm) too.
            c.wait_monitor()?;
            match c.state() {
                Ok(st) => Ok(st.exit_code),
                // Removed at its end (--rm): the monitor left the code behind.
                Err(e) => std::fs::read_to_string(c.exit_record())
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or_else(|| e.into()),
            }
        });
        match waited {
            Ok(code) => println!("{code}"),
            Err(e) => {
                crate::report::print_error(&e);
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
