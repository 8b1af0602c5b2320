//! `rbuild import FILE|- [REF]`: a rootfs tarball (plain, gzip or zstd) → a single-layer image,
//! with docker's `--change` and `--message`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_engine::{ImportOptions, apply_changes};

use super::Globals;

/// Arguments of `rbuild import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
    /// ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL); repeatable
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message recorded in the image history
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set the platform (`os/arch[/variant]`)
    #[arg(long)]
    pub platform: Option<String>,
    /// The tarball (`-` for standard input)
    pub file: PathBuf,
    /// Name for the new image
    pub reference: Option<String>,
}

/// Run `rbuild import`.
pub fn run(args: ImportArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let name = args
        .reference
        .as_deref()
        .map(|r| {
            r.parse::<rbuild_oci::Reference>()
                .with_context(|| format!("image name {r:?}"))
        })
        .transpose()?;
    let platform = match &args.platform {
        Some(p) => p.parse::<rbuild_oci::Platform>()?,
        None => rbuild_oci::Platform::host(),
    };
    let config = apply_changes(&args.changes)?;
    let engine = super::common::engine(globals);
    engine.store()?;
    let (reader, source): (Box<dyn std::io::Read>, String) = if args.file.as_os_str() == "-" {
        if std::io::stdin().is_terminal() {
            bail!("import from standard input, but it is a terminal");
        }
        (Box::new(std::io::stdin().lock()), "-".into())
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        (Box::new(f), args.file.display().to_string())
    };
    let opts = ImportOptions {
        config,
        message: args.message.clone(),
        platform: Some(platform),
        name,
    };
    let image = engine.import(reader, &source, opts)?;
    println!("{}", image.id);
    Ok(ExitCode::SUCCESS)
}
