//! `rbuild attach CONTAINER`: show a running container's output from now on (as its log
//! receives it) until it ends, and exit with its status. Standard input is not connected:
//! a detached container reads /dev/null.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::Globals;
use super::common::store_root;
use super::containers::find;

/// Arguments of `rbuild attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Accepted for docker compatibility: standard input is never connected
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// The container (name, ID or ID prefix)
    pub container: String,
}

/// Run `rbuild attach`.
pub fn run(args: AttachArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = find(&store_root(globals), &args.container)?;
    if !c.state()?.status.is_active() {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let from = super::logs::Position::end_of(&c);
    super::logs::follow(&c, from, false)?;
    let st = c.state()?;
    Ok(ExitCode::from(st.exit_code.clamp(0, 255) as u8))
}
