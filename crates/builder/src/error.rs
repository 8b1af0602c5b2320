//! The builder's error type.

use std::path::PathBuf;

/// What can go wrong while preparing or running a build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A `--platform` value (or a `FROM --platform`) that is not `os/arch[/variant]`.
    #[error("--platform {0:?}: not a platform (expected os/arch[/variant], e.g. linux/arm64)")]
    BadPlatform(String),
    /// A stage shared by several platforms' builds failed in the build that ran it (whose
    /// error is reported too).
    #[error("stage {stage} (shared by every platform) failed: {reason}")]
    SharedStageFailed {
        /// The stage's name or index.
        stage: String,
        /// The error, as text.
        reason: String,
    },
    /// A RUN step's program is for a platform this machine cannot execute.
    #[error("RUN for {platform}: {reason}")]
    NoEmulation {
        /// The stage's platform.
        platform: String,
        /// What is missing (the binfmt_misc handler, qemu-user-static).
        reason: String,
    },
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `.dockerignore` pattern does not compile.
    #[error("{file}: {source}")]
    Ignore {
        /// The ignore file.
        file: PathBuf,
        /// The bad pattern.
        #[source]
        source: crate::ignore::PatternError,
    },
    /// A COPY/ADD source leaves the build context.
    #[error("{path:?}: forbidden path outside the build context")]
    OutsideContext {
        /// The source as written.
        path: String,
    },
    /// A COPY/ADD source matches nothing in the build context.
    #[error("{path:?}: not found in the build context{}", if *.ignored { " (it is excluded by .dockerignore)" } else { "" })]
    SourceNotFound {
        /// The source as written.
        path: String,
        /// True when the path exists but `.dockerignore` excludes it.
        ignored: bool,
    },
    /// Several sources need a directory destination.
    #[error(
        "when using {keyword} with more than one source file, the destination must be a directory and end with a /"
    )]
    DestinationNotDirectory {
        /// COPY or ADD.
        keyword: String,
    },
    /// A stage reference names no stage, or a later one.
    #[error("stage {reference:?}: {reason}")]
    BadStageReference {
        /// The reference as written (`--from=…`, `FROM …`).
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// The layer of an imported cache record, reused without its bytes, could not be fetched
    /// when a step or the image needed them (the build is then retried without that record).
    #[error("imported cache layer of step {key}: {reason}")]
    ImportedLayer {
        /// The record's key.
        key: rbuild_oci::Digest,
        /// Why it could not be fetched or verified.
        reason: String,
    },
    /// `--target` names no stage.
    #[error("target stage {0:?} could not be found")]
    UnknownTarget(String),
    /// The container of a RUN step could not be set up or waited for.
    #[error("running the step's container: {0}")]
    Container(String),
    /// A base or `--from` image is neither in the store nor fetchable.
    #[error("image {reference:?}: {reason}")]
    ImageNotFound {
        /// The reference as written.
        reference: String,
        /// Why it could not be found.
        reason: String,
    },
    /// A RUN step's command failed.
    #[error("{step} (Dockerfile line {line}) did not complete successfully: exit code: {code}")]
    StepFailed {
        /// The step's label (`[build 3/5] RUN make`).
        step: String,
        /// Its line in the Dockerfile.
        line: usize,
        /// The command's exit code.
        code: i32,
        /// The last lines it printed.
        output: Vec<String>,
    },
    /// An instruction's value is unusable (`--chmod`, `--chown`, `--network`, USER …).
    #[error("Dockerfile:{line}: {message}")]
    Invalid {
        /// The instruction's line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A `RUN --mount=type=secret,required` names a secret the build was not given.
    #[error("secret {0:?} is required but was not provided (use --secret id={0},src=FILE)")]
    SecretNotFound(String),
    /// The image store failed.
    #[error("image store: {0}")]
    Store(String),
    /// The Dockerfile is malformed.
    #[error(transparent)]
    Parse(#[from] rbuild_parser::ParseError),
    /// A local archive given to ADD could not be extracted.
    #[error("extracting {}: {problem}", archive.display())]
    Archive {
        /// The archive file.
        archive: PathBuf,
        /// What is wrong (the entry concerned, the refused path, the I/O error).
        problem: String,
    },
    /// An ADD URL could not be downloaded (connection, TLS, a body cut short).
    #[error("{url}: {problem}")]
    Download {
        /// The URL as written.
        url: String,
        /// What went wrong.
        problem: String,
    },
    /// The server answered an ADD URL with an error status.
    #[error("{url}: invalid response status {status}")]
    HttpStatus {
        /// The URL as written.
        url: String,
        /// The status code and reason (`404 Not Found`).
        status: String,
    },
    /// The content of an ADD URL does not match its `--checksum`.
    #[error(
        "{url}: digest mismatch: --checksum={expected} but the content downloaded hashes to {actual}"
    )]
    ChecksumMismatch {
        /// The URL as written.
        url: String,
        /// The digest given with `--checksum`.
        expected: rbuild_oci::Digest,
        /// The digest of what was downloaded.
        actual: rbuild_oci::Digest,
    },
}

impl BuildError {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BuildError::Io {
            path: path.into(),
            source,
        }
    }
}
