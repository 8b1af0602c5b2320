//! The event journal: every process's engine appends its events to
//! `<root>/events/journal.jsonl`, so an observer in another process (`rbuild events`, the
//! Engine API's `/events`) sees what a CLI command or a detached container's monitor did.
//!
//! One JSON line per event, written with a single `write` on an `O_APPEND` descriptor, so
//! lines of concurrent writers never interleave. Bounded: a writer that finds the file past
//! [`MAX_JOURNAL`] bytes renames it to `journal.1.jsonl` (replacing the older one) under the
//! `events/lock` flock, so at most two files' worth is kept. A follower reads a file to its
//! end before it moves on to a new one (the renamed file keeps its inode).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::events::Event;

/// The size past which the journal is rotated.
pub const MAX_JOURNAL: u64 = 1 << 20;

/// The event journal under a store root.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// The journal of the store at `root`.
    pub fn new(root: &Path) -> Journal {
        Journal {
            dir: root.join("events"),
        }
    }

    fn current(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }

    fn previous(&self) -> PathBuf {
        self.dir.join("journal.1.jsonl")
    }

    /// Append `event`. Errors are the caller's to ignore: events are a best-effort record.
    pub fn append(&self, event: &Event) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(self.current())
        };
        let mut f = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir)?;
                open()?
            }
            Err(e) => return Err(e),
        };
        f.write_all(&line)?;
        if f.metadata()?.len() > MAX_JOURNAL {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&self) -> std::io::Result<()> {
        let lock = File::create(self.dir.join("lock"))?;
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| std::io::Error::from(e))
            .and_then(|_held| {
                // Another writer may have rotated while we waited.
                if std::fs::metadata(self.current())?.len() > MAX_JOURNAL {
                    std::fs::rename(self.current(), self.previous())?;
                }
                Ok(())
            })
    }

    /// The events recorded, oldest first, with `time_nano` in `[since, until)`.
    pub fn read(&self, since: Option<i64>, until: Option<i64>) -> Vec<Event> {
        let mut out = Vec::new();
        for path in [self.previous(), self.current()] {
            if let Ok(f) = File::open(&path) {
                read_lines(f, 0, |e| {
                    if since.is_none_or(|s| e.time_nano >= s)
                        && until.is_none_or(|u| e.time_nano < u)
                    {
                        out.push(e);
                    }
                });
            }
        }
        out
    }

    /// Where the journal ends now: following from here gives only later events.
    pub fn end(&self) -> Position {
        match std::fs::metadata(self.current()) {
            Ok(m) => Position {
                inode: m.ino(),
                offset: m.len(),
            },
            Err(_) => Position::default(),
        }
    }

    /// The events appended after `pos`, oldest first; `pos` moves past them. Call again to
    /// follow (the caller paces the polling).
    pub fn poll(&self, pos: &mut Position) -> Vec<Event> {
        let mut out = Vec::new();
        // The file we were reading may have been rotated: finish it under its new name.
        let cur = std::fs::metadata(self.current()).ok();
        if pos.inode != 0 && cur.as_ref().is_none_or(|m| m.ino() != pos.inode) {
            if let Ok(f) = File::open(self.previous())
                && f.metadata().is_ok_and(|m| m.ino() == pos.inode)
            {
                read_lines(f, pos.offset, |e| out.push(e));
            }
            *pos = Position::default();
        }
        if let Ok(f) = File::open(self.current())
            && let Ok(m) = f.metadata()
        {
            if pos.inode != m.ino() {
                *pos = Position {
                    inode: m.ino(),
                    offset: 0,
                };
            }
            pos.offset = read_lines(f, pos.offset, |e| out.push(e));
        }
        out
    }

    /// Follow the journal from `pos`, giving `each` every new event, until `each` returns
    /// false. Polls every `interval`.
    pub fn follow(
        &self,
        mut pos: Position,
        interval: Duration,
        mut each: impl FnMut(Event) -> bool,
    ) {
        loop {
            for e in self.poll(&mut pos) {
                if !each(e) {
                    return;
                }
            }
            std::thread::sleep(interval);
        }
    }
}

/// A place in the journal to follow it from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    inode: u64,
    offset: u64,
}

/// Give `each` the whole lines of `f` from `offset` on; returns the offset after the last
/// whole line (a line still being written is read again next time).
fn read_lines(mut f: File, offset: u64, mut each: impl FnMut(Event)) -> u64 {
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let mut r = BufReader::new(f);
    let mut pos = offset;
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(n) if n > 0 && line.ends_with(b"\n") => {
                pos += n as u64;
                if let Ok(e) = serde_json::from_slice::<Event>(&line) {
                    each(e);
                }
            }
            _ => return pos,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventType;

    fn ev(action: &str) -> Event {
        Event::now(EventType::Container, action, "abc", [])
    }

    #[test]
    fn appended_events_are_read_and_followed() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        assert!(j.read(None, None).is_empty());
        let mut pos = j.end();
        j.append(&ev("create")).unwrap();
        j.append(&ev("start")).unwrap();
        let got: Vec<String> = j.poll(&mut pos).into_iter().map(|e| e.action).collect();
        assert_eq!(got, ["create", "start"]);
        assert!(j.poll(&mut pos).is_empty());
        j.append(&ev("die")).unwrap();
        assert_eq!(j.poll(&mut pos)[0].action, "die");
        let all = j.read(None, None);
        assert_eq!(all.len(), 3);
        let later = j.read(Some(all[2].time_nano), None);
        assert_eq!(later.len(), 1);
    }

    #[test]
    fn rotation_keeps_the_journal_bounded_and_followers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let mut pos = j.end();
        let mut seen = 0;
        let n = (MAX_JOURNAL as usize / 100) * 3;
        for i in 0..n {
            j.append(&Event::now(EventType::Image, "tag", &i.to_string(), []))
                .unwrap();
            if i % 1000 == 0 {
                seen += j.poll(&mut pos).len();
            }
        }
        seen += j.poll(&mut pos).len();
        assert_eq!(seen, n);
        let size = |p: &str| {
            std::fs::metadata(dir.path().join("events").join(p))
                .unwrap()
                .len()
        };
        assert!(size("journal.jsonl") <= MAX_JOURNAL + 200);
        assert!(size("journal.1.jsonl") <= MAX_JOURNAL + 200);
    }
}
