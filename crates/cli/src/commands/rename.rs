//! `rbuild rename CONTAINER NEW_NAME`: give a container another name (docker's `rename`).

use std::process::ExitCode;

use clap::Args;

use super::Globals;

/// Arguments of `rbuild rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container (name, ID or ID prefix)
    pub container: String,
    /// Its new name
    pub new_name: String,
}

/// Run `rbuild rename`.
pub fn run(args: RenameArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    let mut c = engine.container(&args.container)?;
    engine.rename_container(&mut c, &args.new_name)?;
    Ok(ExitCode::SUCCESS)
}
