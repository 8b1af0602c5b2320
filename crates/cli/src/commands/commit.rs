//! `rbuild commit [-a AUTHOR] [-c CHANGE] [-m MSG] CONTAINER [REPO[:TAG]]`: a new image
//! from a container: its image's layers plus one layer made from the container's overlay
//! upper dir (the container is frozen meanwhile if it runs), its process config, and
//! `--change` instructions applied as `rbuild import` does.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_engine::CommitOptions;

use super::Globals;

/// Arguments of `rbuild commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g. "Jane Doe <jane@example.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply a Dockerfile instruction to the image config (as `rbuild import --change`)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Freeze a running container while committing (the default)
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    /// The container (name, ID or ID prefix)
    pub container: String,
    /// Name for the new image
    pub reference: Option<String>,
}

/// Run `rbuild commit`: prints the new image's ID.
pub fn run(args: CommitArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = super::common::engine(globals).container(&args.container)?;
    let name = args
        .reference
        .as_deref()
        .map(|r| {
            r.parse::<rbuild_oci::Reference>()
                .with_context(|| format!("image name {r:?}"))
        })
        .transpose()?;
    let opts = CommitOptions {
        author: args.author.clone(),
        changes: args.changes.clone(),
        message: args.message.clone(),
        pause: args.pause,
        name,
    };
    let image = super::common::engine(globals).commit(&c, &opts)?;
    println!("{}", image.id);
    Ok(ExitCode::SUCCESS)
}
