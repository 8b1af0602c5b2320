//! `rbuild logs [-f] [--tail N] [-t] [--since WHEN] CONTAINER`: the container's json-file
//! log, stdout lines to stdout and stderr lines to stderr, as docker prints them.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_engine::options::parse_when;
use rbuild_engine::{LogOptions, LogPosition};
use rbuild_runner::lifecycle::Container;
use rbuild_runner::lifecycle::log::LogEntry;

use super::Globals;

/// Arguments of `rbuild logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the output as it comes, until the container ends
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines ("all" for every line)
    #[arg(short = 'n', long, default_value = "all", value_name = "N")]
    pub tail: String,
    /// Prefix each line with its timestamp
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Only lines since a time (RFC 3339, Unix seconds) or a duration ago (10m, 1h30m)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only lines before a time or a duration ago
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// The container (name, ID or ID prefix)
    pub container: String,
}

fn print(e: &LogEntry, timestamps: bool) {
    let line = if timestamps {
        format!("{} {}", e.time, e.log)
    } else {
        e.log.clone()
    };
    if e.stream == "stderr" {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// Run `rbuild logs`.
pub fn run(args: LogsArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = super::common::engine(globals).container(&args.container)?;
    let since = args.since.as_deref().map(parse_when).transpose()?;
    let until = args.until.as_deref().map(parse_when).transpose()?;
    let tail: Option<usize> = match args.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse::<i64>()
                .with_context(|| format!("invalid --tail {n:?}: expected a number or \"all\""))?
                .max(0) as usize,
        ),
    };
    let engine = super::common::engine(globals);
    let from = LogPosition::end_of(&c);
    let opts = LogOptions { since, until, tail };
    for e in &engine.logs(&c, &opts) {
        print(e, args.timestamps);
    }
    if args.follow && until.is_none() {
        follow(&c, from, args.timestamps)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Print what `c`'s log gets from `from` on, until the container's monitor has ended and
/// all of it is printed.
pub fn follow(c: &Container, from: LogPosition, timestamps: bool) -> anyhow::Result<()> {
    let engine = rbuild_engine::Engine::new(c.store_root());
    Ok(engine.follow_logs(c, from, |e| print(e, timestamps))?)
}
