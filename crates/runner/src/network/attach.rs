//! Plugging containers into bridge networks: a container's own network namespace (held by
//! its monitor for as long as the container lives, across restarts) gets one veth per
//! endpoint, whose other end is enslaved to the network's bridge in the hub's namespace.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::hub::Hub;
use super::state::{Endpoint, NetworkState, Networks};
use super::{NetworkError, netlink};
use crate::netns::LoopbackNetwork;

/// A container's network namespace with its endpoints plugged in, held open by this
/// process; the kernel frees it (and the veths) once this is dropped and the container's
/// processes are gone.
#[derive(Debug)]
pub struct ContainerNetwork {
    ns: LoopbackNetwork,
    /// The container's endpoints when it was attached.
    pub endpoints: Vec<Endpoint>,
}

impl ContainerNetwork {
    /// A path naming the namespace while this value lives, for the container to join.
    pub fn path(&self) -> PathBuf {
        self.ns.path()
    }
}

/// Plug endpoint `e` into the namespace `target`: the bridge is made if missing, a stale
/// veth of the same name removed, the new pair made, and the container's end named, given
/// its MAC and address, brought up, and (for its first network with a way out) given the
/// default route. `replace`: remove a stale interface of the same name in the container.
pub(crate) fn plug(
    hub: &Hub,
    st: &NetworkState,
    e: &Endpoint,
    target: BorrowedFd<'_>,
    replace: bool,
) -> Result<(), NetworkError> {
    let net = st
        .networks
        .iter()
        .find(|n| n.id == e.network)
        .ok_or_else(|| NetworkError::NotFound(e.network.clone()))?;
    let (Some(subnet), Some(gw)) = (net.subnet, net.gateway) else {
        return Err(NetworkError::Invalid(format!(
            "network {} has no addresses",
            net.name
        )));
    };
    let host = e.host_ifname();
    let bridge = net.bridge.clone();
    let name = e.ifname();
    let mac = netlink::parse_mac(&e.mac)
        .ok_or_else(|| NetworkError::Invalid(format!("bad MAC address {:?}", e.mac)))?;
    if replace {
        netlink::in_netns(Some(target), || netlink::delete(&name))?;
    }
    netlink::in_netns(Some(hub.ns()), || {
        netlink::ensure_bridge(&bridge, gw, subnet.prefix_len())?;
        netlink::delete(&host)?;
        netlink::add_veth(&host, &name, mac, &bridge, target)
    })?;
    // The default route goes through the first (lowest interface number) network that
    // has a way out.
    let routed = st
        .endpoints_of(&e.container)
        .into_iter()
        .find(|o| st.networks.iter().any(|n| n.id == o.network && !n.internal))
        .is_some_and(|o| o.id == e.id);
    let ip = e.ip;
    netlink::in_netns(Some(target), || {
        netlink::configure(&name, ip, subnet.prefix_len(), routed.then_some(gw))
    })
}

/// Refuse to attach a container to a network with a way out (not `--internal`) when the hub
/// has no uplink: the container would start and silently reach nothing beyond its bridges.
/// The error names the network and the reason the uplink could not start.
fn no_way_out(hub: &Hub, st: &NetworkState, endpoints: &[Endpoint]) -> Result<(), NetworkError> {
    let Some(reason) = &hub.uplink_error else {
        return Ok(());
    };
    let outward = endpoints.iter().find_map(|e| {
        st.networks
            .iter()
            .find(|n| n.id == e.network && !n.internal)
    });
    match outward {
        Some(n) => Err(NetworkError::NoUplink {
            network: n.name.clone(),
            reason: reason.clone(),
        }),
        None => Ok(()),
    }
}

impl Networks {
    /// Make container `id`'s network namespace and plug in its endpoints (starting the hub
    /// with `program` if it is not running). With no endpoint the namespace has only `lo`.
    pub fn attach_container(
        &self,
        program: &Path,
        id: &str,
    ) -> Result<ContainerNetwork, NetworkError> {
        let lock = self.lock()?;
        let st = self.load_locked(&lock)?;
        let endpoints: Vec<Endpoint> = st.endpoints_of(id).into_iter().cloned().collect();
        let ns = LoopbackNetwork::create()
            .map_err(|e| NetworkError::Setup(format!("container network namespace: {e}")))?;
        if !endpoints.is_empty() {
            let hub = self.ensure_hub(&lock, program)?;
            no_way_out(&hub, &st, &endpoints)?;
            let target = File::open(ns.path()).map_err(NetworkError::io(ns.path()))?;
            let target: OwnedFd = target.into();
            for e in &endpoints {
                plug(&hub, &st, e, target.as_fd(), false)?;
            }
        }
        drop(lock);
        Ok(ContainerNetwork { ns, endpoints })
    }

    /// Plug endpoint `e` (already in the state) into the running container whose first
    /// process is `pid` (`network connect`).
    pub fn plug_running(&self, program: &Path, e: &Endpoint, pid: i32) -> Result<(), NetworkError> {
        let lock = self.lock()?;
        let st = self.load_locked(&lock)?;
        let hub = self.ensure_hub(&lock, program)?;
        let path = format!("/proc/{pid}/ns/net");
        let target: OwnedFd = File::open(&path).map_err(NetworkError::io(&path))?.into();
        plug(&hub, &st, e, target.as_fd(), true)
    }

    /// Take endpoint `e`'s interface away (`network disconnect` of a running container):
    /// deleting the hub's end of the pair deletes the container's.
    pub fn unplug(&self, e: &Endpoint) -> Result<(), NetworkError> {
        let Some(hub) = self.running_hub() else {
            return Ok(());
        };
        let host = e.host_ifname();
        netlink::in_netns(Some(hub.ns()), || netlink::delete(&host))
    }
}
