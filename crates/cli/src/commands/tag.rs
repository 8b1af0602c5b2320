//! `rbuild tag SRC DST`: give an image another name.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::Globals;
use super::common::open_store;

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
    let store = open_store(globals)?;
    let target: rbuild_oci::Reference = args
        .target
        .parse()
        .with_context(|| format!("tag target {:?}", args.target))?;
    let image = store.resolve(&args.source)?;
    store.tag(&image, &target)?;
    Ok(ExitCode::SUCCESS)
}
