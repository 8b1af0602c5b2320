//! `rbuild save [-o FILE] [--format docker|oci] IMAGE...`: write images to an archive.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use rbuild_store::archive::ArchiveFormat;

use super::Globals;

/// Archive formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// docker-archive, loadable by `docker load`
    Docker,
    /// OCI image layout in a tar (`skopeo … oci-archive:`)
    Oci,
}

/// Arguments of `rbuild save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to this file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Archive format
    #[arg(long, value_enum, default_value = "docker")]
    pub format: Format,
    /// Keep every platform of a multi-platform image and its index (needs --format oci)
    #[arg(long = "all-platforms", short = 'a')]
    pub all_platforms: bool,
    /// Images: names, IDs or digests
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Run `rbuild save`.
pub fn run(args: SaveArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    engine.store()?;
    let format = match args.format {
        Format::Docker => ArchiveFormat::Docker,
        Format::Oci => ArchiveFormat::Oci,
    };
    let (lists, images) = if args.all_platforms {
        engine.lists_to_save(&args.images)?
    } else {
        (Vec::new(), engine.images_to_save(&args.images)?)
    };
    if !lists.is_empty() && format == ArchiveFormat::Docker {
        anyhow::bail!(
            "--all-platforms: a docker archive holds one platform per image; use --format oci"
        );
    }
    let write = |out: &mut dyn Write| -> anyhow::Result<()> {
        if lists.is_empty() {
            engine.save(&images, format, out)?;
        } else {
            engine.save_lists(&lists, &images, out)?;
        }
        Ok(())
    };
    match &args.output {
        // A device or pipe (`-o /dev/null`) is written in place, as docker does: renaming a
        // file over it would replace it.
        Some(path) if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            write(&mut f).with_context(|| format!("saving to {}", path.display()))?;
        }
        Some(path) => {
            // Written beside the target and renamed: a failed save leaves no partial archive.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating {}", path.display()))?;
            write(&mut tmp).with_context(|| format!("saving to {}", path.display()))?;
            tmp.as_file()
                .sync_all()
                .with_context(|| format!("writing {}", path.display()))?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
            }
            let mut lock = stdout.lock();
            write(&mut lock).context("saving to standard output")?;
            lock.flush().context("writing standard output")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
