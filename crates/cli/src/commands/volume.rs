//! `rbuild volume create|ls|inspect|rm|prune`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Globals;
use super::common::table;

/// Arguments of `rbuild volume`.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    #[command(subcommand)]
    command: VolumeCommand,
}

/// `rbuild volume` subcommands.
#[derive(Debug, Subcommand)]
enum VolumeCommand {
    /// Create a volume (named, or anonymous without a name)
    Create {
        /// Set metadata (KEY=VALUE)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Only the local driver exists
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// The volume's name
        name: Option<String>,
    },
    /// List volumes
    #[command(visible_alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
        /// Output: table, json or a Go template (`{{.Name}}`)
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on volumes
    Inspect {
        /// Format each volume with a Go template (`{{.Mountpoint}}`)
        #[arg(short, long, value_name = "TEMPLATE")]
        format: Option<String>,
        /// Volume names
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes
    #[command(visible_alias = "remove")]
    Rm {
        /// Accepted for docker compatibility
        #[arg(short, long)]
        force: bool,
        /// Volume names
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (all unused ones with -a)
    Prune {
        /// Remove unused named volumes too
        #[arg(short, long)]
        all: bool,
        /// Accepted for docker compatibility; rbuild never prompts
        #[arg(short, long)]
        force: bool,
    },
}

/// Run `rbuild volume …`.
pub fn run(args: VolumeArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = super::common::engine(globals);
    match args.command {
        VolumeCommand::Create {
            labels,
            driver,
            name,
        } => {
            let labels: BTreeMap<String, String> = labels
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            let v = engine.create_volume(name.as_deref(), &driver, labels)?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls { quiet, format } => {
            let all = engine.list_volumes()?;
            if quiet {
                for v in &all {
                    println!("{}", v.name);
                }
            } else if let Some(f) = format.as_deref().filter(|f| *f != "table") {
                let rows: Vec<Value> = all
                    .iter()
                    .map(|v| json!({"Driver": "local", "Labels": "", "Mountpoint": v.mountpoint, "Name": v.name, "Scope": "local"}))
                    .collect();
                if f == "json" {
                    for r in &rows {
                        println!("{r}");
                    }
                } else {
                    let t = crate::template::Template::parse(f)?;
                    let header = json!({"Driver": "DRIVER", "Labels": "LABELS", "Mountpoint": "MOUNTPOINT", "Name": "VOLUME NAME", "Scope": "SCOPE"});
                    print!("{}", crate::template::render_rows(&t, &header, &rows)?);
                }
            } else {
                let mut rows = vec![vec!["DRIVER".to_owned(), "VOLUME NAME".to_owned()]];
                rows.extend(all.iter().map(|v| vec!["local".to_owned(), v.name.clone()]));
                print!("{}", table(&rows));
            }
        }
        VolumeCommand::Inspect { format, names } => {
            let mut out = Vec::new();
            let mut failed = false;
            for n in &names {
                match engine.volume_inspect(n) {
                    Ok(v) => out.push(serde_json::to_value(v)?),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
            match format.as_deref().filter(|f| *f != "json") {
                Some(f) => {
                    let t = crate::template::Template::parse(f)?;
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
        VolumeCommand::Rm { force: _, names } => {
            let mut failed = false;
            for n in &names {
                match engine.remove_volume(n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        VolumeCommand::Prune { all, force: _ } => {
            let deleted = engine.prune_volumes(all)?;
            if !deleted.is_empty() {
                println!("Deleted Volumes:");
                for d in &deleted {
                    println!("{d}");
                }
                println!();
            }
            println!("Total reclaimed space: 0B");
        }
    }
    Ok(ExitCode::SUCCESS)
}
