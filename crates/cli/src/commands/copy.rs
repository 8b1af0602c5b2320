//! `rbuild copy SRC DST`: move an image between `docker://` registries, `oci:` layout
//! directories, `oci-archive:` and `docker-archive:` files and the local store (`rbuild:`).
//! Registry → registry streams blobs (or mounts them) with no local copy; everything else goes
//! through a store — the user's when `rbuild:` is involved, a temporary one otherwise — and
//! never unpacks layers.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use rbuild_engine::transfer::copy::parse_location;
use rbuild_oci::Platform;
use rbuild_registry::PullOptions;

use super::Globals;
use super::registry_opts::{RegistryArgs, run_interruptible, runtime};
use crate::progress::{Direction, Progress};

/// Arguments of `rbuild copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Platform to pick from a multi-platform source [default: this machine's]
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<Platform>,
    /// Copy a multi-platform image whole, every platform and its index (to any end but
    /// docker-archive, which holds no index)
    #[arg(long, short = 'a')]
    pub all_platforms: bool,
    /// No progress output
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Source: docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], rbuild:REF
    #[arg(value_name = "SRC")]
    pub source: String,
    /// Destination, same forms as SRC
    #[arg(value_name = "DST")]
    pub dest: String,
}

/// Run `rbuild copy`.
pub fn run(args: CopyArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let src = parse_location(&args.source)?;
    let dst = parse_location(&args.dest)?;
    let client = args.registry.client()?;
    let opts = PullOptions {
        platform: args.platform.clone().unwrap_or_else(Platform::host),
        all_platforms: args.all_platforms,
    };
    let rt = runtime()?;
    let engine = super::common::engine(globals);
    let pulling = Arc::new(Progress::new(Direction::Pull, args.quiet));
    let pushing = Arc::new(Progress::new(Direction::Push, args.quiet));
    let digest = run_interruptible(&rt, async {
        Ok(engine
            .copy(&client, &src, &dst, &opts, pulling, pushing)
            .await?)
    })?;
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}
