//! The project's networks and volumes: their engine names (`PROJECT_KEY`, `name:`, external
//! ones as they are), their configurations checked, made with compose's labels.

use std::collections::BTreeMap;

use compose_spec::Resource;
use rbuild_engine::NetworkCreate;

use super::service::{self, text};
use super::{Kind, Runtime, Status, engine_err, labels};
use crate::error::ComposeError;

impl Runtime<'_> {
    /// The engine's name of network `key` and whether the project manages it.
    pub(crate) fn network_name(
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
    pub(crate) fn network_spec(&self, key: &str) -> Result<NetworkCreate, ComposeError> {
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
    pub(crate) fn ensure_network(&self, key: &str) -> Result<String, ComposeError> {
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
    pub(crate) fn ensure_volume(&self, key: &str) -> Result<(), ComposeError> {
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
}
