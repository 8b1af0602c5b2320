//! `rbuild export [-o FILE] CONTAINER`: the container's whole root filesystem (its image's
//! layers with its changes on top) as one tar, which `docker import` and `rbuild import`
//! accept.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use rbuild_runner::Rootfs;

use super::Globals;
use super::common::store_root;
use super::containers::find;

/// Arguments of `rbuild export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file instead of standard output
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// The container (name, ID or ID prefix)
    pub container: String,
}

/// Run `rbuild export`.
pub fn run(args: ExportArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = find(&store_root(globals), &args.container)?;
    if args.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("cowardly refusing to write a tar to a terminal: use -o FILE or redirect the output");
    }
    let staging = tempfile::Builder::new()
        .prefix(".export-")
        .tempdir_in(c.store_root())
        .context("creating a staging directory")?;
    let tree = match &c.record.rootfs {
        Rootfs::Directory(d) => d.clone(),
        Rootfs::Layers(layers) | Rootfs::Copy(layers) => {
            let changes = super::commit::changes_copy(&c, layers, true)?;
            let mut all = layers.clone();
            all.push(changes.path().to_owned());
            let tree = staging.path().join("rootfs");
            rbuild_runner::copy::copy_layers(&all, &tree)?;
            tree
        }
    };
    let mut tar = Command::new("tar");
    tar.arg("-C")
        .arg(&tree)
        .args(["--numeric-owner", "--xattrs", "-cf"])
        .arg(args.output.as_deref().unwrap_or("-".as_ref()))
        .arg(".")
        .stdout(Stdio::inherit());
    let status = tar.status().context("running tar")?;
    if !status.success() {
        bail!("tar of {} failed: {status}", tree.display());
    }
    Ok(ExitCode::SUCCESS)
}
