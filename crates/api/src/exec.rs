//! `docker exec` over the API: `POST /containers/{id}/exec` makes an instance (kept in
//! memory, as dockerd does), `POST /exec/{id}/start` runs it on a hijacked connection (or
//! detached), `GET /exec/{id}/json` tells how it went.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use rbuild_engine::ExecOptions;
use rbuild_runner::Stdio;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::containers::Words;
use crate::http::{ApiError, ApiResult, Call, empty, json, json_body, json_status};
use crate::state::{ExecEntry, Service, blocking};
use crate::streams::{frame, hijack, upgrade_reply, write_all_from};

/// The body of `POST /containers/{id}/exec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecBody {
    /// Attach stdin.
    pub attach_stdin: Option<bool>,
    /// Attach stdout.
    pub attach_stdout: Option<bool>,
    /// Attach stderr.
    pub attach_stderr: Option<bool>,
    /// Allocate a terminal.
    pub tty: Option<bool>,
    /// `KEY=VALUE`s.
    pub env: Option<Vec<String>>,
    /// The command.
    pub cmd: Words,
    /// All capabilities.
    pub privileged: Option<bool>,
    /// User.
    pub user: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
}

/// The body of `POST /exec/{id}/start`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StartBody {
    /// Run it in the background.
    pub detach: Option<bool>,
    /// A terminal (the instance's own setting wins).
    pub tty: Option<bool>,
}

/// An exec's streams: the process's, where input goes, and the outputs to pump (each with
/// its framing kind, 0 for a terminal's raw bytes).
type Streams = (Stdio, Option<OwnedFd>, Vec<(OwnedFd, u8)>);

fn new_id() -> String {
    rbuild_runner::lifecycle::new_id()
}

/// `POST /containers/{id}/exec`.
pub async fn create(s: &Arc<Service>, mut c: Call, id: &str) -> ApiResult {
    let b: ExecBody = json_body(c.take_body()?).await?;
    let cmd = match b.cmd {
        Words::Many(v) if !v.is_empty() => v,
        Words::One(s) if !s.is_empty() => vec![s],
        _ => return Err(ApiError::bad("No exec command specified")),
    };
    let opts = ExecOptions {
        cmd,
        env: b.env.unwrap_or_default(),
        workdir: b.working_dir.filter(|w| !w.is_empty()),
        user: b.user.filter(|u| !u.is_empty()),
        tty: b.tty.unwrap_or(false),
        privileged: b.privileged.unwrap_or(false),
    };
    let (engine, cid) = (s.engine.clone(), id.to_owned());
    let (container, exec, opts) = blocking(move || {
        let c = engine.container(&cid)?;
        let exec = engine.exec_create(&c, &opts)?;
        Ok((c.id().to_owned(), exec, opts))
    })
    .await?;
    let exec_id = new_id();
    s.execs.lock().unwrap_or_else(|e| e.into_inner()).insert(
        exec_id.clone(),
        ExecEntry {
            container,
            options: opts,
            exec,
            stdin: b.attach_stdin.unwrap_or(false),
            started: false,
            running: false,
            pid: 0,
            exit_code: None,
        },
    );
    Ok(json_status(StatusCode::CREATED, &json!({"Id": exec_id})))
}

/// `GET /exec/{id}/json`.
pub fn inspect(s: &Arc<Service>, id: &str) -> ApiResult {
    let e = s.with_exec(id, |e| e.clone())?;
    Ok(json(&json!({
        "ID": id,
        "Running": e.running,
        "ExitCode": e.exit_code,
        "ProcessConfig": {
            "tty": e.options.tty,
            "entrypoint": e.options.cmd.first(),
            "arguments": e.options.cmd.get(1..).unwrap_or_default(),
            "privileged": e.options.privileged,
            "user": e.options.user.clone().unwrap_or_default(),
        },
        "OpenStdin": e.stdin,
        "OpenStderr": true,
        "OpenStdout": true,
        "CanRemove": false,
        "ContainerID": e.container,
        "DetachKeys": "",
        "Pid": e.pid,
    })))
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

fn null() -> std::io::Result<OwnedFd> {
    Ok(File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

/// Copy what `from` gives into `tx` (framed as `kind`, or raw with `kind` 0).
fn pump(from: OwnedFd, kind: u8, tx: mpsc::Sender<Bytes>) {
    let mut f = File::from(from);
    let mut buf = vec![0u8; 32 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let b = if kind == 0 {
                    Bytes::copy_from_slice(&buf[..n])
                } else {
                    frame(kind, &buf[..n])
                };
                if tx.blocking_send(b).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO: the terminal's other side closed.
            Err(_) => return,
        }
    }
}

/// `POST /exec/{id}/start`.
pub async fn start(s: &Arc<Service>, mut c: Call, id: &str) -> ApiResult {
    let body: StartBody = json_body(c.take_body()?).await?;
    let entry = s.with_exec(id, |e| {
        if e.started {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Error: Exec command {id} has already run"),
            ));
        }
        e.started = true;
        e.running = true;
        Ok(e.clone())
    })??;
    let tty = entry.options.tty;
    let engine = s.engine.clone();
    let (service, id) = (s.clone(), id.to_owned());
    let exec_id = id.clone();
    let finish = move |service: &Service, code: i32| {
        let _ = service.with_exec(&id, |e| {
            e.running = false;
            e.exit_code = Some(code);
        });
    };
    let fail = |service: &Service, e: &rbuild_runner::Error, finish: &dyn Fn(&Service, i32)| {
        let code = rbuild_runner::lifecycle::monitor::start_failure_code(e);
        finish(service, if code == 125 { 126 } else { code });
    };
    if body.detach.unwrap_or(false) {
        let service2 = service.clone();
        tokio::task::spawn_blocking(move || {
            let stdio = match (null(), null(), null()) {
                (Ok(a), Ok(b), Ok(c)) => Stdio {
                    stdin: Some(a),
                    stdout: Some(b),
                    stderr: Some(c),
                    ..Default::default()
                },
                _ => return finish(&service2, 126),
            };
            match engine.exec_start(&entry.exec, stdio) {
                Ok(r) => {
                    let code = r.wait().map(|o| o.status.code()).unwrap_or(-1);
                    finish(&service2, code);
                }
                Err(e) => fail(&service2, &e, &finish),
            }
        });
        return Ok(empty(StatusCode::OK));
    }
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else if c
        .version
        .as_deref()
        .is_none_or(|v| !crate::http::version_less(v, "1.42"))
    {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    let want_stdin = entry.stdin;
    hijack(s, &mut c, move |io| async move {
        let (mut rd, wr) = tokio::io::split(io);
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let writer = tokio::spawn(write_all_from(wr, rx));
        // The process's streams: a terminal, or pipes.
        let setup = (|| -> std::io::Result<Streams> {
            if tty {
                // A terminal inside the container (its own /dev/pts), as `rbuild exec -t`
                // makes; its master side is taken once the process runs.
                let stdio = Stdio {
                    console: Some(rbuild_runner::ConsoleSize::default()),
                    ..Default::default()
                };
                return Ok((stdio, None, Vec::new()));
            }
            let (stdin, input) = if want_stdin {
                let (r, w) = pipe()?;
                (r, Some(w))
            } else {
                (null()?, None)
            };
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            Ok((
                Stdio {
                    stdin: Some(stdin),
                    stdout: Some(out_w),
                    stderr: Some(err_w),
                    ..Default::default()
                },
                input,
                vec![(out_r, 1), (err_r, 2)],
            ))
        })();
        let (stdio, input, outputs) = match setup {
            Ok(x) => x,
            Err(e) => {
                let _ = tx.send(frame(2, format!("exec: {e}\n").as_bytes())).await;
                finish(&service, 126);
                drop(tx);
                let _ = writer.await;
                return;
            }
        };
        let started = {
            let engine = engine.clone();
            tokio::task::spawn_blocking(move || engine.exec_start(&entry.exec, stdio)).await
        };
        let running = match started {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let msg = format!("OCI runtime exec failed: {e}\n");
                let _ = tx
                    .send(if tty {
                        Bytes::from(msg)
                    } else {
                        frame(2, msg.as_bytes())
                    })
                    .await;
                fail(&service, &e, &finish);
                drop(tx);
                let _ = writer.await;
                return;
            }
            Err(_) => {
                finish(&service, 126);
                return;
            }
        };
        let mut running = running;
        let (input, outputs) = match (tty, running.take_console()) {
            (true, Some(master)) => match master.try_clone() {
                Ok(m) => (want_stdin.then_some(m), vec![(master, 0)]),
                Err(_) => (None, vec![(master, 0)]),
            },
            _ => (input, outputs),
        };
        let pid = running.pid();
        let _ = service.with_exec(&exec_id, |e| e.pid = pid);
        if let Some(input) = input {
            tokio::spawn(async move {
                let (itx, mut irx) = mpsc::channel::<Option<Bytes>>(16);
                let w = tokio::task::spawn_blocking(move || {
                    let mut f = File::from(input);
                    while let Some(Some(b)) = irx.blocking_recv() {
                        if f.write_all(&b).is_err() {
                            return;
                        }
                    }
                    // End of the client's input: the pipe closes (a terminal gets ^D).
                    if tty {
                        let _ = f.write_all(&[4]);
                    }
                });
                let mut buf = vec![0u8; 32 << 10];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if itx
                                .send(Some(Bytes::copy_from_slice(&buf[..n])))
                                .await
                                .is_err()
                            {
                                break;
                            }
                        }
                    }
                }
                let _ = itx.send(None).await;
                let _ = w.await;
            });
        }
        let pumps: Vec<_> = outputs
            .into_iter()
            .map(|(fd, kind)| {
                let tx = tx.clone();
                tokio::task::spawn_blocking(move || pump(fd, kind, tx))
            })
            .collect();
        // The stream stays open until the exit code is recorded: the client asks for it
        // as soon as the stream ends.
        let hold = tx;
        let waited = tokio::task::spawn_blocking(move || running.wait()).await;
        let code = match waited {
            Ok(Ok(o)) => o.status.code(),
            _ => -1,
        };
        // The terminal's master sees EIO once every slave is closed; pipes see EOF.
        for p in pumps {
            let _ = p.await;
        }
        finish(&service, code);
        drop(hold);
        let _ = writer.await;
    })?;
    Ok(upgrade_reply(ct))
}
