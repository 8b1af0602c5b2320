//! Starting a detached container: the engine claims its `monitor.lock` and hands it to a
//! re-execution of the front end (`MONITOR --root ROOT container-monitor ID`, descriptor 3)
//! in its own session, which calls [`Engine::serve_monitor`]; the monitor reports the first
//! start on its standard output (`ok PID` or `error STATUS MESSAGE`) and lives on after the
//! starting process exits.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::libc;
use rbuild_runner::lifecycle::{Container, ContainerState, Status, monitor};

use crate::Engine;
use crate::error::{EngineError, Result, ResultExt};
use crate::events::{Event, EventType};

impl Engine {
    /// Start `c`'s monitor and wait for its first start; `Ok(false)` if it was already
    /// running. A failed start is [`EngineError::Start`] with docker's status (125, or
    /// 126/127 for the command). Sends a `start` event.
    pub fn start(&self, c: &Container) -> Result<bool> {
        c.state()?;
        let lock = c.lock()?;
        let Some(claim) = c.claim_monitor()? else {
            return Ok(false);
        };
        let mut st = c.stored_state()?;
        st.manually_stopped = false;
        st.restart_count = 0;
        c.write_state(&lock, &st)?;
        let errors = File::options()
            .create(true)
            .append(true)
            .open(c.dir().join("monitor.log"))
            .with_context(|| format!("opening {}", c.dir().join("monitor.log").display()))?;
        let fd = claim.as_raw_fd();
        // The monitor works from /, so it holds no directory of the caller's busy.
        let root = self.root();
        let mut cmd = Command::new(self.monitor_program());
        cmd.arg("--root")
            .arg(root)
            .arg("container-monitor")
            .arg(c.id())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(errors);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                libc::chdir(c"/".as_ptr());
                if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0);
                } else if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting the monitor of container {}", c.id()))?;
        drop(claim);
        drop(lock);
        let mut report = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut report);
        }
        // The monitor lives on; it is reparented when we exit.
        std::mem::forget(child);
        let report = report.trim();
        if report.starts_with("ok ") {
            self.emit(Event::now(
                EventType::Container,
                "start",
                c.id(),
                [
                    ("image", c.record.image.clone()),
                    ("name", c.name().to_owned()),
                ],
            ));
            return Ok(true);
        }
        let (status, message) = report
            .strip_prefix("error ")
            .and_then(|r| r.split_once(' '))
            .and_then(|(code, msg)| Some((code.parse::<u8>().ok()?, msg.to_owned())))
            .unwrap_or((
                125,
                format!(
                    "the monitor of container {} ended without reporting (see {})",
                    c.id(),
                    c.dir().join("monitor.log").display()
                ),
            ));
        Err(EngineError::Start { status, message })
    }

    /// What a healthcheck's changes of status become: docker's `health_status: STATUS`
    /// events, sent from the monitor's probe thread.
    pub(crate) fn health_events(&self, c: &Container) -> monitor::HealthObserver {
        let engine = self.clone();
        let (id, image, name) = (
            c.id().to_owned(),
            c.record.image.clone(),
            c.name().to_owned(),
        );
        std::sync::Arc::new(move |status| {
            engine.emit(Event::now(
                EventType::Container,
                &format!("health_status: {}", status.as_str()),
                &id,
                [("image", image.clone()), ("name", name.clone())],
            ));
        })
    }

    /// dockerd's start at boot, for a machine without a daemon: start each container whose
    /// restart policy says so (`always`, `unless-stopped` unless a user stopped it,
    /// `on-failure` after a failure) and that is exited or dead (dead ones were running when
    /// their monitor or the machine went down). Returns each container tried and whether
    /// it started (`Ok(false)`: it was running already).
    pub fn autostart(&self) -> Result<Vec<(Container, Result<bool>)>> {
        let mut out = Vec::new();
        for c in self.containers().list()? {
            let st = c.state()?;
            if !matches!(st.status, Status::Exited | Status::Dead)
                || !c
                    .record
                    .restart
                    .starts_at_boot(st.exit_code, st.manually_stopped)
            {
                continue;
            }
            let started = self.start(&c);
            out.push((c, started));
        }
        Ok(out)
    }

    /// Be the monitor of container `id` (the front end's `container-monitor` command, see
    /// [`Engine`]): `claim` is its claimed `monitor.lock`; the first start is reported on
    /// standard output, which is then closed. Returns the container's last state, when its
    /// restart policy lets it end.
    pub fn serve_monitor(&self, id: &str, claim: OwnedFd) -> Result<ContainerState> {
        let c = self.container(id)?;
        let report = |r: std::result::Result<i32, &rbuild_runner::Error>| {
            use std::io::Write;
            let line = match r {
                Ok(pid) => format!("ok {pid}\n"),
                Err(e) => format!(
                    "error {} {}\n",
                    monitor::start_failure_code(e),
                    e.to_string().replace('\n', " ")
                ),
            };
            let mut out = std::io::stdout();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
            // Close the report pipe: the starting command reads until EOF.
            if let Ok(null) = File::options().write(true).open("/dev/null") {
                // SAFETY: replacing our own standard output.
                unsafe { libc::dup2(null.as_raw_fd(), 1) };
            }
        };
        // Observers in other processes learn of each run's end and restart through the
        // journal: docker's `die` (with the exit code) and `start`.
        let attrs = || {
            [
                ("image", c.record.image.clone()),
                ("name", c.name().to_owned()),
            ]
        };
        let health = self.health_events(&c);
        let last = monitor::supervise_with_health(
            &c,
            claim,
            self.monitor_program(),
            report,
            |e| match e {
                monitor::RunEvent::Exited(st) => {
                    let mut die = Event::now(EventType::Container, "die", c.id(), attrs());
                    die.actor
                        .attributes
                        .insert("exitCode".into(), st.exit_code.to_string());
                    self.emit(die);
                }
                monitor::RunEvent::Restarted(_) => {
                    self.emit(Event::now(EventType::Container, "start", c.id(), attrs()));
                }
            },
            health,
        )?;
        if !c.dir().exists() {
            self.emit(Event::now(EventType::Container, "destroy", c.id(), attrs()));
        }
        Ok(last)
    }
}
