//! Listening and serving: the address (`unix://PATH`, `tcp://IP:PORT`, TLS), the socket's
//! permissions, one HTTP/1 connection per client with upgrades (hijacked streams), bounded
//! headers, and the idle exit.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rbuild_engine::Engine;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use crate::state::Service;
use crate::tls::Tls;

/// Where the service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// A loopback TCP address.
    Tcp(SocketAddr),
}

/// Why the service cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is not one this service accepts.
    #[error("invalid service address {address:?}: {reason}")]
    Address {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another service answers on the socket already.
    #[error("{0}: another service is listening on this socket")]
    InUse(PathBuf),
    /// The TLS files cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Listening failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's answer.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

impl std::str::FromStr for Address {
    type Err = ServeError;

    fn from_str(s: &str) -> Result<Address, ServeError> {
        let bad = |reason: &str| ServeError::Address {
            address: s.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() || !path.starts_with('/') {
                return Err(bad(
                    "a unix socket needs an absolute path (unix:///run/x.sock)",
                ));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(hostport) = s.strip_prefix("tcp://") {
            let hostport = hostport.trim_end_matches('/');
            let hostport = match hostport.strip_prefix("localhost:") {
                Some(port) => format!("127.0.0.1:{port}"),
                None => hostport.to_owned(),
            };
            let addr: SocketAddr = hostport
                .parse()
                .map_err(|_| bad("expected tcp://IP:PORT"))?;
            return Ok(Address::Tcp(addr));
        }
        Err(bad("expected unix://PATH or tcp://IP:PORT"))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// The default address: `/run/rbuild/rbuild.sock` for root, else
/// `$XDG_RUNTIME_DIR/rbuild/rbuild.sock` (or `/tmp/rbuild-UID/rbuild.sock` without one).
pub fn default_address() -> Address {
    // Rootless mode: root inside the user's namespace, whose runtime directory is the user's.
    if rbuild_runner::rootless::active()
        && let Ok(dir) = rbuild_runner::rootless::runtime_dir()
    {
        return Address::Unix(dir.join("rbuild.sock"));
    }
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return Address::Unix(PathBuf::from("/run/rbuild/rbuild.sock"));
    }
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("rbuild"))
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/rbuild-{uid}")));
    Address::Unix(dir.join("rbuild.sock"))
}

/// How the service runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeOptions {
    /// Exit after this long without a connection (`None`: never).
    pub idle: Option<Duration>,
}

/// Connections open now and when the last one closed, for the idle exit.
#[derive(Debug)]
pub struct Activity {
    open: AtomicUsize,
    since: Mutex<Instant>,
}

/// One open connection (or hijacked stream); dropping it closes it for [`Activity`].
#[derive(Debug)]
pub struct Active(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            open: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        })
    }

    /// Count one more open connection until the returned guard is dropped.
    pub fn enter(self: &Arc<Activity>) -> Active {
        self.open.fetch_add(1, Ordering::SeqCst);
        Active(self.clone())
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.open.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(self.since.lock().map(|t| t.elapsed()).unwrap_or_default())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.since.lock() {
            *t = Instant::now();
        }
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A bound listener, ready to serve.
pub enum Listener {
    /// On a unix socket (removed when the listener is dropped).
    Unix(UnixListener, SocketFile),
    /// On TCP, over TLS or not.
    Tcp(TcpListener, Option<tokio_rustls::TlsAcceptor>),
}

/// The socket file, removed on drop.
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Bind `address`: a unix socket is made 0660 (its directory made 0755 if missing); a stale
/// socket is replaced, a live one refused. A TCP address serves over `tls` when given, and
/// one other than loopback only with client certificates verified (dockerd's `--tlsverify`):
/// anyone reaching it could otherwise run anything as this user. Must run inside a tokio
/// runtime.
pub fn bind(address: &Address, tls: Option<&Tls>) -> Result<Listener, ServeError> {
    match address {
        Address::Unix(_) if tls.is_some() => Err(ServeError::Address {
            address: address.to_string(),
            reason: "the --tls options apply to tcp:// addresses only".into(),
        }),
        Address::Unix(path) => {
            if let Some(dir) = path.parent()
                && !dir.exists()
            {
                std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
            }
            if std::fs::symlink_metadata(path).is_ok() {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(ServeError::InUse(path.clone()));
                }
                std::fs::remove_file(path)
                    .map_err(io(format!("removing stale socket {}", path.display())))?;
            }
            // Bound under a umask that leaves no access for others, then set to 0660.
            let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
            let l = UnixListener::bind(path);
            nix::sys::stat::umask(old);
            let l = l.map_err(io(format!("listening on {}", path.display())))?;
            let file = SocketFile(path.clone());
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                .map_err(io(format!("setting the mode of {}", path.display())))?;
            Ok(Listener::Unix(l, file))
        }
        Address::Tcp(addr) if !addr.ip().is_loopback() && !tls.is_some_and(Tls::verifies_clients) => {
            Err(ServeError::Address {
                address: address.to_string(),
                reason: "serving on a non-loopback address needs TLS with client certificates (--tlsverify --tlscacert CA --tlscert CERT --tlskey KEY); use 127.0.0.1 or a unix socket otherwise".into(),
            })
        }
        Address::Tcp(addr) => {
            let std =
                std::net::TcpListener::bind(addr).map_err(io(format!("listening on {addr}")))?;
            std.set_nonblocking(true)
                .map_err(io(format!("listening on {addr}")))?;
            Ok(Listener::Tcp(
                TcpListener::from_std(std).map_err(io(format!("listening on {addr}")))?,
                tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone())),
            ))
        }
    }
}

impl Listener {
    /// The path of a unix listener's socket.
    pub fn socket_path(&self) -> Option<&Path> {
        match self {
            Listener::Unix(_, f) => Some(&f.0),
            Listener::Tcp(..) => None,
        }
    }
}

/// Serve the Engine API for `engine` on `listener` until idle for `opts.idle`, or until
/// SIGINT/SIGTERM.
pub async fn serve(engine: Engine, listener: Listener, opts: ServeOptions) -> std::io::Result<()> {
    let activity = Activity::new();
    let service = Arc::new(Service::new(engine, activity.clone()));
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let monitor_name = monitor_comm(service.engine.monitor_program());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = accept(&listener) => {
                match accepted {
                    Ok(conn) => spawn_connection(service.clone(), activity.enter(), conn),
                    // Out of descriptors or a connection reset before accept: keep serving.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            _ = tick.tick() => {
                let execs: Vec<i32> = service
                    .execs
                    .lock()
                    .map(|m| m.values().filter(|e| e.started).map(|e| e.pid).collect())
                    .unwrap_or_default();
                reap_detached(&monitor_name, &execs);
                if let (Some(limit), Some(idle)) = (opts.idle, activity.idle_for())
                    && idle >= limit
                {
                    return Ok(());
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

/// The name (`comm`) a detached container's monitor runs under: its program's file name
/// (`exe` for `/proc/self/exe`), as the kernel truncates it.
fn monitor_comm(program: &Path) -> String {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.chars().take(15).collect()
}

/// Reap the detached children the engine started and that have ended: monitors (a monitor
/// outlives the start that spawned it; the CLI's process exits and it is reparented, but
/// the service lives on) and the background `rm` of a removed container's directory. Only
/// zombie children with those names are reaped, never an exec's process (`execs`), which
/// its handler waits for.
fn reap_detached(name: &str, execs: &[i32]) {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = head.split_once(" (").map_or("", |(_, c)| c);
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next(), f.next());
        if state == Some("Z")
            && ppid == Some(me.as_str())
            && (comm == name || comm == "rm")
            && !execs.contains(&pid)
        {
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
    }
}

/// A client's connection, unix or TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// An accepted connection; a TLS one still has its handshake to do (in its own task, so a
/// slow client does not hold up the others).
enum Accepted {
    Plain(Box<dyn Stream>),
    Tls(tokio::net::TcpStream, tokio_rustls::TlsAcceptor),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    Ok(match listener {
        Listener::Unix(l, _) => Accepted::Plain(Box::new(l.accept().await?.0)),
        Listener::Tcp(l, tls) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            match tls {
                Some(a) => Accepted::Tls(s, a.clone()),
                None => Accepted::Plain(Box::new(s)),
            }
        }
    })
}

fn spawn_connection(service: Arc<Service>, active: Active, conn: Accepted) {
    tokio::spawn(async move {
        let _active = active;
        let conn: Box<dyn Stream> = match conn {
            Accepted::Plain(c) => c,
            // A failed handshake (no or a foreign client certificate) just closes the
            // connection; rustls has sent the client its alert.
            Accepted::Tls(tcp, acceptor) => {
                match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => Box::new(s),
                    _ => return,
                }
            }
        };
        let svc = service_fn(move |req| {
            let service = service.clone();
            async move { Ok::<_, std::convert::Infallible>(crate::router::handle(service, req).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // Headers are bounded (a request head larger than this is refused with 431/400), and
        // a client that never finishes its head is dropped.
        // No half-close: a client that closes its side is gone, so the streams it was
        // given end and the service can go idle.
        builder
            .max_buf_size(64 << 10)
            .max_headers(100)
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30));
        let _ = builder
            .serve_connection(TokioIo::new(conn), svc)
            .with_upgrades()
            .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            "unix:///run/x.sock".parse::<Address>().unwrap(),
            Address::Unix("/run/x.sock".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:2375".parse::<Address>().unwrap(),
            Address::Tcp("127.0.0.1:2375".parse().unwrap())
        );
        assert_eq!(
            "tcp://localhost:2375".parse::<Address>().unwrap(),
            Address::Tcp("127.0.0.1:2375".parse().unwrap())
        );
        assert_eq!(
            "tcp://0.0.0.0:2376".parse::<Address>().unwrap(),
            Address::Tcp("0.0.0.0:2376".parse().unwrap())
        );
        assert!("unix://rel.sock".parse::<Address>().is_err());
        assert!("http://x".parse::<Address>().is_err());
    }
}
