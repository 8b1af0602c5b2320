//! One module per `rbuild` subcommand: its clap arguments and its `run`.

use std::process::ExitCode;

use clap::Subcommand;

mod parse;

/// Every `rbuild` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse a Dockerfile and print its parse tree or typed instructions
    Parse(parse::ParseArgs),
}

impl Command {
    /// Run the chosen subcommand.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Parse(args) => parse::run(args),
        }
    }
}
