//! A container's output: its json-file log read whole (filtered by time, the last N
//! entries) or followed as it grows, and its standard input for attachers.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rbuild_runner::lifecycle::Container;
use rbuild_runner::lifecycle::log::{LogEntry, read_all};
use rbuild_runner::lifecycle::time::parse_rfc3339;

use crate::Engine;
use crate::error::{EngineError, Result};

/// Which entries of a log to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only entries at or after this time (nanoseconds since the epoch).
    pub since: Option<i64>,
    /// Only entries before this time.
    pub until: Option<i64>,
    /// Only the last N entries (of those in the time range).
    pub tail: Option<usize>,
}

/// A place in a container's current log file, to follow it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    inode: u64,
    offset: u64,
}

impl LogPosition {
    /// The end of `c`'s current log file (the start of a file yet to be made).
    pub fn end_of(c: &Container) -> LogPosition {
        std::fs::metadata(c.log_path()).map_or(
            LogPosition {
                inode: 0,
                offset: 0,
            },
            |m| LogPosition {
                inode: m.ino(),
                offset: m.len(),
            },
        )
    }
}

impl Engine {
    /// The entries of `c`'s log that `opts` selects, oldest first (rotated files included).
    pub fn logs(&self, c: &Container, opts: &LogOptions) -> Vec<LogEntry> {
        let in_range = |e: &LogEntry| {
            let t = parse_rfc3339(&e.time).unwrap_or(0);
            opts.since.is_none_or(|s| t >= s) && opts.until.is_none_or(|u| t < u)
        };
        let mut entries: Vec<LogEntry> = read_all(&c.log_path())
            .into_iter()
            .filter(|e| in_range(e))
            .collect();
        let skip = opts.tail.map_or(0, |n| entries.len().saturating_sub(n));
        entries.drain(..skip);
        entries
    }

    /// Give `each` what `c`'s log gets from `from` on, until the container's monitor has
    /// ended and all of it is given. A rotation (a new file) is followed from its start.
    pub fn follow_logs(
        &self,
        c: &Container,
        from: LogPosition,
        mut each: impl FnMut(&LogEntry),
    ) -> Result<()> {
        let path = c.log_path();
        let mut pos = from;
        let io = |e: std::io::Error| EngineError::io(&path, e);
        loop {
            // Whether the monitor had ended before this read: then what we read is the rest.
            let ended = !c.monitor_running();
            if let Ok(f) = File::open(&path) {
                let meta = f.metadata().map_err(io)?;
                if meta.ino() != pos.inode {
                    pos = LogPosition {
                        inode: meta.ino(),
                        offset: 0,
                    };
                }
                if meta.len() > pos.offset {
                    let mut r = BufReader::new(f);
                    r.seek(SeekFrom::Start(pos.offset)).map_err(io)?;
                    loop {
                        let mut line = String::new();
                        let n = r.read_line(&mut line).map_err(io)?;
                        // A line still being written is read again, whole, next time.
                        if n == 0 || !line.ends_with('\n') {
                            break;
                        }
                        pos.offset += n as u64;
                        if let Ok(e) = serde_json::from_str::<LogEntry>(&line) {
                            each(&e);
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

    /// A connection to `c`'s standard input (its monitor's attach socket), if it was created
    /// with `interactive` and its monitor serves one.
    pub fn attach_stdin(&self, c: &Container) -> Result<Option<UnixStream>> {
        if !c.record.interactive {
            return Ok(None);
        }
        Ok(rbuild_runner::lifecycle::stdin::connect(c.dir())?)
    }
}
