//! `rbuild system service [--time SECONDS] [URI]`: serve the Docker Engine API (so the
//! docker CLI, docker-compose and the SDKs drive rbuild), as `podman system service`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::Globals;

/// Arguments of `rbuild system`.
#[derive(Debug, Args)]
pub struct SystemArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: SystemCommand,
}

/// `rbuild system` subcommands.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Serve the Docker Engine API on a unix socket (or loopback TCP)
    Service(ServiceArgs),
}

/// Arguments of `rbuild system service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Exit after this many seconds without a connection (0: never)
    #[arg(
        short = 't',
        long = "time",
        value_name = "SECONDS",
        default_value_t = 5
    )]
    pub time: u64,
    /// Where to listen: unix:///PATH or tcp://127.0.0.1:PORT
    /// [default: unix:///run/rbuild/rbuild.sock for root, $XDG_RUNTIME_DIR/rbuild/rbuild.sock otherwise]
    #[arg(value_name = "URI")]
    pub uri: Option<String>,
}

/// Run `rbuild system`.
pub fn run(args: SystemArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        SystemCommand::Service(a) => service(a, globals),
    }
}

fn service(args: ServiceArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let address = match &args.uri {
        Some(u) => u.parse::<rbuild_api::Address>()?,
        None => rbuild_api::default_address(),
    };
    let engine = super::common::engine(globals);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = rbuild_api::bind(&address)?;
        let opts = rbuild_api::ServeOptions {
            idle: (args.time > 0).then(|| Duration::from_secs(args.time)),
        };
        rbuild_api::serve(engine, listener, opts)
            .await
            .with_context(|| format!("serving on {address}"))
    })?;
    // Blocking work (a followed log, an events stream) may still hold a thread: don't wait.
    runtime.shutdown_background();
    Ok(ExitCode::SUCCESS)
}
