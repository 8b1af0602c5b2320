//! `rbuild rm [-f] [-v] CONTAINER...` and `rbuild container prune`.

use std::process::ExitCode;

use clap::Args;

use super::Globals;

/// Arguments of `rbuild rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container first
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Also remove its anonymous volumes
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Containers (name, ID or ID prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild rm`.
pub fn run(args: RmArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    let mut failed = false;
    for name in &args.containers {
        match engine
            .container(name)
            .map_err(anyhow::Error::from)
            .and_then(|c| Ok(engine.remove_container(&c, args.force, args.volumes)?))
        {
            Ok(()) => println!("{name}"),
            Err(e) => {
                crate::report::print_error(&e);
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Arguments of `rbuild container prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation (accepted for docker compatibility; rbuild never prompts)
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Run `rbuild container prune`: remove every stopped container.
pub fn prune(args: PruneArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let _ = args.force;
    let deleted = super::common::engine(globals).prune_containers()?;
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for id in &deleted {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: 0B");
    Ok(ExitCode::SUCCESS)
}
