//! `rbuild info`: what the store holds and what this machine runs, as `docker info` prints
//! its server section (`--format json`: docker's `/info` shape).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::Globals;
use super::common::engine;

/// Arguments of `rbuild info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Output format: `json` (docker's /info object) or a Go template over it, instead of
    /// the text report
    #[arg(long, short, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// Run `rbuild info`.
pub fn run(args: InfoArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let info = engine(globals).info()?;
    let mut out = std::io::stdout().lock();
    match args.format.as_deref() {
        Some("json") => {
            serde_json::to_writer(&mut out, &info)?;
            writeln!(out)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(f) => {
            let t = crate::template::Template::parse(f)?;
            writeln!(out, "{}", t.render(&serde_json::to_value(&info)?)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let platforms: Vec<String> = rbuild_engine::runnable_platforms()
        .into_iter()
        .map(|p| match p.emulator {
            Some(e) => format!("{} ({e})", p.platform),
            None => p.platform,
        })
        .collect();
    let lines = [
        format!("Containers: {}", info.containers),
        format!(" Running: {}", info.containers_running),
        format!(" Paused: {}", info.containers_paused),
        format!(" Stopped: {}", info.containers_stopped),
        format!("Images: {}", info.images),
        format!("Server Version: {}", info.server_version),
        format!("Storage Driver: {}", info.driver),
        format!("Cgroup Driver: {}", info.cgroup_driver),
        format!("Cgroup Version: {}", info.cgroup_version),
        format!("Kernel Version: {}", info.kernel_version),
        format!("Operating System: {}", info.operating_system),
        format!("OSType: {}", info.os_type),
        format!("Architecture: {}", info.architecture),
        format!("Platforms: {}", platforms.join(", ")),
        format!("CPUs: {}", info.ncpu),
        format!("Total Memory: {}", bytes_size(info.mem_total)),
        format!("Name: {}", info.name),
        format!("Docker Root Dir: {}", info.docker_root_dir),
    ];
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// go-units' `BytesSize` as docker prints `Total Memory`: binary units, 4 significant digits
/// (`23.47GiB`, `512MiB`).
fn bytes_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    // %.4g: four significant digits, trailing zeros dropped.
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{v:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::bytes_size;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(bytes_size(25_199_169_536), "23.47GiB");
        assert_eq!(bytes_size(512 << 20), "512MiB");
        assert_eq!(bytes_size(2 << 30), "2GiB");
        assert_eq!(bytes_size(1_536), "1.5KiB");
        assert_eq!(bytes_size(999), "999B");
    }
}
