//! `rbuild rmi [-f] REF...`: remove names and images, docker's output; an image a container
//! uses stays (docker's conflicts; forced, only its names go).

use std::process::ExitCode;

use clap::Args;
use rbuild_engine::ImageDeleted;

use super::Globals;

/// Arguments of `rbuild rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove the image even if several names point at it, or only the names of one a
    /// stopped container uses
    #[arg(short, long)]
    pub force: bool,
    /// Images: names, IDs or digests
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Run `rbuild rmi`. Every argument is tried; the exit status is 1 if any failed.
pub fn run(args: RmiArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    engine.store()?;
    let mut failed = false;
    for what in &args.images {
        match engine.remove_image(what, args.force) {
            Ok(done) => {
                for d in done {
                    match d {
                        ImageDeleted::Untagged(n) => println!("Untagged: {}", n.familiar()),
                        ImageDeleted::Deleted(id) => println!("Deleted: {id}"),
                    }
                }
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
