//! What can go wrong loading a compose project; every error names the file, service or key.

use std::path::PathBuf;

/// A compose project could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// No compose file in the directory or its parents, and none given.
    #[error("no configuration file provided: not found in {} or its parents", dir.display())]
    NoFile {
        /// Where the search started.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not YAML, or not a mapping at the top.
    #[error("{}: {message}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value's variables could not be interpolated.
    #[error("{}: {source}", file.display())]
    Interpolate {
        /// The file.
        file: PathBuf,
        /// The failure.
        #[source]
        source: crate::interpolate::InterpolateError,
    },
    /// An env file is malformed.
    #[error("{}: {source}", file.display())]
    EnvFile {
        /// The env file.
        file: PathBuf,
        /// The failure.
        #[source]
        source: crate::env::EnvFileError,
    },
    /// The file does not follow the Compose Specification (an unknown key, a bad port …).
    #[error("{}: {message}", file.display())]
    Invalid {
        /// The file (or the first of the merged files).
        file: PathBuf,
        /// What is wrong, with its path in the file (`services.web: …`).
        message: String,
    },
    /// The project name is unusable once normalized.
    #[error(
        "invalid project name {0:?}: it must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit"
    )]
    ProjectName(String),
    /// A service depends on one the project does not define (or whose profile is off).
    #[error(
        "service {service:?} depends on undefined service {dependency:?}: invalid compose project"
    )]
    UndefinedDependency {
        /// The dependent service.
        service: String,
        /// The missing one.
        dependency: String,
    },
    /// `depends_on` goes round in a circle.
    #[error("dependency cycle detected: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// `extends` names something that cannot be used.
    #[error("service {service:?}: extends: {message}")]
    Extends {
        /// The extending service.
        service: String,
        /// What is wrong.
        message: String,
    },
    /// A key or feature rbuild compose does not have yet.
    #[error("{0}")]
    NotSupported(String),
    /// A service's configuration cannot be run as it is.
    #[error("service {service:?}: {message}")]
    Service {
        /// The service.
        service: String,
        /// What is wrong.
        message: String,
    },
    /// An engine operation failed.
    #[error("{context}")]
    Engine {
        /// What was being done (`creating network p_default`).
        context: String,
        /// The engine's error.
        #[source]
        source: Box<rbuild_engine::EngineError>,
    },
    /// Something the project needs is missing or failed (`network x declared as external,
    /// but could not be found`, a dependency that exited with an error).
    #[error("{0}")]
    Failed(String),
}
