//! Published ports without a bridge: the monitor listens on the host (127.0.0.1 by default)
//! and, for each TCP connection, opens a socket inside the container's network namespace —
//! a thread `setns`es into it and connects to the container's loopback — then copies both
//! ways. No veth, no address, no iptables; the listeners live as long as the monitor.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;

use super::record::{PortBinding, Protocol};
use crate::error::Error;

/// Where connections go: the container's first process (its network namespace), 0 while
/// it is not running.
#[derive(Debug, Clone, Default)]
pub struct Target(Arc<AtomicI32>);

impl Target {
    /// Send new connections into `pid`'s network namespace (0: refuse them).
    pub fn set(&self, pid: i32) {
        self.0.store(pid, Ordering::SeqCst);
    }
}

/// Parse `-p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]` (host IP 127.0.0.1 unless
/// given, host port 0 = any free one).
pub fn parse_publish(s: &str) -> Result<PortBinding, String> {
    let bad = |why: &str| format!("invalid publish spec {s:?}: {why}");
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((r, "tcp")) => (r, Protocol::Tcp),
        Some((r, "udp")) => (r, Protocol::Udp),
        Some(_) => return Err(bad("the protocol must be tcp or udp")),
        None => (s, Protocol::Tcp),
    };
    let port = |p: &str, what: &str| -> Result<u16, String> {
        if p.is_empty() {
            return Ok(0);
        }
        p.parse::<u16>()
            .map_err(|_| bad(&format!("{what} {p:?} is not a port number")))
    };
    let (ip, host, ctr) = match rest.rsplitn(3, ':').collect::<Vec<_>>().as_slice() {
        [c] => ("127.0.0.1".to_owned(), 0, port(c, "container port")?),
        [c, h] => (
            "127.0.0.1".to_owned(),
            port(h, "host port")?,
            port(c, "container port")?,
        ),
        [c, h, ip] => {
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(bad(&format!("{ip:?} is not an IP address")));
            }
            (
                ip.to_owned(),
                port(h, "host port")?,
                port(c, "container port")?,
            )
        }
        _ => return Err(bad("expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT")),
    };
    if ctr == 0 {
        return Err(bad("no container port"));
    }
    Ok(PortBinding {
        host_ip: ip,
        host_port: host,
        container_port: ctr,
        protocol,
    })
}

/// Listen on every binding's host address (TCP; UDP is not forwarded yet); returns the
/// bindings with the ports actually bound.
pub fn listen(bindings: &[PortBinding]) -> Result<Vec<(TcpListener, PortBinding)>, Error> {
    let mut out = Vec::new();
    for b in bindings {
        if b.protocol != Protocol::Tcp {
            return Err(Error::InvalidSpec(format!(
                "publishing {}/udp: only TCP ports are forwarded",
                b.container_port
            )));
        }
        let addr = format!("{}:{}", b.host_ip, b.host_port);
        let l = TcpListener::bind(&addr).map_err(|e| Error::Io {
            path: format!("Bind for {addr} failed (port is already allocated?)").into(),
            source: e,
        })?;
        let actual = l.local_addr().map_err(Error::io(&addr))?.port();
        out.push((
            l,
            PortBinding {
                host_port: actual,
                ..b.clone()
            },
        ));
    }
    Ok(out)
}

/// Accept connections on `listener` for the rest of the process's life, forwarding each to
/// `container_port` on the loopback of `target`'s network namespace.
pub fn serve(listener: TcpListener, container_port: u16, target: Target) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let pid = target.0.load(Ordering::SeqCst);
            if pid <= 0 {
                continue;
            }
            std::thread::spawn(move || {
                let _ = forward(client, pid, container_port);
            });
        }
    });
}

/// Join `pid`'s network namespace (this thread only) and connect to its loopback.
fn connect_inside(pid: i32, port: u16) -> std::io::Result<TcpStream> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    // SAFETY: setns on an open namespace descriptor; it affects this thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    TcpStream::connect(("127.0.0.1", port))
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

fn forward(client: TcpStream, pid: i32, port: u16) -> std::io::Result<()> {
    let inside = connect_inside(pid, port)?;
    let _ = client.set_nodelay(true);
    let _ = inside.set_nodelay(true);
    let (c2, i2) = (client.try_clone()?, inside.try_clone()?);
    let up = std::thread::spawn(move || copy(c2, i2));
    copy(inside, client);
    let _ = up.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse_like_docker_with_a_loopback_default() {
        let p = parse_publish("8080").unwrap();
        assert_eq!(
            (p.host_ip.as_str(), p.host_port, p.container_port),
            ("127.0.0.1", 0, 8080)
        );
        let p = parse_publish("80:8080/tcp").unwrap();
        assert_eq!((p.host_port, p.container_port), (80, 8080));
        let p = parse_publish("0.0.0.0::53/udp").unwrap();
        assert_eq!(
            (p.host_ip.as_str(), p.host_port, p.protocol),
            ("0.0.0.0", 0, Protocol::Udp)
        );
        assert!(parse_publish("a:b").unwrap_err().contains("a:b"));
        assert!(parse_publish("1.2.3:80:80").is_err());
        assert!(parse_publish("80/sctp").is_err());
    }
}
