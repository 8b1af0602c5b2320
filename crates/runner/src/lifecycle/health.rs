//! Healthchecks, run by a container's monitor as dockerd runs them (moby's
//! `daemon/health.go`): every `Interval` the probe (`Test`) runs inside the container like
//! an `exec`, with a `Timeout`; exit 0 is healthy and clears the failing streak, anything
//! else (a timeout too) adds to the streak — except while the container is still `starting`
//! within its `StartPeriod` — and `Retries` failures in a row make it unhealthy. The state
//! (`State.Health`: status, failing streak, the last five results) is kept in the
//! container's `state.json`, and each change of status is told to the monitor's observer
//! (docker's `health_status: healthy` event).

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::libc;
use serde::{Deserialize, Serialize};

use super::record::Status;
use super::store::Container;
use super::time::{now_ns, rfc3339_nano};
use crate::container::Stdio;
use crate::error::Error;
use crate::exec::{ExecConfig, exec};

/// Docker's defaults: a probe every 30 s, given 30 s, three failures make it unhealthy.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Docker's default probe timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Docker's default number of failures in a row before `unhealthy`.
pub const DEFAULT_RETRIES: u32 = 3;
/// Results kept in `State.Health.Log` (docker's `maxLogEntries`).
const MAX_LOG_ENTRIES: usize = 5;
/// Bytes of a probe's output kept (docker's `maxOutputLen`).
const MAX_OUTPUT: usize = 4096;

/// Docker's `HealthConfig` (`Config.Healthcheck`), durations in nanoseconds (0: the default).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `[]` (inherit), `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`.
    #[serde(rename = "Test", default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Time between probes.
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// Time a probe may take.
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Time after a start during which failures do not count.
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Failures in a row that make the container unhealthy.
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero_u32")]
    pub retries: u32,
    /// Time between probes during the start period (docker 25's `StartInterval`).
    #[serde(rename = "StartInterval", default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

impl HealthConfig {
    /// Docker's merge of a container's healthcheck options over the image's
    /// (`daemon.merge`): each field not given is the image's.
    pub fn merged_over(self, image: Option<&HealthConfig>) -> HealthConfig {
        let Some(image) = image else { return self };
        HealthConfig {
            test: if self.test.is_empty() {
                image.test.clone()
            } else {
                self.test
            },
            interval: if self.interval == 0 {
                image.interval
            } else {
                self.interval
            },
            timeout: if self.timeout == 0 {
                image.timeout
            } else {
                self.timeout
            },
            start_period: if self.start_period == 0 {
                image.start_period
            } else {
                self.start_period
            },
            retries: if self.retries == 0 {
                image.retries
            } else {
                self.retries
            },
            start_interval: if self.start_interval == 0 {
                image.start_interval
            } else {
                self.start_interval
            },
        }
    }

    /// The command a probe runs, or `None` when the check is disabled (`NONE`, or no test).
    pub fn probe_command(&self) -> Option<Vec<String>> {
        match self.test.first().map(String::as_str) {
            Some("CMD") if self.test.len() > 1 => Some(self.test[1..].to_vec()),
            Some("CMD-SHELL") if self.test.len() > 1 => Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                self.test[1..].join(" "),
            ]),
            _ => None,
        }
    }

    fn duration(ns: i64, default: Duration) -> Duration {
        if ns > 0 {
            Duration::from_nanos(ns as u64)
        } else {
            default
        }
    }

    /// The time between probes.
    pub fn interval(&self) -> Duration {
        Self::duration(self.interval, DEFAULT_INTERVAL)
    }

    /// The time between probes during the start period: the interval unless one is given
    /// (docker 20.10 has none; docker 25 would use 5 s where none is given).
    pub fn start_interval(&self) -> Duration {
        Self::duration(self.start_interval, self.interval())
    }

    /// The time a probe may take.
    pub fn timeout(&self) -> Duration {
        Self::duration(self.timeout, DEFAULT_TIMEOUT)
    }

    /// Failures in a row that make the container unhealthy.
    pub fn retries(&self) -> u32 {
        if self.retries == 0 {
            DEFAULT_RETRIES
        } else {
            self.retries
        }
    }
}

/// A container's health, docker's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Started, no probe has succeeded yet.
    #[default]
    Starting,
    /// The last probe succeeded.
    Healthy,
    /// `Retries` probes in a row failed.
    Unhealthy,
}

impl Health {
    /// What docker's status line shows: `health: starting`, `healthy` or `unhealthy`
    /// (`Up 3 seconds (healthy)`).
    pub fn summary(&self) -> &'static str {
        match self.status {
            HealthStatus::Starting => "health: starting",
            s => s.as_str(),
        }
    }
}

impl HealthStatus {
    /// `starting`, `healthy` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result (`State.Health.Log[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// When it started (RFC 3339).
    #[serde(rename = "Start")]
    pub start: String,
    /// When it ended (RFC 3339).
    #[serde(rename = "End")]
    pub end: String,
    /// Its exit code; -1 when it timed out or could not run.
    #[serde(rename = "ExitCode")]
    pub exit_code: i32,
    /// Its output (standard output and error), at most 4096 bytes.
    #[serde(rename = "Output")]
    pub output: String,
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    /// The status.
    #[serde(rename = "Status")]
    pub status: HealthStatus,
    /// Failed probes in a row.
    #[serde(rename = "FailingStreak")]
    pub failing_streak: u32,
    /// The last five results, oldest first.
    #[serde(rename = "Log")]
    pub log: Vec<HealthResult>,
}

impl Health {
    /// Take in one result as dockerd does; `in_start_period` when the probe began within
    /// the start period after the container's start.
    pub fn record(&mut self, result: HealthResult, retries: u32, in_start_period: bool) {
        if result.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(self.status == HealthStatus::Starting && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.log.push(result);
        if self.log.len() > MAX_LOG_ENTRIES {
            let extra = self.log.len() - MAX_LOG_ENTRIES;
            self.log.drain(..extra);
        }
    }
}

/// A running container's probes: dropping it stops them (waiting for a probe under way).
#[derive(Debug)]
pub struct Prober {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Prober {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a probe thread is told of status changes.
pub type HealthObserver = Arc<dyn Fn(HealthStatus) + Send + Sync>;

/// Start probing `c`, whose current run is process `pid` (recorded as started), if it has
/// a healthcheck; its health starts as `starting`. `observe` hears each change of status.
pub fn start(c: &Container, pid: i32, observe: HealthObserver) -> Result<Option<Prober>, Error> {
    let Some(config) = c.record.healthcheck.clone() else {
        return Ok(None);
    };
    let Some(cmd) = config.probe_command() else {
        return Ok(None);
    };
    let started = c.update(|st| {
        let mut h = st.health.take().unwrap_or_default();
        h.status = HealthStatus::Starting;
        h.failing_streak = 0;
        st.health = Some(h);
    })?;
    let started_at = started.started_at;
    let (stop, stopped) = mpsc::channel::<()>();
    let c = c.clone();
    let thread = std::thread::Builder::new()
        .name("health".into())
        .spawn(move || {
            let start_period = Duration::from_nanos(config.start_period.max(0) as u64);
            loop {
                // Docker's: probes come every StartInterval while the start period lasts.
                let since_start = Duration::from_nanos((now_ns() - started_at).max(0) as u64);
                let interval = if since_start < start_period {
                    config.start_interval()
                } else {
                    config.interval()
                };
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let began = now_ns();
                let in_start_period =
                    Duration::from_nanos((began - started_at).max(0) as u64) < start_period;
                let result = match probe(&c, pid, &cmd, config.timeout()) {
                    // A probe failing because the container is ending is no verdict.
                    Ok(Some(r)) if r.exit_code != 0 && !alive(pid) => return,
                    Ok(Some(r)) => r,
                    // The run ended: the monitor stops us.
                    Ok(None) => return,
                    Err(_) if !alive(pid) => return,
                    Err(e) => HealthResult {
                        start: rfc3339_nano(began),
                        end: rfc3339_nano(now_ns()),
                        exit_code: -1,
                        output: e.to_string(),
                    },
                };
                let mut change = None;
                let _ = c.update(|st| {
                    if st.pid != pid || st.status != Status::Running {
                        return;
                    }
                    let h = st.health.get_or_insert_with(Health::default);
                    let before = h.status;
                    h.record(result, config.retries(), in_start_period);
                    if h.status != before {
                        change = Some(h.status);
                    }
                });
                if let Some(s) = change {
                    observe(s);
                }
            }
        })
        .map_err(Error::io("health thread"))?;
    Ok(Some(Prober {
        stop: Some(stop),
        thread: Some(thread),
    }))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::Sys {
        call: "pipe2",
        errno,
    })
}

/// Whether the container's first process `pid` still runs: not exiting (`PF_EXITING`: as
/// its PID namespace's init it then waits for the namespace's other processes — our probe
/// among them — before its exit is reported), not a zombie, not gone.
fn alive(pid: i32) -> bool {
    const PF_EXITING: u64 = 0x4;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let mut fields = s.rsplit_once(')')?.1.split_whitespace();
            let state = fields.next()?.chars().next()?;
            // After the state: ppid, pgrp, session, tty_nr, tpgid, then flags.
            let flags: u64 = fields.nth(5)?.parse().ok()?;
            Some(!matches!(state, 'Z' | 'X' | 'x') && flags & PF_EXITING == 0)
        })
        .unwrap_or(false)
}

/// Whether child `pid` has ended (left waitable).
fn ended(pid: i32) -> bool {
    // SAFETY: a zeroed siginfo is valid; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: polling our own child, leaving it waitable.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: si_pid is set when a child was found.
    r == 0 && unsafe { info.si_pid() } != 0
}

/// Run one probe in `c` (whose run is `pid`); `None` when that run no longer runs.
fn probe(
    c: &Container,
    pid: i32,
    cmd: &[String],
    timeout: Duration,
) -> Result<Option<HealthResult>, Error> {
    let spec = c.spec()?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(cmd.to_vec()));
    process.set_terminal(Some(false));
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let (out_r, out_w) = pipe()?;
    let err_w = out_w.try_clone().map_err(Error::io("pipe"))?;
    let null = std::fs::File::open("/dev/null").map_err(Error::io("/dev/null"))?;
    let start = now_ns();
    let running = {
        // The PID stays the container's while its lock is held (the monitor reaps under it).
        let lock = c.lock()?;
        let st = c.stored_state()?;
        if st.status != Status::Running || st.pid != pid {
            return Ok(None);
        }
        let r = exec(ExecConfig {
            pid,
            cgroups: st.cgroups.clone(),
            process,
            seccomp,
            stdio: Stdio {
                stdin: Some(null.into()),
                stdout: Some(out_w),
                stderr: Some(err_w),
                ..Stdio::default()
            },
        });
        drop(lock);
        r?
    };
    let output = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let output = output.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::from(out_r);
            let mut buf = [0u8; 4096];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut o) = output.lock() {
                    let room = MAX_OUTPUT.saturating_sub(o.len());
                    o.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        })
    };
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    while !ended(running.pid()) {
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = running.signal(libc::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = running.wait()?;
    if !timed_out {
        // Output left by a process the probe started in the background is not waited for.
        let _ = reader.join();
    }
    let end = now_ns();
    let mut output =
        String::from_utf8_lossy(&output.lock().map(|o| o.clone()).unwrap_or_default()).into_owned();
    let exit_code = if timed_out {
        output = format!("Health check exceeded timeout ({})", go_duration(timeout));
        -1
    } else {
        status.status.code()
    };
    Ok(Some(HealthResult {
        start: rfc3339_nano(start),
        end: rfc3339_nano(end),
        exit_code,
        output,
    }))
}

/// A duration as Go prints one (`1.5s`, `30s`, `100ms`), for docker's timeout message.
fn go_duration(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i32) -> HealthResult {
        HealthResult {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn status_follows_dockers_rules() {
        let mut h = Health::default();
        h.record(result(1), 2, true);
        assert_eq!(
            (h.status, h.failing_streak),
            (HealthStatus::Starting, 0),
            "failures in the start period do not count"
        );
        h.record(result(1), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 1));
        h.record(result(0), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
        h.record(result(1), 2, true);
        assert_eq!(
            h.failing_streak, 1,
            "once healthy, the start period no longer excuses failures"
        );
        h.record(result(-1), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 2));
        for _ in 0..10 {
            h.record(result(1), 2, false);
        }
        assert_eq!(h.log.len(), 5, "the last five results are kept");
    }

    #[test]
    fn probes_and_merges_as_docker() {
        let shell = HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -e /ok".into()],
            ..Default::default()
        };
        assert_eq!(
            shell.probe_command().unwrap(),
            ["/bin/sh", "-c", "test -e /ok"]
        );
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(none.probe_command(), None);
        let image = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5,
            retries: 7,
            ..Default::default()
        };
        let given = HealthConfig {
            interval: 9,
            ..Default::default()
        }
        .merged_over(Some(&image));
        assert_eq!(given.test, ["CMD", "true"]);
        assert_eq!((given.interval, given.retries), (9, 7));
        assert_eq!(given.timeout(), DEFAULT_TIMEOUT);
        let json = serde_json::to_value(&image).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Test": ["CMD", "true"], "Interval": 5, "Retries": 7})
        );
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
    }
}
