//! Docker's `json-file` log: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`, the current
//! file `<id>-json.log` rotated by size into `<id>-json.log.1` (newest) … `.N`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::record::LogLimits;
use super::time::{now_ns, rfc3339_nano};
use crate::error::Error;

/// Longest line kept whole; longer output is split into several entries (docker: 16 KiB).
const MAX_LINE: usize = 16 * 1024;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The text, with its newline when it ended one.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When it was read, RFC 3339 with nanoseconds.
    pub time: String,
}

/// Appends entries to a container's log, rotating by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    limits: LogLimits,
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The log's files, oldest first (rotated ones, then the current one), those that exist.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..1000)
        .map(|n| rotated(path, n))
        .take_while(|p| p.exists())
        .collect();
    out.reverse();
    if path.exists() {
        out.push(path.to_owned());
    }
    out
}

impl LogWriter {
    /// Open (append to) the log at `path`.
    pub fn open(path: &Path, limits: LogLimits) -> Result<LogWriter, Error> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(Error::io(path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            path: path.to_owned(),
            file,
            size,
            limits,
        })
    }

    /// Append one entry.
    pub fn write(&mut self, stream: &str, text: &[u8], time_ns: i64) -> Result<(), Error> {
        let entry = LogEntry {
            log: String::from_utf8_lossy(text).into_owned(),
            stream: stream.to_owned(),
            time: rfc3339_nano(time_ns),
        };
        let mut line = serde_json::to_vec(&entry).expect("a log entry serialises");
        line.push(b'\n');
        if self.limits.max_size > 0
            && self.size > 0
            && self.size + line.len() as u64 > self.limits.max_size
        {
            self.rotate()?;
        }
        self.file.write_all(&line).map_err(Error::io(&self.path))?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), Error> {
        let keep = self.limits.max_files.max(1);
        if keep > 1 {
            for n in (1..keep).rev() {
                let from = if n == 1 {
                    self.path.clone()
                } else {
                    rotated(&self.path, n - 1)
                };
                if from.exists() {
                    let to = rotated(&self.path, n);
                    fs::rename(&from, &to).map_err(Error::io(&to))?;
                }
            }
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)
            .map_err(Error::io(&self.path))?;
        self.size = 0;
        Ok(())
    }
}

/// Splits one stream into log entries at newlines (and at [`MAX_LINE`]).
#[derive(Debug, Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, data: &[u8], mut emit: impl FnMut(&[u8])) {
        self.partial.extend_from_slice(data);
        let mut start = 0;
        while let Some(i) = self.partial[start..].iter().position(|&b| b == b'\n') {
            emit(&self.partial[start..start + i + 1]);
            start += i + 1;
        }
        while self.partial.len() - start >= MAX_LINE {
            emit(&self.partial[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.partial.drain(..start);
    }

    fn finish(&mut self, emit: impl FnOnce(&[u8])) {
        if !self.partial.is_empty() {
            emit(&self.partial);
            self.partial.clear();
        }
    }
}

/// Copy the container's output streams into the log until every one is closed (or, for a
/// terminal, until it reports `EIO`). Runs on its own thread in the monitor.
pub fn pump(streams: Vec<(&'static str, OwnedFd)>, log: &mut LogWriter) -> Result<(), Error> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut open: Vec<(&'static str, File, Lines)> = streams
        .into_iter()
        .map(|(name, fd)| (name, File::from(fd), Lines::default()))
        .collect();
    let mut buf = vec![0u8; 64 * 1024];
    let mut first_err = None;
    while !open.is_empty() {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = open
                .iter()
                .map(|(_, f, _)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(Error::Sys {
                        call: "poll",
                        errno,
                    });
                }
            }
            fds.iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        let mut closed = Vec::new();
        for (i, is_ready) in ready.into_iter().enumerate() {
            if !is_ready {
                continue;
            }
            let (name, file, lines) = &mut open[i];
            let n = file.read(&mut buf).unwrap_or(0);
            let now = now_ns();
            if n == 0 {
                lines.finish(|l| {
                    if let Err(e) = log.write(name, l, now) {
                        first_err.get_or_insert(e);
                    }
                });
                closed.push(i);
                continue;
            }
            lines.feed(&buf[..n], |l| {
                if let Err(e) = log.write(name, l, now) {
                    first_err.get_or_insert(e);
                }
            });
        }
        for i in closed.into_iter().rev() {
            open.remove(i);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Every entry of the log, oldest first (lines that do not decode are skipped).
pub fn read_all(path: &Path) -> Vec<LogEntry> {
    let mut out = Vec::new();
    for f in files(path) {
        let Ok(file) = File::open(&f) else { continue };
        for line in BufReader::new(file).lines().map_while(Result::ok) {
            if let Ok(e) = serde_json::from_str(&line) {
                out.push(e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_newlines_and_keep_partial_ones() {
        let mut l = Lines::default();
        let mut got = Vec::new();
        l.feed(b"a\nbc", |x| got.push(x.to_vec()));
        l.feed(b"d\n\n", |x| got.push(x.to_vec()));
        l.finish(|x| got.push(x.to_vec()));
        assert_eq!(got, [b"a\n".to_vec(), b"bcd\n".to_vec(), b"\n".to_vec()]);
        let mut long = Vec::new();
        l.feed(&vec![b'x'; MAX_LINE + 5], |x| long.push(x.len()));
        l.finish(|x| long.push(x.len()));
        assert_eq!(long, [MAX_LINE, 5]);
    }

    #[test]
    fn entries_are_dockers_json_lines_and_rotate_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let limits = LogLimits {
            max_size: 200,
            max_files: 3,
        };
        let mut w = LogWriter::open(&path, limits).unwrap();
        w.write("stdout", b"hello \"x\"\n", 1_500_000_000_000_000_001)
            .unwrap();
        let first = fs::read_to_string(&path).unwrap();
        assert_eq!(
            first,
            "{\"log\":\"hello \\\"x\\\"\\n\",\"stream\":\"stdout\",\"time\":\"2017-07-14T02:40:00.000000001Z\"}\n"
        );
        for i in 0..20 {
            w.write("stderr", format!("line {i}\n").as_bytes(), 0)
                .unwrap();
        }
        let all = files(&path);
        assert_eq!(
            all.len(),
            3,
            "two rotated files and the current one: {all:?}"
        );
        for f in &all {
            assert!(fs::metadata(f).unwrap().len() <= 200);
        }
        let entries = read_all(&path);
        assert_eq!(entries.last().unwrap().log, "line 19\n");
        assert!(entries.len() < 21, "the oldest entries were rotated away");
    }
}
