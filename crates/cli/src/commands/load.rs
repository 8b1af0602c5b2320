//! `rbuild load [-i FILE]`: load docker-archive or OCI archives (or an OCI layout directory),
//! gzip'd or not, from a file or standard input.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_store::archive::LoadSource;

use super::Globals;

/// Arguments of `rbuild load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from this archive file or OCI layout directory instead of standard input
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Keep every platform of a multi-platform image and its index (OCI archives)
    #[arg(long = "all-platforms", short = 'a')]
    pub all_platforms: bool,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

/// Run `rbuild load`.
pub fn run(args: LoadArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    engine.store()?;
    let (source, name) = match &args.input {
        Some(p) if p.is_dir() => (LoadSource::Dir(p.clone()), p.display().to_string()),
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let name = p.display().to_string();
            (
                LoadSource::Stream {
                    reader: Box::new(f),
                    name: name.clone(),
                },
                name,
            )
        }
        None => {
            if std::io::stdin().is_terminal() {
                anyhow::bail!(
                    "requested load from stdin, but stdin is a terminal (use -i FILE or redirect)"
                );
            }
            (
                LoadSource::Stream {
                    reader: Box::new(std::io::stdin().lock()),
                    name: "stdin".into(),
                },
                "stdin".into(),
            )
        }
    };
    let loaded = engine
        .load_with(source, args.all_platforms)
        .with_context(|| format!("loading {name}"))?;
    if !args.quiet {
        for l in loaded {
            if l.names.is_empty() {
                println!("Loaded image ID: {}", l.id);
            }
            for n in l.names {
                println!("Loaded image: {}", n.familiar());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
