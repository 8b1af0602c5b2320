//! `rbuild container SUBCOMMAND`: container management under docker's group names.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::Globals;

/// Arguments of `rbuild container`.
#[derive(Debug, Args)]
pub struct ContainerArgs {
    #[command(subcommand)]
    command: ContainerCommand,
}

/// `rbuild container` subcommands.
#[derive(Debug, Subcommand)]
enum ContainerCommand {
    /// Remove all stopped containers
    Prune(super::rm::PruneArgs),
    /// List containers
    #[command(visible_alias = "ps", alias = "list")]
    Ls(super::ps::PsArgs),
    /// Remove containers
    Rm(super::rm::RmArgs),
    /// Create a container
    Create(Box<super::run::RunArgs>),
    /// Start containers
    Start(super::start::StartArgs),
    /// Stop containers
    Stop(super::stop::StopArgs),
    /// Kill containers
    Kill(super::stop::KillArgs),
    /// Restart containers
    Restart(super::stop::StopArgs),
    /// Block until containers stop, then print their exit codes
    Wait(super::wait::WaitArgs),
    /// Rename a container
    Rename(super::rename::RenameArgs),
    /// Fetch the logs of a container
    Logs(super::logs::LogsArgs),
    /// Pause all processes of containers
    Pause(super::pause::PauseArgs),
    /// Unpause all processes of containers
    Unpause(super::pause::PauseArgs),
    /// Start the containers dockerd would start when it starts (after a reboot): restart
    /// policy always, unless-stopped if no user stopped them, on-failure after a failure
    Autostart,
}

/// Run `rbuild container …`.
pub fn run(args: ContainerArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        ContainerCommand::Prune(a) => super::rm::prune(a, globals),
        ContainerCommand::Ls(a) => super::ps::run(a, globals),
        ContainerCommand::Rm(a) => super::rm::run(a, globals),
        ContainerCommand::Create(a) => super::create::run(*a, globals),
        ContainerCommand::Start(a) => super::start::run(a, globals),
        ContainerCommand::Stop(a) => super::stop::run_stop(a, globals),
        ContainerCommand::Kill(a) => super::stop::run_kill(a, globals),
        ContainerCommand::Restart(a) => super::stop::run_restart(a, globals),
        ContainerCommand::Wait(a) => super::wait::run(a, globals),
        ContainerCommand::Rename(a) => super::rename::run(a, globals),
        ContainerCommand::Logs(a) => super::logs::run(a, globals),
        ContainerCommand::Pause(a) => super::pause::run_pause(a, globals),
        ContainerCommand::Unpause(a) => super::pause::run_unpause(a, globals),
        ContainerCommand::Autostart => autostart(globals),
    }
}

/// Run `rbuild container autostart`: rbuild has no daemon that comes back after a reboot,
/// so this is its start (for a boot-time unit). Prints the IDs of the containers started.
fn autostart(globals: &Globals) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for (c, started) in super::common::engine(globals).autostart()? {
        match started {
            Ok(true) => println!("{}", c.id()),
            Ok(false) => {}
            Err(e) => {
                crate::report::print_error(
                    &anyhow::Error::from(e).context(format!("starting {}", c.name())),
                );
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
