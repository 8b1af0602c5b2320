//! Bridge networks, docker's way, without touching the host's network namespace.
//!
//! Every bridge of a store root lives in one network namespace that rbuild owns, held by
//! the [`hub`](serve_hub) process (as rootless podman's "rootless netns"): the bridges with
//! their gateway addresses, the hub's end of each container's veth pair, NAT and isolation
//! rules, and the DNS server that resolves container names on user-defined networks. Its way
//! out is user-mode networking (`slirp4netns`) from the host's side, so containers reach
//! what the host reaches without any host address, route or rule. Each container has its
//! own network namespace, made and held by its monitor ([`Networks::attach_container`]),
//! with an `ethN` per network. What networks and endpoints exist is one JSON document
//! under the store root ([`Networks`]).

mod attach;
mod dns;
mod hub;
mod netlink;
mod state;
mod uplink_rootless;

use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use attach::ContainerNetwork;
pub use hub::{HOST_GATEWAY, Hub, linger, serve_hub};
pub use state::{Endpoint, NetworkRecord, NetworkState, Networks, NetworksLock, mac_for, new_id};

/// What can go wrong with networks, in docker's words where docker has them.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No network has this name or ID.
    #[error("network {0} not found")]
    NotFound(String),
    /// An ID prefix names several networks.
    #[error("network {0} is ambiguous (several networks match)")]
    Ambiguous(String),
    /// The name is taken.
    #[error("network with name {0} already exists")]
    NameTaken(String),
    /// A subnet overlaps another network's.
    #[error("Pool overlaps with other one on this address space")]
    Overlaps,
    /// Every default address pool is in use.
    #[error(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    )]
    PoolsExhausted,
    /// `--ip` is another endpoint's.
    #[error("Address already in use: {0}")]
    AddressInUse(Ipv4Addr),
    /// A network with containers on it cannot be removed.
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    InUse {
        /// Its name.
        name: String,
        /// Its ID.
        id: String,
    },
    /// A bad parameter.
    #[error("{0}")]
    Invalid(String),
    /// The hub's uplink did not start, so a network with a way out has none.
    #[error("network {network} has no way out: {reason}")]
    NoUplink {
        /// The network.
        network: String,
        /// Why the uplink did not start.
        reason: String,
    },
    /// Plumbing failed (netlink, the hub, the uplink).
    #[error("network setup: {0}")]
    Setup(String),
    /// A file of the network state.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Delete bridge `name` from the running hub's namespace (its network was removed).
pub fn delete_bridge(hub: &Hub, name: &str) -> Result<(), NetworkError> {
    netlink::in_netns(Some(hub.ns()), || netlink::delete(name))
}

impl NetworkError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> NetworkError {
        let path = path.into();
        move |source| NetworkError::Io { path, source }
    }
}
