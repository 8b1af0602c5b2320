//! Builds: the builder run over the engine's store, with base images from [`BaseImages`]:
//! the store first (unless every base is to be pulled again), else pulled through the front
//! end's pull (its progress, its interruption), each reference once per build. A stored base
//! whose layers the store holds only remotely (built from a lazily imported cache) is handed
//! over as it is: the builder fetches those layers when a step needs the base's files
//! ([`BuildOptions::remote_layers`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use rbuild_builder::BuildError;
use rbuild_builder::build::{BuildOptions, BuildOutcome, ImageSource};
use rbuild_builder::reporter::Reporter;
use rbuild_oci::{Platform, Reference};
use rbuild_store::{Image, Store};

use crate::Engine;
use crate::error::{Result, ResultExt};

/// How a front end pulls a base image: the reference and platform parsed, the image stored,
/// or why not (the error's whole chain, `outer: inner`).
pub type PullFn<'a> =
    dyn Fn(&Reference, &Platform) -> std::result::Result<Image, String> + Sync + 'a;

/// A build's base images: from the store, pulled when missing (or always, `always_pull`).
pub struct BaseImages<'a> {
    store: &'a Store,
    always_pull: bool,
    pull: &'a PullFn<'a>,
    /// References already pulled by this build (`always_pull` pulls each once).
    pulled: Mutex<BTreeMap<String, Image>>,
}

impl<'a> BaseImages<'a> {
    /// Base images from `store`, pulled with `pull` when missing or when `always_pull`.
    pub fn new(store: &'a Store, always_pull: bool, pull: &'a PullFn<'a>) -> BaseImages<'a> {
        BaseImages {
            store,
            always_pull,
            pull,
            pulled: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether the stored index `reference` names lists no image for `platform`.
    fn lists_no(&self, reference: &str, platform: Option<&Platform>) -> bool {
        let (Some(p), Ok(Some(list))) = (platform, self.store.resolve_index(reference)) else {
            return false;
        };
        list.manifest_for(p).is_none()
    }

    fn fetch(&self, reference: &str, platform: &str) -> std::result::Result<Image, String> {
        let parsed: Reference = reference
            .parse()
            .with_context(|| format!("image reference {reference:?}"))
            .map_err(|e| chain_text(&e))?;
        let platform: Platform = platform
            .parse()
            .with_context(|| format!("platform {platform:?}"))
            .map_err(|e| chain_text(&e))?;
        (self.pull)(&parsed, &platform)
    }
}

impl ImageSource for BaseImages<'_> {
    fn image(&self, reference: &str, platform: &str) -> std::result::Result<Image, BuildError> {
        let key = format!("{reference}\n{platform}");
        if let Some(img) = self.pulled.lock().expect("pulled").get(&key) {
            return Ok(img.clone());
        }
        let wanted: Option<Platform> = Platform::parse_normalized(platform).ok();
        // A stored image for another platform is not this build's base: it is pulled for
        // the platform (as docker build does), and named in the error when that fails.
        let mut other_platform = None;
        if !self.always_pull {
            let found = match &wanted {
                Some(p) => self.store.resolve_platform(reference, p),
                None => self.store.resolve(reference),
            };
            match found {
                Ok(img) => match (&wanted, image_platform(&img)) {
                    (Some(w), Some(has)) if !w.matches(&has) => other_platform = Some(has),
                    _ => return Ok(img),
                },
                // A stored multi-platform image that does not list the platform: its
                // registry's has none either (docker build's "no match for platform").
                Err(e @ rbuild_store::StoreError::NoPlatform { .. })
                    if self.lists_no(reference, wanted.as_ref()) =>
                {
                    return Err(BuildError::ImageNotFound {
                        reference: reference.to_string(),
                        reason: e.to_string(),
                    });
                }
                Err(_) => {}
            }
        }
        match self.fetch(reference, platform) {
            Ok(img) => {
                self.pulled.lock().expect("pulled").insert(key, img.clone());
                Ok(img)
            }
            Err(e) => Err(BuildError::ImageNotFound {
                reference: reference.to_string(),
                reason: match other_platform {
                    Some(has) => format!(
                        "the stored image is for {has}, not {platform}, and pulling it for \
                         {platform} failed: {e}"
                    ),
                    None => format!("not in the store, and pulling failed: {e}"),
                },
            }),
        }
    }
}

/// The platform an image's config declares, normalized.
pub fn image_platform(img: &Image) -> Option<Platform> {
    let c = &img.config;
    let p = Platform {
        os: c.os().to_string(),
        architecture: c.architecture().to_string(),
        variant: c.variant().clone().filter(|v| !v.is_empty()),
    };
    if p.os.is_empty() || p.architecture.is_empty() {
        return None;
    }
    Some(p.normalize())
}

/// An error and its causes on one line, `outer: inner: innermost` (anyhow's `{:#}`).
pub fn chain_text(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

impl Engine {
    /// Build `opts` into the store, base images from `images`, progress to `reporter`.
    /// Sends a `tag` event for each name the image gets.
    pub fn build(
        &self,
        opts: &BuildOptions,
        images: &dyn ImageSource,
        reporter: &dyn Reporter,
    ) -> Result<BuildOutcome> {
        let opts = &self.with_remote_layers(opts);
        let outcome = rbuild_builder::build::build(self.store()?, opts, images, reporter)?;
        // A multi-platform build's tags name its index.
        let id = match &outcome.index {
            Some(list) => list.digest.to_string(),
            None => outcome.image.id.to_string(),
        };
        for t in &opts.tags {
            self.emit(crate::Event::now(
                crate::EventType::Image,
                "tag",
                &id,
                [("name", t.to_string())],
            ));
        }
        Ok(outcome)
    }

    /// `rbuild build --explain`: each step's cache verdict (cached, or why not) against the
    /// store's records and `opts.cache_from`, without running anything.
    pub fn explain_build(
        &self,
        opts: &BuildOptions,
        images: &dyn ImageSource,
    ) -> Result<Vec<rbuild_builder::build::ExplainedStep>> {
        let opts = &self.with_remote_layers(opts);
        Ok(rbuild_builder::build::explain(self.store()?, opts, images)?)
    }

    /// `opts` with a fetcher of the layers the store holds only remotely, when it has none.
    fn with_remote_layers(&self, opts: &BuildOptions) -> BuildOptions {
        let mut opts = opts.clone();
        if opts.remote_layers.is_none() {
            opts.remote_layers = Some(std::sync::Arc::new(crate::cache::StoreRemoteLayers {
                settings: self.registry().clone(),
            }));
        }
        opts
    }

    /// Write `image`'s filesystem, every layer applied, into `dir` (created if missing): a
    /// build's `--output type=local,dest=DIR`.
    pub fn write_filesystem(&self, image: &Image, dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating output directory {}", dir.display()))?;
        crate::cache::materialize(self.store()?, self.registry(), image)?;
        self.store()?
            .unpack(image, dir)
            .with_context(|| format!("writing the image's files to {}", dir.display()))
    }
}
