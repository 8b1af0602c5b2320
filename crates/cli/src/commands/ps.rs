//! `rbuild ps [-a] [-q] [-n N] [-l] [--filter K=V] [--format table|json|TEMPLATE] [--no-trunc]`:
//! docker's container list, columns and wording.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rbuild_runner::lifecycle::{Container, ContainerState, Status};
use serde_json::{Value, json};

use super::Globals;
use super::common::{docker_time, since, table};
use super::containers::{command_text, containers, ellipsis, ports_text, secs, status_text};

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
struct Row {
    c: Container,
    st: ContainerState,
}

fn matches(r: &Row, filters: &[(String, String)]) -> anyhow::Result<bool> {
    // Docker ORs values of one key and ANDs keys.
    let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    for key in keys {
        let values = filters
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
        let mut any = false;
        for v in values {
            any |= match key {
                "id" => r.c.id().starts_with(v),
                "name" => r.c.name().contains(v.trim_start_matches('/')),
                "status" => r.st.status.as_str() == v,
                "exited" => r.st.status == Status::Exited && v.parse() == Ok(r.st.exit_code),
                "ancestor" => {
                    r.c.record.image == v
                        || format!("{}:latest", r.c.record.image) == v
                        || r.c.record.image == format!("{v}:latest")
                        || (!v.is_empty()
                            && r.c
                                .record
                                .image_id
                                .trim_start_matches("sha256:")
                                .starts_with(v.trim_start_matches("sha256:")))
                }
                "label" => match v.split_once('=') {
                    Some((k, val)) => r.c.record.labels.get(k).is_some_and(|x| x == val),
                    None => r.c.record.labels.contains_key(v),
                },
                _ => bail!("invalid filter '{key}'"),
            };
        }
        if !any {
            return Ok(false);
        }
    }
    Ok(true)
}

fn image_text(c: &Container) -> String {
    if !c.record.image.is_empty() {
        return c.record.image.clone();
    }
    match &c.record.rootfs {
        rbuild_runner::Rootfs::Directory(d) => d.display().to_string(),
        _ => c.record.image_id.clone(),
    }
}

fn fields(r: &Row, trunc: bool) -> serde_json::Map<String, Value> {
    let id = if trunc { &r.c.id()[..12] } else { r.c.id() };
    let cmd = command_text(&r.c);
    let cmd = format!("{:?}", if trunc { ellipsis(&cmd, 20) } else { cmd });
    let labels: Vec<String> =
        r.c.record
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
    let mounts: Vec<String> =
        r.c.record
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
    let created = secs(r.c.record.created);
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("Command", cmd),
        ("CreatedAt", docker_time(created)),
        ("ID", id.to_owned()),
        ("Image", image_text(&r.c)),
        ("Labels", labels.join(",")),
        (
            "LocalVolumes",
            r.c.record
                .mounts
                .iter()
                .filter(|m| m.kind == "volume")
                .count()
                .to_string(),
        ),
        ("Mounts", mounts.join(",")),
        ("Names", r.c.name().to_owned()),
        ("Networks", r.c.record.network.clone()),
        ("Ports", ports_text(&r.c, &r.st)),
        ("RunningFor", since(created)),
        ("Size", "0B".to_owned()),
        ("State", r.st.status.as_str().to_owned()),
        ("Status", status_text(&r.st)),
    ] {
        m.insert(k.to_owned(), Value::String(v));
    }
    m
}

/// Fill `{{.Field}}` placeholders (and `{{json .}}`) of a Go-style template.
fn render(template: &str, f: &serde_json::Map<String, Value>) -> String {
    let mut out = template.replace("\\t", "\t").replace("\\n", "\n");
    out = out.replace("{{json .}}", &Value::Object(f.clone()).to_string());
    for (k, v) in f {
        let text = v.as_str().unwrap_or_default();
        for pat in [format!("{{{{.{k}}}}}"), format!("{{{{ .{k} }}}}")] {
            out = out.replace(&pat, text);
        }
    }
    out
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
    let all = args.all
        || args.last.is_some()
        || args.latest
        || filters.iter().any(|(k, _)| k == "status" || k == "exited");
    let mut rows = Vec::new();
    for c in containers(globals).list()? {
        let Ok(st) = c.state() else { continue };
        let r = Row { c, st };
        if (all || r.st.status.is_active()) && matches(&r, &filters)? {
            rows.push(r);
        }
    }
    if let Some(n) = args.last.or(args.latest.then_some(1)) {
        rows.truncate(n);
    }
    let trunc = !args.no_trunc;
    if args.quiet {
        for r in &rows {
            println!("{}", if trunc { &r.c.id()[..12] } else { r.c.id() });
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
            let (header, t) = match t.strip_prefix("table ") {
                Some(rest) => (true, rest),
                None => (false, t),
            };
            if header {
                let names: serde_json::Map<String, Value> = fields_names();
                println!("{}", render(t, &names));
            }
            for r in &rows {
                println!("{}", render(t, &fields(r, trunc)));
            }
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
