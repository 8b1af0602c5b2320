//! `rbuild exec [-i] [-t] [-d] [-e K=V] [-w DIR] [-u USER] CONTAINER CMD...`: run a command
//! in a running container (its namespaces and cgroups, its capabilities and seccomp
//! profile); the exit status is the command's.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_engine::ExecOptions;
use rbuild_runner::Stdio;

use super::Globals;
use crate::report::ExitStatus;
use crate::{signals, terminal};

/// Arguments of `rbuild exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep standard input open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run the command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from this environment)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User and optional group, by name or number (USER[:GROUP])
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Give the command extended privileges (all capabilities)
    #[arg(long)]
    pub privileged: bool,
    /// The container (name, ID or ID prefix)
    pub container: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

fn fail(e: anyhow::Error) -> anyhow::Error {
    e.context(ExitStatus(126))
}

/// Run `rbuild exec`.
pub fn run(args: ExecArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = super::common::engine(globals).container(&args.container)?;
    let env: Vec<String> = args
        .env
        .iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect();
    let engine = super::common::engine(globals);
    let exec = engine.exec_create(
        &c,
        &ExecOptions {
            cmd: args.command.clone(),
            env,
            workdir: args.workdir.clone(),
            user: args.user.clone(),
            tty: args.tty,
            privileged: args.privileged,
        },
    )?;
    let forwarding = signals::catch();
    let start = |stdio: Stdio| {
        let r = engine.exec_start(&exec, stdio)?;
        forwarding.target(r.pid());
        Ok(r)
    };
    let null = || -> anyhow::Result<OwnedFd> {
        Ok(File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .context("opening /dev/null")?
            .into())
    };
    let running = if args.tty && !args.detach {
        terminal::run_with_pty(start, args.interactive)
    } else {
        let stdin = if args.interactive && !args.detach {
            None
        } else {
            Some(null()?)
        };
        let (stdout, stderr) = if args.detach {
            (Some(null()?), Some(null()?))
        } else {
            (None, None)
        };
        start(Stdio {
            stdin,
            stdout,
            stderr,
            ..Default::default()
        })
    };
    let running = match running {
        Ok(r) => r,
        Err(e) => {
            let code = rbuild_runner::lifecycle::monitor::start_failure_code(&e);
            let code = if code == 125 { 126 } else { code };
            return Err(anyhow::Error::new(e).context(ExitStatus(code as u8)));
        }
    };
    if args.detach {
        // Reaped by whoever inherits it when we exit.
        std::mem::forget(running);
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = running.wait().map_err(|e| fail(e.into()))?;
    drop(forwarding);
    Ok(ExitCode::from(outcome.status.code().clamp(0, 255) as u8))
}
