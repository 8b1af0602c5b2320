//! `rbuild image SUBCOMMAND`: image management (`prune`).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::Globals;
use super::common::human_size;

/// Arguments of `rbuild image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

/// `rbuild image` subcommands.
#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Remove dangling images and everything no image refers to
    Prune {
        /// Do not prompt for confirmation (accepted for docker compatibility; rbuild never prompts)
        #[arg(short, long)]
        force: bool,
    },
}

/// Run `rbuild image …`.
pub fn run(args: ImageArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        ImageCommand::Prune { force: _ } => {
            let pruned = super::common::engine(globals).prune_images()?;
            let deleted = pruned.deleted;
            if !deleted.is_empty() {
                println!("Deleted Images:");
                for d in &deleted {
                    println!("deleted: {d}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", human_size(pruned.reclaimed));
            Ok(ExitCode::SUCCESS)
        }
    }
}
