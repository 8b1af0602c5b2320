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
    let containers = rbuild_runner::lifecycle::Containers::new(store.root()).list()?;
    let mut failed = false;
    for what in &args.images {
        // An image a container was created from stays while the container does (its layers
        // are the container's lower dirs), unless only one of several names goes.
        if let Ok(img) = store.resolve(what)
            && let Some(user) = containers
                .iter()
                .find(|c| c.record.image_id == img.id.to_string())
            && (img.names.len() <= 1
                || !img
                    .names
                    .iter()
                    .any(|n| n.familiar() == *what || n.to_string() == *what))
        {
            failed = true;
            eprintln!(
                "error: conflict: unable to remove {what:?}: container {} is using its referenced image {}",
                &user.id()[..12],
                img.id
            );
            eprintln!(
                "  hint: remove the container first (rbuild rm {})",
                user.name()
            );
            continue;
        }
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
