//! `rbuild stop`, `rbuild kill` and `rbuild restart`.

use std::process::ExitCode;

use clap::Args;
use rbuild_engine::options::parse_signal;
use rbuild_runner::lifecycle::Container;

use super::Globals;

/// Arguments of `rbuild stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container [default: its --stop-timeout, else 10]
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        value_name = "SECONDS"
    )]
    pub time: Option<i64>,
    /// Signal to send [default: its --stop-signal or the image's STOPSIGNAL, else SIGTERM]
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Containers (name, ID or ID prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of `rbuild kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    /// Containers (name, ID or ID prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn each(
    names: &[String],
    engine: &rbuild_engine::Engine,
    mut f: impl FnMut(&Container) -> anyhow::Result<()>,
) -> ExitCode {
    let mut failed = false;
    for name in names {
        match engine
            .container(name)
            .map_err(anyhow::Error::from)
            .and_then(|c| f(&c))
        {
            Ok(()) => println!("{name}"),
            Err(e) => {
                crate::report::print_error(&e);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Run `rbuild stop`.
pub fn run_stop(args: StopArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    Ok(each(&args.containers, &engine, |c| {
        Ok(engine.stop(c, args.time, args.signal.as_deref())?)
    }))
}

/// Run `rbuild kill`.
pub fn run_kill(args: KillArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let sig = parse_signal(&args.signal)?;
    let engine = super::common::engine(globals);
    Ok(each(
        &args.containers,
        &engine,
        |c| Ok(engine.kill(c, sig)?),
    ))
}

/// Run `rbuild restart` (stop, then start).
pub fn run_restart(args: StopArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    Ok(each(&args.containers, &engine, |c| {
        Ok(engine.restart(c, args.time, args.signal.as_deref())?)
    }))
}
