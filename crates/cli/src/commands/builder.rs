//! `rbuild builder prune [-a] [-f] [--filter until=DURATION] [--keep-storage SIZE]`: remove
//! build cache as `docker builder prune` does (without `-a` only what no image shares).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::Globals;
use super::common::human_size;

/// Arguments of `rbuild builder`.
#[derive(Debug, Args)]
pub struct BuilderArgs {
    #[command(subcommand)]
    command: BuilderCommand,
}

/// `rbuild builder` subcommands.
#[derive(Debug, Subcommand)]
enum BuilderCommand {
    /// Remove build cache
    Prune(PruneArgs),
}

/// Arguments of `rbuild builder prune`.
#[derive(Debug, Args)]
struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones (what no image shares)
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Amount of disk space to keep for cache (e.g. "1GB")
    #[arg(long = "keep-storage", value_name = "SIZE")]
    keep_storage: Option<String>,
}

/// Run `rbuild builder …`.
pub fn run(args: BuilderArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        BuilderCommand::Prune(a) => prune(a, globals),
    }
}

fn prune(args: PruneArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let filters = args
        .filters
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .with_context(|| format!("invalid filter {f:?}: expected KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Checked before asking, so bad input is refused whatever the answer.
    let opts =
        rbuild_engine::build_prune_options(args.all, &filters, args.keep_storage.as_deref())?;
    if !args.force {
        let prompt = if args.all {
            "WARNING! This will remove all build cache. Are you sure you want to continue?"
        } else {
            "WARNING! This will remove all dangling build cache. Are you sure you want to continue?"
        };
        if !super::common::confirm(prompt)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let report = super::common::engine(globals).prune_build_cache(&opts)?;
    let mut out = std::io::stdout().lock();
    if !report.deleted.is_empty() {
        writeln!(out, "Deleted build cache objects:")?;
        for id in &report.deleted {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(report.reclaimed)
    )?;
    Ok(ExitCode::SUCCESS)
}
