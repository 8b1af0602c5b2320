//! Finding an image's config and unpacked layers for `rbuild run`.

use std::path::{Path, PathBuf};

use crate::report::Hint;

/// The image's process defaults and its layer directories, bottom first.
pub fn resolve(
    root: &Path,
    image: &str,
) -> anyhow::Result<(Option<oci_spec::image::Config>, Vec<PathBuf>)> {
    Err(anyhow::anyhow!(
        "image {image:?}: the image store at {} is not available in this build",
        root.display()
    )
    .context(Hint(
        "run a root filesystem directory with --rootfs DIR".into(),
    )))
}
