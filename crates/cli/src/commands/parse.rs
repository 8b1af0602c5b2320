//! `rbuild parse`: print a Dockerfile's parse tree (`--dump`) or typed instructions (`--json`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_parser::{ast, instructions};

/// Arguments of `rbuild parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Print the raw parse tree in BuildKit's test `result` format (the default)
    #[arg(long, conflicts_with = "json")]
    pub dump: bool,
    /// Print the typed stages and instructions as JSON
    #[arg(long)]
    pub json: bool,
    /// The Dockerfile to read (`-` for standard input)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Run `rbuild parse`.
pub fn run(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let (name, text) = read_dockerfile(&args.file)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let dockerfile = instructions::parse_dockerfile(&text)
            .map_err(|e| anyhow::anyhow!(e.render(&name, &text)))?;
        serde_json::to_writer_pretty(&mut out, &dockerfile)?;
        writeln!(out)?;
    } else {
        let tree = ast::parse(&text).map_err(|e| anyhow::anyhow!(e.render(&name, &text)))?;
        out.write_all(tree.dump().as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Read a Dockerfile from a path or `-` (stdin); returns the name to show in errors and the text.
/// Invalid UTF-8 is replaced rather than refused, as BuildKit reads bytes.
pub fn read_dockerfile(path: &std::path::Path) -> anyhow::Result<(String, String)> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the Dockerfile from standard input")?;
        return Ok((
            "<stdin>".into(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    bytes =
        std::fs::read(path).with_context(|| format!("reading Dockerfile {}", path.display()))?;
    Ok((
        path.display().to_string(),
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}
