//! Networks: docker's `network create|ls|inspect|rm|prune|connect|disconnect` over the
//! runner's [`rbuild_runner::network`] (the state document, the hub's namespace, the
//! plumbing), with docker's errors and events.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rbuild_runner::network::{
    Endpoint, NetworkError, NetworkRecord, NetworkState, Networks, mac_for, new_id,
};

use crate::Engine;
use crate::error::{EngineError, Result};
use crate::events::{Event, EventType};
use crate::inspect::NetworkJson;

impl From<NetworkError> for EngineError {
    fn from(e: NetworkError) -> EngineError {
        match e {
            NetworkError::NotFound(_) => EngineError::NotFound(e.to_string()),
            NetworkError::NameTaken(_)
            | NetworkError::InUse { .. }
            | NetworkError::AddressInUse(_) => EngineError::Conflict(e.to_string()),
            NetworkError::Ambiguous(_) | NetworkError::Overlaps | NetworkError::Invalid(_) => {
                EngineError::InvalidParameter(e.to_string())
            }
            other => EngineError::Runner(other.into()),
        }
    }
}

/// `network create`'s options.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    /// The name.
    pub name: String,
    /// `-d`: only `bridge` (the default).
    pub driver: Option<String>,
    /// `--subnet CIDR`.
    pub subnet: Option<String>,
    /// `--gateway IP`.
    pub gateway: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--label K=V`.
    pub labels: BTreeMap<String, String>,
    /// `-o K=V`.
    pub options: BTreeMap<String, String>,
}

/// An attachment asked for with `--network`/`network connect`.
#[derive(Debug, Clone, Default)]
pub struct EndpointRequest {
    /// `--network-alias`/`--alias`.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `--mac-address`.
    pub mac: Option<String>,
}

/// Check a network name as docker does.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidParameter(format!(
            "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// A new endpoint of container `id` (named `name`, host name `hostname`) on `net`.
pub(crate) fn new_endpoint(
    st: &NetworkState,
    net: &NetworkRecord,
    id: &str,
    name: &str,
    hostname: &str,
    req: &EndpointRequest,
) -> std::result::Result<Endpoint, NetworkError> {
    if !net.is_bridge() {
        return Err(NetworkError::Invalid(format!(
            "network {} is not a bridge network: a container joins it with --network {} only",
            net.name, net.name
        )));
    }
    if !req.aliases.is_empty() && !net.resolves_names() {
        return Err(NetworkError::Invalid(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        ));
    }
    let ip = st.allocate(net, req.ip)?;
    let mac = match &req.mac {
        Some(m) => {
            let ok = m.split(':').count() == 6
                && m.split(':')
                    .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
            if !ok {
                return Err(NetworkError::Invalid(format!("invalid MAC address {m:?}")));
            }
            m.to_ascii_lowercase()
        }
        None => mac_for(ip),
    };
    let index = st
        .endpoints_of(id)
        .iter()
        .map(|e| e.index + 1)
        .max()
        .unwrap_or(0);
    Ok(Endpoint {
        id: new_id(),
        container: id.to_owned(),
        name: name.to_owned(),
        hostname: hostname.to_owned(),
        network: net.id.clone(),
        ip,
        mac,
        aliases: req.aliases.clone(),
        static_ip: req.ip.is_some(),
        index,
    })
}

impl Engine {
    /// The networks of the store root.
    pub fn networks(&self) -> Networks {
        Networks::new(self.root())
    }

    /// `network create`. Sends a `create` event.
    pub fn create_network(&self, opts: &NetworkCreate) -> Result<NetworkRecord> {
        check_name(&opts.name)?;
        let driver = opts.driver.as_deref().unwrap_or("bridge");
        if driver != "bridge" {
            return Err(EngineError::InvalidParameter(format!(
                "network driver {driver:?} is not supported (only bridge)"
            )));
        }
        let subnet: Option<Ipv4Net> = opts
            .subnet
            .as_deref()
            .map(|s| {
                s.parse::<Ipv4Net>().map_err(|_| {
                    EngineError::InvalidParameter(format!(
                        "invalid subnet {s:?}: expected an IPv4 CIDR such as 172.28.0.0/16"
                    ))
                })
            })
            .transpose()?;
        if let Some(s) = subnet
            && (s.prefix_len() > 30 || s.trunc() != s)
        {
            return Err(EngineError::InvalidParameter(format!(
                "invalid subnet {s}: it must be a network address with a prefix of at most /30"
            )));
        }
        let gateway: Option<Ipv4Addr> = opts
            .gateway
            .as_deref()
            .map(|g| {
                g.parse()
                    .map_err(|_| EngineError::InvalidParameter(format!("invalid gateway {g:?}")))
            })
            .transpose()?;
        if gateway.is_some() && subnet.is_none() {
            return Err(EngineError::InvalidParameter(
                "a gateway needs a subnet (--subnet)".into(),
            ));
        }
        let networks = self.networks();
        let rec = networks.update(|st| {
            if st.networks.iter().any(|n| n.name == opts.name) {
                return Err(NetworkError::NameTaken(opts.name.clone()));
            }
            let subnet = match subnet {
                Some(s) => {
                    if st.overlaps(&s) {
                        return Err(NetworkError::Overlaps);
                    }
                    s
                }
                None => st.next_subnet()?,
            };
            let gateway = match gateway {
                Some(g) => {
                    if !subnet.contains(&g) || g == subnet.network() || g == subnet.broadcast() {
                        return Err(NetworkError::Invalid(format!(
                            "no matching subnet for gateway {g}"
                        )));
                    }
                    g
                }
                None => subnet.hosts().next().ok_or(NetworkError::PoolsExhausted)?,
            };
            let id = new_id();
            let rec = NetworkRecord {
                bridge: format!("rb-{}", &id[..12]),
                id,
                name: opts.name.clone(),
                driver: "bridge".into(),
                subnet: Some(subnet),
                gateway: Some(gateway),
                internal: opts.internal,
                user_subnet: opts.subnet.is_some(),
                labels: opts.labels.clone(),
                options: opts.options.clone(),
                created: rbuild_runner::lifecycle::time::rfc3339_nano(
                    rbuild_runner::lifecycle::time::now_ns(),
                ),
            };
            st.networks.push(rec.clone());
            Ok(rec)
        })?;
        self.refresh_hub()?;
        self.emit(Event::now(
            EventType::Network,
            "create",
            &rec.id,
            [("name", rec.name.clone()), ("type", "bridge".to_owned())],
        ));
        Ok(rec)
    }

    /// Reload a running hub's NAT and isolation rules after the networks changed.
    fn refresh_hub(&self) -> Result<()> {
        let networks = self.networks();
        let lock = networks.lock()?;
        if let Some(hub) = networks.running_hub() {
            let st = networks.load_locked(&lock)?;
            networks.refresh_firewall(&hub, &st)?;
        }
        Ok(())
    }

    /// Every network (predefined ones first) and the state they came from.
    pub fn list_networks(&self) -> Result<(Vec<NetworkRecord>, NetworkState)> {
        let st = self.networks().load()?;
        Ok((st.networks.clone(), st))
    }

    /// `network inspect` of the network named `query` (name, ID or ID prefix).
    pub fn network_inspect(&self, query: &str) -> Result<NetworkJson> {
        let st = self.networks().load()?;
        let n = st.find(query)?;
        Ok(NetworkJson::new(n, &st))
    }

    /// `network rm`: refused for the predefined networks and while containers are on it.
    /// Returns the removed network's name; sends a `destroy` event.
    pub fn remove_network(&self, query: &str) -> Result<NetworkRecord> {
        let networks = self.networks();
        let rec = networks.update(|st| {
            let n = st.find(query)?.clone();
            if n.is_predefined() {
                return Err(NetworkError::Invalid(format!(
                    "{} is a pre-defined network and cannot be removed",
                    n.name
                )));
            }
            if st.endpoints_on(&n.id).next().is_some() {
                return Err(NetworkError::InUse {
                    name: n.name.clone(),
                    id: n.id.clone(),
                });
            }
            st.networks.retain(|o| o.id != n.id);
            Ok(n)
        })?;
        // Its bridge goes with the hub's namespace, or now.
        if let Some(hub) = networks.running_hub() {
            let _ = rbuild_runner::network::delete_bridge(&hub, &rec.bridge);
        }
        self.refresh_hub()?;
        self.emit(Event::now(
            EventType::Network,
            "destroy",
            &rec.id,
            [("name", rec.name.clone()), ("type", "bridge".to_owned())],
        ));
        Ok(rec)
    }

    /// `network prune`: remove every user network no container is on; their names.
    pub fn prune_networks(&self) -> Result<Vec<String>> {
        let st = self.networks().load()?;
        let mut out = Vec::new();
        for n in &st.networks {
            if n.is_predefined() || st.endpoints_on(&n.id).next().is_some() {
                continue;
            }
            if self.remove_network(&n.id).is_ok() {
                out.push(n.name.clone());
            }
        }
        Ok(out)
    }

    /// `network connect NET CONTAINER`: a new endpoint, plugged in at once if the container
    /// runs (else at its next start). Sends a `connect` event.
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        req: &EndpointRequest,
    ) -> Result<()> {
        let c = self.container(container)?;
        if !c.record.is_bridged() {
            return Err(EngineError::InvalidParameter(format!(
                "container {} is on network {:?}: only containers on bridge networks can be connected to others",
                c.name(),
                c.record.network
            )));
        }
        let networks = self.networks();
        let (e, net) = networks.update(|st| {
            let net = st.find(network)?.clone();
            if st.endpoints_of(c.id()).iter().any(|e| e.network == net.id) {
                return Err(NetworkError::Invalid(format!(
                    "endpoint with name {} already exists in network {}",
                    c.name(),
                    net.name
                )));
            }
            let e = new_endpoint(st, &net, c.id(), c.name(), &c.record.hostname, req)?;
            st.endpoints.push(e.clone());
            Ok((e, net))
        })?;
        let st = c.state()?;
        if st.status.is_active()
            && st.pid > 0
            && let Err(err) = networks.plug_running(self.monitor_program(), &e, st.pid)
        {
            let _ = networks.update(|s| {
                s.endpoints.retain(|o| o.id != e.id);
                Ok(())
            });
            return Err(err.into());
        }
        self.emit(Event::now(
            EventType::Network,
            "connect",
            &net.id,
            [
                ("container", c.id().to_owned()),
                ("name", net.name.clone()),
                ("type", "bridge".to_owned()),
            ],
        ));
        Ok(())
    }

    /// `network disconnect NET CONTAINER`: the endpoint goes, and its interface with it if
    /// the container runs. Sends a `disconnect` event.
    pub fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        let networks = self.networks();
        let c = match self.container(container) {
            Ok(c) => Some(c),
            Err(e) if force && e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let id = c
            .as_ref()
            .map(|c| c.id().to_owned())
            .unwrap_or_else(|| container.to_owned());
        let (e, net) = networks.update(|st| {
            let net = st.find(network)?.clone();
            let Some(pos) = st
                .endpoints
                .iter()
                .position(|e| e.network == net.id && (e.container == id || e.name == id))
            else {
                return Err(NetworkError::Invalid(format!(
                    "container {container} is not connected to network {}",
                    net.name
                )));
            };
            Ok((st.endpoints.remove(pos), net))
        })?;
        networks.unplug(&e)?;
        self.emit(Event::now(
            EventType::Network,
            "disconnect",
            &net.id,
            [
                ("container", e.container.clone()),
                ("name", net.name.clone()),
                ("type", "bridge".to_owned()),
            ],
        ));
        Ok(())
    }
}

/// A build attached to a network (`build --network NAME`): a network namespace with an
/// endpoint on it, which every RUN step of the build joins; dropping it releases both.
#[derive(Debug)]
pub struct BuildNetwork {
    net: Option<rbuild_runner::network::ContainerNetwork>,
    resolv_conf: String,
    networks: Networks,
    id: String,
}

impl BuildNetwork {
    /// How the build's RUN steps join it.
    pub fn mode(&self) -> rbuild_builder::build::NetworkMode {
        rbuild_builder::build::NetworkMode::Joined {
            path: self.net.as_ref().map(|n| n.path()).unwrap_or_default(),
            resolv_conf: self.resolv_conf.clone(),
        }
    }
}

impl Drop for BuildNetwork {
    fn drop(&mut self) {
        drop(self.net.take());
        let _ = self.networks.release(&self.id);
    }
}

impl Engine {
    /// Attach a build to network `name` (`bridge` or a user network).
    pub fn attach_build_network(&self, name: &str) -> Result<BuildNetwork> {
        let networks = self.networks();
        let id = new_id();
        let short = id[..12].to_owned();
        let gateway = networks.update(|st| {
            let net = st.find(name)?.clone();
            let e = new_endpoint(
                st,
                &net,
                &id,
                &format!("rbuild-build-{short}"),
                "",
                &EndpointRequest::default(),
            )?;
            st.endpoints.push(e);
            Ok(net.gateway)
        })?;
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut resolv_conf: String = gateway
            .map(|g| format!("nameserver {g}\n"))
            .unwrap_or_default();
        for l in host
            .lines()
            .filter(|l| l.starts_with("search ") || l.starts_with("options "))
        {
            resolv_conf.push_str(l);
            resolv_conf.push('\n');
        }
        let mut guard = BuildNetwork {
            net: None,
            resolv_conf,
            networks: networks.clone(),
            id: id.clone(),
        };
        guard.net = Some(networks.attach_container(self.monitor_program(), &id)?);
        Ok(guard)
    }
}
