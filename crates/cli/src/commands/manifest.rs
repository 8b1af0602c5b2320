//! `rbuild manifest inspect REF` (the registry's raw JSON) and `rbuild manifest rm REF`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use rbuild_oci::Reference;

use super::registry_opts::{RegistryArgs, runtime};

/// Arguments of `rbuild manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[command(subcommand)]
    pub command: ManifestCommand,
}

/// `rbuild manifest` subcommands.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Print a manifest or index exactly as the registry serves it
    Inspect {
        #[command(flatten)]
        registry: RegistryArgs,
        /// The image, e.g. `localhost:5000/app:1`
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Delete a manifest (by tag or digest) from its registry
    Rm {
        #[command(flatten)]
        registry: RegistryArgs,
        /// The image, e.g. `localhost:5000/app:1`
        #[arg(value_name = "REF")]
        reference: String,
    },
}

fn parse(reference: &str) -> anyhow::Result<Reference> {
    reference
        .parse()
        .with_context(|| format!("image reference {reference:?}"))
}

/// Run `rbuild manifest`.
pub fn run(args: ManifestArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ManifestCommand::Inspect {
            registry,
            reference,
        } => {
            let r = parse(&reference)?;
            let client = registry.client()?;
            let m = runtime()?.block_on(rbuild_engine::registry::manifest(&client, &r))?;
            let mut out = std::io::stdout().lock();
            out.write_all(&m.bytes)?;
            if !m.bytes.ends_with(b"\n") {
                writeln!(out)?;
            }
        }
        ManifestCommand::Rm {
            registry,
            reference,
        } => {
            let r = parse(&reference)?;
            let client = registry.client()?;
            let digest =
                runtime()?.block_on(rbuild_engine::registry::delete_manifest(&client, &r))?;
            println!("Deleted: {digest}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
