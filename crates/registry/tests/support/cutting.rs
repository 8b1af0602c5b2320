//! An HTTP proxy in front of a registry that cuts every connection once it has carried a set
//! number of body bytes: a line that drops every few megabytes, again and again.
//!
//! Client connections are kept alive; each request goes to the registry on a connection of its
//! own (`Connection: close`). Request bodies must have a `Content-Length` (rbuild's always do).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::proxy::Direction;

/// What happens to a request body that is cut.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RequestCut {
    /// Nothing of it reaches the registry (a proxy that buffers request bodies, as nginx
    /// does by default): the registry never sees the broken request.
    Buffered,
    /// The registry gets the bytes up to the cut, then the connection drops.
    Streamed,
}

/// A running proxy.
pub struct CuttingProxy {
    /// `127.0.0.1:PORT` to use instead of the registry.
    pub addr: String,
    /// How many requests or responses were cut.
    pub cuts: Arc<AtomicUsize>,
}

/// How one proxy cuts.
#[derive(Clone)]
struct Rule {
    pattern: String,
    direction: Direction,
    budget: u64,
    request_cut: RequestCut,
}

impl CuttingProxy {
    /// Forward to `upstream`. On every client connection, requests whose request line contains
    /// `pattern` spend a budget of `budget` body bytes in `direction` (their response bodies
    /// for downloads, their own bodies for uploads); the body that would overdraw it is cut
    /// after the budget's bytes and the connection closed. A cut request body is forwarded as
    /// `request_cut` says. The next connection has a full budget again.
    pub fn start(
        upstream: &str,
        pattern: &str,
        direction: Direction,
        budget: u64,
        request_cut: RequestCut,
    ) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_string();
        let rule = Rule {
            pattern: pattern.to_string(),
            direction,
            budget,
            request_cut,
        };
        let cuts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&cuts);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (upstream, rule, cuts) = (upstream.clone(), rule.clone(), Arc::clone(&counter));
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &rule, &cuts);
                });
            }
        });
        CuttingProxy { addr, cuts }
    }
}

/// Serve one client connection until it closes or is cut.
fn serve(
    client: TcpStream,
    upstream: &str,
    rule: &Rule,
    cuts: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let mut left = rule.budget;
    loop {
        // Not HTTP (a TLS ClientHello from an HTTPS attempt), or closed: hang up.
        match reader.fill_buf()?.first() {
            Some(b) if b.is_ascii_uppercase() => {}
            _ => return Ok(()),
        }
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        assert!(
            header(&head, "transfer-encoding").is_none(),
            "cutting proxy: chunked request bodies are not supported: {}",
            head[0]
        );
        let counted = head[0].contains(&rule.pattern);
        let head_only = head[0].starts_with("HEAD ");
        let length = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());

        let mut up = TcpStream::connect(upstream)?;
        if counted && rule.direction == Direction::Upload && length > left {
            if rule.request_cut == RequestCut::Streamed {
                up.write_all(&with_connection_close(&head))?;
                std::io::copy(&mut (&mut reader).take(left), &mut up)?;
            } else {
                std::io::copy(&mut (&mut reader).take(left), &mut std::io::sink())?;
            }
            return cut(&client, &up, cuts);
        }
        if counted && rule.direction == Direction::Upload {
            left -= length;
        }
        up.write_all(&with_connection_close(&head))?;
        std::io::copy(&mut (&mut reader).take(length), &mut up)?;

        let mut response = BufReader::new(up.try_clone()?);
        let Some(resp_head) = read_head(&mut response)? else {
            return Ok(());
        };
        let status: u16 = resp_head[0].split(' ').nth(1).unwrap().parse().unwrap();
        let body = if head_only || status == 204 || status == 304 {
            Some(0)
        } else {
            header(&resp_head, "content-length").map(|v| v.parse::<u64>().unwrap())
        };
        let Some(body) = body else {
            // Delimited by the close (or chunked): pass it all, then close.
            client.write_all(&with_connection_close(&resp_head))?;
            std::io::copy(&mut response, &mut client)?;
            return Ok(());
        };
        // The registry closes after this response (we asked it to); this connection goes on.
        client.write_all(&without_connection(&resp_head))?;
        if counted && rule.direction == Direction::Download && body > left {
            std::io::copy(&mut (&mut response).take(left), &mut client)?;
            client.flush()?;
            return cut(&client, &up, cuts);
        }
        if counted && rule.direction == Direction::Download {
            left -= body;
        }
        std::io::copy(&mut (&mut response).take(body), &mut client)?;
    }
}

fn cut(client: &TcpStream, up: &TcpStream, cuts: &AtomicUsize) -> std::io::Result<()> {
    cuts.fetch_add(1, Ordering::SeqCst);
    let _ = up.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// The head's lines (request or status line first, the empty line last), or `None` at EOF.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let end = line == "\r\n";
        head.push(line);
        if end {
            return Ok(Some(head));
        }
    }
}

/// The value of header `name` (lowercase), trimmed.
fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head[1..].iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn without_connection(head: &[String]) -> Vec<u8> {
    head.iter()
        .filter(|h| !h.to_ascii_lowercase().starts_with("connection:"))
        .flat_map(|h| h.bytes())
        .collect()
}

fn with_connection_close(head: &[String]) -> Vec<u8> {
    let mut out = without_connection(&head[..head.len() - 1]);
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}
