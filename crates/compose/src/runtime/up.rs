//! `up`: the project's networks and volumes made, images built or pulled, each service's
//! containers created (or recreated when its config hash or image changed) and started
//! after the services they depend on.

use std::collections::BTreeMap;

use compose_spec::service::Condition;
use compose_spec::{Resource, Service, ShortOrLong};
use rbuild_builder::reporter::Reporter;
use rbuild_engine::EndpointRequest;
use rbuild_engine::build::PullFn;
use rbuild_runner::lifecycle::Container;
use rbuild_runner::lifecycle::health::HealthStatus;

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
    pub(crate) fn service(&self, name: &str) -> &Service {
        self.project
            .model
            .services
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, s)| s)
            .expect("a service of the project")
    }

    pub(crate) fn dependencies(&self, name: &str) -> Vec<(String, Condition)> {
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
            super::files::service_files(self.project, name, self.service(name))?;
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

    /// Wait until dependency `dep` meets `cond`.
    pub(crate) fn wait_for(&self, dep: &str, cond: Condition) -> Result<(), ComposeError> {
        match cond {
            Condition::ServiceStarted => Ok(()),
            Condition::ServiceHealthy => {
                for c in self.service_containers(&[dep.to_owned()])? {
                    let name = c.container().name().to_owned();
                    self.progress.event(Kind::Container, &name, Status::Waiting);
                    self.wait_healthy(c.container()).map_err(|e| {
                        ComposeError::Failed(format!("dependency failed to start: {e}"))
                    })?;
                    self.progress.event(Kind::Container, &name, Status::Healthy);
                }
                Ok(())
            }
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

    /// Write service `name`'s environment-based secrets and configs into its new container
    /// `c`, through a temporary file each (as `docker compose` copies them in).
    fn write_files(&self, name: &str, c: &Container) -> Result<(), ComposeError> {
        use std::os::unix::fs::PermissionsExt;
        let files = super::files::service_files(self.project, name, self.service(name))?;
        for (i, (target, bytes, mode)) in files.written.iter().enumerate() {
            let tmp = std::env::temp_dir().join(format!(
                "rbuild-compose-{}-{}-{i}",
                std::process::id(),
                &c.id()[..12]
            ));
            let written = std::fs::write(&tmp, bytes)
                .and_then(|()| {
                    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(*mode))
                })
                .map_err(|e| ComposeError::Failed(format!("writing {}: {e}", tmp.display())));
            let copied = written.and_then(|()| {
                self.engine
                    .copy_to_container(&tmp, c.id(), target)
                    .map_err(engine_err(format!("writing {target} into {}", c.name())))
            });
            let _ = std::fs::remove_file(&tmp);
            copied?;
        }
        Ok(())
    }

    /// Wait until `c`'s healthcheck passes (docker compose's `service_healthy`): a container
    /// without a healthcheck, one that turned unhealthy and one that ended are errors, worded
    /// as compose words them (`container X is unhealthy`).
    pub fn wait_healthy(&self, c: &Container) -> Result<(), ComposeError> {
        let name = c.name();
        if c.record
            .healthcheck
            .as_ref()
            .and_then(|h| h.probe_command())
            .is_none()
        {
            return Err(ComposeError::Failed(format!(
                "container {name} has no healthcheck configured"
            )));
        }
        loop {
            let st = c
                .state()
                .map_err(|e| ComposeError::Failed(format!("container {name}: {e}")))?;
            if !st.status.is_active() {
                return Err(ComposeError::Failed(format!(
                    "container {name} exited ({})",
                    st.exit_code
                )));
            }
            match st.health.map(|h| h.status) {
                Some(HealthStatus::Healthy) => return Ok(()),
                Some(HealthStatus::Unhealthy) => {
                    return Err(ComposeError::Failed(format!(
                        "container {name} is unhealthy"
                    )));
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }

    /// `up --wait`: wait until each of `containers` runs and, if it has a healthcheck, is
    /// healthy; one that ended or turned unhealthy is an error.
    pub fn wait_ready(&self, containers: &[Container]) -> Result<(), ComposeError> {
        for c in containers {
            let probed = c
                .record
                .healthcheck
                .as_ref()
                .and_then(|h| h.probe_command())
                .is_some();
            let name = c.name().to_owned();
            self.progress.event(Kind::Container, &name, Status::Waiting);
            if probed {
                self.wait_healthy(c)?;
                self.progress.event(Kind::Container, &name, Status::Healthy);
            } else {
                let st = c
                    .state()
                    .map_err(|e| ComposeError::Failed(format!("container {name}: {e}")))?;
                if !st.status.is_active() {
                    return Err(ComposeError::Failed(format!(
                        "container {name} exited ({})",
                        st.exit_code
                    )));
                }
                self.progress.event(Kind::Container, &name, Status::Running);
            }
        }
        Ok(())
    }

    /// Bring service `name` to its wanted state: replicas 1..=N up to date and running,
    /// others removed.
    pub(crate) fn converge(
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
    pub(crate) fn create(
        &self,
        name: &str,
        number: u64,
        hash: &str,
        networks: &BTreeMap<String, String>,
    ) -> Result<Container, ComposeError> {
        self.create_with(name, number, hash, networks, false, &|_| {})
    }

    /// [`Runtime::create`], the options adjusted by `adjust` (a one-off's).
    pub(crate) fn create_with(
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
        if let Err(e) = self.write_files(name, &c) {
            let _ = self.engine.remove_container(&c, true, false);
            return Err(e);
        }
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
