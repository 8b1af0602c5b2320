//! Helpers shared by the image commands: opening the store, docker-style sizes and times.

use std::path::PathBuf;

use anyhow::Context;
use rbuild_store::Store;

use super::Globals;

/// The store root: `--root` / `RBUILD_ROOT`, else the default for this user; absolute, as
/// containers record paths under it and their monitors run from `/`.
pub fn store_root(globals: &Globals) -> PathBuf {
    let root = globals
        .root
        .clone()
        .unwrap_or_else(rbuild_store::default_root);
    std::path::absolute(&root).unwrap_or(root)
}

/// The engine over the store root the command works on, with the registry settings the
/// environment gives (`RBUILD_INSECURE_REGISTRIES`, `RBUILD_AUTH_FILE`): what it fetches on
/// its own (the layers of an image built from a lazily imported cache, for `run` or `save`)
/// goes as a flagless `rbuild pull` would. A command with registry flags replaces them
/// (`Engine::with_registry`).
pub fn engine(globals: &Globals) -> rbuild_engine::Engine {
    let engine = rbuild_engine::Engine::new(store_root(globals));
    match super::registry_opts::RegistryArgs::from_env() {
        Ok(registry) => engine.with_registry(registry.settings()),
        // Malformed settings are reported by the commands that reach a registry.
        Err(_) => engine,
    }
}

/// Open the store the command works on.
pub fn open_store(globals: &Globals) -> anyhow::Result<Store> {
    let root = store_root(globals);
    Store::open(&root).with_context(|| format!("opening the image store at {}", root.display()))
}

/// Docker's `units.HumanSizeWithPrecision(size, 3)`: `5.59MB`, `512B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g3(size), UNITS[i])
}

/// Ask `prompt` on stderr and read the answer from stdin, as docker's prune commands do:
/// only `y`/`yes` goes on; an empty answer or a closed stdin is no.
pub fn confirm(prompt: &str) -> std::io::Result<bool> {
    use std::io::{BufRead, Write};
    let mut err = std::io::stderr().lock();
    write!(err, "{prompt} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// `%.3g` as Go formats it (no trailing zeros, no exponent for these magnitudes).
fn format_g3(v: f64) -> String {
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    // Rounding may reach the next power of ten (999.5 → 1000): still 3 significant digits.
    s
}

/// `2006-01-02T15:04:05Z` for a Unix time.
pub fn rfc3339(secs: i64) -> String {
    rbuild_builder::config::rfc3339(secs, 0)
}

/// Docker's `CreatedAt` form: `2006-01-02 15:04:05 +0000 UTC`.
pub fn docker_time(secs: i64) -> String {
    let s = rfc3339(secs);
    format!("{} {} +0000 UTC", &s[..10], &s[11..19])
}

/// Now, in seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Docker's `units.HumanDuration` + " ago".
pub fn since(secs: i64) -> String {
    format!("{} ago", human_duration(now() - secs))
}

/// Docker's `units.HumanDuration` of `d` seconds: `Less than a second`, `3 minutes`, …
pub fn human_duration(d: i64) -> String {
    let d = d.max(0);
    let hours = (d as f64 / 3600.0).round() as i64;
    if d < 1 {
        "Less than a second".to_string()
    } else if d == 1 {
        "1 second".to_string()
    } else if d < 60 {
        format!("{d} seconds")
    } else if d / 60 == 1 {
        "About a minute".to_string()
    } else if d / 60 < 60 {
        format!("{} minutes", d / 60)
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// Print rows as docker's tabwriter does (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`): every
/// column but the last padded to its widest cell plus 3 spaces, and to at least 10.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .map_or(10, |w| (w + 3).max(10))
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count()));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(5_591_000), "5.59MB");
        assert_eq!(human_size(12_345), "12.3kB");
        assert_eq!(human_size(123_456_789), "123MB");
    }

    #[test]
    fn times_round_trip() {
        let secs = |s: &str| rbuild_oci::time::parse_rfc3339(s).map(|ns| ns / 1_000_000_000);
        let t = secs("2024-02-29T12:34:56.789Z").unwrap();
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
        assert_eq!(secs("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(docker_time(0), "1970-01-01 00:00:00 +0000 UTC");
    }
}
