//! rbuild's OCI distribution client (distribution-spec v1.1 / Docker Registry HTTP API v2).
//!
//! - [`Client`] with [`ClientOptions`] hands out a connected [`Registry`] per host: HTTPS with
//!   the system roots plus `certs.d/HOST/*.crt`, plain HTTP only for loopback and listed
//!   insecure hosts; anonymous, Basic and Bearer-token auth from `WWW-Authenticate`
//!   challenges, tokens reused per scope until expiry; retries with backoff on connection
//!   errors, 5xx and 429 (`Retry-After`).
//! - [`Registry`] speaks the API: manifests ([`Registry::manifest`], `manifest_info`,
//!   `put_manifest`, `delete_manifest`), blobs (`blob_size`, [`Registry::fetch_blob`] verified
//!   and resumed with `Range`, `upload_blob` monolithic or chunked and resumed, `mount_blob`),
//!   listings (`tags`, `catalog`, `referrers`).
//! - Image transfers: [`pull()`] into a [`BlobSink`], [`push()`] from a [`BlobSource`],
//!   [`copy()`] registry → registry without a local copy. Progress goes to a [`Reporter`].
//! - [`credentials`]: docker's `config.json` (`auths`, `credsStore`, `credHelpers`).
//!
//! No tar or rootfs work here; the store implements the blob traits.

mod auth;
mod blobs;
mod client;
mod copy;
pub mod credentials;
mod download;
mod error;
mod listing;
mod manifest;
mod progress;
mod pull;
mod push;
mod retry;
mod search;
mod tasks;
mod tls;
mod transport;
mod upload;

pub use auth::{Challenge, Credential, Scope, parse_challenge};
pub use blobs::{BlobSink, BlobSource, BlobWriter, MemoryBlobs};
pub use client::{
    Anonymous, Client, ClientOptions, CredentialProvider, Registry, StaticCredential, is_loopback,
};
pub use copy::copy;
pub use error::{RegistryError, Result};
pub use manifest::{MANIFEST_ACCEPT, ManifestInfo, RemoteManifest, media_type_of};
pub use progress::{Outcome, Reporter, Silent};
pub use pull::{PullOptions, Pulled, pull, reference_target};
pub use push::{PushOptions, push};
pub use search::SearchResult;
