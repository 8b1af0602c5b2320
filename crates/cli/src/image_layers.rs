//! An image's process defaults and unpacked layers, from the store, for `rbuild run`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rbuild_store::{Store, StoreError};

use crate::report::Hint;

/// An image ready to run.
pub struct ImageLayers {
    /// The image ID (`sha256:…`).
    pub id: String,
    /// Its config's process defaults (`None` if it has no `config` section).
    pub config: Option<oci_spec::image::Config>,
    /// Its layer directories, bottom first, ready as overlay lower dirs.
    pub layers: Vec<PathBuf>,
}

/// Find `image` in the store at `root` and unpack its layers.
pub fn resolve(root: &Path, image: &str) -> anyhow::Result<ImageLayers> {
    let store = Store::open(root)
        .with_context(|| format!("opening the image store at {}", root.display()))?;
    let img = match store.resolve(image) {
        Ok(img) => img,
        Err(e @ StoreError::ImageNotFound(_)) => {
            return Err(anyhow::Error::new(e).context(format!("unable to find image {image:?} in {}", root.display())).context(
                Hint("images come from `rbuild load`, `rbuild import` or `rbuild build`; `rbuild images` lists them".into()),
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("image {image:?}")),
    };
    let mut layers = Vec::new();
    for diff_id in img.diff_ids()? {
        layers.push(
            store
                .snapshot(&diff_id)
                .with_context(|| format!("unpacking layer {diff_id} of {image}"))?,
        );
    }
    Ok(ImageLayers {
        id: img.id.to_string(),
        config: img.config.config().clone(),
        layers,
    })
}
