//! `rbuild`: daemonless Dockerfile builds, OCI images, registries and containers in one binary.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod build_progress;
mod commands;
mod progress;
mod report;
mod rootless;
mod signals;
mod template;
mod terminal;
mod transfer;

/// The registry test support (real `docker-registry` processes) for in-crate tests.
#[cfg(test)]
#[path = "../../registry/tests/support/mod.rs"]
mod registry_support;

use std::process::ExitCode;

use clap::Parser;

/// rbuild: build, store, move and run OCI container images without a daemon.
#[derive(Debug, Parser)]
#[command(
    name = "rbuild",
    version,
    about = "Daemonless Dockerfile builds, OCI images, registries and containers",
    long_about = None,
    propagate_version = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten)]
    globals: commands::Globals,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    if let Err(err) = rootless::enter(&cli.command) {
        eprintln!("error: {err}");
        if let Some(hint) = err.hint() {
            eprintln!("  hint: {hint}");
        }
        return ExitCode::from(1);
    }
    match cli.command.run(&cli.globals) {
        Ok(code) => code,
        Err(err) => {
            report::print_error(&err);
            ExitCode::from(report::exit_code(&err))
        }
    }
}

/// A closed standard output (`rbuild images | head -1`) ends the command quietly with the
/// status a shell gives a process that SIGPIPE ended (141), as docker's CLI ends, instead of
/// the standard library's "failed printing to stdout" panic. SIGPIPE itself stays ignored: a
/// container's closed stdin pipe or a client's closed socket must not kill a monitor or the
/// API service.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        if message.is_some_and(|m| {
            m.starts_with("failed printing to stdout") && m.contains("Broken pipe")
        }) {
            std::process::exit(141);
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks over every subcommand, deferred ones included (a start
    /// only builds the subcommand it runs, so a misdefined one would otherwise surface only
    /// when it is invoked).
    #[test]
    fn every_subcommand_is_well_defined() {
        super::Cli::command().debug_assert();
    }
}
