//! `rbuild top CONTAINER [ps OPTIONS]`: the container's processes, as the host's `ps`
//! shows them (default `-ef`), filtered to the container's cgroup, as docker does.

use std::collections::HashSet;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::Args;

use super::Globals;
use super::common::store_root;
use super::containers::find;

/// Arguments of `rbuild top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container (name, ID or ID prefix)
    pub container: String,
    /// Options for ps [default: -ef]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Run `rbuild top`.
pub fn run(args: TopArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = find(&store_root(globals), &args.container)?;
    let st = c.state()?;
    if !matches!(
        st.status,
        rbuild_runner::lifecycle::Status::Running | rbuild_runner::lifecycle::Status::Paused
    ) {
        bail!("container {} is not running", c.id());
    }
    let mut pids = HashSet::new();
    for dir in &st.cgroups {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
    }
    pids.insert(st.pid as u32);
    let ps_args = if args.ps_args.is_empty() {
        vec!["-ef".to_owned()]
    } else {
        args.ps_args.clone()
    };
    let out = Command::new("ps")
        .args(&ps_args)
        .output()
        .context("running ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for l in lines {
        if l.split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            println!("{l}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
