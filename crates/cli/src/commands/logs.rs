//! `rbuild logs [-f] [--tail N] [-t] [--since WHEN] CONTAINER`: the container's json-file
//! log, stdout lines to stdout and stderr lines to stderr, as docker prints them.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_runner::lifecycle::Container;
use rbuild_runner::lifecycle::log::{LogEntry, read_all};
use rbuild_runner::lifecycle::time::{now_ns, parse_rfc3339};

use super::Globals;
use super::common::store_root;
use super::containers::find;

/// Arguments of `rbuild logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the output as it comes, until the container ends
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines ("all" for every line)
    #[arg(short = 'n', long, default_value = "all", value_name = "N")]
    pub tail: String,
    /// Prefix each line with its timestamp
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Only lines since a time (RFC 3339, Unix seconds) or a duration ago (10m, 1h30m)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only lines before a time or a duration ago
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// The container (name, ID or ID prefix)
    pub container: String,
}

/// A time given as RFC 3339, Unix seconds (`1700000000.5`) or a duration ago (`90s`,
/// `10m`, `1h30m`), in nanoseconds since the epoch.
pub fn parse_when(s: &str) -> anyhow::Result<i64> {
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    let mut total = 0f64;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() || ch == '.' {
            num.push(ch);
            continue;
        }
        let n: f64 = num.parse().with_context(|| {
            format!("invalid time {s:?}: expected RFC 3339, Unix seconds or a duration like 10m")
        })?;
        total += n * match ch {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => bail!("invalid time {s:?}: unknown duration unit {ch:?} (s, m, h)"),
        };
        num.clear();
    }
    if !num.is_empty() {
        bail!("invalid time {s:?}: a duration needs a unit (s, m, h)");
    }
    Ok(now_ns() - (total * 1e9) as i64)
}

fn print(e: &LogEntry, timestamps: bool) {
    let line = if timestamps {
        format!("{} {}", e.time, e.log)
    } else {
        e.log.clone()
    };
    if e.stream == "stderr" {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// Run `rbuild logs`.
pub fn run(args: LogsArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = find(&store_root(globals), &args.container)?;
    let since = args.since.as_deref().map(parse_when).transpose()?;
    let until = args.until.as_deref().map(parse_when).transpose()?;
    let tail: Option<usize> = match args.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse::<i64>()
                .with_context(|| format!("invalid --tail {n:?}: expected a number or \"all\""))?
                .max(0) as usize,
        ),
    };
    let from = Position::end_of(&c);
    let in_range = |e: &LogEntry| {
        let t = parse_rfc3339(&e.time).unwrap_or(0);
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u)
    };
    let entries: Vec<LogEntry> = read_all(&c.log_path())
        .into_iter()
        .filter(|e| in_range(e))
        .collect();
    let skip = tail.map_or(0, |n| entries.len().saturating_sub(n));
    for e in &entries[skip..] {
        print(e, args.timestamps);
    }
    if args.follow && until.is_none() {
        follow(&c, from, args.timestamps)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A place in the current log file.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    inode: u64,
    offset: u64,
}

impl Position {
    /// The end of `c`'s current log file (the start of a file yet to be made).
    pub fn end_of(c: &Container) -> Position {
        std::fs::metadata(c.log_path()).map_or(
            Position {
                inode: 0,
                offset: 0,
            },
            |m| Position {
                inode: m.ino(),
                offset: m.len(),
            },
        )
    }
}

/// Print what the log gets from `from` on, until the container's monitor has ended and all
/// of it is printed. A rotation (a new file) is followed from its start.
pub fn follow(c: &Container, from: Position, timestamps: bool) -> anyhow::Result<()> {
    let path = c.log_path();
    let mut pos = from;
    loop {
        // Whether the monitor had ended before this read: then what we read is the rest.
        let ended = !c.monitor_running();
        if let Ok(f) = File::open(&path) {
            let meta = f.metadata()?;
            if meta.ino() != pos.inode {
                pos = Position {
                    inode: meta.ino(),
                    offset: 0,
                };
            }
            if meta.len() > pos.offset {
                let mut r = BufReader::new(f);
                r.seek(SeekFrom::Start(pos.offset))?;
                loop {
                    let mut line = String::new();
                    let n = r.read_line(&mut line)?;
                    // A line still being written is read again, whole, next time.
                    if n == 0 || !line.ends_with('\n') {
                        break;
                    }
                    pos.offset += n as u64;
                    if let Ok(e) = serde_json::from_str::<LogEntry>(&line) {
                        print(&e, timestamps);
                    }
                }
            }
        }
        if ended || !c.dir().exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_absolute_or_ago() {
        assert_eq!(parse_when("1970-01-01T00:00:10Z").unwrap(), 10_000_000_000);
        assert_eq!(parse_when("10").unwrap(), 10_000_000_000);
        let ago = now_ns() - parse_when("1h30m").unwrap();
        assert!(
            (5_399_000_000_000..5_401_000_000_000).contains(&ago),
            "{ago}"
        );
        assert!(parse_when("10x").unwrap_err().to_string().contains("10x"));
    }
}
