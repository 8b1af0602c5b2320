//! `rbuild image SUBCOMMAND`: image management (`prune`).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::Globals;
use super::common::{human_size, open_store};

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

fn dir_size(p: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(p)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Run `rbuild image …`.
pub fn run(args: ImageArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        ImageCommand::Prune { force: _ } => {
            let store = open_store(globals)?;
            let before = dir_size(store.root());
            // Images containers were created from stay, dangling or not (their layers are
            // the containers' lower dirs).
            let in_use = rbuild_runner::lifecycle::Containers::new(store.root())
                .list()?
                .iter()
                .filter_map(|c| c.record.image_id.parse().ok())
                .collect();
            let deleted = store.prune(&in_use)?;
            let after = dir_size(store.root());
            if !deleted.is_empty() {
                println!("Deleted Images:");
                for d in &deleted {
                    println!("deleted: {d}");
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                human_size(before.saturating_sub(after))
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
