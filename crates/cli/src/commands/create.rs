//! `rbuild create`: create a container from an image without starting it (`rbuild start`
//! starts it). Takes `rbuild run`'s options.

use std::process::ExitCode;

use super::Globals;
use super::run::RunArgs;
use crate::report::ExitStatus;

/// Run `rbuild create`: prints the new container's ID.
pub fn run(args: RunArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let (c, _) = super::run::create(&args, globals).map_err(|e| e.context(ExitStatus(125)))?;
    println!("{}", c.id());
    Ok(ExitCode::SUCCESS)
}
