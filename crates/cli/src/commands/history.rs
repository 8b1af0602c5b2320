//! `rbuild history IMAGE`: the image's history, newest first, docker's columns.

use std::process::ExitCode;

use clap::Args;

use super::Globals;
use super::common::{human_size, since, table};

/// Arguments of `rbuild history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Print sizes and dates in human readable format (`-H=false` for raw values)
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// The image
    pub image: String,
}

/// Run `rbuild history`.
pub fn run(args: HistoryArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let (img, history) = super::common::engine(globals).history(&args.image)?;
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for h in history {
        let created_by = h.created_by;
        let created_by = if args.no_trunc || created_by.chars().count() <= 45 {
            created_by
        } else {
            format!("{}…", created_by.chars().take(44).collect::<String>())
        };
        let size = if args.human {
            human_size(h.size)
        } else {
            h.size.to_string()
        };
        let created = match h.created {
            Some(t) if args.human => since(t),
            Some(t) => super::common::rfc3339(t),
            None => "N/A".into(),
        };
        rows.push((created, created_by, size, h.comment));
    }
    let id = if args.no_trunc {
        img.id.to_string()
    } else {
        img.id.short().to_string()
    };
    if args.quiet {
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table_rows = vec![vec![
        "IMAGE".into(),
        "CREATED".into(),
        "CREATED BY".into(),
        "SIZE".into(),
        "COMMENT".into(),
    ]];
    for (i, (created, by, size, comment)) in rows.into_iter().enumerate() {
        let image = if i == 0 {
            id.clone()
        } else {
            "<missing>".into()
        };
        table_rows.push(vec![image, created, by, size, comment]);
    }
    print!("{}", table(&table_rows));
    Ok(ExitCode::SUCCESS)
}
