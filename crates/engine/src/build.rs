//! Builds: the builder run over the engine's store, with base images from [`BaseImages`]:
//! the store first (unless every base is to be pulled again), else pulled through the front
//! end's pull (its progress, its interruption), each reference once per build.

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
        if let Some(img) = self.pulled.lock().expect("pulled").get(reference) {
            return Ok(img.clone());
        }
        if !self.always_pull
            && let Ok(img) = self.store.resolve(reference)
        {
            return Ok(img);
        }
        match self.fetch(reference, platform) {
            Ok(img) => {
                self.pulled
                    .lock()
                    .expect("pulled")
                    .insert(reference.to_string(), img.clone());
                Ok(img)
            }
            Err(e) => Err(BuildError::ImageNotFound {
                reference: reference.to_string(),
                reason: format!("not in the store, and pulling failed: {e}"),
            }),
        }
    }
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
        let outcome = rbuild_builder::build::build(self.store()?, opts, images, reporter)?;
        for t in &opts.tags {
            self.emit(crate::Event::now(
                crate::EventType::Image,
                "tag",
                &outcome.image.id.to_string(),
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
        Ok(rbuild_builder::build::explain(self.store()?, opts, images)?)
    }

    /// Write `image`'s filesystem, every layer applied, into `dir` (created if missing): a
    /// build's `--output type=local,dest=DIR`.
    pub fn write_filesystem(&self, image: &Image, dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating output directory {}", dir.display()))?;
        self.store()?
            .unpack(image, dir)
            .with_context(|| format!("writing the image's files to {}", dir.display()))
    }
}
