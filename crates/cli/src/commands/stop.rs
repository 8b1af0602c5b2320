//! `rbuild stop`, `rbuild kill` and `rbuild restart`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rbuild_runner::lifecycle::{Container, ContainerError, monitor};

use super::Globals;
use super::common::store_root;
use super::containers::{find, parse_signal};

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

/// Block until `c`'s monitor has ended, or `timeout` passed; returns whether it ended.
pub fn wait_stopped(c: &Container, timeout: Option<Duration>) -> bool {
    let Some(timeout) = timeout else {
        let _ = c.wait_monitor();
        return true;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = c.clone();
    std::thread::spawn(move || {
        let _ = waiter.wait_monitor();
        let _ = tx.send(());
    });
    rx.recv_timeout(timeout).is_ok()
}

/// Stop `c`: its stop signal, then SIGKILL after the timeout (negative: wait forever).
pub fn stop(c: &Container, time: Option<i64>, signal: Option<&str>) -> anyhow::Result<()> {
    let st = c.state()?;
    if !st.status.is_active() {
        return Ok(());
    }
    let sig = parse_signal(signal.unwrap_or(&c.record.stop_signal))?;
    let secs = time.unwrap_or_else(|| i64::from(c.record.stop_timeout.unwrap_or(10)));
    super::pause::thaw_for_stop(c);
    monitor::signal(c, sig, true)?;
    let timeout = (secs >= 0).then(|| Duration::from_secs(secs as u64));
    if wait_stopped(c, timeout) {
        return Ok(());
    }
    monitor::signal(c, nix::libc::SIGKILL, true)?;
    wait_stopped(c, None);
    Ok(())
}

fn each(
    names: &[String],
    root: &Path,
    mut f: impl FnMut(&Container) -> anyhow::Result<()>,
) -> ExitCode {
    let mut failed = false;
    for name in names {
        match find(root, name).and_then(|c| f(&c)) {
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
    let root = store_root(globals);
    Ok(each(&args.containers, &root, |c| {
        stop(c, args.time, args.signal.as_deref())
    }))
}

/// Run `rbuild kill`.
pub fn run_kill(args: KillArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let root = store_root(globals);
    let sig = parse_signal(&args.signal)?;
    Ok(each(&args.containers, &root, |c| {
        c.state()?;
        if sig == nix::libc::SIGKILL {
            super::pause::thaw_for_stop(c);
        }
        if !monitor::signal(c, sig, true)? {
            return Err(anyhow::Error::new(ContainerError::NotRunning(
                c.id().to_owned(),
            )))
            .with_context(|| format!("cannot kill container: {}", c.name()));
        }
        Ok(())
    }))
}

/// Run `rbuild restart` (stop, then start).
pub fn run_restart(args: StopArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let root = store_root(globals);
    Ok(each(&args.containers, &root, |c| {
        stop(c, args.time, args.signal.as_deref())?;
        super::start::start_detached(c, &root).map(|_| ())
    }))
}
