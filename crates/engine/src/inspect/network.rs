//! Docker's `network inspect` JSON (`types.NetworkResource`).

use std::collections::BTreeMap;

use rbuild_runner::network::{NetworkRecord, NetworkState};
use serde::{Deserialize, Serialize};

/// One `IPAM.Config` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// The subnet, `172.18.0.0/16`.
    #[serde(rename = "Subnet")]
    pub subnet: String,
    /// The gateway.
    #[serde(rename = "Gateway")]
    pub gateway: String,
}

/// `IPAM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    /// Always `default`.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// Driver options (none).
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    /// The subnets.
    #[serde(rename = "Config")]
    pub config: Vec<IpamConfig>,
}

/// A container on the network, as `Containers.<id>` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkContainer {
    /// The container's name.
    #[serde(rename = "Name")]
    pub name: String,
    /// The endpoint's ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Its MAC address.
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    /// `IP/PREFIX`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// Empty: no IPv6.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// Docker's `NetworkResource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkJson {
    /// Name.
    #[serde(rename = "Name")]
    pub name: String,
    /// ID.
    #[serde(rename = "Id")]
    pub id: String,
    /// Creation time (RFC 3339).
    #[serde(rename = "Created")]
    pub created: String,
    /// `local`.
    #[serde(rename = "Scope")]
    pub scope: String,
    /// `bridge`, `host` or `null`.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// No IPv6.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Addressing.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// `--internal`.
    #[serde(rename = "Internal")]
    pub internal: bool,
    /// Swarm: false.
    #[serde(rename = "Attachable")]
    pub attachable: bool,
    /// Swarm: false.
    #[serde(rename = "Ingress")]
    pub ingress: bool,
    /// Containers on it, by ID.
    #[serde(rename = "Containers")]
    pub containers: BTreeMap<String, NetworkContainer>,
    /// Driver options.
    #[serde(rename = "Options")]
    pub options: BTreeMap<String, String>,
    /// Labels.
    #[serde(rename = "Labels")]
    pub labels: BTreeMap<String, String>,
}

impl NetworkJson {
    /// The JSON of `n`, with its endpoints from `st`.
    pub fn new(n: &NetworkRecord, st: &NetworkState) -> NetworkJson {
        let prefix = n.subnet.map(|s| s.prefix_len()).unwrap_or(0);
        let mut options = n.options.clone();
        if n.name == "bridge" {
            options
                .entry("com.docker.network.bridge.name".into())
                .or_insert_with(|| n.bridge.clone());
            options
                .entry("com.docker.network.bridge.default_bridge".into())
                .or_insert_with(|| "true".into());
        }
        NetworkJson {
            name: n.name.clone(),
            id: n.id.clone(),
            created: n.created.clone(),
            scope: "local".into(),
            driver: n.driver.clone(),
            enable_ipv6: false,
            ipam: Ipam {
                driver: "default".into(),
                options: None,
                config: n
                    .subnet
                    .map(|s| IpamConfig {
                        subnet: s.to_string(),
                        gateway: n.gateway.map(|g| g.to_string()).unwrap_or_default(),
                    })
                    .into_iter()
                    .collect(),
            },
            internal: n.internal,
            attachable: false,
            ingress: false,
            containers: st
                .endpoints_on(&n.id)
                .map(|e| {
                    (
                        e.container.clone(),
                        NetworkContainer {
                            name: e.name.clone(),
                            endpoint_id: e.id.clone(),
                            mac_address: e.mac.clone(),
                            ipv4_address: format!("{}/{prefix}", e.ip),
                            ipv6_address: String::new(),
                        },
                    )
                })
                .collect(),
            options,
            labels: n.labels.clone(),
        }
    }
}
