//! `rbuild tags REPO` and `rbuild catalog HOST`: list a repository's tags, a registry's
//! repositories.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_oci::Reference;

use rbuild_engine::registry::normalize_host;

use super::registry_opts::{RegistryArgs, runtime};

/// Arguments of `rbuild tags`.
#[derive(Debug, Args)]
pub struct TagsArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The repository, e.g. `localhost:5000/app` (a tag or digest given is ignored)
    #[arg(value_name = "REPO")]
    pub repository: String,
}

/// Arguments of `rbuild catalog`.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The registry, e.g. `localhost:5000`
    #[arg(value_name = "HOST")]
    pub host: String,
}

/// Run `rbuild tags`.
pub fn run_tags(args: TagsArgs) -> anyhow::Result<ExitCode> {
    let r: Reference = args
        .repository
        .parse()
        .with_context(|| format!("repository {:?}", args.repository))?;
    let client = args.registry.client()?;
    let tags = runtime()?.block_on(rbuild_engine::registry::tags(&client, &r))?;
    print_lines(&tags)
}

/// Run `rbuild catalog`.
pub fn run_catalog(args: CatalogArgs) -> anyhow::Result<ExitCode> {
    let host = normalize_host(&args.host);
    let client = args.registry.client()?;
    let repos = runtime()?.block_on(rbuild_engine::registry::catalog(&client, &host))?;
    print_lines(&repos)
}

fn print_lines(lines: &[String]) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(ExitCode::SUCCESS)
}
