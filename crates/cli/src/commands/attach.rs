//! `rbuild attach CONTAINER`: show a running container's output from now on (as its log
//! receives it) until it ends, and exit with its status. A container started with `-i` also
//! gets this command's standard input, through its monitor's attach socket.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rbuild_runner::lifecycle::Container;

use crate::terminal::RawMode;

use super::Globals;

/// Arguments of `rbuild attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach standard input
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    #[command(flatten)]
    pub detach: DetachKeys,
    /// The container (name, ID or ID prefix)
    pub container: String,
}

/// Docker's `--detach-keys` option (`attach`, `start`).
#[derive(Debug, Args)]
pub struct DetachKeys {
    /// Keys that detach from a container with a terminal, leaving it running
    #[arg(
        long = "detach-keys",
        default_value = "ctrl-p,ctrl-q",
        value_name = "KEYS"
    )]
    pub detach_keys: String,
}

impl DetachKeys {
    /// The keys as bytes (see [`parse_detach_keys`]).
    pub fn keys(&self) -> anyhow::Result<Vec<u8>> {
        parse_detach_keys(&self.detach_keys)
    }
}

/// Run `rbuild attach`.
pub fn run(args: AttachArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = super::common::engine(globals).container(&args.container)?;
    if !c.state()?.status.is_active() {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let from = rbuild_engine::LogPosition::end_of(&c);
    let keys = args.detach.keys()?;
    let raw = if args.no_stdin {
        None
    } else {
        forward_stdin(&c, &keys)?
    };
    super::logs::follow(&c, from, false)?;
    drop(raw);
    let st = c.state()?;
    Ok(ExitCode::from(st.exit_code.clamp(0, 255) as u8))
}

/// Docker's `--detach-keys`: comma-separated keys, each a character or `ctrl-X` (X a
/// letter or one of `@[\]^_`).
pub fn parse_detach_keys(spec: &str) -> anyhow::Result<Vec<u8>> {
    spec.split(',')
        .map(|k| {
            let bad = || anyhow::anyhow!("invalid detach keys {spec:?}: unknown key {k:?}");
            match k.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => {
                    let c = c.as_bytes()[0].to_ascii_uppercase();
                    if c.is_ascii_uppercase() || b"@[\\]^_".contains(&c) {
                        Ok(c & 0x1f)
                    } else {
                        Err(bad())
                    }
                }
                None if k.len() == 1 => Ok(k.as_bytes()[0]),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// Finds the detach keys in what is typed: bytes that may begin them are held back until
/// the next ones tell.
#[derive(Debug)]
struct Escape {
    keys: Vec<u8>,
    matched: usize,
}

impl Escape {
    /// Append to `out` what of `input` goes to the container; true once the keys were typed.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return true;
                }
                continue;
            }
            // Not the keys after all: what was held back goes out, and this byte may begin
            // them again.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        false
    }
}

/// Send this command's standard input to `c`'s stdin, if it was started with `-i`, from a
/// thread that ends with the input (the end of input then reaches the monitor, which closes
/// the container's stdin if it is `StdinOnce`). For a container with a terminal, a terminal
/// here is put in raw mode (keys go to the container's terminal as typed) until the
/// returned guard is dropped, and typing `detach_keys` ends this command with status 1,
/// the container still running, as docker's.
pub fn forward_stdin(c: &Container, detach_keys: &[u8]) -> anyhow::Result<Option<RawMode>> {
    let engine = rbuild_engine::Engine::new(c.store_root());
    let Some(mut conn) = engine.attach_stdin(c)? else {
        return Ok(None);
    };
    let raw = c.record.tty.then(RawMode::enter);
    let saved = raw.as_ref().and_then(RawMode::saved);
    let mut escape = Escape {
        keys: if c.record.tty {
            detach_keys.to_vec()
        } else {
            Vec::new()
        },
        matched: 0,
    };
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 16 << 10];
        let mut out = Vec::with_capacity(buf.len());
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            out.clear();
            let detached = escape.feed(&buf[..n], &mut out);
            if conn.write_all(&out).is_err() {
                break;
            }
            if detached {
                if let Some(t) = &saved {
                    RawMode::restore(t);
                }
                eprintln!("read escape sequence");
                std::process::exit(1);
            }
        }
        let _ = conn.shutdown(std::net::Shutdown::Write);
    });
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_and_are_found_across_reads() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            vec![0x10, 0x11]
        );
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(
            parse_detach_keys("ctrl-1")
                .unwrap_err()
                .to_string()
                .contains("ctrl-1")
        );
        let mut e = Escape {
            keys: vec![0x10, 0x11],
            matched: 0,
        };
        let mut out = Vec::new();
        assert!(!e.feed(b"ls\x10", &mut out));
        assert_eq!(out, b"ls", "a possible start is held back");
        assert!(!e.feed(b"\x10x", &mut out));
        assert_eq!(out, b"ls\x10\x10x", "released when it is not the keys");
        out.clear();
        assert!(!e.feed(b"\x10", &mut out));
        assert!(e.feed(b"\x11more", &mut out));
        assert!(out.is_empty());
        let mut plain = Escape {
            keys: Vec::new(),
            matched: 0,
        };
        assert!(!plain.feed(b"\x10\x11", &mut out));
        assert_eq!(out, b"\x10\x11");
    }
}
