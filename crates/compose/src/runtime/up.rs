//! `up`: the project's networks and volumes made, images built or pulled, each service's
//! containers created (or recreated when its config hash or image changed) and started
//! after the services they depend on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use compose_spec::service::build::Dockerfile;
use compose_spec::service::{Build, Condition};
use compose_spec::{Resource, Service, ShortOrLong};
use rbuild_builder::build::{BuildOptions, NetworkMode};
use rbuild_builder::reporter::Reporter;
use rbuild_engine::build::{BaseImages, PullFn};
use rbuild_engine::{EndpointRequest, NetworkCreate};
use rbuild_oci::{Platform, Reference};
use rbuild_runner::lifecycle::Container;

use super::service::{self, text};
use super::{Kind, Runtime, ServiceContainer, Status, engine_err, labels};
use crate::error::ComposeError;

/// `up`'s flags.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// The services to bring up (and, without `no_deps`, what they depend on); all when
    /// empty.
    pub services: Vec<String>,
    /// `--build`: build images before starting containers.
    pub build: bool,
    /// `--no-build`: never build (a missing image is an error).
    pub no_build: bool,
    /// `--force-recreate`: recreate containers even if their configuration did not change.
    pub force_recreate: bool,
    /// `--no-recreate`: keep existing containers even if their configuration changed.
    pub no_recreate: bool,
    /// `--no-deps`: do not start linked services.
    pub no_deps: bool,
    /// `--remove-orphans`: remove containers of services not in the project.
    pub remove_orphans: bool,
    /// `--no-start`: create, do not start.
    pub no_start: bool,
    /// `--scale SERVICE=N`: replicas over the files' `deploy.replicas`/`scale`.
    pub scale: BTreeMap<String, u64>,
}

/// `run`'s flags: a one-off container of a service.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The service.
    pub service: String,
    /// The command replacing the service's (empty: the service's).
    pub command: Vec<String>,
    /// `-e KEY=VALUE` over the service's environment.
    pub env: Vec<String>,
    /// `--entrypoint`.
    pub entrypoint: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `--rm`: remove the container when it exits.
    pub rm: bool,
    /// `--no-deps`: do not start the services it depends on.
    pub no_deps: bool,
    /// `--service-ports`: publish the service's ports (not published by default).
    pub service_ports: bool,
    /// `--name`.
    pub name: Option<String>,
    /// `-t` (a terminal) and `-i` (standard input kept open).
    pub tty: bool,
    /// Keep standard input open.
    pub interactive: bool,
}

/// Where `up` gets images: a base image or a service's `image:` missing from the store is
/// pulled with `pull`; builds report to `reporter`.
pub struct Images<'a> {
    /// The front end's pull.
    pub pull: &'a PullFn<'a>,
    /// Build progress.
    pub reporter: &'a dyn Reporter,
}

impl std::fmt::Debug for Images<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Images").finish_non_exhaustive()
    }
}

impl Runtime<'_> {
    fn service(&self, name: &str) -> &Service {
        self.project
            .model
            .services
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, s)| s)
            .expect("a service of the project")
    }

    fn dependencies(&self, name: &str) -> Vec<(String, Condition)> {
        match &self.service(name).depends_on {
            ShortOrLong::Short(s) => s
                .iter()
                .map(|d| (text(d), Condition::ServiceStarted))
                .collect(),
            ShortOrLong::Long(l) => l.iter().map(|(d, c)| (text(d), c.condition)).collect(),
        }
    }

    /// The services `up SERVICE...` acts on, in dependency order.
    pub fn selected(
        &self,
        services: &[String],
        no_deps: bool,
    ) -> Result<Vec<String>, ComposeError> {
        self.check_services(services)?;
        let order = self.project.service_order();
        if services.is_empty() {
            return Ok(order);
        }
        let mut wanted: Vec<String> = services.to_vec();
        if !no_deps {
            let mut i = 0;
            while i < wanted.len() {
                for (d, _) in self.dependencies(&wanted[i].clone()) {
                    if !wanted.contains(&d) {
                        wanted.push(d);
                    }
                }
                i += 1;
            }
        }
        Ok(order.into_iter().filter(|s| wanted.contains(s)).collect())
    }

    /// The engine's name of network `key` and whether the project manages it.
    fn network_name(
        &self,
        key: &str,
    ) -> Result<(String, Option<&compose_spec::Network>), ComposeError> {
        let entry = self
            .project
            .model
            .networks
            .iter()
            .find(|(k, _)| k.as_str() == key);
        match entry {
            Some((_, Some(Resource::External { name }))) => {
                Ok((name.clone().unwrap_or_else(|| key.to_owned()), None))
            }
            Some((_, Some(Resource::Compose(n)))) => Ok((
                n.name
                    .clone()
                    .unwrap_or_else(|| format!("{}_{key}", self.project.name)),
                Some(n),
            )),
            Some((_, None)) => Ok((format!("{}_{key}", self.project.name), None)),
            None if key == "default" => Ok((format!("{}_default", self.project.name), None)),
            None => Err(ComposeError::Failed(format!(
                "service refers to undefined network {key}: invalid compose project"
            ))),
        }
    }

    /// The engine's options for creating the project's network `key` (its configuration
    /// checked: what rbuild cannot make is refused).
    fn network_spec(&self, key: &str) -> Result<NetworkCreate, ComposeError> {
        let (name, cfg) = self.network_name(key)?;
        let mut create = NetworkCreate {
            name,
            labels: BTreeMap::from([
                (labels::PROJECT.to_owned(), self.project.name.clone()),
                (labels::NETWORK.to_owned(), key.to_owned()),
                (
                    labels::VERSION.to_owned(),
                    labels::COMPOSE_VERSION.to_owned(),
                ),
            ]),
            ..NetworkCreate::default()
        };
        if let Some(n) = cfg {
            match n.driver.as_ref().map(text).as_deref() {
                None | Some("bridge") => {}
                Some(d) => {
                    return Err(ComposeError::NotSupported(format!(
                        "network {key:?}: driver {d:?} is not supported yet by rbuild compose (only bridge)"
                    )));
                }
            }
            if !n.driver_opts.is_empty() || n.enable_ipv6 {
                return Err(ComposeError::NotSupported(format!(
                    "network {key:?}: driver_opts and enable_ipv6 are not supported yet by rbuild compose"
                )));
            }
            create.internal = n.internal;
            for (k, v) in service::pairs(&n.labels, &|_| Some(String::new())) {
                create.labels.insert(k, v);
            }
            if let Some(ipam) = &n.ipam {
                if ipam.config.len() > 1 || !ipam.options.is_empty() {
                    return Err(ComposeError::NotSupported(format!(
                        "network {key:?}: ipam with more than one config or options is not supported yet by rbuild compose"
                    )));
                }
                if ipam.driver.as_deref().is_some_and(|d| d != "default") {
                    return Err(ComposeError::NotSupported(format!(
                        "network {key:?}: ipam driver {:?} is not supported yet by rbuild compose",
                        ipam.driver.as_deref().unwrap_or_default()
                    )));
                }
                if let Some(c) = ipam.config.first() {
                    if c.ip_range.is_some() || !c.aux_addresses.is_empty() {
                        return Err(ComposeError::NotSupported(format!(
                            "network {key:?}: ipam ip_range and aux_addresses are not supported yet by rbuild compose"
                        )));
                    }
                    create.subnet = c.subnet.map(|s| s.to_string());
                    create.gateway = c.gateway.map(|g| g.to_string());
                }
            }
        }
        Ok(create)
    }

    /// Make network `key` unless it exists; an external one must exist.
    fn ensure_network(&self, key: &str) -> Result<String, ComposeError> {
        let (name, _) = self.network_name(key)?;
        let external = self
            .project
            .model
            .networks
            .iter()
            .any(|(k, v)| k.as_str() == key && v.as_ref().is_some_and(Resource::is_external));
        let (existing, _) = self
            .engine
            .list_networks()
            .map_err(engine_err("listing networks"))?;
        if existing.iter().any(|n| n.name == name) {
            return Ok(name);
        }
        if external {
            return Err(ComposeError::Failed(format!(
                "network {name} declared as external, but could not be found"
            )));
        }
        let create = self.network_spec(key)?;
        self.progress.event(Kind::Network, &name, Status::Creating);
        self.engine
            .create_network(&create)
            .map_err(engine_err(format!("creating network {name}")))?;
        self.progress.event(Kind::Network, &name, Status::Created);
        Ok(name)
    }

    /// Make the project's volume `key` unless it exists; an external one must exist.
    fn ensure_volume(&self, key: &str) -> Result<(), ComposeError> {
        let Some(name) = service::volume_name(self.project, key) else {
            return Ok(());
        };
        let entry = self
            .project
            .model
            .volumes
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .and_then(|(_, v)| v.as_ref());
        let existing = self
            .engine
            .list_volumes()
            .map_err(engine_err("listing volumes"))?;
        if existing.iter().any(|v| v.name == name) {
            return Ok(());
        }
        let mut vlabels = BTreeMap::from([
            (labels::PROJECT.to_owned(), self.project.name.clone()),
            (labels::VOLUME.to_owned(), key.to_owned()),
            (
                labels::VERSION.to_owned(),
                labels::COMPOSE_VERSION.to_owned(),
            ),
        ]);
        match entry {
            Some(Resource::External { .. }) => {
                return Err(ComposeError::Failed(format!(
                    "external volume \"{name}\" not found"
                )));
            }
            Some(Resource::Compose(v)) => {
                if v.driver.as_deref().is_some_and(|d| d != "local") || !v.driver_opts.is_empty() {
                    return Err(ComposeError::NotSupported(format!(
                        "volume {key:?}: driver and driver_opts are not supported yet by rbuild compose (only the local driver)"
                    )));
                }
                for (k, v) in service::pairs(&v.labels, &|_| Some(String::new())) {
                    vlabels.insert(k, v);
                }
            }
            None => {}
        }
        self.progress.event(Kind::Volume, &name, Status::Creating);
        self.engine
            .create_volume(Some(&name), "local", vlabels)
            .map_err(engine_err(format!("creating volume {name}")))?;
        self.progress.event(Kind::Volume, &name, Status::Created);
        Ok(())
    }

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
    fn build(&self, name: &str, images: &Images<'_>) -> Result<String, ComposeError> {
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
        let opts = BuildOptions {
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
        };
        let store = self
            .engine
            .store()
            .map_err(engine_err("opening the store"))?;
        let base = BaseImages::new(store, false, images.pull);
        self.progress.event(Kind::Image, &tag, Status::Building);
        let outcome = self
            .engine
            .build(&opts, &base, images.reporter)
            .map_err(engine_err(format!("building service {name:?}")))?;
        self.progress.event(Kind::Image, &tag, Status::Built);
        Ok(outcome.image.id.to_string())
    }

    /// The image ID service `name` runs: built (`--build`, or missing with `build:`),
    /// from the store, or pulled.
    fn image_for(
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

    /// `up -d`: everything the selected services need, made and started. Returns the
    /// services' containers.
    pub fn up(
        &self,
        opts: &UpOptions,
        images: &Images<'_>,
    ) -> Result<Vec<Container>, ComposeError> {
        let selected = self.selected(&opts.services, opts.no_deps)?;
        for s in opts.scale.keys() {
            self.check_services(std::slice::from_ref(s))?;
        }
        // Refuse what cannot run before anything is made.
        for name in &selected {
            service::check_supported(name, self.service(name))?;
        }
        // Orphans: containers of services the project no longer has.
        let known: Vec<String> = self.project.service_names();
        let orphans: Vec<ServiceContainer> = self
            .containers(false)?
            .into_iter()
            .filter(|c| !known.contains(&c.service))
            .collect();
        if !orphans.is_empty() {
            if opts.remove_orphans {
                for o in &orphans {
                    self.stop_one(o.container(), None)?;
                    self.remove_one(o.container(), false)?;
                }
            } else {
                let names: Vec<&str> = orphans.iter().map(|o| o.container().name()).collect();
                self.progress.warning(&format!(
                    "Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                    names.join(" ")
                ));
            }
        }
        // External networks and volumes must exist before anything is made.
        let (existing_nets, _) = self
            .engine
            .list_networks()
            .map_err(engine_err("listing networks"))?;
        for name in &selected {
            for (key, _, _) in service::service_networks(self.service(name)) {
                let external = self.project.model.networks.iter().any(|(k, v)| {
                    k.as_str() == key && v.as_ref().is_some_and(Resource::is_external)
                });
                let (engine_name, _) = self.network_name(&key)?;
                if !external {
                    self.network_spec(&key)?;
                }
                if external && !existing_nets.iter().any(|n| n.name == engine_name) {
                    return Err(ComposeError::Failed(format!(
                        "network {engine_name} declared as external, but could not be found"
                    )));
                }
            }
        }
        let existing_vols = self
            .engine
            .list_volumes()
            .map_err(engine_err("listing volumes"))?;
        for (key, v) in &self.project.model.volumes {
            if let Some(Resource::Compose(vol)) = v
                && (vol.driver.as_deref().is_some_and(|d| d != "local")
                    || !vol.driver_opts.is_empty())
            {
                return Err(ComposeError::NotSupported(format!(
                    "volume {key:?}: driver and driver_opts are not supported yet by rbuild compose (only the local driver)"
                )));
            }
            if let Some(Resource::External { .. }) = v
                && let Some(name) = service::volume_name(self.project, key.as_str())
                && !existing_vols.iter().any(|v| v.name == name)
            {
                return Err(ComposeError::Failed(format!(
                    "external volume \"{name}\" not found"
                )));
            }
        }
        // Images first: a failed build leaves nothing half-started.
        let mut image_ids = BTreeMap::new();
        for name in &selected {
            image_ids.insert(name.clone(), self.image_for(name, opts, images)?);
        }
        // Networks and volumes.
        let mut networks: BTreeMap<String, String> = BTreeMap::new();
        for name in &selected {
            for (key, _, _) in service::service_networks(self.service(name)) {
                if let std::collections::btree_map::Entry::Vacant(e) = networks.entry(key) {
                    let engine_name = self.ensure_network(e.key())?;
                    e.insert(engine_name);
                }
            }
        }
        let declared: Vec<String> = self.project.volume_names();
        for v in &declared {
            self.ensure_volume(v)?;
        }
        // Containers, in dependency order.
        let mut all = Vec::new();
        for name in &selected {
            for (dep, cond) in self.dependencies(name) {
                if selected.contains(&dep) || !opts.no_deps {
                    self.wait_for(&dep, cond)?;
                }
            }
            all.extend(self.converge(name, &image_ids[name], &networks, opts)?);
        }
        Ok(all)
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

    /// `run`: the service's dependencies up (unless `no_deps`), then a one-off container
    /// of it created (not started: the front end runs it in the foreground).
    pub fn create_oneoff(
        &self,
        opts: &RunOptions,
        images: &Images<'_>,
    ) -> Result<Container, ComposeError> {
        self.check_services(std::slice::from_ref(&opts.service))?;
        let name = opts.service.as_str();
        service::check_supported(name, self.service(name))?;
        if !opts.no_deps {
            let deps: Vec<String> = self
                .dependencies(name)
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            if !deps.is_empty() {
                self.up(
                    &UpOptions {
                        services: deps,
                        ..UpOptions::default()
                    },
                    images,
                )?;
            }
            for (dep, cond) in self.dependencies(name) {
                self.wait_for(&dep, cond)?;
            }
        }
        // Built or pulled when missing.
        self.image_for(name, &UpOptions::default(), images)?;
        let mut networks = BTreeMap::new();
        for (key, _, _) in service::service_networks(self.service(name)) {
            let engine_name = self.ensure_network(&key)?;
            networks.insert(key, engine_name);
        }
        for v in self.project.volume_names() {
            self.ensure_volume(&v)?;
        }
        let suffix = &rbuild_runner::lifecycle::new_id()[..12];
        let cname = opts
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{name}-run-{suffix}", self.project.name));
        let hash = service::config_hash(self.service(name));
        self.create_with(name, 1, &hash, &networks, true, &|o| {
            o.name = Some(cname.clone());
            if !opts.command.is_empty() {
                o.cmd = opts.command.clone();
            }
            if let Some(e) = &opts.entrypoint {
                o.entrypoint = Some(e.clone());
            }
            o.env.extend(opts.env.iter().cloned());
            if opts.user.is_some() {
                o.user = opts.user.clone();
            }
            if opts.workdir.is_some() {
                o.workdir = opts.workdir.clone();
            }
            if !opts.service_ports {
                o.ports.clear();
            }
            o.auto_remove = opts.rm;
            o.restart = Default::default();
            o.tty = opts.tty;
            o.interactive = opts.interactive;
            o.stdin_once = opts.interactive;
        })
    }

    /// Wait until dependency `dep` meets `cond`.
    fn wait_for(&self, dep: &str, cond: Condition) -> Result<(), ComposeError> {
        match cond {
            Condition::ServiceStarted => Ok(()),
            Condition::ServiceHealthy => Err(ComposeError::NotSupported(format!(
                "depends_on {dep}: condition service_healthy is not supported yet by rbuild compose (healthchecks are not run yet)"
            ))),
            Condition::ServiceCompletedSuccessfully => {
                for c in self.service_containers(&[dep.to_owned()])? {
                    let name = c.container().name().to_owned();
                    self.progress.event(Kind::Container, &name, Status::Waiting);
                    let code = self
                        .engine
                        .wait(c.container())
                        .map_err(engine_err(format!("waiting for {name}")))?;
                    if code != 0 {
                        return Err(ComposeError::Failed(format!(
                            "service {dep:?} didn't complete successfully: exit {code}"
                        )));
                    }
                    self.progress.event(Kind::Container, &name, Status::Exited);
                }
                Ok(())
            }
        }
    }

    /// Bring service `name` to its wanted state: replicas 1..=N up to date and running,
    /// others removed.
    fn converge(
        &self,
        name: &str,
        image_id: &str,
        networks: &BTreeMap<String, String>,
        opts: &UpOptions,
    ) -> Result<Vec<Container>, ComposeError> {
        let s = self.service(name);
        let hash = service::config_hash(s);
        let wanted = opts
            .scale
            .get(name)
            .copied()
            .unwrap_or_else(|| service::replicas(s));
        if s.container_name.is_some() && wanted > 1 {
            return Err(ComposeError::Service {
                service: name.to_owned(),
                message: format!(
                    "container_name is set: the service cannot be scaled to {wanted} containers"
                ),
            });
        }
        let existing = self.service_containers(&[name.to_owned()])?;
        let mut out = Vec::new();
        for extra in existing
            .iter()
            .filter(|c| c.number > wanted || c.number == 0)
        {
            self.stop_one(extra.container(), None)?;
            self.remove_one(extra.container(), false)?;
        }
        for number in 1..=wanted {
            let current = existing.iter().find(|c| c.number == number);
            match current {
                Some(c) => {
                    let rec = &c.container().record;
                    let changed =
                        rec.labels.get(labels::HASH) != Some(&hash) || rec.image_id != image_id;
                    if (changed || opts.force_recreate) && !opts.no_recreate {
                        let cname = c.container().name().to_owned();
                        self.progress
                            .event(Kind::Container, &cname, Status::Recreate);
                        if c.summary.state.status.is_active() {
                            self.engine
                                .stop(c.container(), None, None)
                                .map_err(engine_err(format!("stopping {cname}")))?;
                        }
                        self.engine
                            .remove_container(c.container(), true, false)
                            .map_err(engine_err(format!("removing {cname}")))?;
                        let new = self.create(name, number, &hash, networks)?;
                        self.progress
                            .event(Kind::Container, &cname, Status::Recreated);
                        if !opts.no_start {
                            self.start_one(&new)?;
                        }
                        out.push(new);
                    } else if c.summary.state.status.is_active() {
                        self.progress
                            .event(Kind::Container, c.container().name(), Status::Running);
                        out.push(c.container().clone());
                    } else {
                        if !opts.no_start {
                            self.start_one(c.container())?;
                        }
                        out.push(c.container().clone());
                    }
                }
                None => {
                    let cname = service::container_name(&self.project.name, name, s, number);
                    self.progress
                        .event(Kind::Container, &cname, Status::Creating);
                    let new = self.create(name, number, &hash, networks)?;
                    self.progress
                        .event(Kind::Container, &cname, Status::Created);
                    if !opts.no_start {
                        self.start_one(&new)?;
                    }
                    out.push(new);
                }
            }
        }
        Ok(out)
    }

    /// Create replica `number` of service `name` and connect it to its other networks.
    fn create(
        &self,
        name: &str,
        number: u64,
        hash: &str,
        networks: &BTreeMap<String, String>,
    ) -> Result<Container, ComposeError> {
        self.create_with(name, number, hash, networks, false, &|_| {})
    }

    /// [`Runtime::create`], the options adjusted by `adjust` (a one-off's).
    fn create_with(
        &self,
        name: &str,
        number: u64,
        hash: &str,
        networks: &BTreeMap<String, String>,
        oneoff: bool,
        adjust: &dyn Fn(&mut rbuild_engine::CreateOptions),
    ) -> Result<Container, ComposeError> {
        let s = self.service(name);
        let nets = service::service_networks(s);
        let first = nets.first().and_then(|(k, _, _)| networks.get(k)).cloned();
        let resolve = |svc: &str| {
            self.service_containers(&[svc.to_owned()])
                .ok()
                .and_then(|cs| cs.first().map(|c| c.container().id().to_owned()))
        };
        let image = self.image_name(name);
        let mut create = service::create_options(
            self.project,
            name,
            s,
            number,
            &image,
            first.as_deref(),
            &resolve,
        )?;
        let mut all_labels =
            service::container_labels(self.project, name, number, hash, &image, oneoff);
        all_labels.append(&mut create.labels);
        create.labels = all_labels;
        adjust(&mut create);
        let cname = create.name.clone().unwrap_or_default();
        let created = self
            .engine
            .create_container(&create)
            .map_err(engine_err(format!("creating container {cname}")))?;
        let c = created.container;
        for (key, aliases, ip) in nets.iter().skip(1) {
            let Some(net) = networks.get(key) else {
                continue;
            };
            let req = EndpointRequest {
                aliases: std::iter::once(name.to_owned())
                    .chain(aliases.iter().cloned())
                    .collect(),
                ip: *ip,
                mac: None,
            };
            if let Err(e) = self.engine.network_connect(net, c.id(), &req) {
                let _ = self.engine.remove_container(&c, true, false);
                return Err(engine_err(format!("connecting {cname} to network {net}"))(
                    e,
                ));
            }
        }
        Ok(c)
    }
}
