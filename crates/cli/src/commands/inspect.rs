//! `rbuild inspect [--type image] NAME...`: docker-style JSON of objects.
//!
//! Structured by object kind: each kind resolves a name to a JSON value; without `--type`,
//! containers are tried first, then images, as docker does.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use rbuild_store::{Image, Store};
use serde_json::{Value, json};

use super::Globals;
use super::common::{open_store, rfc3339};

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
    /// Names or IDs
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Run `rbuild inspect`: prints a JSON array; objects not found are reported and make the
/// exit status 1, as with docker.
pub fn run(args: InspectArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.names {
        match lookup(&store, args.kind, name) {
            Some(v) => out.push(v),
            None => {
                failed = true;
                eprintln!("error: no such object: {name}");
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&Value::Array(out))?);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn lookup(store: &Store, kind: Option<Kind>, name: &str) -> Option<Value> {
    let kinds = kind.map_or_else(|| vec![Kind::Container, Kind::Image], |k| vec![k]);
    kinds.into_iter().find_map(|k| match k {
        Kind::Container => {
            let c = rbuild_runner::lifecycle::Containers::new(store.root())
                .get(name)
                .ok()?;
            let st = c.state().ok()?;
            Some(super::containers::container_json(&c, &st))
        }
        Kind::Image => store.resolve(name).ok().map(|i| image_json(store, &i)),
    })
}

/// An image as `docker image inspect` shows it.
pub fn image_json(store: &Store, img: &Image) -> Value {
    let cfg = img.config_json();
    let get = |k: &str| cfg.get(k).cloned().unwrap_or(Value::String(String::new()));
    let size = store.image_size(img);
    let repo_tags: Vec<String> = img
        .names
        .iter()
        .filter(|n| n.tag().is_some())
        .map(|n| n.familiar())
        .collect();
    let mut repo_digests: Vec<String> = img
        .names
        .iter()
        .map(|n| n.with_digest(img.manifest_digest.clone()).familiar())
        .collect();
    repo_digests.dedup();
    json!({
        "Id": img.id.to_string(),
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": cfg.get("comment").cloned().unwrap_or(Value::String(String::new())),
        "Created": get("created"),
        "DockerVersion": get("docker_version"),
        "Author": get("author"),
        "Config": cfg.get("config").cloned().unwrap_or(Value::Null),
        "Architecture": get("architecture"),
        "Variant": cfg.get("variant").cloned(),
        "Os": get("os"),
        "Size": size,
        "VirtualSize": size,
        "RootFS": {
            "Type": "layers",
            "Layers": img.diff_ids().unwrap_or_default().iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "History": cfg.get("history").cloned().unwrap_or(json!([])),
        "Metadata": { "LastTagTime": rfc3339(img.added as i64) },
    })
}
