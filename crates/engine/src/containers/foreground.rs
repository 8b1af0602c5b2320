//! A container run in the foreground (`docker run` without `-d`): the calling process is its
//! monitor. The engine claims the monitor lock, forwards the published ports, spawns and
//! records the run, and ends it (recording the exit, removing an `--rm` container); the
//! front end owns the terminal, standard streams and signal forwarding in between.

use std::os::fd::OwnedFd;

use rbuild_runner::lifecycle::Container;
use rbuild_runner::lifecycle::monitor::{self, Published};
use rbuild_runner::network::ContainerNetwork;
use rbuild_runner::{Outcome, Running, Stdio};

use crate::Engine;
use crate::error::{EngineError, Result, ResultExt};
use crate::events::{Event, EventType};

/// A container this process is the monitor of, from [`Engine::foreground`] to
/// [`Foreground::finish`].
#[derive(Debug)]
pub struct Foreground {
    container: Container,
    engine: Engine,
    published: Published,
    net: Option<ContainerNetwork>,
    /// The healthcheck's probes of the current run.
    prober: std::sync::Mutex<Option<rbuild_runner::lifecycle::health::Prober>>,
    _monitor: OwnedFd,
}

impl Engine {
    /// Become `c`'s monitor: claim its monitor lock and listen on its published ports. A
    /// container already running is a [`EngineError::Conflict`]; a port that cannot be
    /// bound is recorded as the start's failure (and an `--rm` container removed).
    pub fn foreground(&self, c: &Container) -> Result<Foreground> {
        let claimed = c.claim_monitor()?.ok_or_else(|| {
            EngineError::Conflict(format!("container {} is already running", c.id()))
        })?;
        let prepared = monitor::attach_network(c, self.monitor_program())
            .and_then(|net| Ok((net, monitor::publish(c)?)));
        let (net, published) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let _ = monitor::record_start_failure(c, &e);
                if c.record.auto_remove {
                    let _ = c.remove();
                }
                return Err(e.into());
            }
        };
        Ok(Foreground {
            container: c.clone(),
            engine: self.clone(),
            published,
            net,
            prober: Default::default(),
            _monitor: claimed,
        })
    }
}

impl Foreground {
    /// The container.
    pub fn container(&self) -> &Container {
        &self.container
    }

    /// Spawn the container's process with `stdio` and record it as started (a failure is
    /// recorded too). Sends a `start` event.
    pub fn spawn(&self, stdio: Stdio) -> std::result::Result<Running, rbuild_runner::Error> {
        let c = &self.container;
        let lock = c.lock()?;
        let running =
            match rbuild_runner::spawn(monitor::container_config(c, stdio, self.net.as_ref())?) {
                Ok(r) => r,
                Err(e) => {
                    drop(lock);
                    let _ = monitor::record_start_failure(c, &e);
                    return Err(e);
                }
            };
        monitor::record_start(c, &lock, &running, &self.published.bound)?;
        drop(lock);
        self.published.target.set(running.pid());
        let prober =
            rbuild_runner::lifecycle::health::start(c, running.pid(), self.engine.health_events(c))
                .unwrap_or(None);
        if let Ok(mut p) = self.prober.lock() {
            *p = prober;
        }
        self.engine.emit(Event::now(
            EventType::Container,
            "start",
            c.id(),
            [("name", c.name().to_owned())],
        ));
        Ok(running)
    }

    /// Wait for the run `ran` started (or why it did not) to end and record its exit.
    /// Sends a `die` event.
    pub fn wait(
        &self,
        ran: std::result::Result<Running, rbuild_runner::Error>,
    ) -> std::result::Result<Outcome, rbuild_runner::Error> {
        let c = &self.container;
        let outcome = ran.and_then(|running| {
            running.wait_exit_ready()?;
            if let Ok(mut p) = self.prober.lock() {
                drop(p.take());
            }
            monitor::record_exit(c, running).map(|(_, o)| o)
        })?;
        self.engine.emit(Event::now(
            EventType::Container,
            "die",
            c.id(),
            [
                ("name", c.name().to_owned()),
                ("exitCode", outcome.status.code().to_string()),
            ],
        ));
        Ok(outcome)
    }

    /// Stop forwarding ports, give up the monitor lock, and remove an `--rm` container
    /// (with its anonymous volumes).
    pub fn finish(self) -> Result<()> {
        let Foreground {
            container: c,
            engine,
            published,
            net,
            prober,
            _monitor,
        } = self;
        drop(prober);
        drop(published);
        drop(net);
        drop(_monitor);
        if c.record.auto_remove {
            c.remove()
                .and_then(|()| c.remove_anonymous_volumes())
                .with_context(|| format!("removing container {}", c.id()))?;
            engine.emit(Event::now(
                EventType::Container,
                "destroy",
                c.id(),
                [("name", c.name().to_owned())],
            ));
        }
        Ok(())
    }
}
