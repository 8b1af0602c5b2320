//! Image archives: docker-archive (`docker save`/`docker load`) and OCI (image layout, as a
//! tar or a directory), written by [`save`] and read by [`load`].

mod load;
mod plan;
mod save;

pub use load::{LoadSource, Loaded, load, load_with};
pub use save::{ArchiveFormat, save, save_index};

/// `index.json` annotation with the full image name (containerd, docker ≥ 25).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI annotation with the reference name (the tag, or a full name from some tools).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
