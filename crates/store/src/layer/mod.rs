//! Layers: creating a changeset tar from a directory diff, applying one safely, whiteouts.

mod apply;
mod create;
mod to_file;

pub use apply::{ApplyOptions, Paths, Whiteouts, apply_layer, apply_layer_file, apply_stream};
pub use create::{
    CreateOptions, FileContents, LayerSource, ReadFiles, is_opaque, write_layer, write_layer_with,
};
pub use to_file::write_layer_file;

/// Prefix of a whiteout entry: `.wh.name` deletes `name`.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// An opaque-directory marker: hides everything below from lower layers.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Extended attributes overlayfs uses for itself; never copied in or out of a layer.
pub(crate) fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

/// A layer known to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Digest of the uncompressed tar (what image configs list in `rootfs.diff_ids`).
    pub diff_id: rbuild_oci::Digest,
    /// Size of the uncompressed tar in bytes.
    pub size: u64,
}
