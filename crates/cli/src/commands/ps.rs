//! `rbuild ps [-a] [-q] [-n N] [-l] [--filter K=V] [--format table|json|TEMPLATE] [--no-trunc]`:
//! docker's container list, columns and wording.

use std::process::ExitCode;

use clap::Args;
use rbuild_engine::{ContainerSummary, ListOptions};
use rbuild_runner::lifecycle::Container;
use serde_json::{Value, json};

use super::Globals;
use super::common::{docker_time, since, table};
use super::containers::{command_text, ellipsis, ports_text, secs, status_text};

/// Arguments of `rbuild ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show the last N created containers (all states)
    #[arg(short = 'n', long = "last", value_name = "N")]
    pub last: Option<usize>,
    /// Show the latest created container (all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Filter: id=, name=, status=, exited=, ancestor=, label=
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Output: table, json, or a Go-style template ({{.ID}}, {{.Names}}, …)
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

/// One row: the container and its current state.
fn image_text(c: &Container) -> String {
    if !c.record.image.is_empty() {
        return c.record.image.clone();
    }
    match &c.record.rootfs {
        rbuild_runner::Rootfs::Directory(d) => d.display().to_string(),
        _ => c.record.image_id.clone(),
    }
}

fn fields(r: &ContainerSummary, trunc: bool) -> serde_json::Map<String, Value> {
    let id = if trunc {
        &r.container.id()[..12]
    } else {
        r.container.id()
    };
    let cmd = command_text(&r.container);
    let cmd = format!("{:?}", if trunc { ellipsis(&cmd, 20) } else { cmd });
    let labels: Vec<String> = r
        .container
        .record
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mounts: Vec<String> = r
        .container
        .record
        .mounts
        .iter()
        .map(|m| {
            if m.name.is_empty() {
                m.destination.clone()
            } else {
                m.name.clone()
            }
        })
        .collect();
    let created = secs(r.container.record.created);
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("Command", cmd),
        ("CreatedAt", docker_time(created)),
        ("ID", id.to_owned()),
        ("Image", image_text(&r.container)),
        ("Labels", labels.join(",")),
        (
            "LocalVolumes",
            r.container
                .record
                .mounts
                .iter()
                .filter(|m| m.kind == "volume")
                .count()
                .to_string(),
        ),
        ("Mounts", mounts.join(",")),
        ("Names", r.container.name().to_owned()),
        ("Networks", r.container.record.network.clone()),
        ("Ports", ports_text(&r.container, &r.state)),
        ("RunningFor", since(created)),
        ("Size", "0B".to_owned()),
        ("State", r.state.status.as_str().to_owned()),
        ("Status", status_text(&r.state)),
    ] {
        m.insert(k.to_owned(), Value::String(v));
    }
    m
}

/// Run `rbuild ps`.
pub fn run(args: PsArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let filters: Vec<(String, String)> = args
        .filter
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let rows = super::common::engine(globals).list_containers(&ListOptions {
        all: args.all || args.last.is_some() || args.latest,
        limit: args.last.or(args.latest.then_some(1)),
        filters,
    })?;
    let trunc = !args.no_trunc;
    if args.quiet {
        for r in &rows {
            println!(
                "{}",
                if trunc {
                    &r.container.id()[..12]
                } else {
                    r.container.id()
                }
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format.as_deref() {
        None | Some("table") => {
            let mut lines = vec![
                [
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for r in &rows {
                let f = fields(r, trunc);
                let get = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                lines.push(vec![
                    get("ID"),
                    get("Image"),
                    get("Command"),
                    get("RunningFor"),
                    get("Status"),
                    get("Ports"),
                    get("Names"),
                ]);
            }
            print!("{}", table(&lines));
        }
        Some("json") => {
            for r in &rows {
                println!("{}", Value::Object(fields(r, trunc)));
            }
        }
        Some(t) => {
            let t = crate::template::Template::parse(t)?;
            let rows: Vec<Value> = rows
                .iter()
                .map(|r| Value::Object(fields(r, trunc)))
                .collect();
            print!(
                "{}",
                crate::template::render_rows(&t, &Value::Object(fields_names()), &rows)?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Column headers for `table` templates.
fn fields_names() -> serde_json::Map<String, Value> {
    let pairs = [
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Labels", "LABELS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Mounts", "MOUNTS"),
        ("Names", "NAMES"),
        ("Networks", "NETWORKS"),
        ("Ports", "PORTS"),
        ("RunningFor", "CREATED"),
        ("Size", "SIZE"),
        ("State", "STATE"),
        ("Status", "STATUS"),
    ];
    let v = json!(
        pairs
            .iter()
            .map(|(k, h)| (k.to_string(), Value::String(h.to_string())))
            .collect::<serde_json::Map<_, _>>()
    );
    v.as_object().cloned().unwrap_or_default()
}
