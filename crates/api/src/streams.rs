//! Container output and input: `logs` (whole or followed, with docker's stdout/stderr
//! framing when there is no TTY), `attach` (the connection hijacked: HTTP upgrade to a raw
//! stream carrying the container's output out and the client's input in).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use rbuild_engine::LogOptions;
use rbuild_runner::lifecycle::Container;
use rbuild_runner::lifecycle::log::LogEntry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::http::{ApiError, ApiResult, Call, Reply, full, stream, version_less};
use crate::state::{Service, blocking};

/// Docker's stream framing: `[kind, 0, 0, 0, len (big-endian u32)]` then the bytes; kind 1 is
/// stdout, 2 stderr.
pub fn frame(kind: u8, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + data.len());
    b.put_u8(kind);
    b.put_slice(&[0, 0, 0]);
    b.put_u32(data.len() as u32);
    b.put_slice(data);
    b.freeze()
}

/// How a log entry goes out: raw with a TTY, framed without; `timestamps` prefixes its time.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// The container has a terminal: no framing (one stream).
    pub tty: bool,
    /// Send stdout entries.
    pub stdout: bool,
    /// Send stderr entries.
    pub stderr: bool,
    /// Prefix each entry with its time.
    pub timestamps: bool,
}

impl Output {
    /// The bytes for `e`, if its stream is wanted.
    pub fn encode(&self, e: &LogEntry) -> Option<Bytes> {
        let kind = if e.stream == "stderr" { 2 } else { 1 };
        if (kind == 1 && !self.stdout) || (kind == 2 && !self.stderr) {
            return None;
        }
        let text = if self.timestamps {
            format!("{} {}", e.time, e.log)
        } else {
            e.log.clone()
        };
        Some(if self.tty {
            Bytes::from(text)
        } else {
            frame(kind, text.as_bytes())
        })
    }
}

/// Read `file`'s whole lines from `*offset` on, giving each entry to `each`.
fn read_entries(
    file: &mut File,
    offset: &mut u64,
    each: &mut dyn FnMut(&LogEntry) -> bool,
) -> bool {
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return true;
    }
    let mut r = BufReader::new(&mut *file);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(n) if n > 0 && line.ends_with(b"\n") => {
                *offset += n as u64;
                if let Ok(e) = serde_json::from_slice::<LogEntry>(&line)
                    && !each(&e)
                {
                    return false;
                }
            }
            _ => return true,
        }
    }
}

/// Follow `c`'s log through the open `file` from `offset` until its monitor has ended (what
/// was written before is all given), or until `each` returns false. The descriptor keeps
/// the log readable after a `--rm` container's directory is gone; a rotation (a new file
/// at the path) is followed from its start.
pub fn follow(
    c: &Container,
    mut file: File,
    mut offset: u64,
    mut each: impl FnMut(&LogEntry) -> bool,
    alive: &dyn Fn() -> bool,
) {
    let path = c.log_path();
    loop {
        if !alive() {
            return;
        }
        let ended = !c.monitor_running();
        if !read_entries(&mut file, &mut offset, &mut each) {
            return;
        }
        if let (Ok(now), Ok(ours)) = (std::fs::metadata(&path), file.metadata())
            && now.ino() != ours.ino()
            && let Ok(f) = File::open(&path)
        {
            file = f;
            offset = 0;
            continue;
        }
        if ended {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `GET /containers/{id}/logs?stdout&stderr&follow&since&until&timestamps&tail`.
pub async fn logs(s: &Arc<Service>, c: &Call, id: &str) -> ApiResult {
    let when = |k: &str| -> ApiResult<Option<i64>> {
        match c.q(k).filter(|v| !v.is_empty() && *v != "0") {
            None => Ok(None),
            Some(v) => Ok(Some(
                rbuild_engine::options::parse_when(v)
                    .map_err(|e| ApiError::bad(format!("invalid {k}: {e}")))?,
            )),
        }
    };
    let opts = LogOptions {
        since: when("since")?,
        until: when("until")?,
        tail: match c.q("tail") {
            None | Some("") | Some("all") => None,
            Some(n) => Some(
                n.parse()
                    .map_err(|_| ApiError::bad(format!("invalid tail {n:?}")))?,
            ),
        },
    };
    let (stdout, stderr) = (c.flag("stdout"), c.flag("stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let follow_on = c.flag("follow");
    let (engine, id) = (s.engine.clone(), id.to_owned());
    let container = {
        let (engine, id) = (engine.clone(), id.clone());
        blocking(move || Ok(engine.container(&id)?)).await?
    };
    let out = Output {
        tty: container.record.tty,
        stdout,
        stderr,
        timestamps: c.flag("timestamps"),
    };
    let (tx, mut reply) = stream(content_type(c, out.tty));
    tokio::task::spawn_blocking(move || {
        let at_end = File::open(container.log_path())
            .ok()
            .and_then(|f| Some((f.metadata().ok()?.len(), f)));
        for e in engine.logs(&container, &opts) {
            if let Some(b) = out.encode(&e)
                && tx.blocking_send(b).is_err()
            {
                return;
            }
        }
        if follow_on
            && opts.until.is_none()
            && let Some((offset, file)) = at_end
        {
            follow(
                &container,
                file,
                offset,
                |e| match out.encode(e) {
                    Some(b) => tx.blocking_send(b).is_ok(),
                    None => !tx.is_closed(),
                },
                &|| !tx.is_closed(),
            );
        }
    });
    *reply.status_mut() = StatusCode::OK;
    Ok(reply)
}

/// The content type of a container stream: docker's multiplexed type from API 1.42 on, raw
/// before (the client then decides from the container's TTY).
fn content_type(c: &Call, tty: bool) -> &'static str {
    let modern = c
        .version
        .as_deref()
        .is_none_or(|v| !version_less(v, "1.42"));
    if tty || !modern {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// The 101 reply that hands the connection over to a raw stream.
pub fn upgrade_reply(content_type: &'static str) -> Reply {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A hijacked connection: where output goes and whence input comes.
pub type Hijacked = TokioIo<hyper::upgrade::Upgraded>;

/// Take over `c`'s connection after the 101 reply: `run` gets the raw stream. The
/// connection counts as open for the idle exit while `run` runs.
pub fn hijack<F, Fut>(s: &Arc<Service>, c: &mut Call, run: F) -> ApiResult<()>
where
    F: FnOnce(Hijacked) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    if c.header("Upgrade").is_none() {
        return Err(ApiError::bad(
            "this endpoint needs a hijacked connection: send Connection: Upgrade, Upgrade: tcp",
        ));
    }
    let on = hyper::upgrade::on(&mut c.request);
    let active = s.activity.enter();
    tokio::spawn(async move {
        let _active = active;
        if let Ok(up) = on.await {
            run(TokioIo::new(up)).await;
        }
    });
    Ok(())
}

/// Pump `rx` into `w` until the channel ends, then shut the stream's write side down.
pub async fn write_all_from<W: tokio::io::AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Bytes>,
) {
    while let Some(b) = rx.recv().await {
        if w.write_all(&b).await.is_err() {
            return;
        }
        let _ = w.flush().await;
    }
    let _ = w.shutdown().await;
}

/// Whether `c` has begun a run since `(started_at)` was seen (or is gone: a `--rm` run that
/// already ended).
fn begun_since(c: &Container, started_at: i64) -> bool {
    match c.state() {
        Ok(st) => c.monitor_running() || st.started_at != started_at,
        Err(_) => true,
    }
}

/// `POST /containers/{id}/attach?stream&stdin&stdout&stderr&logs`: hijack the connection;
/// the container's output from now on (and with `logs`, what it wrote before) goes out,
/// the client's input goes to its stdin.
pub async fn attach(s: &Arc<Service>, mut c: Call, id: &str) -> ApiResult {
    let (engine, id) = (s.engine.clone(), id.to_owned());
    let container = {
        let (engine, id) = (engine.clone(), id.clone());
        blocking(move || Ok(engine.container(&id)?)).await?
    };
    let st = container
        .state()
        .map_err(rbuild_engine::EngineError::from)?;
    let out = Output {
        tty: container.record.tty,
        stdout: c.flag("stdout"),
        stderr: c.flag("stderr"),
        timestamps: false,
    };
    let (want_stdin, want_stream, want_logs) = (c.flag("stdin"), c.flag("stream"), c.flag("logs"));
    // The log is opened now (made if the container never ran), so output written after
    // this call is seen even if the container is removed at its end before we read.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(container.log_path())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let offset = if want_logs {
        0
    } else {
        log.metadata().map(|m| m.len()).unwrap_or(0)
    };
    let started_at = st.started_at;
    let was_active = st.status.is_active();
    let ct = content_type(&c, out.tty);
    hijack(s, &mut c, move |io| async move {
        let (mut rd, wr) = tokio::io::split(io);
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let writer = tokio::spawn(write_all_from(wr, rx));
        if want_stdin && container.record.interactive {
            let (engine, container) = (engine.clone(), container.clone());
            tokio::spawn(async move {
                // The monitor takes input once the run is recorded as started (before, its
                // socket accepts but has no stdin to write to).
                let sock = tokio::task::spawn_blocking(move || {
                    loop {
                        let st = container.state().ok()?;
                        let current = was_active || st.started_at != started_at;
                        if current && st.status == rbuild_runner::lifecycle::Status::Running {
                            return engine.attach_stdin(&container).ok().flatten();
                        }
                        if current && !st.status.is_active() {
                            return None;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
                .await
                .ok()
                .flatten();
                let Some(sock) = sock else { return };
                if sock.set_nonblocking(true).is_err() {
                    return;
                }
                let Ok(mut sock) = tokio::net::UnixStream::from_std(sock) else {
                    return;
                };
                let mut buf = vec![0u8; 32 << 10];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if sock.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = sock.shutdown().await;
            });
        }
        if want_stream || want_logs {
            let _ = tokio::task::spawn_blocking(move || {
                let c = container;
                // Attached before its start (docker's `run`, `start -a`): wait for it.
                if want_stream && !was_active {
                    while !begun_since(&c, started_at) {
                        if tx.is_closed() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                let send = |e: &LogEntry| match out.encode(e) {
                    Some(b) => tx.blocking_send(b).is_ok(),
                    None => !tx.is_closed(),
                };
                if want_stream {
                    follow(&c, log, offset, send, &|| !tx.is_closed());
                } else {
                    let mut log = log;
                    let mut offset = offset;
                    let mut send = send;
                    read_entries(&mut log, &mut offset, &mut send);
                }
            })
            .await;
        } else {
            drop(tx);
        }
        let _ = writer.await;
    })?;
    Ok(upgrade_reply(ct))
}
