//! `rbuild push REF [DEST]`: send a stored image to a registry, under its own name or DEST.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_oci::Reference;

use super::Globals;
use super::common::open_store;
use super::registry_opts::RegistryArgs;
use crate::transfer::push_blocking;

/// Arguments of `rbuild push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Print only the pushed digest
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The stored image (name, ID or digest)
    #[arg(value_name = "REF")]
    pub image: String,
    /// Where to push [default: the image's own name REF]
    #[arg(value_name = "DEST")]
    pub dest: Option<String>,
}

/// Run `rbuild push`.
pub fn run(args: PushArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    let image = store
        .resolve(&args.image)
        .with_context(|| format!("finding image {:?} in the store", args.image))?;
    let dest_text = args.dest.as_deref().unwrap_or(&args.image);
    let dest: Reference = dest_text
        .parse()
        .with_context(|| format!("destination {dest_text:?}"))?;
    let digest = push_blocking(&args.registry, &store, &image, &dest, args.quiet)?;
    if args.quiet {
        println!("{digest}");
    } else {
        let size = store.blobs().size(&digest).unwrap_or(0);
        let target = rbuild_registry::reference_target(&dest);
        println!("{target}: digest: {digest} size: {size}");
    }
    Ok(ExitCode::SUCCESS)
}
