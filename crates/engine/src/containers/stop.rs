//! Stopping, killing, restarting and pausing containers.

use std::time::Duration;

use rbuild_runner::lifecycle::{Container, ContainerError, Status, monitor};

use crate::Engine;
use crate::error::{EngineError, Result, ResultExt};
use crate::events::{Event, EventType};
use crate::options::parse_signal;

/// Block until `c`'s monitor has ended, or `timeout` passed; returns whether it ended.
pub fn wait_stopped(c: &Container, timeout: Option<Duration>) -> bool {
    let Some(timeout) = timeout else {
        let _ = c.wait_monitor();
        return true;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = c.clone();
    std::thread::spawn(move || {
        let _ = waiter.wait_monitor();
        let _ = tx.send(());
    });
    rx.recv_timeout(timeout).is_ok()
}

/// Freeze or thaw every process of `c`.
fn set_paused(c: &Container, paused: bool) -> Result<()> {
    c.state()?;
    let lock = c.lock()?;
    let mut st = c.stored_state()?;
    match (st.status, paused) {
        (Status::Running, true) | (Status::Paused, false) => {}
        (Status::Paused, true) => {
            return Err(EngineError::Conflict(format!(
                "container {} is already paused",
                c.id()
            )));
        }
        (_, true) => {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                c.id()
            )));
        }
        (_, false) => {
            return Err(EngineError::Conflict(format!(
                "container {} is not paused",
                c.id()
            )));
        }
    }
    rbuild_runner::cgroup::freeze(&st.cgroups, paused)?;
    st.status = if paused {
        Status::Paused
    } else {
        Status::Running
    };
    c.write_state(&lock, &st)?;
    Ok(())
}

/// Thaw a paused container so a stop or kill signal reaches it (docker does the same).
pub(crate) fn thaw_for_stop(c: &Container) {
    if c.stored_state().is_ok_and(|s| s.status == Status::Paused) {
        let _ = set_paused(c, false);
    }
}

impl Engine {
    /// Stop `c`: its stop signal (or `signal`), then SIGKILL after `time` seconds [default:
    /// its stop timeout, else 10; negative: wait forever]. Sends a `stop` event.
    pub fn stop(&self, c: &Container, time: Option<i64>, signal: Option<&str>) -> Result<()> {
        let st = c.state()?;
        if !st.status.is_active() {
            return Ok(());
        }
        let sig = parse_signal(signal.unwrap_or(&c.record.stop_signal))?;
        let secs = time.unwrap_or_else(|| i64::from(c.record.stop_timeout.unwrap_or(10)));
        thaw_for_stop(c);
        monitor::signal(c, sig, true)?;
        let timeout = (secs >= 0).then(|| Duration::from_secs(secs as u64));
        if !wait_stopped(c, timeout) {
            monitor::signal(c, nix::libc::SIGKILL, true)?;
            wait_stopped(c, None);
        }
        self.emit(Event::now(
            EventType::Container,
            "stop",
            c.id(),
            [("name", c.name().to_owned())],
        ));
        Ok(())
    }

    /// Send signal `sig` to `c`'s process; an error if it is not running. Sends a `kill`
    /// event.
    pub fn kill(&self, c: &Container, sig: i32) -> Result<()> {
        c.state()?;
        if sig == nix::libc::SIGKILL {
            thaw_for_stop(c);
        }
        if !monitor::signal(c, sig, true)? {
            return Err(EngineError::from(ContainerError::NotRunning(
                c.id().to_owned(),
            )))
            .with_context(|| format!("cannot kill container: {}", c.name()));
        }
        self.emit(Event::now(
            EventType::Container,
            "kill",
            c.id(),
            [("name", c.name().to_owned()), ("signal", sig.to_string())],
        ));
        Ok(())
    }

    /// Stop `c` (as [`Engine::stop`]), then start it again.
    pub fn restart(&self, c: &Container, time: Option<i64>, signal: Option<&str>) -> Result<()> {
        self.stop(c, time, signal)?;
        self.start(c).map(|_| ())
    }

    /// Freeze every process of `c` (docker's `pause`).
    pub fn pause(&self, c: &Container) -> Result<()> {
        set_paused(c, true)?;
        self.emit(Event::now(EventType::Container, "pause", c.id(), []));
        Ok(())
    }

    /// Thaw `c`'s processes (docker's `unpause`).
    pub fn unpause(&self, c: &Container) -> Result<()> {
        set_paused(c, false)?;
        self.emit(Event::now(EventType::Container, "unpause", c.id(), []));
        Ok(())
    }
}
