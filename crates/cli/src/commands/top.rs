//! `rbuild top CONTAINER [ps OPTIONS]`: the container's processes, as the host's `ps`
//! shows them (default `-ef`), filtered to the container's cgroup, as docker does.

use std::process::ExitCode;

use clap::Args;

use super::Globals;

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
    let c = super::common::engine(globals).container(&args.container)?;
    let top = super::common::engine(globals).top(&c, &args.ps_args)?;
    println!("{}", top.header);
    for l in &top.processes {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}
