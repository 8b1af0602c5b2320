//! Rootless mode at start-up: entering the user's namespace before anything else runs, and
//! the warnings a user of it should see once.

use rbuild_runner::rootless;

use crate::commands::Command;

/// Enter the user's rootless namespace when rbuild runs as a non-root user (nothing as root),
/// printing its warnings: a single-id map, and, for commands that run containers, that there
/// are no cgroups. Must run while the process has one thread. `Err` is printed by the caller.
pub fn enter(command: &Command) -> Result<(), rootless::RootlessError> {
    let Some(entered) = rootless::enter()? else {
        return Ok(());
    };
    if entered.single_id {
        eprintln!(
            "warning: rootless mode: {} has no subordinate ids in /etc/subuid and /etc/subgid, so only one id is mapped: every file is owned by root in containers and images, and changing owners fails (hint: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {})",
            entered.user, entered.user
        );
    }
    let runs_containers = matches!(
        command,
        Command::Build(_)
            | Command::Run(_)
            | Command::Create(_)
            | Command::Start(_)
            | Command::Restart(_)
            | Command::Compose(_)
    ) || matches!(
        command,
        Command::System(crate::commands::system::SystemArgs {
            command: crate::commands::system::SystemCommand::Service(_)
        })
    );
    if runs_containers && let Err(reason) = rootless::cgroups() {
        eprintln!(
            "warning: rootless mode: running without cgroups ({reason}); --memory, --pids-limit and --cpus are refused"
        );
    }
    Ok(())
}
