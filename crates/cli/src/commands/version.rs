//! `rbuild version [--format json]`: rbuild's version and the Engine API versions its
//! service speaks, in `docker version`'s layout.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

/// Arguments of `rbuild version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format: `json` or a Go template instead of the text report
    #[arg(long, short, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// Run `rbuild version`.
pub fn run(args: VersionArgs) -> anyhow::Result<ExitCode> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let version = env!("CARGO_PKG_VERSION");
    let mut out = std::io::stdout().lock();
    match args.format.as_deref() {
        Some(f) => {
            let mut v = json!({
                "Version": version,
                "ApiVersion": rbuild_api::API_VERSION,
                "MinAPIVersion": rbuild_api::MIN_API_VERSION,
                "Os": "linux",
                "Arch": arch,
            });
            if f == "json" {
                writeln!(out, "{v}")?;
            } else {
                // docker's `{{.Client.…}}` and `{{.Server.…}}`: rbuild is both.
                v["Client"] = v.clone();
                v["Server"] = v["Client"].clone();
                writeln!(out, "{}", crate::template::Template::parse(f)?.render(&v)?)?;
            }
        }
        None => {
            writeln!(out, "Version:           {version}")?;
            writeln!(
                out,
                "API version:       {} (minimum version {}, served by `rbuild system service`)",
                rbuild_api::API_VERSION,
                rbuild_api::MIN_API_VERSION
            )?;
            writeln!(out, "OS/Arch:           linux/{arch}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
