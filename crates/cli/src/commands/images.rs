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
    /// Output format: `table` (default), `json` (one object per line, docker's fields) or a
    /// Go template (`{{.Repository}}:{{.Tag}}`, `table {{.ID}}\t{{.Size}}`)
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Show full image IDs
    #[arg(long)]
    pub no_trunc: bool,
    /// Show each platform of a multi-platform image under it
    #[arg(long)]
    pub tree: bool,
    /// Filter: reference=REPO[:TAG], dangling=true|false, label=KEY[=VALUE], before=IMAGE,
    /// since=IMAGE
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Only images of this repository (and tag)
    pub reference: Option<String>,
}

/// Run `rbuild images`.
pub fn run(args: ImagesArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let template = match args.format.as_str() {
        "table" | "json" => None,
        t => Some(crate::template::Template::parse(t)?),
    };
    let mut filters = args
        .filter
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(r) = &args.reference {
        filters.push(("reference".to_owned(), r.clone()));
    }
    let images = super::common::engine(globals).list_images_filtered(&filters)?;
    let mut objects = Vec::new();
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
        // A multi-platform image's ID is its index's digest (docker's containerd store).
        let full_id = match &summary.index {
            Some(i) => &i.list.digest,
            None => &img.id,
        };
        let id = if args.no_trunc {
            full_id.to_string()
        } else {
            full_id.short().to_string()
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
            if args.format != "table" {
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
                objects.push(line);
            } else {
                rows.push(vec![repo, tag, id.clone(), since(created_at), size.clone()]);
            }
        }
        if let (true, false, Some(index)) = (args.tree, args.quiet, &summary.index) {
            for (platform, image) in &index.platforms {
                let name = platform
                    .as_ref()
                    .map_or("any".to_string(), |p| p.to_string());
                let (id, created, size) = match image {
                    Some(i) => (
                        if args.no_trunc {
                            i.manifest_digest.to_string()
                        } else {
                            i.manifest_digest.short().to_string()
                        },
                        since(created_of(i)),
                        human_size(i.size()),
                    ),
                    None => ("(not pulled)".into(), String::new(), String::new()),
                };
                rows.push(vec![
                    format!("  └─ {name}"),
                    String::new(),
                    id,
                    created,
                    size,
                ]);
            }
        }
    }
    if args.quiet {
        // The IDs are printed already.
    } else if args.format == "json" {
        for o in &objects {
            println!("{o}");
        }
    } else if let Some(t) = template {
        let header = json!({
            "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED",
            "Digest": "DIGEST", "ID": "IMAGE ID", "Repository": "REPOSITORY",
            "SharedSize": "SHARED SIZE", "Size": "SIZE", "Tag": "TAG",
            "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
        });
        print!("{}", crate::template::render_rows(&t, &header, &objects)?);
    } else {
        print!("{}", table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// When `img` was created, in seconds (its config's `created`, else when it was stored).
fn created_of(img: &rbuild_store::Image) -> i64 {
    img.config
        .created()
        .as_deref()
        .and_then(rbuild_oci::time::parse_rfc3339)
        .map(|ns| ns.div_euclid(1_000_000_000))
        .unwrap_or(img.added as i64)
}
