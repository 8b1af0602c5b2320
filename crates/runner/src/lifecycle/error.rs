//! Errors of the container records: lookups, names and state files.

use std::path::PathBuf;

/// What can go wrong finding, creating or updating a container's record.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No container has this ID, ID prefix or name.
    #[error("No such container: {0}")]
    NotFound(String),
    /// An ID prefix matches several containers.
    #[error("multiple IDs found with provided prefix: {0}")]
    Ambiguous(String),
    /// The name belongs to another container.
    #[error("the container name \"/{name}\" is already in use by container \"{id}\"")]
    NameInUse {
        /// The name asked for.
        name: String,
        /// The container that has it.
        id: String,
    },
    /// The name breaks docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    #[error("invalid container name ({0:?}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    /// A record file cannot be decoded.
    #[error("{path}: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// No volume has this name.
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    /// A container's record mounts the volume.
    #[error("remove {name}: volume is in use - [{id}]")]
    VolumeInUse {
        /// The volume.
        name: String,
        /// A container using it.
        id: String,
    },
    /// The operation needs a running container.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The operation needs a stopped container.
    #[error("container {0} is running")]
    Running(String),
}
