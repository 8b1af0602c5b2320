//! A TCP proxy in front of a registry that cuts one connection once it has carried more than a
//! set number of bytes in one direction: a registry dropping the line mid-blob.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Which direction's byte count triggers the cut.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Registry → client (downloads).
    Download,
    /// Client → registry (uploads).
    Upload,
}

/// A running proxy.
pub struct DroppingProxy {
    /// `127.0.0.1:PORT` to use instead of the registry.
    pub addr: String,
    /// How many connections were cut (0 or 1).
    pub cuts: Arc<AtomicUsize>,
}

impl DroppingProxy {
    /// Forward to `upstream`; cut the first connection that carries more than `after` bytes in
    /// `direction`.
    pub fn start(upstream: &str, direction: Direction, after: usize) -> DroppingProxy {
        DroppingProxy::start_with(upstream, direction, after, false)
    }

    /// Like [`DroppingProxy::start`]; with `hide_range`, requests' `Range` headers are renamed
    /// so the registry ignores them (a server without range support).
    pub fn start_with(
        upstream: &str,
        direction: Direction,
        after: usize,
        hide_range: bool,
    ) -> DroppingProxy {
        DroppingProxy::start_full(upstream, direction, after, hide_range, false)
    }

    /// A proxy that, instead of cutting, stops forwarding after `after` bytes and holds the
    /// connection open: a registry that hangs mid-blob.
    pub fn start_stalling(upstream: &str, direction: Direction, after: usize) -> DroppingProxy {
        DroppingProxy::start_full(upstream, direction, after, false, true)
    }

    fn start_full(
        upstream: &str,
        direction: Direction,
        after: usize,
        hide_range: bool,
        stall: bool,
    ) -> DroppingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_string();
        let armed = Arc::new(AtomicBool::new(true));
        let cuts = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&cuts);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (armed, cuts) = (Arc::clone(&armed), Arc::clone(&c));
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (a2, k2) = (Arc::clone(&armed), Arc::clone(&cuts));
                let up = direction == Direction::Upload;
                std::thread::spawn(move || {
                    pump(client, server, up, after, &armed, &cuts, hide_range, stall)
                });
                std::thread::spawn(move || pump(s2, c2, !up, after, &a2, &k2, false, stall));
            }
        });
        DroppingProxy { addr, cuts }
    }
}

/// Copy `from` → `to`; if `counting`, cut both (or stall) after `after` bytes (once, while
/// armed).
#[allow(clippy::too_many_arguments)]
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    counting: bool,
    after: usize,
    armed: &AtomicBool,
    cuts: &AtomicUsize,
    hide_range: bool,
    stall: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hide_range {
            // Same length, so the request stays well-formed: `range:` → `x-rng:`.
            let data = &mut buf[..n];
            for i in 0..data.len().saturating_sub(6) {
                if data[i..i + 6].eq_ignore_ascii_case(b"range:")
                    && (i == 0 || data[i - 1] == b'\n')
                {
                    data[i..i + 6].copy_from_slice(b"x-rng:");
                }
            }
        }
        let mut n = n;
        if counting && armed.load(Ordering::SeqCst) && total + n > after {
            // Send up to the limit, then drop the connection in both directions.
            n = after.saturating_sub(total);
            if armed.swap(false, Ordering::SeqCst) {
                let _ = to.write_all(&buf[..n]);
                cuts.fetch_add(1, Ordering::SeqCst);
                if stall {
                    // Hold both sockets open, sending nothing more, until the client gives up.
                    let mut sink = [0u8; 1];
                    let _ = to.read(&mut sink);
                    return;
                }
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
        }
        total += n;
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// An HTTP proxy in front of a registry that answers the first `n` requests whose request line
/// contains a pattern with a canned error response (503, 429 with `Retry-After`), and forwards
/// everything else (one upstream connection per request; bodies by `Content-Length`).
pub struct FlakyProxy {
    /// `127.0.0.1:PORT` to use instead of the registry.
    pub addr: String,
    /// How many canned errors were sent.
    pub injected: Arc<AtomicUsize>,
    /// How many requests matching the pattern were forwarded.
    pub forwarded: Arc<AtomicUsize>,
}

impl FlakyProxy {
    /// Start; `response` is a full HTTP response head without body, e.g.
    /// `"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"`.
    pub fn start(
        upstream: &str,
        pattern: &'static str,
        n: usize,
        response: &'static str,
    ) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_string();
        let injected = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let (count, passed) = (Arc::clone(&injected), Arc::clone(&forwarded));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (upstream, count, passed) =
                    (upstream.clone(), Arc::clone(&count), Arc::clone(&passed));
                std::thread::spawn(move || {
                    let counters = (&*count, &*passed);
                    let _ = serve_flaky(client, &upstream, pattern, n, response, counters);
                });
            }
        });
        FlakyProxy {
            addr,
            injected,
            forwarded,
        }
    }
}

fn serve_flaky(
    client: TcpStream,
    upstream: &str,
    pattern: &str,
    n: usize,
    response: &str,
    (count, passed): (&AtomicUsize, &AtomicUsize),
) -> std::io::Result<()> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        // Not HTTP (a TLS ClientHello from an HTTPS attempt): hang up at once.
        match reader.fill_buf()?.first() {
            Some(b) if b.is_ascii_uppercase() => {}
            _ => return Ok(()),
        }
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let end = line == "\r\n";
            head.push(line);
            if end {
                break;
            }
        }
        let length: usize = head
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        if head[0].contains(pattern)
            && count
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                    (c < n).then_some(c + 1)
                })
                .is_ok()
        {
            client.write_all(response.as_bytes())?;
            continue;
        }
        if head[0].contains(pattern) {
            passed.fetch_add(1, Ordering::SeqCst);
        }
        let mut up = TcpStream::connect(upstream)?;
        let mut out = String::new();
        for h in &head {
            if h.to_ascii_lowercase().starts_with("connection:") {
                continue;
            }
            if h == "\r\n" {
                out.push_str("Connection: close\r\n");
            }
            out.push_str(h);
        }
        up.write_all(out.as_bytes())?;
        up.write_all(&body)?;
        let mut resp = Vec::new();
        up.read_to_end(&mut resp)?;
        client.write_all(&resp)?;
        // The registry closed after its answer (we asked it to); so does this connection.
        return Ok(());
    }
}
