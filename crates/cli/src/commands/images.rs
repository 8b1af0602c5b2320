//! `rbuild images`: list images, docker's columns, `-q` and `--format json`.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::Globals;
use super::common::{docker_time, human_size, open_store, parse_rfc3339, since, table};

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
    let store = open_store(globals)?;
    let mut images = store.images()?;
    images.sort_by_key(|i| std::cmp::Reverse(created(i)));
    let filter = args.reference.as_deref().map(|r| {
        let explicit_tag = r.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/'));
        (r.parse::<rbuild_oci::Reference>(), explicit_tag)
    });
    let mut rows = vec![vec![
        "REPOSITORY".into(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    let mut ids_seen = Vec::new();
    for img in &images {
        let id = if args.no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_string()
        };
        let size = human_size(store.image_size(img));
        let created_at = created(img);
        let mut entries: Vec<(String, String, String)> = img
            .names
            .iter()
            .map(|n| {
                (
                    n.familiar_repository(),
                    n.tag().unwrap_or("<none>").to_string(),
                    n.repository(),
                )
            })
            .collect();
        if entries.is_empty() {
            entries.push(("<none>".into(), "<none>".into(), String::new()));
        }
        for (repo, tag, full_repo) in entries {
            if let Some((wanted, explicit_tag)) = &filter {
                let Ok(w) = wanted else { continue };
                if w.repository() != full_repo || (*explicit_tag && w.tag() != Some(tag.as_str())) {
                    continue;
                }
            }
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

/// When the image was created (its config's `created`), or when it entered the store.
pub fn created(img: &rbuild_store::Image) -> i64 {
    img.config
        .created()
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(img.added as i64)
}
