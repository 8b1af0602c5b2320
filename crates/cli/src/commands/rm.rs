//! `rbuild rm [-f] [-v] CONTAINER...` and `rbuild container prune`.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rbuild_runner::lifecycle::{Container, Containers, monitor};

use super::Globals;
use super::common::store_root;
use super::containers::find;

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

/// Remove `c`, killing it first with `force`; with `volumes`, its anonymous volumes too.
pub fn remove(c: &Container, force: bool, volumes: bool) -> anyhow::Result<()> {
    let st = c.state()?;
    if st.status.is_active() {
        if !force {
            bail!(
                "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
                c.name(),
                st.status.as_str()
            );
        }
        super::pause::thaw_for_stop(c);
        monitor::signal(c, nix::libc::SIGKILL, true)?;
        c.wait_monitor()?;
    }
    let _lock = c.lock()?;
    if c.monitor_running() {
        bail!(
            "container {} was started again while being removed",
            c.name()
        );
    }
    c.remove_in_background()?;
    if volumes {
        c.remove_anonymous_volumes()?;
    }
    Ok(())
}

/// Run `rbuild rm`.
pub fn run(args: RmArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let root = store_root(globals);
    let mut failed = false;
    for name in &args.containers {
        match find(&root, name).and_then(|c| remove(&c, args.force, args.volumes)) {
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
    let containers = Containers::new(&store_root(globals));
    containers.sweep();
    let mut deleted = Vec::new();
    for c in containers.list()? {
        if c.state()?.status.is_active() {
            continue;
        }
        if remove(&c, false, false).is_ok() {
            deleted.push(c.id().to_owned());
        }
    }
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
