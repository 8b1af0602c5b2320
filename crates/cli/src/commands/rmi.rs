//! `rbuild rmi [-f] REF...`: remove names and images, docker's output; an image a container
//! uses stays (docker's conflicts; forced, only its names go).

use std::process::ExitCode;

use clap::Args;
use rbuild_oci::Reference;
use rbuild_runner::lifecycle::{Container, Containers};
use rbuild_store::{Image, RemoveOutcome};

use super::Globals;
use super::common::open_store;

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

/// Why `rmi` may not remove what was asked, with docker's wording, or `None` if it may.
/// Removing an image's last name or the image itself is refused while a container uses it
/// (its layers are the container's lower dirs): without `force` always, with it if that
/// container runs and the image was named by ID.
fn conflict(
    what: &str,
    img: &Image,
    force: bool,
    user: &Container,
    by_name: bool,
) -> Option<String> {
    let running = user.state().is_ok_and(|st| st.status.is_active());
    let short = &user.id()[..12];
    if by_name && !force {
        return Some(format!(
            "conflict: unable to remove repository reference {what:?} (must force) - container {short} is using its referenced image {}",
            img.id.short()
        ));
    }
    if by_name {
        return None;
    }
    if running {
        return Some(format!(
            "conflict: unable to delete {} (cannot be forced) - image is being used by running container {short}",
            img.id.short()
        ));
    }
    (!force).then(|| {
        format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped container {short}",
            img.id.short()
        )
    })
}

/// Run `rbuild rmi`. Every argument is tried; the exit status is 1 if any failed.
pub fn run(args: RmiArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    let containers = Containers::new(store.root()).list()?;
    let mut failed = false;
    for what in &args.images {
        if let Ok(img) = store.resolve(what)
            && let Some(user) = containers
                .iter()
                .find(|c| c.record.image_id == img.id.to_string())
        {
            let named = what
                .parse::<Reference>()
                .ok()
                .filter(|r| r.digest().is_none() && img.names.contains(r));
            // Another name stays: only this one goes, as without a container.
            let only_a_name = named.is_some() && img.names.len() > 1;
            if !only_a_name {
                if let Some(why) = conflict(what, &img, args.force, user, named.is_some()) {
                    failed = true;
                    eprintln!("error: {why}");
                    eprintln!(
                        "  hint: remove the container first (rbuild rm -f {})",
                        user.name()
                    );
                    continue;
                }
                // Forced: the names go, the image stays (dangling) while the container does.
                match store.untag_all(&img.manifest_digest) {
                    Ok(names) => {
                        for n in names {
                            println!("Untagged: {}", n.familiar());
                        }
                    }
                    Err(e) => {
                        failed = true;
                        crate::report::print_error(&anyhow::Error::new(e));
                    }
                }
                continue;
            }
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
