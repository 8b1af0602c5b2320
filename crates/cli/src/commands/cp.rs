//! `rbuild cp [-L] CONTAINER:SRC DEST` and `rbuild cp [-L] SRC CONTAINER:DEST`: copy files out
//! of or into a container, running or not. Paths are resolved inside the container (its
//! symlinks cannot lead to the host); a running container is reached through
//! `/proc/PID/root` (its mounts and volumes included), a stopped one through its layers
//! (reading) or its upper dir (writing).

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::Globals;

/// Arguments of `rbuild cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Follow a symbolic link given as the source
    #[arg(short = 'L', long = "follow-link")]
    pub follow: bool,
    /// Accepted for docker compatibility (ownership is always kept, as with cp -a)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Source: CONTAINER:PATH or a local path
    pub source: String,
    /// Destination: CONTAINER:PATH or a local path
    pub dest: String,
}

/// `CONTAINER:PATH` (a local path with a `:` must start with `/` or `.`).
fn split(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    s.split_once(':')
}

/// Run `rbuild cp`.
pub fn run(args: CpArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    match (split(&args.source), split(&args.dest)) {
        (Some((name, path)), None) => {
            engine.copy_from_container(name, path, Path::new(&args.dest), args.follow)?;
        }
        (None, Some((name, path))) => {
            engine.copy_to_container(Path::new(&args.source), name, path)?;
        }
        _ => bail!(
            "copying between containers or between local paths is not supported: one of SRC and DEST must be CONTAINER:PATH"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
