//! `rbuild network create|ls|inspect|rm|prune|connect|disconnect`, and the hidden
//! `network-hub` the engine re-executes this binary as to own the networks' namespace.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use super::Globals;
use super::common::table;

/// Arguments of `rbuild network`.
#[derive(Debug, Args)]
pub struct NetworkArgs {
    #[command(subcommand)]
    command: NetworkCommand,
}

/// `rbuild network` subcommands.
#[derive(Debug, Subcommand)]
enum NetworkCommand {
    /// Create a bridge network
    Create {
        /// Driver: only bridge
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format (default: the next free 172.18-31.0.0/16)
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// Gateway address (default: the subnet's first)
        #[arg(long, value_name = "IP")]
        gateway: Option<String>,
        /// No route out of the network
        #[arg(long)]
        internal: bool,
        /// Set metadata (KEY=VALUE)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Driver options (KEY=VALUE)
        #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// The network's name
        name: String,
    },
    /// List networks
    #[command(visible_alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short, long)]
        quiet: bool,
        /// Output: table, json, or a Go-style template ({{.Name}}, {{.ID}}, …)
        #[arg(long)]
        format: Option<String>,
        /// Filter (name=, id=, driver=, label=KEY[=VALUE], type=custom|builtin)
        #[arg(short, long, value_name = "FILTER")]
        filter: Vec<String>,
        /// Do not truncate IDs
        #[arg(long = "no-trunc")]
        no_trunc: bool,
    },
    /// Display detailed information on networks
    Inspect {
        /// A Go-style template ({{.Name}}, {{json .}})
        #[arg(short, long)]
        format: Option<String>,
        /// Network names or IDs
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks
    #[command(visible_alias = "remove")]
    Rm {
        /// Do not fail on networks that do not exist
        #[arg(short, long)]
        force: bool,
        /// Network names or IDs
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove all networks no container uses
    Prune {
        /// Accepted for docker compatibility; rbuild never prompts
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network
    Connect {
        /// More names for the container on the network
        #[arg(long = "alias", value_name = "NAME")]
        aliases: Vec<String>,
        /// The container's IPv4 address on the network
        #[arg(long, value_name = "IP")]
        ip: Option<std::net::Ipv4Addr>,
        /// The network
        network: String,
        /// The container
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Disconnect even if the container is gone
        #[arg(short, long)]
        force: bool,
        /// The network
        network: String,
        /// The container
        container: String,
    },
}

/// Arguments of the hidden `rbuild network-hub`.
#[derive(Debug, Args)]
pub struct HubArgs {}

fn pairs(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// `network ls`'s fields for one network, as docker's formatter names them.
fn fields(n: &rbuild_runner::network::NetworkRecord, no_trunc: bool) -> Map<String, Value> {
    let labels = n
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut m = Map::new();
    for (k, v) in [
        ("CreatedAt", n.created.clone()),
        ("Driver", n.driver.clone()),
        (
            "ID",
            if no_trunc {
                n.id.clone()
            } else {
                n.id[..12].to_owned()
            },
        ),
        ("IPv6", "false".to_owned()),
        ("Internal", n.internal.to_string()),
        ("Labels", labels),
        ("Name", n.name.clone()),
        ("Scope", "local".to_owned()),
    ] {
        m.insert(k.to_owned(), Value::String(v));
    }
    m
}

/// Run `rbuild network …`.
pub fn run(args: NetworkArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    match args.command {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            internal,
            labels,
            options,
            name,
        } => {
            let n = engine.create_network(&rbuild_engine::NetworkCreate {
                name,
                driver: Some(driver),
                subnet,
                gateway,
                internal,
                labels: pairs(&labels),
                options: pairs(&options),
            })?;
            println!("{}", n.id);
        }
        NetworkCommand::Ls {
            quiet,
            format,
            filter,
            no_trunc,
        } => {
            let filters: Vec<(String, String)> = filter
                .iter()
                .map(|f| {
                    f.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| {
                            anyhow::anyhow!("bad format of filter (expected name=value): {f}")
                        })
                })
                .collect::<anyhow::Result<_>>()?;
            let (shown, _) = engine.list_networks_matching(&filters)?;
            if quiet {
                for n in &shown {
                    println!("{}", if no_trunc { &n.id[..] } else { &n.id[..12] });
                }
            } else if let Some(f) = format.as_deref().filter(|f| *f != "table") {
                if f == "json" {
                    for n in &shown {
                        println!("{}", Value::Object(fields(n, no_trunc)));
                    }
                } else {
                    let t = crate::template::Template::parse(f)?;
                    let header = serde_json::json!({
                        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                        "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                        "CreatedAt": "CREATED AT",
                    });
                    let rows: Vec<Value> = shown
                        .iter()
                        .map(|n| Value::Object(fields(n, no_trunc)))
                        .collect();
                    print!("{}", crate::template::render_rows(&t, &header, &rows)?);
                }
            } else {
                let mut rows = vec![vec![
                    "NETWORK ID".to_owned(),
                    "NAME".to_owned(),
                    "DRIVER".to_owned(),
                    "SCOPE".to_owned(),
                ]];
                rows.extend(shown.iter().map(|n| {
                    vec![
                        if no_trunc {
                            n.id.clone()
                        } else {
                            n.id[..12].to_owned()
                        },
                        n.name.clone(),
                        n.driver.clone(),
                        "local".to_owned(),
                    ]
                }));
                print!("{}", table(&rows));
            }
        }
        NetworkCommand::Inspect { format, names } => {
            let mut out = Vec::new();
            let mut failed = false;
            for n in &names {
                match engine.network_inspect(n) {
                    Ok(v) => out.push(serde_json::to_value(v)?),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
            match format {
                Some(f) => {
                    let t = crate::template::Template::parse(&f)?;
                    for v in &out {
                        println!("{}", t.render(v)?);
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&Value::Array(out))?),
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        NetworkCommand::Rm { force, names } => {
            let mut failed = false;
            for n in &names {
                match engine.remove_network(n) {
                    Ok(_) => println!("{n}"),
                    Err(e) if force && e.is_not_found() => {}
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        NetworkCommand::Prune { force: _ } => {
            let gone = engine.prune_networks()?;
            if !gone.is_empty() {
                println!("Deleted Networks:");
                for n in gone {
                    println!("{n}");
                }
            }
        }
        NetworkCommand::Connect {
            aliases,
            ip,
            network,
            container,
        } => {
            engine
                .network_connect(
                    &network,
                    &container,
                    &rbuild_engine::EndpointRequest {
                        aliases,
                        ip,
                        mac: None,
                    },
                )
                .with_context(|| format!("connecting {container} to network {network}"))?;
        }
        NetworkCommand::Disconnect {
            force,
            network,
            container,
        } => {
            engine
                .network_disconnect(&network, &container, force)
                .with_context(|| format!("disconnecting {container} from network {network}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run the hidden `rbuild network-hub`: own the store root's network namespace until no
/// container is attached any more.
pub fn hub(_args: HubArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let root = super::common::store_root(globals);
    rbuild_runner::network::serve_hub(&root)?;
    Ok(ExitCode::SUCCESS)
}
