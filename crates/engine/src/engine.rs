//! [`Engine`]: the store root, the registry settings, where events go and how a detached
//! container's monitor is started.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rbuild_runner::lifecycle::{Container, Containers, Volumes};
use rbuild_store::Store;

use crate::error::{Result, ResultExt};
use crate::events::{Event, EventSink, NoEvents};
use crate::journal::Journal;
use crate::registry::RegistrySettings;

/// The operations users perform on images, containers, volumes and registries, over one store
/// root. Cheap to make: the store is opened on first use.
///
/// A detached container is supervised by a monitor process: the engine starts
/// `MONITOR --root ROOT container-monitor ID` (with [`Engine::monitor_program`] as MONITOR,
/// by default this very program, `/proc/self/exe`) and hands it the container's claimed
/// monitor lock as descriptor 3; the front end's binary answers that command line by calling
/// [`Engine::serve_monitor`].
#[derive(Clone)]
pub struct Engine {
    root: PathBuf,
    store: OnceLock<Store>,
    registry: RegistrySettings,
    events: Arc<dyn EventSink>,
    journal: Option<Journal>,
    monitor: PathBuf,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("root", &self.root)
            .field("registry", &self.registry)
            .field("monitor", &self.monitor)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over the store at `root` (made absolute: containers record paths under it
    /// and their monitors run from `/`), with default registry settings and no event sink.
    pub fn new(root: impl Into<PathBuf>) -> Engine {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        Engine {
            journal: Some(Journal::new(&root)),
            root,
            store: OnceLock::new(),
            registry: RegistrySettings::default(),
            events: Arc::new(NoEvents),
            monitor: PathBuf::from("/proc/self/exe"),
        }
    }

    /// An engine over a store already opened (its root is the engine's).
    pub fn for_store(store: Store) -> Engine {
        let engine = Engine::new(store.root());
        let _ = engine.store.set(store);
        engine
    }

    /// This engine with other registry settings.
    pub fn with_registry(mut self, registry: RegistrySettings) -> Engine {
        self.registry = registry;
        self
    }

    /// This engine sending its events to `sink`.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Engine {
        self.events = sink;
        self
    }

    /// This engine without the event journal: its events go to its sink only.
    pub fn without_journal(mut self) -> Engine {
        self.journal = None;
        self
    }

    /// The store's event journal, which every engine over the store appends to (unless
    /// made [`Engine::without_journal`]).
    pub fn journal(&self) -> Journal {
        Journal::new(&self.root)
    }

    /// This engine starting detached containers' monitors with `program` (see [`Engine`]).
    pub fn with_monitor_program(mut self, program: impl Into<PathBuf>) -> Engine {
        self.monitor = program.into();
        self
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The registry settings.
    pub fn registry(&self) -> &RegistrySettings {
        &self.registry
    }

    /// The program started as a detached container's monitor.
    pub fn monitor_program(&self) -> &Path {
        &self.monitor
    }

    /// The image store, opened on first use.
    pub fn store(&self) -> Result<&Store> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let store = Store::open(&self.root)
            .with_context(|| format!("opening the image store at {}", self.root.display()))?;
        Ok(self.store.get_or_init(|| store))
    }

    /// The containers under the store root.
    pub fn containers(&self) -> Containers {
        Containers::new(&self.root)
    }

    /// The volumes under the store root.
    pub fn volumes(&self) -> Volumes {
        Volumes::new(&self.root)
    }

    /// A container by ID, name or unique ID prefix.
    pub fn container(&self, query: &str) -> Result<Container> {
        Ok(self.containers().get(query)?)
    }

    /// Record `event` in the journal and send it to the sink.
    pub(crate) fn emit(&self, event: Event) {
        if let Some(j) = &self.journal {
            // Best effort: a full disk or a read-only root must not fail the operation.
            let _ = j.append(&event);
        }
        self.events.event(event);
    }
}

/// Now as `2006-01-02T15:04:05Z` (an image config's `created`).
pub(crate) fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    rbuild_builder::config::rfc3339(secs, 0)
}
