//! `rbuild pull [--platform P] [--all-platforms] REF`: fetch an image into the local store.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_oci::{Platform, Reference};
use rbuild_registry::PullOptions;

use super::Globals;
use super::common::open_store;
use super::registry_opts::RegistryArgs;
use crate::transfer::pull_blocking;

/// Arguments of `rbuild pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Platform to pick from a multi-platform image (os/arch[/variant]) [default: this machine's]
    #[arg(long, value_name = "PLATFORM", value_parser = Platform::parse_normalized)]
    pub platform: Option<Platform>,
    /// Keep the index and every platform's image
    #[arg(long, short = 'a')]
    pub all_platforms: bool,
    /// Print only the image reference
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The image, e.g. `alpine`, `localhost:5000/app:1`, `repo@sha256:…`
    #[arg(value_name = "REF")]
    pub reference: String,
}

/// Run `rbuild pull`.
pub fn run(args: PullArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let reference: Reference = args
        .reference
        .parse()
        .with_context(|| format!("image reference {:?}", args.reference))?;
    let store = open_store(globals)?;
    let opts = PullOptions {
        platform: args.platform.unwrap_or_else(Platform::host),
        all_platforms: args.all_platforms,
    };
    pull_blocking(&args.registry, &store, &reference, &opts, args.quiet)?;
    println!("{reference}");
    Ok(ExitCode::SUCCESS)
}
