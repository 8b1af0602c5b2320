//! One module per `rbuild` subcommand: its clap arguments and its `run`.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Args, Subcommand};

mod parse;
mod run;

/// Options every subcommand accepts.
#[derive(Debug, Args)]
pub struct Globals {
    /// Root directory of the image and container store
    /// [default: /var/lib/rbuild for root, $XDG_DATA_HOME/rbuild otherwise]
    #[arg(long, global = true, env = "RBUILD_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// Every `rbuild` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse a Dockerfile and print its parse tree or typed instructions
    Parse(parse::ParseArgs),
    /// Run a command in a new container
    Run(Box<run::RunArgs>),
}

impl Command {
    /// Run the chosen subcommand.
    pub fn run(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        let _ = globals;
        match self {
            Command::Parse(args) => parse::run(args),
            Command::Run(args) => run::run(*args, globals),
        }
    }
}
