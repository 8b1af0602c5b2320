//! `rbuild parse`: print a Dockerfile's parse tree (`--dump`) or typed instructions (`--json`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Arguments of `rbuild parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Print the raw parse tree in BuildKit's test `result` format
    #[arg(long, conflicts_with = "json")]
    pub dump: bool,
    /// Print the typed instructions as JSON
    #[arg(long)]
    pub json: bool,
    /// The Dockerfile to read (`-` for standard input)
    pub file: PathBuf,
}

/// Run `rbuild parse`.
pub fn run(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("rbuild parse: the parser is being written")
}
