//! `rbuild rmi [-f] REF...`: remove names and images, docker's output.

use std::process::ExitCode;

use clap::Args;
use rbuild_store::RemoveOutcome;

use super::Globals;
use super::common::open_store;

/// Arguments of `rbuild rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove the image even if several names point at it
    #[arg(short, long)]
    pub force: bool,
    /// Images: names, IDs or digests
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Run `rbuild rmi`. Every argument is tried; the exit status is 1 if any failed.
pub fn run(args: RmiArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    let mut failed = false;
    for what in &args.images {
        match store.remove(what, args.force) {
            Ok(RemoveOutcome::Untagged(name)) => println!("Untagged: {}", name.familiar()),
            Ok(RemoveOutcome::Deleted { id, untagged }) => {
                for n in untagged {
                    println!("Untagged: {}", n.familiar());
                }
                println!("Deleted: {id}");
            }
            Err(e) => {
                failed = true;
                crate::report::print_error(&anyhow::Error::new(e));
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
