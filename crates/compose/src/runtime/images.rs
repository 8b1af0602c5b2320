//! The images services run: `image:`, else `PROJECT-SERVICE` built from `build:` (context,
//! dockerfile or dockerfile_inline, args, target, labels); missing ones pulled.

use std::collections::BTreeMap;
use std::path::PathBuf;

use compose_spec::ShortOrLong;
use compose_spec::service::Build;
use compose_spec::service::build::Dockerfile;
use rbuild_builder::build::{BuildOptions, ContextPrefetch, NetworkMode};
use rbuild_engine::build::BaseImages;
use rbuild_engine::cache;
use rbuild_oci::{Platform, Reference};

use super::service::{self, text};
use super::{Images, Kind, Runtime, Status, UpOptions, engine_err};
use crate::error::ComposeError;

impl Runtime<'_> {
    /// Whether service `name` has `build:` and whether it has `image:`.
    pub fn image_source(&self, name: &str) -> (bool, bool) {
        let s = self.service(name);
        (s.build.is_some(), s.image.is_some())
    }

    /// The image reference a service runs: its `image:`, else `PROJECT-SERVICE`.
    pub fn image_name(&self, name: &str) -> String {
        match &self.service(name).image {
            Some(i) => i.to_string(),
            None => format!("{}-{name}", self.project.name),
        }
    }

    /// Build service `name`'s image (it has `build:`); its ID.
    pub(crate) fn build(&self, name: &str, images: &Images<'_>) -> Result<String, ComposeError> {
        let s = self.service(name);
        let tag = self.image_name(name);
        let b: Build = match s.build.clone().expect("a service with build") {
            ShortOrLong::Short(ctx) => Build {
                context: Some(ctx),
                ..Build::default()
            },
            ShortOrLong::Long(b) => b,
        };
        let context = self
            .project
            .directory
            .join(b.context.as_ref().map(text).unwrap_or_else(|| ".".into()));
        if !context.is_dir() {
            return Err(ComposeError::Service {
                service: name.to_owned(),
                message: format!("build context {} is not a directory", context.display()),
            });
        }
        let (dockerfile, dockerfile_path) = match &b.dockerfile {
            Some(Dockerfile::Inline(t)) => (t.clone(), None),
            other => {
                let path: PathBuf = match other {
                    Some(Dockerfile::File(p)) => context.join(p),
                    _ => context.join("Dockerfile"),
                };
                let text = std::fs::read_to_string(&path).map_err(|e| ComposeError::Service {
                    service: name.to_owned(),
                    message: format!("reading Dockerfile {}: {e}", path.display()),
                })?;
                (text, Some(path))
            }
        };
        let reference: Reference = tag.parse().map_err(|e| ComposeError::Service {
            service: name.to_owned(),
            message: format!("invalid image name {tag:?}: {e}"),
        })?;
        let env = |k: &str| self.project.environment.get(k).cloned();
        let bad_cache = |e: rbuild_engine::EngineError| ComposeError::Service {
            service: name.to_owned(),
            message: format!("build: {}", rbuild_engine::build::chain_text(&e)),
        };
        // `cache_from`/`cache_to` in buildx's syntax, as `rbuild build --cache-from/--cache-to`.
        let cache_from = b
            .cache_from
            .iter()
            .map(|c| cache::parse_cache_from(&c.to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad_cache)?;
        let cache_to = b
            .cache_to
            .iter()
            .map(|c| cache::parse_cache_to(&c.to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad_cache)?;
        let client = if cache_from.is_empty() && cache_to.is_empty() {
            None
        } else {
            Some(
                self.engine
                    .registry()
                    .client()
                    .map_err(engine_err("making the registry client"))?,
            )
        };
        let mut opts = BuildOptions {
            context,
            dockerfile,
            dockerfile_path,
            build_args: service::pairs(&b.args, &env).into_iter().collect(),
            target: b.target.clone(),
            no_cache: false,
            network: NetworkMode::Host,
            labels: service::pairs(&b.labels, &|_| Some(String::new())),
            platform: None,
            secrets: BTreeMap::new(),
            source_date_epoch: None,
            tags: vec![reference],
            cache_from: Vec::new(),
            inline_cache: cache_to
                .iter()
                .any(|c| c.location == cache::CacheLocation::Inline),
            remote_layers: None,
            prefetch: None,
        };
        let store = self
            .engine
            .store()
            .map_err(engine_err("opening the store"))?;
        // The context's files are hashed on a thread of their own while the caches are
        // imported and the first steps run (as `rbuild build` does).
        opts.prefetch = Some(std::sync::Arc::new(ContextPrefetch::start(store, &opts)));
        for from in &cache_from {
            let client = client.as_ref().expect("made for caches");
            // As BuildKit: a cache that cannot be imported is a warning; the build goes on.
            match cache::import(client, from) {
                Ok(import) => opts.cache_from.push(import),
                Err(e) => self.progress.warning(&format!(
                    "service {name:?}: cache import from {} failed, building without it: {}",
                    from.location,
                    rbuild_engine::build::chain_text(&e)
                )),
            }
        }
        let base = BaseImages::new(store, false, images.pull);
        self.progress.event(Kind::Image, &tag, Status::Building);
        let outcome = self
            .engine
            .build(&opts, &base, images.reporter)
            .map_err(engine_err(format!("building service {name:?}")))?;
        for to in &cache_to {
            let client = client.as_ref().expect("made for caches");
            match cache::export(client, store, to, &outcome) {
                Ok(done) => {
                    for w in &done.warnings {
                        self.progress.warning(w);
                    }
                }
                Err(e) if to.ignore_error => self.progress.warning(&format!(
                    "service {name:?}: cache export to {} failed: {}",
                    to.location,
                    rbuild_engine::build::chain_text(&e)
                )),
                Err(e) => {
                    return Err(engine_err(format!(
                        "service {name:?}: exporting cache to {}",
                        to.location
                    ))(e));
                }
            }
        }
        self.progress.event(Kind::Image, &tag, Status::Built);
        Ok(outcome.image.id.to_string())
    }

    /// The image ID service `name` runs: built (`--build`, or missing with `build:`),
    /// from the store, or pulled.
    pub(crate) fn image_for(
        &self,
        name: &str,
        opts: &UpOptions,
        images: &Images<'_>,
    ) -> Result<String, ComposeError> {
        let s = self.service(name);
        let tag = self.image_name(name);
        let store = self
            .engine
            .store()
            .map_err(engine_err("opening the store"))?;
        let stored = store.resolve(&tag).ok();
        if s.build.is_some() && !opts.no_build && (opts.build || stored.is_none()) {
            return self.build(name, images);
        }
        if let Some(img) = stored {
            return Ok(img.id.to_string());
        }
        if s.build.is_some() {
            return Err(ComposeError::Failed(format!(
                "service {name:?} has neither an image nor a build context specified: image {tag} not found and --no-build given"
            )));
        }
        let reference: Reference = tag.parse().map_err(|e| ComposeError::Service {
            service: name.to_owned(),
            message: format!("invalid image {tag:?}: {e}"),
        })?;
        (images.pull)(&reference, &Platform::host())
            .map(|img| img.id.to_string())
            .map_err(|e| ComposeError::Failed(format!("service {name:?}: pulling {tag}: {e}")))
    }

    /// `build [SERVICE...]`: the images of the services with `build:` (all when empty);
    /// the names built.
    pub fn build_images(
        &self,
        services: &[String],
        images: &Images<'_>,
    ) -> Result<Vec<String>, ComposeError> {
        self.check_services(services)?;
        let mut built = Vec::new();
        for name in self.project.service_order() {
            if (!services.is_empty() && !services.contains(&name))
                || self.service(&name).build.is_none()
            {
                continue;
            }
            service::check_supported(&name, self.service(&name))?;
            self.build(&name, images)?;
            built.push(self.image_name(&name));
        }
        Ok(built)
    }
}
