//! rbuild's local content-addressed image store.
//!
//! Everything rbuild builds, pulls, pushes or runs lives in one [`Store`] under a root
//! directory ([`default_root`]):
//!
//! ```text
//! blobs/sha256/<hex>      content-addressed blobs (manifests, configs, layers)
//! images.json             image index: manifest digest → names (atomically replaced, locked)
//! layers/sha256/<hex>.json per-layer record by diffID: uncompressed size, blob of each compression
//! snapshots/sha256/<hex>/ unpacked layer (overlay whiteout form), keyed by diffID
//! tmp/                    staging files; renamed into place only once complete and verified
//! locks/                  flock files: `index` (index and layer records), `gc` (writers vs prune)
//! ```
//!
//! # API for the builder and runner
//!
//! - [`Store::open`] a root; [`Store::resolve`] a name, ID or digest to an [`Image`]
//!   (manifest + config + names);
//! - [`Image::diff_ids`]: the layers' diffIDs in order, bottom first;
//! - [`Store::snapshot`]: the unpacked directory of a layer by diffID, created on first use —
//!   ready as an overlay lower dir (whiteouts are char 0/0 devices, opaque dirs carry
//!   `trusted.overlay.opaque=y`); stack them top-first in `lowerdir=`;
//! - [`Store::add_layer`]: a layer from a directory diff ([`LayerSource`]: an overlay upper dir,
//!   a changed tree against its base, or a whole tree), stored uncompressed; then
//!   [`Store::commit_image`] writes config + manifest and names the image;
//! - [`Store::hold`]: keep `prune` away while adding content across several calls;
//! - [`Store::compressed_layer`]: the gzip/zstd form of a layer for pushing, made once and
//!   remembered; [`Store::layer_reader`]: the uncompressed tar of a layer;
//! - [`Store::unpack`] / [`Store::apply`]: a flat rootfs (whiteouts deleting) in any directory;
//! - [`Store::record_remote_layer`]: a layer known only by where it can be fetched (a lazily
//!   imported build cache's); images may be committed with such layers, and reading one before
//!   it is fetched is [`StoreError::LayerNotLocal`] ([`Store::remote_layer`] says what to fetch);
//! - [`Store::name_image`], [`Store::tag`], [`Store::remove`], [`Store::prune`]: the index.
//!
//! Snapshots are created by whoever asks first and are shared afterwards; they are removed by
//! `rmi`/`prune` once no image refers to their layer, so a caller that keeps using one after
//! removing its image must hold [`Store::hold`]. Creating snapshots needs root (whiteouts are
//! device nodes, opaque markers `trusted.*` xattrs).
//!
//! Archives: [`archive::save`] (docker-archive or OCI) and [`archive::load`] (both, gzip'd or
//! not, from a stream or an OCI layout directory). Layers: [`layer::write_layer`] and
//! [`layer::apply_layer`] (safe extraction). Libraries never print; errors name the file.

pub mod archive;
mod blobs;
pub mod compress;
pub mod direct;
mod error;
mod image;
mod index;
pub mod layer;
mod lock;
mod store;
pub mod userns;

pub use blobs::{BlobWriter, Blobs};
pub use error::{Result, StoreError};
pub use image::{Image, ImageList};
pub use index::{ImageEntry, ImageTable};
pub use layer::{LayerInfo, LayerSource};
pub use lock::Lock;
pub use store::{
    GcLock, LayerLocation, RemoteLayer, RemoveOutcome, Store, default_root, dir_size,
    hash_layer_dir,
};
