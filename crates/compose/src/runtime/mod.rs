//! Running a project on rbuild's engine, as docker compose v2 does on dockerd: networks
//! `PROJECT_default` and `PROJECT_NAME`, volumes `PROJECT_NAME`, images built or pulled,
//! containers `PROJECT-SERVICE-N` carrying compose's labels (so `ps`, `down` and a second
//! `up` find them, and `up` recreates only the services whose config hash changed).
//!
//! Nothing is printed here: what happens to each resource goes to a [`Progress`].

mod down;
mod files;
mod images;
pub mod labels;
mod oneoff;
mod resources;
mod service;
mod up;

use rbuild_engine::{ContainerSummary, Engine, EngineError, ListOptions};
use rbuild_runner::lifecycle::Container;

use crate::error::ComposeError;
use crate::project::Project;

pub use down::{DownOptions, RemoveImages};
pub use oneoff::RunOptions;
pub use up::{Images, UpOptions};

/// What a [`Progress`] line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A network.
    Network,
    /// A volume.
    Volume,
    /// A container.
    Container,
    /// An image.
    Image,
}

impl Kind {
    /// As docker compose words it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Network => "Network",
            Kind::Volume => "Volume",
            Kind::Container => "Container",
            Kind::Image => "Image",
        }
    }
}

/// What happened to a resource, in docker compose's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Being made.
    Creating,
    /// Made.
    Created,
    /// Being started.
    Starting,
    /// Started.
    Started,
    /// Already running and up to date.
    Running,
    /// Being replaced (its configuration changed).
    Recreate,
    /// Replaced.
    Recreated,
    /// Being stopped.
    Stopping,
    /// Stopped.
    Stopped,
    /// Being removed.
    Removing,
    /// Removed.
    Removed,
    /// Being built.
    Building,
    /// Built.
    Built,
    /// Waiting for a dependency.
    Waiting,
    /// A dependency exited (successfully).
    Exited,
    /// A dependency's healthcheck passed.
    Healthy,
    /// Being restarted.
    Restarting,
    /// Restarted.
    Restarted,
    /// Being killed.
    Killing,
    /// Killed.
    Killed,
    /// Being paused.
    Pausing,
    /// Paused.
    Paused,
    /// Being unpaused.
    Unpausing,
    /// Unpaused.
    Unpaused,
}

impl Status {
    /// As docker compose words it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "Creating",
            Status::Created => "Created",
            Status::Starting => "Starting",
            Status::Started => "Started",
            Status::Running => "Running",
            Status::Recreate => "Recreate",
            Status::Recreated => "Recreated",
            Status::Stopping => "Stopping",
            Status::Stopped => "Stopped",
            Status::Removing => "Removing",
            Status::Removed => "Removed",
            Status::Building => "Building",
            Status::Built => "Built",
            Status::Waiting => "Waiting",
            Status::Exited => "Exited",
            Status::Healthy => "Healthy",
            Status::Restarting => "Restarting",
            Status::Restarted => "Restarted",
            Status::Killing => "Killing",
            Status::Killed => "Killed",
            Status::Pausing => "Pausing",
            Status::Paused => "Paused",
            Status::Unpausing => "Unpausing",
            Status::Unpaused => "Unpaused",
        }
    }

    /// Whether this ends the resource's operation (`Created`, not `Creating`).
    pub fn is_done(self) -> bool {
        !matches!(
            self,
            Status::Creating
                | Status::Starting
                | Status::Recreate
                | Status::Stopping
                | Status::Removing
                | Status::Building
                | Status::Waiting
                | Status::Restarting
                | Status::Killing
                | Status::Pausing
                | Status::Unpausing
        )
    }
}

/// Where the runtime reports what it does (the CLI prints docker compose's lines).
pub trait Progress: Sync {
    /// `kind` `name` reached `status`.
    fn event(&self, kind: Kind, name: &str, status: Status);
    /// Something the user should know (orphan containers).
    fn warning(&self, message: &str);
}

/// A [`Progress`] that drops everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: Kind, _: &str, _: Status) {}
    fn warning(&self, _: &str) {}
}

/// A project on an engine: the verbs of `docker compose`.
pub struct Runtime<'a> {
    engine: &'a Engine,
    project: &'a Project,
    progress: &'a dyn Progress,
}

impl std::fmt::Debug for Runtime<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("project", &self.project.name)
            .finish_non_exhaustive()
    }
}

/// An engine error with what was being done.
pub(crate) fn engine_err(context: impl Into<String>) -> impl FnOnce(EngineError) -> ComposeError {
    let context = context.into();
    move |source| ComposeError::Engine {
        context,
        source: Box::new(source),
    }
}

/// A project's container and its service and replica number.
#[derive(Debug, Clone)]
pub struct ServiceContainer {
    /// The container and its state when listed.
    pub summary: ContainerSummary,
    /// Its service (`com.docker.compose.service`).
    pub service: String,
    /// Its replica number.
    pub number: u64,
    /// Whether it is a `run` one-off.
    pub oneoff: bool,
}

impl ServiceContainer {
    /// The container.
    pub fn container(&self) -> &Container {
        &self.summary.container
    }
}

impl<'a> Runtime<'a> {
    /// `project` on `engine`, reporting to `progress`.
    pub fn new(engine: &'a Engine, project: &'a Project, progress: &'a dyn Progress) -> Self {
        Runtime {
            engine,
            project,
            progress,
        }
    }

    /// The project's containers (stopped ones too), by service then number; one-offs only
    /// with `oneoff`.
    pub fn containers(&self, oneoff: bool) -> Result<Vec<ServiceContainer>, ComposeError> {
        let list = self
            .engine
            .list_containers(&ListOptions {
                all: true,
                limit: None,
                filters: vec![(
                    "label".into(),
                    format!("{}={}", labels::PROJECT, self.project.name),
                )],
            })
            .map_err(engine_err("listing the project's containers"))?;
        let mut out: Vec<ServiceContainer> = list
            .into_iter()
            .map(|summary| {
                let l = &summary.container.record.labels;
                ServiceContainer {
                    service: l.get(labels::SERVICE).cloned().unwrap_or_default(),
                    number: l
                        .get(labels::NUMBER)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    oneoff: l.get(labels::ONEOFF).is_some_and(|v| v == "True"),
                    summary,
                }
            })
            .filter(|c| oneoff || !c.oneoff)
            .collect();
        out.sort_by(|a, b| {
            (&a.service, a.number, a.container().name()).cmp(&(
                &b.service,
                b.number,
                b.container().name(),
            ))
        });
        Ok(out)
    }

    /// The named services exist (an error naming the first that does not).
    pub fn check_services(&self, names: &[String]) -> Result<(), ComposeError> {
        for n in names {
            if !self.project.model.services.keys().any(|k| k.as_str() == n) {
                return Err(ComposeError::Failed(format!("no such service: {n}")));
            }
        }
        Ok(())
    }

    /// The project's containers of `services` (all when empty), one-offs excluded.
    pub fn service_containers(
        &self,
        services: &[String],
    ) -> Result<Vec<ServiceContainer>, ComposeError> {
        self.check_services(services)?;
        Ok(self
            .containers(false)?
            .into_iter()
            .filter(|c| services.is_empty() || services.contains(&c.service))
            .collect())
    }

    /// `stop [-t N] [SERVICE...]`: in reverse dependency order.
    pub fn stop(&self, services: &[String], timeout: Option<i64>) -> Result<(), ComposeError> {
        let order = self.project.service_order();
        let mut cs = self.service_containers(services)?;
        cs.sort_by_key(|c| std::cmp::Reverse(order.iter().position(|s| *s == c.service)));
        let cs: Vec<Container> = cs.iter().map(|c| c.container().clone()).collect();
        self.stop_all(&cs, timeout)
    }

    /// Stop `cs` at once (each may wait its grace period), as docker compose does.
    pub(crate) fn stop_all(
        &self,
        cs: &[Container],
        timeout: Option<i64>,
    ) -> Result<(), ComposeError> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = cs
                .iter()
                .map(|c| scope.spawn(move || self.stop_one(c, timeout)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a stop thread"))
                .collect::<Result<Vec<()>, ComposeError>>()
        })?;
        Ok(())
    }

    pub(crate) fn stop_one(&self, c: &Container, timeout: Option<i64>) -> Result<(), ComposeError> {
        let running = c.state().is_ok_and(|s| s.status.is_active());
        if !running {
            return Ok(());
        }
        self.progress
            .event(Kind::Container, c.name(), Status::Stopping);
        self.engine
            .stop(c, timeout, None)
            .map_err(engine_err(format!("stopping {}", c.name())))?;
        self.progress
            .event(Kind::Container, c.name(), Status::Stopped);
        Ok(())
    }

    /// `start [SERVICE...]`: the existing containers, in dependency order.
    pub fn start(&self, services: &[String]) -> Result<(), ComposeError> {
        let order = self.project.service_order();
        let mut cs = self.service_containers(services)?;
        cs.sort_by_key(|c| order.iter().position(|s| *s == c.service));
        for c in cs {
            if c.summary.state.status.is_active() {
                continue;
            }
            self.start_one(c.container())?;
        }
        Ok(())
    }

    pub(crate) fn start_one(&self, c: &Container) -> Result<(), ComposeError> {
        self.progress
            .event(Kind::Container, c.name(), Status::Starting);
        self.engine
            .start(c)
            .map_err(engine_err(format!("starting {}", c.name())))?;
        self.progress
            .event(Kind::Container, c.name(), Status::Started);
        Ok(())
    }

    /// `restart [-t N] [SERVICE...]`.
    pub fn restart(&self, services: &[String], timeout: Option<i64>) -> Result<(), ComposeError> {
        for c in self.service_containers(services)? {
            let name = c.container().name().to_owned();
            self.progress
                .event(Kind::Container, &name, Status::Restarting);
            self.engine
                .restart(c.container(), timeout, None)
                .map_err(engine_err(format!("restarting {name}")))?;
            self.progress
                .event(Kind::Container, &name, Status::Restarted);
        }
        Ok(())
    }

    /// `kill [-s SIGNAL] [SERVICE...]`: the running containers get `signal`.
    pub fn kill(&self, services: &[String], signal: i32) -> Result<(), ComposeError> {
        for c in self.service_containers(services)? {
            if !c.summary.state.status.is_active() {
                continue;
            }
            let name = c.container().name().to_owned();
            self.progress.event(Kind::Container, &name, Status::Killing);
            self.engine
                .kill(c.container(), signal)
                .map_err(engine_err(format!("killing {name}")))?;
            self.progress.event(Kind::Container, &name, Status::Killed);
        }
        Ok(())
    }

    /// `pause [SERVICE...]` (`pause = true`) or `unpause`.
    pub fn pause(&self, services: &[String], pause: bool) -> Result<(), ComposeError> {
        for c in self.service_containers(services)? {
            let name = c.container().name().to_owned();
            let (doing, done) = if pause {
                (Status::Pausing, Status::Paused)
            } else {
                (Status::Unpausing, Status::Unpaused)
            };
            self.progress.event(Kind::Container, &name, doing);
            let r = if pause {
                self.engine.pause(c.container())
            } else {
                self.engine.unpause(c.container())
            };
            r.map_err(engine_err(format!(
                "{} {name}",
                if pause { "pausing" } else { "unpausing" }
            )))?;
            self.progress.event(Kind::Container, &name, done);
        }
        Ok(())
    }

    /// `rm [-f] [-s] [-v] [SERVICE...]`: the stopped containers (running ones too with
    /// `stop`); their names.
    pub fn rm(
        &self,
        services: &[String],
        stop: bool,
        volumes: bool,
    ) -> Result<Vec<String>, ComposeError> {
        let mut removed = Vec::new();
        for c in self.service_containers(services)? {
            if c.summary.state.status.is_active() {
                if !stop {
                    continue;
                }
                self.stop_one(c.container(), None)?;
            }
            self.remove_one(c.container(), volumes)?;
            removed.push(c.container().name().to_owned());
        }
        Ok(removed)
    }

    pub(crate) fn remove_one(&self, c: &Container, volumes: bool) -> Result<(), ComposeError> {
        self.progress
            .event(Kind::Container, c.name(), Status::Removing);
        self.engine
            .remove_container(c, true, volumes)
            .map_err(engine_err(format!("removing {}", c.name())))?;
        self.progress
            .event(Kind::Container, c.name(), Status::Removed);
        Ok(())
    }
}
