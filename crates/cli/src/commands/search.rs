//! `rbuild search [--limit N] [--filter K=V] [--format T] [--no-trunc] TERM`: repositories of
//! a registry matching TERM (Docker Hub, or the registry TERM starts with), through the
//! registry's search API (Docker Hub's v1 or Harbor's), as `docker search` prints them.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_registry::SearchResult;
use serde_json::{Value, json};

use super::common::table;
use super::containers::ellipsis;
use super::registry_opts::{RegistryArgs, runtime};

/// Arguments of `rbuild search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Most results (1 to 100)
    #[arg(long, default_value_t = rbuild_engine::registry::DEFAULT_SEARCH_LIMIT)]
    pub limit: usize,
    /// Filter: stars=N (at least N stars), is-official=true|false, is-automated=true|false
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Output: table, json, or a Go template ({{.Name}}, {{.Description}}, {{.StarCount}},
    /// {{.IsOfficial}}, {{.IsAutomated}})
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate descriptions
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// What to look for: TERM (on Docker Hub) or HOST/TERM
    pub term: String,
}

/// One result as docker's search formatter names its fields.
fn fields(r: &SearchResult, trunc: bool) -> Value {
    let description = r.description.replace('\n', " ");
    json!({
        "Name": r.name,
        "Description": if trunc { ellipsis(&description, 45) } else { description },
        "StarCount": r.star_count.to_string(),
        "IsOfficial": if r.is_official { "[OK]" } else { "" },
        "IsAutomated": if r.is_automated { "[OK]" } else { "" },
    })
}

/// Run `rbuild search`.
pub fn run(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let filters = args
        .filter
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let template = match args.format.as_deref() {
        None | Some("table") | Some("json") => None,
        Some(t) => Some(crate::template::Template::parse(t)?),
    };
    let client = args.registry.client()?;
    let results = runtime()?
        .block_on(rbuild_engine::registry::search(
            &client, &args.term, args.limit, &filters,
        ))
        .with_context(|| format!("rbuild search {}", args.term))?;
    let trunc = !args.no_trunc;
    let rows: Vec<Value> = results.iter().map(|r| fields(r, trunc)).collect();
    match (args.format.as_deref(), template) {
        (Some("json"), _) => {
            for r in &rows {
                println!("{r}");
            }
        }
        (_, Some(t)) => {
            let header = json!({
                "Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
                "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED",
            });
            print!("{}", crate::template::render_rows(&t, &header, &rows)?);
        }
        _ => {
            let mut lines = vec![
                ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
                    .map(String::from)
                    .to_vec(),
            ];
            for r in &rows {
                let get = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                lines.push(vec![
                    get("Name"),
                    get("Description"),
                    get("StarCount"),
                    get("IsOfficial"),
                ]);
            }
            print!("{}", table(&lines));
        }
    }
    Ok(ExitCode::SUCCESS)
}
