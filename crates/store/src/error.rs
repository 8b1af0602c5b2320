//! The store's error type: every variant names the file or object it is about.

use std::path::PathBuf;

use rbuild_oci::{Digest, DigestError, ManifestError, ReferenceError};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation on `path` failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`writing`, `renaming`, …).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Content did not hash to the digest it claimed.
    #[error("{what}: digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// The file or blob concerned.
        what: String,
        /// The digest claimed.
        expected: Digest,
        /// The digest computed.
        actual: Digest,
    },
    /// Content size did not match its descriptor.
    #[error("{what}: size mismatch: descriptor says {expected} bytes, content has {actual}")]
    SizeMismatch {
        /// The file or blob concerned.
        what: String,
        /// The size claimed.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A blob the store or an archive should hold is missing.
    #[error("missing blob {digest}{}", in_archive.as_ref().map(|a| format!(" (expected at {a})")).unwrap_or_default())]
    MissingBlob {
        /// The blob's digest.
        digest: Digest,
        /// Where it should have been, inside an archive.
        in_archive: Option<String>,
    },
    /// A layer the store knows only remotely (a lazily imported build cache's) was read
    /// before it was fetched.
    #[error(
        "layer {diff_id} is not in the store yet: its blob {blob} is at {location} and must be fetched first"
    )]
    LayerNotLocal {
        /// The layer's diffID.
        diff_id: Digest,
        /// The blob holding it there.
        blob: Digest,
        /// Where it is (`registry HOST/REPO`, `OCI layout DIR`).
        location: String,
    },
    /// No image matches a name or ID.
    #[error("no such image: {0}")]
    ImageNotFound(String),
    /// A multi-platform image has no image for the platform asked for (or not in the store).
    #[error("{what}: no image for platform {platform} (it has: {available})")]
    NoPlatform {
        /// The name or digest asked for.
        what: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the index lists, with those not in the store marked.
        available: String,
    },
    /// A short ID matches several images.
    #[error("image ID prefix {0:?} is ambiguous")]
    AmbiguousId(String),
    /// An image cannot be removed without `force`.
    #[error("unable to delete {image} (must be forced): image is referenced by {count} tags")]
    ImageInUse {
        /// The image ID.
        image: String,
        /// Tags still pointing at it.
        count: usize,
    },
    /// A malformed or dangerous layer tar.
    #[error("layer {layer}: entry {entry:?}: {problem}")]
    BadLayer {
        /// The layer (file name or digest).
        layer: String,
        /// The tar entry path.
        entry: String,
        /// What is wrong.
        problem: String,
    },
    /// A malformed archive (docker-archive or OCI).
    #[error("archive {archive}: {problem}")]
    BadArchive {
        /// The archive's name.
        archive: String,
        /// What is wrong.
        problem: String,
    },
    /// A manifest, index or config that does not decode.
    #[error("{what}: {source}")]
    Manifest {
        /// Where it came from.
        what: String,
        /// The decoding problem.
        source: ManifestError,
    },
    /// An invalid digest.
    #[error("{what}: {source}")]
    Digest {
        /// Where it came from.
        what: String,
        /// The problem.
        source: DigestError,
    },
    /// An invalid reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A JSON file of the store itself does not decode.
    #[error("store file {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The decoding problem.
        source: serde_json::Error,
    },
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attach an operation and a path to an I/O result.
pub(crate) trait IoContext<T> {
    /// Wrap the error as [`StoreError::Io`].
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            op,
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| StoreError::Io {
            op,
            path: path.into(),
            source: std::io::Error::from(e),
        })
    }
}
