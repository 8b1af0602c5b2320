//! `rbuild export [-o FILE] CONTAINER`: the container's whole root filesystem (its image's
//! layers with its changes on top) as one tar, which `docker import` and `rbuild import`
//! accept.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::Globals;

/// Arguments of `rbuild export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file instead of standard output
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// The container (name, ID or ID prefix)
    pub container: String,
}

/// Run `rbuild export`.
pub fn run(args: ExportArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = super::common::engine(globals).container(&args.container)?;
    if args.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("cowardly refusing to write a tar to a terminal: use -o FILE or redirect the output");
    }
    super::common::engine(globals).export(&c, args.output.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
