//! `rbuild attach CONTAINER`: show a running container's output from now on (as its log
//! receives it) until it ends, and exit with its status. A container started with `-i` also
//! gets this command's standard input, through its monitor's attach socket.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rbuild_runner::lifecycle::Container;

use crate::terminal::RawMode;

use super::Globals;
use super::common::store_root;
use super::containers::find;

/// Arguments of `rbuild attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach standard input
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
    let raw = if args.no_stdin {
        None
    } else {
        forward_stdin(&c)?
    };
    super::logs::follow(&c, from, false)?;
    drop(raw);
    let st = c.state()?;
    Ok(ExitCode::from(st.exit_code.clamp(0, 255) as u8))
}

/// Send this command's standard input to `c`'s stdin, if it was started with `-i`, from a
/// thread that ends with the input (the end of input then reaches the monitor, which closes
/// the container's stdin if it is `StdinOnce`). For a container with a terminal, a terminal
/// here is put in raw mode (keys go to the container's terminal as typed) until the
/// returned guard is dropped.
pub fn forward_stdin(c: &Container) -> anyhow::Result<Option<RawMode>> {
    if !c.record.interactive {
        return Ok(None);
    }
    let Some(mut conn) = rbuild_runner::lifecycle::stdin::connect(c.dir())? else {
        return Ok(None);
    };
    let raw = c.record.tty.then(RawMode::enter);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut conn);
        let _ = conn.shutdown(std::net::Shutdown::Write);
    });
    Ok(raw)
}
