//! Containers: create from [`CreateOptions`](crate::CreateOptions), start (a detached
//! monitor), stop, kill, restart, pause, remove and prune, logs, inspect. The records, state
//! and monitor live in the runner's `lifecycle`; this module decides what each user
//! operation does with them.

mod commit;
mod cp;
mod create;
mod exec;
mod foreground;
mod list;
mod logs;
mod monitor;
pub(crate) mod mounts;
mod ops;
mod remove;
mod rename;
mod stop;

use std::path::PathBuf;

use rbuild_runner::lifecycle::Container;

use crate::Engine;
use crate::error::Result;
use crate::inspect::ContainerJson;

pub use commit::CommitOptions;
pub use exec::{Exec, ExecOptions};
pub use foreground::Foreground;
pub use list::{ContainerSummary, ListOptions};
pub use logs::{LogOptions, LogPosition};
pub use ops::Top;

/// A container just created, and what the caller should be told about it.
#[derive(Debug)]
pub struct Created {
    /// The container.
    pub container: Container,
    /// Docker's create warnings.
    pub warnings: Vec<Warning>,
}

/// Something a created container does differently from what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// `-p`/`-P` with `--network host`: the ports are the host's already.
    PortsDiscardedOnHostNetwork,
    /// Overlayfs is not available: the image's layers are copied into this directory.
    CopyingLayers(PathBuf),
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::PortsDiscardedOnHostNetwork => {
                f.write_str("Published ports are discarded when using host network mode")
            }
            Warning::CopyingLayers(dir) => write!(
                f,
                "overlayfs is not available here; copying the image's layers into {}",
                dir.display()
            ),
        }
    }
}

impl Engine {
    /// `docker container inspect` of the container `query` names.
    pub fn container_inspect(&self, query: &str) -> Result<ContainerJson> {
        let c = self.container(query)?;
        let st = c.state()?;
        Ok(ContainerJson::new(&c, &st))
    }
}
