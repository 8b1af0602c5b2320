//! The engine's error: the kinds a front end maps to its own answers (docker's API: 404 for
//! [`EngineError::NotFound`], 409 for [`EngineError::Conflict`], 400 for
//! [`EngineError::InvalidParameter`]), the lower crates' errors wrapped whole, and the
//! context a step adds ("pulling …", "reading …") as its own link of the `source()` chain, so
//! a front end prints the same `error:` / `caused by:` lines the code printed before it moved.

use std::path::PathBuf;

/// What can go wrong in an engine operation.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The object asked for does not exist (docker's 404).
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with the object's state or with another object (docker's 409).
    #[error("{0}")]
    Conflict(String),
    /// An option or argument is invalid (docker's 400).
    #[error("{0}")]
    InvalidParameter(String),
    /// The operation failed for a reason of its own, stated in the message.
    #[error("{0}")]
    Failed(String),
    /// A container failed to start; `status` is docker's exit status for it (125, or 126/127
    /// when its command cannot be run).
    #[error("{message}")]
    Start {
        /// Docker's exit status for the failure.
        status: u8,
        /// What went wrong.
        message: String,
    },
    /// A step's description wrapped around the error that made it fail.
    #[error("{message}")]
    Context {
        /// What was being done.
        message: String,
        /// Why it failed.
        #[source]
        source: Box<EngineError>,
    },
    /// An error with advice for the user; shown as the error it wraps.
    #[error(transparent)]
    Hinted(Box<Hinted>),
    /// The image store failed.
    #[error(transparent)]
    Store(#[from] rbuild_store::StoreError),
    /// A registry transfer failed.
    #[error(transparent)]
    Registry(#[from] rbuild_registry::RegistryError),
    /// The runner or a container record failed.
    #[error(transparent)]
    Runner(#[from] rbuild_runner::Error),
    /// A build failed.
    #[error(transparent)]
    Build(#[from] rbuild_builder::BuildError),
    /// A manifest or index cannot be decoded.
    #[error(transparent)]
    Manifest(#[from] rbuild_oci::manifest::ManifestError),
    /// A Dockerfile instruction cannot be parsed or expanded.
    #[error(transparent)]
    Parse(#[from] rbuild_parser::ParseError),
    /// An image reference cannot be parsed.
    #[error(transparent)]
    Reference(#[from] rbuild_oci::ReferenceError),
    /// A platform cannot be parsed.
    #[error(transparent)]
    Platform(#[from] rbuild_oci::PlatformError),
    /// A digest cannot be parsed.
    #[error(transparent)]
    Digest(#[from] rbuild_oci::DigestError),
    /// JSON cannot be encoded or decoded.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A finished temporary file could not be renamed into place.
    #[error(transparent)]
    Persist(#[from] tempfile::PersistError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system's answer.
        source: std::io::Error,
    },
    /// An operation without a path failed.
    #[error(transparent)]
    Os(#[from] std::io::Error),
}

impl From<rbuild_runner::lifecycle::ContainerError> for EngineError {
    fn from(e: rbuild_runner::lifecycle::ContainerError) -> Self {
        EngineError::Runner(e.into())
    }
}

/// An error and the advice that goes with it; reads as the error itself (its message, then
/// its causes), so the advice never shows as a cause.
#[derive(Debug)]
pub struct Hinted {
    /// The error.
    pub error: EngineError,
    /// The advice (`images come from …`).
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

/// The engine's result.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    /// This error with advice for the user attached.
    pub fn with_hint(self, hint: impl Into<String>) -> EngineError {
        EngineError::Hinted(Box::new(Hinted {
            error: self,
            hint: hint.into(),
        }))
    }

    /// The advice this error carries, if any (on itself, not its causes).
    pub fn hint(&self) -> Option<&str> {
        match self {
            EngineError::Hinted(h) => Some(&h.hint),
            _ => None,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> EngineError {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }

    /// `e` as an engine error, if it is one: a front end walking a `source()` chain meets
    /// the engine's errors as themselves, and behind a context link as the `Box` holding
    /// them.
    pub fn downcast<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a EngineError> {
        e.downcast_ref::<EngineError>()
            .or_else(|| e.downcast_ref::<Box<EngineError>>().map(|b| &**b))
    }

    /// Whether the error (or one it wraps) says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            EngineError::NotFound(_) => true,
            EngineError::Context { source, .. } => source.is_not_found(),
            EngineError::Hinted(h) => h.error.is_not_found(),
            EngineError::Store(rbuild_store::StoreError::ImageNotFound(_)) => true,
            EngineError::Runner(rbuild_runner::Error::Container(
                rbuild_runner::lifecycle::ContainerError::NotFound(_)
                | rbuild_runner::lifecycle::ContainerError::NoSuchVolume(_),
            )) => true,
            _ => false,
        }
    }
}

/// Describing a failed step, as `anyhow::Context` does, on the engine's errors.
pub trait ResultExt<T> {
    /// Wrap the error in `message`.
    fn context(self, message: impl Into<String>) -> Result<T>;
    /// Wrap the error in the message `f` makes (only made on failure).
    fn with_context<M: Into<String>>(self, f: impl FnOnce() -> M) -> Result<T>;
}

impl<T, E: Into<EngineError>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, message: impl Into<String>) -> Result<T> {
        self.map_err(|e| EngineError::Context {
            message: message.into(),
            source: Box::new(e.into()),
        })
    }

    fn with_context<M: Into<String>>(self, f: impl FnOnce() -> M) -> Result<T> {
        self.map_err(|e| EngineError::Context {
            message: f().into(),
            source: Box::new(e.into()),
        })
    }
}

/// A missing value as an invalid parameter named by `message`.
pub trait OptionExt<T> {
    /// `Some` as is; `None` as [`EngineError::InvalidParameter`] with the message `f` makes.
    fn or_invalid<M: Into<String>>(self, f: impl FnOnce() -> M) -> Result<T>;
}

impl<T> OptionExt<T> for Option<T> {
    fn or_invalid<M: Into<String>>(self, f: impl FnOnce() -> M) -> Result<T> {
        self.ok_or_else(|| EngineError::InvalidParameter(f().into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(e: &dyn std::error::Error) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut cur = e.source();
        while let Some(c) = cur {
            out.push(c.to_string());
            cur = c.source();
        }
        out
    }

    #[test]
    fn context_and_hints_read_as_the_chain_anyhow_made() {
        let inner: Result<()> = Err(rbuild_store::StoreError::ImageNotFound("x".into()).into());
        let e = inner
            .context("unable to find image \"x\"")
            .unwrap_err()
            .with_hint("images come from `rbuild load`");
        assert_eq!(e.hint(), Some("images come from `rbuild load`"));
        assert!(e.is_not_found());
        let lines = chain(&e);
        assert_eq!(lines[0], "unable to find image \"x\"");
        assert_eq!(lines.len(), 2, "{lines:?}");
    }

    #[test]
    fn hints_and_statuses_are_found_behind_context_links() {
        let started: Result<()> = Err(EngineError::Start {
            status: 127,
            message: "sh: not found".into(),
        }
        .with_hint("check the command"));
        let e = started.context("restarting x").unwrap_err();
        let mut found = Vec::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cur {
            if let Some(engine) = EngineError::downcast(c) {
                found.extend(engine.hint().map(str::to_owned));
                if let EngineError::Hinted(h) = engine
                    && let EngineError::Start { status, .. } = h.error
                {
                    found.push(status.to_string());
                }
            }
            cur = c.source();
        }
        assert_eq!(found, ["check the command", "127"]);
    }
}
