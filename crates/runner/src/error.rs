//! The runner's errors. I/O errors carry the path they concern.

use std::path::PathBuf;

use nix::errno::Errno;

/// Everything that can go wrong preparing, starting or waiting for a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec asks for something the runner cannot express.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// A bind mount's source does not exist or cannot be read.
    #[error("bind mount source {path}: {source}")]
    MountSource {
        /// The host path given as the source.
        path: PathBuf,
        /// Why it could not be used.
        source: std::io::Error,
    },
    /// A file operation of the runner itself failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A kernel operation of the container's setup failed in the child.
    #[error("container setup failed: {step}: {errno}")]
    Setup {
        /// What the child was doing, e.g. `mount proc (proc) on /proc`.
        step: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// The command is not in the container (docker's exit status 127).
    #[error("{command}: executable file not found in the container (searched {searched})")]
    CommandNotFound {
        /// The command as given.
        command: String,
        /// Where it was looked for.
        searched: String,
    },
    /// The command exists but cannot be executed (docker's exit status 126).
    #[error("{command}: cannot execute: {errno}")]
    NotExecutable {
        /// The command as given.
        command: String,
        /// The kernel's answer to execve.
        errno: Errno,
    },
    /// The user or group does not exist in the image.
    #[error("user {spec:?}: {reason}")]
    User {
        /// The `USER[:GROUP]` as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A capability name is not known.
    #[error("unknown capability {0:?}")]
    Capability(String),
    /// The seccomp profile cannot be compiled.
    #[error("seccomp profile: {0}")]
    Seccomp(String),
    /// A cgroup could not be created, configured or removed.
    #[error("cgroup {path}: {source}")]
    Cgroup {
        /// The cgroup file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A container record: lookup, name or state file.
    #[error(transparent)]
    Container(#[from] crate::lifecycle::ContainerError),
    /// A network: its state, plumbing or hub.
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    /// Rootless mode could not do what was asked.
    #[error(transparent)]
    Rootless(#[from] crate::rootless::RootlessError),
    /// A system call of the runner itself (clone, pipe, wait) failed.
    #[error("{call}: {errno}")]
    Sys {
        /// Which call.
        call: &'static str,
        /// The kernel's answer.
        errno: Errno,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
