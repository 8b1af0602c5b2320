//! `rbuild images`: list images, docker's columns, `-q` and `--format json`.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::Globals;
use super::common::{docker_time, human_size, since, table};

/// Arguments of `rbuild images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format: `table` (default) or `json` (one object per line, docker's fields)
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Show full image IDs
    #[arg(long)]
    pub no_trunc: bool,
    /// Only images of this repository (and tag)
    pub reference: Option<String>,
}

/// Run `rbuild images`.
pub fn run(args: ImagesArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let images = super::common::engine(globals).list_images(args.reference.as_deref())?;
    let mut rows = vec![vec![
        "REPOSITORY".into(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    let mut ids_seen = Vec::new();
    for summary in &images {
        let img = &summary.image;
        let id = if args.no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_string()
        };
        let size = human_size(summary.size);
        let created_at = summary.created;
        let mut entries: Vec<(String, String)> = summary
            .names
            .iter()
            .map(|n| {
                (
                    n.familiar_repository(),
                    n.tag().unwrap_or("<none>").to_string(),
                )
            })
            .collect();
        if entries.is_empty() {
            entries.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in entries {
            if args.quiet {
                if !ids_seen.contains(&id) {
                    ids_seen.push(id.clone());
                    println!("{id}");
                }
                continue;
            }
            if args.format == "json" {
                let line = json!({
                    "Containers": "N/A",
                    "CreatedAt": docker_time(created_at),
                    "CreatedSince": since(created_at),
                    "Digest": "<none>",
                    "ID": id,
                    "Repository": repo,
                    "SharedSize": "N/A",
                    "Size": size,
                    "Tag": tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": size,
                });
                println!("{line}");
            } else {
                rows.push(vec![repo, tag, id.clone(), since(created_at), size.clone()]);
            }
        }
    }
    if !args.quiet && args.format != "json" {
        if args.format != "table" {
            anyhow::bail!(
                "unsupported --format {:?} (supported: table, json)",
                args.format
            );
        }
        print!("{}", table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
