//! Images: finding one for a container (its process defaults and unpacked layers), pulling a
//! build's base, docker's inspect JSON; naming and removing them (`tag`, `rmi`, `image prune`).

pub(crate) mod archive;
mod import;
mod list;
mod manifest_list;
mod remove;

pub use archive::{SaveList, SaveLists};
pub(crate) use import::apply_change;
pub use import::{ImportOptions, apply_changes};
pub use list::{HistoryEntry, ImageSummary, IndexSummary};
pub use manifest_list::{EntryPlatform, PullFn};
pub use remove::{ImageDeleted, ImagesPruned};

use std::path::PathBuf;
use std::sync::Arc;

use rbuild_oci::{Platform, Reference};
use rbuild_registry::{Client, PullOptions, Reporter};
use rbuild_store::{Image, StoreError};

use crate::Engine;
use crate::error::{EngineError, Result, ResultExt};
use crate::inspect::ImageInspect;

/// An image ready to run.
#[derive(Debug, Clone)]
pub struct ImageLayers {
    /// The image ID (`sha256:…`).
    pub id: String,
    /// Its config's process defaults (`None` if it has no `config` section).
    pub config: Option<oci_spec::image::Config>,
    /// Its `config.Healthcheck` (docker's field, beside the OCI ones).
    pub healthcheck: Option<rbuild_runner::lifecycle::health::HealthConfig>,
    /// Its layer directories, bottom first, ready as overlay lower dirs.
    pub layers: Vec<PathBuf>,
}

impl Engine {
    /// Find `image` (name, name:tag, name@digest, ID or ID prefix) in the store and unpack
    /// its layers.
    pub fn resolve_image(&self, image: &str) -> Result<ImageLayers> {
        self.resolve_image_for(image, None)
    }

    /// [`Engine::resolve_image`] for `platform`: a multi-platform image's image for it, or a
    /// single image that must be for it (an error naming both platforms otherwise).
    pub fn resolve_image_for(
        &self,
        image: &str,
        platform: Option<&Platform>,
    ) -> Result<ImageLayers> {
        let store = self.store()?;
        let root = self.root();
        let found = match platform {
            Some(p) => store.resolve_platform(image, p),
            None => store.resolve(image),
        };
        let img = match found {
            Ok(img) => {
                if let (Some(want), Some(has)) = (platform, crate::build::image_platform(&img))
                    && !want.matches(&has)
                {
                    return Err(EngineError::InvalidParameter(format!(
                        "image {image:?} was found but does not match the specified platform: \
                         wanted {want}, actual: {has}"
                    )));
                }
                img
            }
            Err(e @ StoreError::ImageNotFound(_)) => {
                return Err(EngineError::from(e))
                    .with_context(|| {
                        format!("unable to find image {image:?} in {}", root.display())
                    })
                    .map_err(|e| {
                        e.with_hint("images come from `rbuild load`, `rbuild import` or `rbuild build`; `rbuild images` lists them")
                    });
            }
            // A platform of a multi-platform image that was not pulled (a pull takes one).
            Err(e @ StoreError::NoPlatform { .. }) if e.to_string().contains("(not pulled)") => {
                let platform = platform.cloned().unwrap_or_else(Platform::host);
                return Err(EngineError::from(e))
                    .with_context(|| format!("image {image:?}"))
                    .map_err(|e| {
                        e.with_hint(format!(
                            "`rbuild pull --platform {platform} {image}` fetches that platform's image"
                        ))
                    });
            }
            Err(e) => return Err(e).with_context(|| format!("image {image:?}")),
        };
        // Layers of a lazily imported build cache are fetched now.
        crate::cache::materialize(store, self.registry(), &img)
            .with_context(|| format!("image {image:?}"))?;
        let mut layers = Vec::new();
        for diff_id in img.diff_ids()? {
            layers.push(
                store
                    .snapshot(&diff_id)
                    .with_context(|| format!("unpacking layer {diff_id} of {image}"))?,
            );
        }
        let healthcheck = img
            .config_json()
            .get("config")
            .and_then(|c| c.get("Healthcheck"))
            .and_then(|h| serde_json::from_value(h.clone()).ok());
        Ok(ImageLayers {
            id: img.id.to_string(),
            config: img.config.config().clone(),
            healthcheck,
            layers,
        })
    }

    /// Pull `reference` for `platform` and return the stored image (a build's `FROM`).
    /// Always contacts the registry: whether to pull at all is the caller's decision.
    pub async fn pull_image(
        &self,
        client: &Client,
        reference: &Reference,
        platform: &Platform,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Image> {
        let opts = PullOptions {
            platform: platform.clone(),
            all_platforms: false,
        };
        let digest = self.pull(client, reference, &opts, reporter).await?;
        self.store()?
            .image(&digest)
            .with_context(|| format!("reading pulled image {reference} from the store"))
    }

    /// `docker image inspect` of the image `name` names.
    pub fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        let store = self.store()?;
        let img = store.resolve(name)?;
        if let Some(list) = store.resolve_index(name)? {
            return Ok(ImageInspect::of_list(store, &list, &img));
        }
        Ok(ImageInspect::new(store, &img))
    }
}
