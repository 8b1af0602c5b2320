//! `rbuild wait CONTAINER...`: block until each container's current run ends, print its
//! exit code.

use std::process::ExitCode;

use clap::Args;

use super::Globals;

/// Arguments of `rbuild wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Containers (name, ID or ID prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild wait`.
pub fn run(args: WaitArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    let mut failed = false;
    for name in &args.containers {
        let waited = engine
            .container(name)
            .map_err(anyhow::Error::from)
            .and_then(|c| Ok(engine.wait(&c)?));
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
