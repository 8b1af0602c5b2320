//! `rbuild exec [-i] [-t] [-d] [-e K=V] [-w DIR] [-u USER] CONTAINER CMD...`: run a command
//! in a running container (its namespaces and cgroups, its capabilities and seccomp
//! profile); the exit status is the command's.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_runner::Stdio;
use rbuild_runner::exec::ExecConfig;
use rbuild_runner::lifecycle::Status;

use super::Globals;
use super::common::store_root;
use super::containers::find;
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
    let c = find(&store_root(globals), &args.container)?;
    let st = c.state()?;
    match st.status {
        Status::Running => {}
        Status::Paused => bail!(
            "container {} is paused, unpause the container before exec",
            c.id()
        ),
        _ => bail!("container {} is not running", c.id()),
    }
    let spec = c.spec()?;
    let mut process = spec.process().clone().unwrap_or_default();
    let env = rbuild_runner::image::merge_env(
        &process.env().clone().unwrap_or_default(),
        &args
            .env
            .iter()
            .filter_map(|e| {
                if e.contains('=') {
                    Some(e.clone())
                } else {
                    std::env::var(e).ok().map(|v| format!("{e}={v}"))
                }
            })
            .collect::<Vec<_>>(),
    );
    process.set_args(Some(args.command.clone()));
    process.set_env(Some(env));
    process.set_terminal(Some(args.tty));
    if let Some(w) = &args.workdir {
        process.set_cwd(w.into());
    }
    if let Some(u) = &args.user {
        let etc = |f: &str| std::fs::read_to_string(format!("/proc/{}/root/etc/{f}", st.pid)).ok();
        let id = rbuild_runner::resolve_user(u, etc("passwd").as_deref(), etc("group").as_deref())?;
        let mut user = process.user().clone();
        user.set_uid(id.uid);
        user.set_gid(id.gid);
        user.set_additional_gids(Some(id.additional_gids.clone()));
        process.set_user(user);
        if id.uid != 0
            && let Some(caps) = process.capabilities().clone()
        {
            let mut caps = caps;
            caps.set_effective(None);
            caps.set_permitted(None);
            process.set_capabilities(Some(caps));
        }
    }
    if args.privileged {
        let all = rbuild_runner::caps::all();
        process.set_capabilities(Some(
            oci_spec::runtime::LinuxCapabilitiesBuilder::default()
                .bounding(all.clone())
                .effective(all.clone())
                .permitted(all)
                .build()
                .context("capabilities")?,
        ));
    }
    let seccomp = if args.privileged {
        None
    } else {
        spec.linux().as_ref().and_then(|l| l.seccomp().clone())
    };
    let forwarding = signals::catch();
    let start = |stdio: Stdio| {
        // The container's PID stays its own while we hold the lock (the monitor reaps
        // under it).
        let lock = c.lock()?;
        let now = c.stored_state()?;
        if now.status != Status::Running {
            return Err(rbuild_runner::Error::Container(
                rbuild_runner::lifecycle::ContainerError::NotRunning(c.id().to_owned()),
            ));
        }
        let r = rbuild_runner::exec::exec(ExecConfig {
            pid: now.pid,
            cgroups: now.cgroups.clone(),
            process: process.clone(),
            seccomp: seccomp.clone(),
            stdio,
        });
        drop(lock);
        let r = r?;
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
