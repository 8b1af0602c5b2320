//! `rbuild tag SRC DST`: give an image another name.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::Globals;

/// Arguments of `rbuild tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image: name, ID or digest
    pub source: String,
    /// The new name
    pub target: String,
}

/// Run `rbuild tag`.
pub fn run(args: TagArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    engine.store()?;
    let target: rbuild_oci::Reference = args
        .target
        .parse()
        .with_context(|| format!("tag target {:?}", args.target))?;
    engine.tag(&args.source, &target)?;
    Ok(ExitCode::SUCCESS)
}
