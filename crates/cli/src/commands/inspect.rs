//! `rbuild inspect [--type image] [-f TEMPLATE] NAME...`: docker-style JSON of objects, or
//! each through a Go template.
//!
//! Structured by object kind: each kind resolves a name to the engine's docker-shaped JSON
//! (`ContainerJson`, `ImageInspect`); without `--type`, containers are tried first, then
//! images, as docker does.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use rbuild_engine::Engine;
use serde_json::Value;

use super::Globals;

/// Object kinds `inspect` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A container.
    Container,
    /// An image in the local store.
    Image,
}

/// Arguments of `rbuild inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Only look for objects of this kind
    #[arg(long = "type", value_enum)]
    pub kind: Option<Kind>,
    /// Format each object with a Go template (`{{.State.Running}}`, `{{json .Config}}`)
    #[arg(short = 'f', long = "format", value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// Names or IDs
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Run `rbuild inspect`: prints a JSON array; objects not found are reported and make the
/// exit status 1, as with docker.
pub fn run(args: InspectArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    engine.store()?;
    let template = match args.format.as_deref() {
        None | Some("json") => None,
        Some(t) => Some(crate::template::Template::parse(t)?),
    };
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.names {
        match lookup(&engine, args.kind, name) {
            Some(v) => out.push(v),
            None => {
                failed = true;
                eprintln!("error: no such object: {name}");
            }
        }
    }
    match template {
        Some(t) => {
            for v in &out {
                println!("{}", t.render(v)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&Value::Array(out))?),
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn lookup(engine: &Engine, kind: Option<Kind>, name: &str) -> Option<Value> {
    let kinds = kind.map_or_else(|| vec![Kind::Container, Kind::Image], |k| vec![k]);
    kinds.into_iter().find_map(|k| match k {
        Kind::Container => engine
            .container_inspect(name)
            .ok()
            .and_then(|c| serde_json::to_value(c).ok()),
        Kind::Image => engine
            .image_inspect(name)
            .ok()
            .and_then(|i| serde_json::to_value(i).ok()),
    })
}
