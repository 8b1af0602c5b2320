//! `rbuild`: daemonless Dockerfile builds, OCI images, registries and containers in one binary.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod build_progress;
mod commands;
mod progress;
mod report;
mod rootless;
mod signals;
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
