//! Published ports without a bridge: the monitor listens on the host (127.0.0.1 by default)
//! and, for each TCP connection, opens a socket inside the container's network namespace —
//! a thread `setns`es into it and connects to the container's loopback — then copies both
//! ways (threads are kept a while for the next connections); for UDP, each client address
//! gets its own socket in the container, replies relayed back. No veth, no address, no
//! iptables; the listeners live until their [`Serving`] is dropped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::libc;

use super::record::{PortBinding, Protocol};
use crate::error::Error;

/// Where connections go: the network namespace of the container's current run (none while
/// it is not running), opened once per run.
#[derive(Debug, Clone, Default)]
pub struct Target(Arc<Mutex<Option<Arc<OwnedFd>>>>);

impl Target {
    /// Send new connections into `pid`'s network namespace (0: refuse them).
    pub fn set(&self, pid: i32) {
        let ns = (pid > 0)
            .then(|| std::fs::File::open(format!("/proc/{pid}/ns/net")).ok())
            .flatten()
            .map(|f| Arc::new(OwnedFd::from(f)));
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = ns;
    }

    fn get(&self) -> Option<Arc<OwnedFd>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
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

/// A bound host socket for one published port.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A UDP socket.
    Udp(UdpSocket),
}

/// Bind every binding's host address; returns the sockets with the bindings as actually
/// bound (a host port 0 becomes the port the kernel chose).
pub fn listen(bindings: &[PortBinding]) -> Result<Vec<(Listener, PortBinding)>, Error> {
    let mut out = Vec::new();
    for b in bindings {
        let addr = format!("{}:{}", b.host_ip, b.host_port);
        let failed = |e: std::io::Error| Error::Io {
            path: format!(
                "Bind for {addr}/{} failed (port is already allocated?)",
                b.protocol.as_str()
            )
            .into(),
            source: e,
        };
        let (l, actual) = match b.protocol {
            Protocol::Tcp => {
                let l = TcpListener::bind(&addr).map_err(failed)?;
                let port = l.local_addr().map_err(Error::io(&addr))?.port();
                (Listener::Tcp(l), port)
            }
            Protocol::Udp => {
                let u = UdpSocket::bind(&addr).map_err(failed)?;
                let port = u.local_addr().map_err(Error::io(&addr))?.port();
                (Listener::Udp(u), port)
            }
        };
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

/// A forwarder for one published port, running on its own thread until stopped. Dropping
/// it stops it: the host socket is shut down and closed, and its threads joined, before the
/// drop returns — so once a container's monitor lets go of it, nothing listens any more.
#[derive(Debug)]
pub struct Serving {
    socket: Shared,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        wake(match &self.socket {
            Shared::Tcp(l) => l.as_fd(),
            Shared::Udp(u) => u.as_fd(),
        });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The host socket, shared with the thread serving it.
#[derive(Debug)]
enum Shared {
    Tcp(Arc<TcpListener>),
    Udp(Arc<UdpSocket>),
}

/// Shut `socket` down both ways so a thread blocked on it returns (the error it returns is
/// of no interest: the caller has set its stop flag).
fn wake(socket: BorrowedFd<'_>) {
    // SAFETY: shutdown on an open socket descriptor; it changes no memory.
    unsafe { libc::shutdown(socket.as_raw_fd(), libc::SHUT_RDWR) };
}

/// Forward what arrives on `listener` to `container_port` in `target`'s network namespace,
/// until the returned [`Serving`] is dropped.
pub fn serve(listener: Listener, container_port: u16, target: Target) -> Serving {
    let stop = Arc::new(AtomicBool::new(false));
    let (socket, thread) = match listener {
        Listener::Tcp(l) => {
            let l = Arc::new(l);
            let t = serve_tcp(l.clone(), container_port, target, stop.clone());
            (Shared::Tcp(l), t)
        }
        Listener::Udp(u) => {
            let u = Arc::new(u);
            let t = serve_udp(u.clone(), container_port, target, stop.clone());
            (Shared::Udp(u), t)
        }
    };
    Serving {
        socket,
        stop,
        thread: Some(thread),
    }
}

/// A UDP flow idle this long is forgotten (its socket in the container closed).
const UDP_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Each client address gets its own socket inside the container (connected to the
/// container's port), so replies find their way back; a thread per flow relays them.
fn serve_udp(
    host: Arc<UdpSocket>,
    port: u16,
    target: Target,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    std::thread::spawn(move || {
        let mut relays = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::SeqCst) {
            let Ok((n, client)) = host.recv_from(&mut buf) else {
                continue;
            };
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let known = flows
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&client)
                .cloned();
            let inner = match known {
                Some(s) => s,
                None => {
                    let Some(ns) = target.get() else { continue };
                    // A short-lived thread enters the namespace and makes the socket there.
                    let made = std::thread::spawn(move || -> std::io::Result<UdpSocket> {
                        enter(&ns)?;
                        let s = UdpSocket::bind(("127.0.0.1", 0))?;
                        s.connect(("127.0.0.1", port))?;
                        s.set_read_timeout(Some(UDP_IDLE))?;
                        Ok(s)
                    })
                    .join();
                    let Ok(Ok(s)) = made else { continue };
                    let s = Arc::new(s);
                    flows
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(client, s.clone());
                    let (reply, back, flows, stop) =
                        (s.clone(), host.clone(), flows.clone(), stop.clone());
                    relays.retain(|t: &JoinHandle<()>| !t.is_finished());
                    relays.push(std::thread::spawn(move || {
                        let mut buf = vec![0u8; 65_536];
                        while let Ok(n) = reply.recv(&mut buf) {
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            let _ = back.send_to(&buf[..n], client);
                        }
                        flows
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&client);
                    }));
                    s
                }
            };
            let _ = inner.send(&buf[..n]);
        }
        // Stopping: end every flow's relay before the host socket may close.
        for s in flows.lock().unwrap_or_else(|e| e.into_inner()).values() {
            wake(s.as_fd());
        }
        for t in relays {
            let _ = t.join();
        }
    })
}

/// Accept connections until stopped, forwarding each to `container_port` on the loopback of
/// `target`'s network namespace.
fn serve_tcp(
    listener: Arc<TcpListener>,
    container_port: u16,
    target: Target,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let pool = Arc::new(Pool::default());
        while !stop.load(Ordering::SeqCst) {
            let Ok((client, _)) = listener.accept() else {
                continue;
            };
            let Some(ns) = target.get() else { continue };
            if let Some((client, ns)) = pool.hand_over(client, ns) {
                let pool = pool.clone();
                std::thread::spawn(move || work(&pool, client, ns, container_port));
            }
        }
        pool.stop();
    })
}

/// How long a forwarding thread waits for another connection before it ends.
const WORKER_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Forwarding threads kept after their connection ends, for the next one: a thread per
/// connection (blocking I/O; any number of long connections at once), but no new thread nor
/// `setns` for each of many short ones.
#[derive(Debug, Default)]
struct Pool {
    state: Mutex<PoolState>,
    ready: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct PoolState {
    queue: std::collections::VecDeque<(TcpStream, Arc<OwnedFd>)>,
    /// Threads waiting for a connection; each queued connection has its own.
    idle: usize,
    stopping: bool,
}

impl Pool {
    /// Give the connection to an idle thread; returns it if there is none (start one).
    fn hand_over(&self, client: TcpStream, ns: Arc<OwnedFd>) -> Option<(TcpStream, Arc<OwnedFd>)> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.idle > st.queue.len() {
            st.queue.push_back((client, ns));
            self.ready.notify_one();
            return None;
        }
        Some((client, ns))
    }

    /// The next connection for an idle thread, or `None` when it should end.
    fn next(&self) -> Option<(TcpStream, Arc<OwnedFd>)> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.idle += 1;
        loop {
            if let Some(job) = st.queue.pop_front() {
                st.idle -= 1;
                return Some(job);
            }
            if st.stopping {
                st.idle -= 1;
                return None;
            }
            let (guard, waited) = self
                .ready
                .wait_timeout(st, WORKER_IDLE)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            if waited.timed_out() && st.queue.is_empty() {
                st.idle -= 1;
                return None;
            }
        }
    }

    /// Let idle threads end (connections in progress go on).
    fn stop(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.stopping = true;
        st.queue.clear();
        self.ready.notify_all();
    }
}

/// A forwarding thread: this connection, then the pool's next ones. It enters a run's
/// network namespace once, and again only when a connection is for another run.
fn work(pool: &Pool, client: TcpStream, ns: Arc<OwnedFd>, port: u16) {
    let mut inside: Option<Arc<OwnedFd>> = None;
    let mut job = Some((client, ns));
    let mut buf = vec![0u8; 64 * 1024];
    while let Some((client, ns)) = job.take() {
        let entered = inside.as_ref().is_some_and(|i| Arc::ptr_eq(i, &ns));
        if entered || enter(&ns).is_ok() {
            inside = Some(ns);
            let _ = forward(client, port, &mut buf);
        }
        job = pool.next();
    }
}

/// Enter the network namespace `ns` (this thread only).
fn enter(ns: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: setns on an open namespace descriptor; it affects this thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Connect to `port` on the loopback of this thread's network namespace (the container's)
/// and copy both ways on this one thread until both directions are closed.
fn forward(mut client: TcpStream, port: u16, buf: &mut [u8]) -> std::io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut inside = TcpStream::connect(("127.0.0.1", port))?;
    let _ = client.set_nodelay(true);
    let _ = inside.set_nodelay(true);
    // [client → inside open, inside → client open]
    let mut open = [true, true];
    while open[0] || open[1] {
        let (c_ready, i_ready) = {
            let mut fds = Vec::with_capacity(2);
            if open[0] {
                fds.push(PollFd::new(client.as_fd(), PollFlags::POLLIN));
            }
            if open[1] {
                fds.push(PollFd::new(inside.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = |p: &PollFd<'_>| p.revents().is_some_and(|r| !r.is_empty());
            match (open[0], open[1]) {
                (true, true) => (ready(&fds[0]), ready(&fds[1])),
                (true, false) => (ready(&fds[0]), false),
                _ => (false, ready(&fds[0])),
            }
        };
        if c_ready && !pass(&mut client, &mut inside, buf) {
            open[0] = false;
        }
        if i_ready && !pass(&mut inside, &mut client, buf) {
            open[1] = false;
        }
    }
    Ok(())
}

/// Move what `from` has to `to`; false once `from` has ended (then `to` is told) or either
/// side failed.
fn pass(from: &mut TcpStream, to: &mut TcpStream, buf: &mut [u8]) -> bool {
    match from.read(buf) {
        Ok(0) | Err(_) => {
            let _ = to.shutdown(Shutdown::Write);
            false
        }
        Ok(n) => {
            if to.write_all(&buf[..n]).is_err() {
                let _ = from.shutdown(Shutdown::Read);
                return false;
            }
            true
        }
    }
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
