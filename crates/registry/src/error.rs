//! The registry crate's error type. Messages name the registry, repository and object, and never
//! contain credentials or tokens.

use std::path::PathBuf;

use rbuild_oci::{Digest, ManifestError};

/// Everything that can go wrong talking to a registry or moving content.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request could not be sent or its response not read (DNS, refused, reset, TLS).
    #[error("{method} {url}")]
    Transport {
        /// HTTP method.
        method: String,
        /// URL without credentials.
        url: String,
        /// The transport's complaint.
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: {status}{detail}")]
    Status {
        /// HTTP method.
        method: String,
        /// URL without credentials.
        url: String,
        /// The status code and reason.
        status: reqwest::StatusCode,
        /// `: CODE: message` from the distribution-spec error body, or empty.
        detail: String,
    },
    /// The registry refused our credentials (or wants some and we have none).
    #[error("{registry}: 401 Unauthorized{detail}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Why, as far as the registry says: bad credentials, missing credentials, scope.
        detail: String,
    },
    /// A manifest, blob or repository does not exist.
    #[error("{what} not found in {registry}/{repository}")]
    NotFound {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// `manifest latest`, `blob sha256:…`.
        what: String,
    },
    /// Content did not hash to the digest it was fetched by; nothing of it was kept.
    #[error("{what}: content has digest {actual}, expected {expected}; discarded")]
    DigestMismatch {
        /// What was fetched, e.g. `blob sha256:… from host/repo`.
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// Content was not the size its descriptor says; nothing of it was kept.
    #[error("{what}: received {actual} bytes, expected {expected}; discarded")]
    SizeMismatch {
        /// What was fetched.
        what: String,
        /// Size from the descriptor.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// A manifest or index from the registry or a source is malformed.
    #[error("{what} is malformed")]
    Manifest {
        /// Which manifest.
        what: String,
        /// What is wrong with it.
        source: ManifestError,
    },
    /// The registry broke the protocol (missing `Location`, unparsable header, …).
    #[error("{registry}: {detail}")]
    Protocol {
        /// Registry host.
        registry: String,
        /// What it did wrong.
        detail: String,
    },
    /// A blob transfer kept failing and was given up; `source` is the last failure.
    #[error("{what}: gave up at byte {reached}: {why}")]
    GaveUp {
        /// The blob and where it went, e.g. `blob sha256:… from host/repo`.
        what: String,
        /// The furthest the transfer got (bytes received, or the offset the registry held).
        reached: u64,
        /// Why: no progress in the allowed retries, or the retry deadline passed.
        why: String,
        /// The last failure.
        source: Box<RegistryError>,
    },
    /// Reading from a blob source or writing to a blob sink failed.
    #[error("{what}")]
    Local {
        /// The blob or operation, e.g. `storing blob sha256:…`.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file (config, certificate) could not be read or written.
    #[error("{path}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Credentials could not be read, stored or used.
    #[error("credentials for {registry}: {detail}")]
    Credentials {
        /// Registry host.
        registry: String,
        /// What went wrong (never the secret itself).
        detail: String,
    },
    /// The configuration does not allow what was asked (plain HTTP to a remote host, bad option).
    #[error("{0}")]
    Config(String),
    /// The image has no manifest for the wanted platform.
    #[error("{reference}: no image for platform {platform} (index has: {available})")]
    NoPlatform {
        /// The image.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms listed in the index.
        available: String,
    },
}

/// Result with [`RegistryError`].
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    /// Whether retrying the same request may succeed (connection trouble, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_request()
                    || source.is_body()
            }
            RegistryError::Status { status, .. } => {
                status.is_server_error() || *status == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }

    /// Whether this is a 404-style absence.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }
}

/// An error and its causes on one line (`a: b: c`), for progress messages.
pub(crate) fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !out.ends_with(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = c.source();
    }
    out
}
