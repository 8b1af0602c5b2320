//! `rbuild push REF [DEST]`: send a stored image to a registry, under its own name or DEST.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_oci::{Platform, Reference};

use super::Globals;
use super::common::open_store;
use super::registry_opts::RegistryArgs;
use crate::transfer::{push_blocking, push_index_blocking};

/// Arguments of `rbuild push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push only this platform's image of a multi-platform image (default: the whole index)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Push every platform of a multi-platform image (the default; accepted for docker's flag)
    #[arg(long = "all-platforms", short = 'a')]
    pub all_platforms: bool,
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
    let dest_text = args.dest.as_deref().unwrap_or(&args.image);
    let dest: Reference = dest_text
        .parse()
        .with_context(|| format!("destination {dest_text:?}"))?;
    let platform = args
        .platform
        .as_deref()
        .map(Platform::parse_normalized)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--platform: {e}"))?;
    let list = store
        .resolve_index(&args.image)
        .with_context(|| format!("finding image {:?} in the store", args.image))?;
    // A multi-platform image of which only some platforms were pulled: the host's image is
    // pushed alone (as docker pushes the image it pulled), the others not being here.
    let list = match list {
        Some(l)
            if platform.is_none() && !l.entries().iter().all(|(d, _)| store.image(d).is_ok()) =>
        {
            eprintln!(
                "note: {} has platforms that were not pulled (pull --all-platforms for all of \
                 them); pushing this machine's platform's image alone",
                args.image
            );
            None
        }
        other => other,
    };
    let digest = match (list, platform) {
        (Some(list), None) => {
            push_index_blocking(&args.registry, &store, &list, &dest, args.quiet)?
        }
        (list, platform) => {
            let image = match (&list, &platform) {
                (Some(list), Some(p)) => store.image_for(list, &args.image, p),
                (None, Some(p)) => store.resolve_platform(&args.image, p),
                (_, None) => store.resolve(&args.image),
            }
            .with_context(|| format!("finding image {:?} in the store", args.image))?;
            push_blocking(&args.registry, &store, &image, &dest, args.quiet)?
        }
    };
    if args.quiet {
        println!("{digest}");
    } else {
        let size = store.blobs().size(&digest).unwrap_or(0);
        let target = rbuild_registry::reference_target(&dest);
        println!("{target}: digest: {digest} size: {size}");
    }
    Ok(ExitCode::SUCCESS)
}
