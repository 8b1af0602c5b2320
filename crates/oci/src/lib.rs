//! Validated OCI value types for rbuild.
//!
//! Every type here can only be made by parsing, so an invalid one cannot exist:
//! - [`Digest`]: `sha256:<64 hex>` or `sha512:<128 hex>`, with [`Hasher`] to compute one;
//! - [`Reference`]: an image reference normalized exactly as Docker does
//!   (`alpine` → `docker.io/library/alpine:latest`), errors naming the rule broken;
//! - [`MediaType`] and [`Compression`]: the manifest, config and layer types rbuild understands;
//! - [`Platform`]: `os/arch` with an optional variant;
//! - [`manifest`]: image manifests, indexes and configs (the `oci-spec` types), decoded with every
//!   descriptor's digest and media type checked.
//!
//! No filesystem, no HTTP.

mod digest;
pub mod manifest;
mod media_type;
mod platform;
mod reference;
pub mod time;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use manifest::{Descriptor, ImageConfig, ImageIndex, ImageManifest, ManifestError};
pub use media_type::{Compression, MediaType, UnknownMediaType};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};

/// The oci-spec crate, re-exported for the types not wrapped here.
pub use oci_spec;
