//! Containers that outlive the command that started them: their records and state under
//! the store root ([`Containers`], [`Container`]), the monitor that owns a detached
//! container ([`monitor::supervise`]), and its json-file log ([`log`]).
//!
//! rbuild has no daemon: every `rbuild` command reads and updates the files of
//! `<root>/containers/<id>/` under the container's lock, and the liveness of a container's
//! monitor is read from the lock it holds, so a monitor killed with SIGKILL (and its
//! container, which dies with it) is noticed by the next command, which sweeps what is left.

mod error;
pub mod health;
pub mod log;
pub mod monitor;
pub mod names;
pub mod ports;
mod record;
pub mod stdin;
mod store;
pub mod time;
mod volumes;

pub use error::ContainerError;
pub use record::{
    ContainerRecord, ContainerState, LogLimits, MountRecord, PortBinding, Protocol, RestartPolicy,
    Status,
};
pub use store::{Container, Containers, StateLock, new_id};
pub use volumes::{Volume, Volumes};
