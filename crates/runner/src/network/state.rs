//! What is stored about networks: one document, `<root>/networks/state.json`, holding every
//! network and every container endpoint on them, replaced atomically under the networks
//! lock (`<root>/networks/lock`). The DNS server of the hub reads it; IP addresses are
//! allocated from it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::NetworkError;

/// A network: one of the predefined `bridge`, `host` and `none`, or a user-defined bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// `bridge`, `host` or `null` (docker's driver names).
    pub driver: String,
    /// The subnet (bridge networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Ipv4Net>,
    /// The gateway: the bridge's own address inside rbuild's network namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// No route out (`--internal`).
    #[serde(default)]
    pub internal: bool,
    /// Whether the user gave the subnet (`--ip` is only allowed then, as docker says).
    #[serde(default)]
    pub user_subnet: bool,
    /// `--label K=V`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `-o K=V` driver options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Creation time, RFC 3339 nanoseconds.
    pub created: String,
    /// The bridge interface inside rbuild's namespace (bridge networks).
    #[serde(default)]
    pub bridge: String,
}

impl NetworkRecord {
    /// Whether containers on it get an interface on a bridge.
    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// Whether it is one of the predefined networks (`bridge`, `host`, `none`).
    pub fn is_predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    /// Whether its containers resolve each other's names (user-defined bridges only, as
    /// docker's embedded DNS).
    pub fn resolves_names(&self) -> bool {
        self.is_bridge() && self.name != "bridge"
    }
}

/// One container's attachment to one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The endpoint's own ID (64 hex digits).
    pub id: String,
    /// The container's ID.
    pub container: String,
    /// The container's name (without a leading `/`).
    pub name: String,
    /// The container's host name (resolvable too).
    #[serde(default)]
    pub hostname: String,
    /// The network's ID.
    pub network: String,
    /// Its address on the network.
    pub ip: Ipv4Addr,
    /// Its MAC address, `02:42:` and the address, as docker makes them.
    pub mac: String,
    /// Other names it answers to on this network (`--network-alias`, compose's service).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The address was asked for (`--ip`).
    #[serde(default)]
    pub static_ip: bool,
    /// The interface number in the container (`eth0`, `eth1`, ...).
    pub index: u32,
}

impl Endpoint {
    /// The host-side end of its veth pair, inside rbuild's namespace: `vr` + 8 digits of the
    /// container ID + 5 of the network ID (15 characters, the kernel's limit).
    pub fn host_ifname(&self) -> String {
        format!("vr{}{}", &self.container[..8], &self.network[..5])
    }

    /// The interface's name in the container.
    pub fn ifname(&self) -> String {
        format!("eth{}", self.index)
    }

    /// Whether `query` (lower case, no trailing dot) names this endpoint's container here:
    /// its name, short or full ID, host name or an alias.
    pub fn answers_to(&self, query: &str) -> bool {
        let q = query;
        self.name.eq_ignore_ascii_case(q)
            || (q.len() >= 12 && self.container.starts_with(q))
            || (!self.hostname.is_empty() && self.hostname.eq_ignore_ascii_case(q))
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(q))
    }
}

/// Every network and endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    /// The networks, predefined ones first.
    pub networks: Vec<NetworkRecord>,
    /// Every container's attachments.
    pub endpoints: Vec<Endpoint>,
}

/// docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/20 ... 192.168.240.0/20.
fn pools() -> impl Iterator<Item = Ipv4Net> {
    let b = (17..=31).map(|o| Ipv4Net::new(Ipv4Addr::new(172, o, 0, 0), 16).unwrap());
    let c = (0..16).map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).unwrap());
    b.chain(c)
}

/// A random 64-hex-digit ID.
pub fn new_id() -> String {
    crate::lifecycle::new_id()
}

/// Docker's MAC address for `ip`: `02:42:` followed by its four bytes.
pub fn mac_for(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

impl NetworkState {
    /// The network called `query`: a name, a full ID or an unambiguous ID prefix.
    pub fn find(&self, query: &str) -> Result<&NetworkRecord, NetworkError> {
        if let Some(n) = self
            .networks
            .iter()
            .find(|n| n.name == query || n.id == query)
        {
            return Ok(n);
        }
        let by_prefix: Vec<_> = self
            .networks
            .iter()
            .filter(|n| !query.is_empty() && n.id.starts_with(query))
            .collect();
        match by_prefix.as_slice() {
            [n] => Ok(n),
            [] => Err(NetworkError::NotFound(query.to_owned())),
            _ => Err(NetworkError::Ambiguous(query.to_owned())),
        }
    }

    /// The endpoints on network `id`.
    pub fn endpoints_on<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints.iter().filter(move |e| e.network == id)
    }

    /// Container `id`'s endpoints, in interface order.
    pub fn endpoints_of(&self, container: &str) -> Vec<&Endpoint> {
        let mut v: Vec<_> = self
            .endpoints
            .iter()
            .filter(|e| e.container == container)
            .collect();
        v.sort_by_key(|e| e.index);
        v
    }

    /// The free subnet docker would pick next.
    pub fn next_subnet(&self) -> Result<Ipv4Net, NetworkError> {
        pools()
            .find(|p| !self.overlaps(p))
            .ok_or(NetworkError::PoolsExhausted)
    }

    /// Whether `subnet` overlaps a network's, or the uplink's own `10.0.2.0/24` in the
    /// hub's namespace.
    pub fn overlaps(&self, subnet: &Ipv4Net) -> bool {
        let uplink: Ipv4Net = "10.0.2.0/24".parse().expect("valid");
        self.networks
            .iter()
            .filter_map(|n| n.subnet)
            .chain([uplink])
            .any(|s| s.contains(&subnet.network()) || subnet.contains(&s.network()))
    }

    /// A free address on `net` for a new endpoint, or check that `want` is one.
    pub fn allocate(
        &self,
        net: &NetworkRecord,
        want: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, NetworkError> {
        let subnet = net.subnet.ok_or_else(|| {
            NetworkError::Invalid(format!("network {} has no addresses", net.name))
        })?;
        let used = |ip: Ipv4Addr| {
            Some(ip) == net.gateway || self.endpoints_on(&net.id).any(|e| e.ip == ip)
        };
        if let Some(ip) = want {
            if !net.user_subnet {
                return Err(NetworkError::Invalid(
                    "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
                ));
            }
            if !subnet.contains(&ip) || ip == subnet.network() || ip == subnet.broadcast() {
                return Err(NetworkError::Invalid(format!(
                    "no configured subnet or ip-range contain the IP address {ip}"
                )));
            }
            if used(ip) {
                return Err(NetworkError::AddressInUse(ip));
            }
            return Ok(ip);
        }
        subnet.hosts().find(|ip| !used(*ip)).ok_or_else(|| {
            NetworkError::Invalid(format!(
                "no available IPv4 addresses on network {}",
                net.name
            ))
        })
    }
}

/// The networks of a store root: their state document, lock and the hub's files.
#[derive(Debug, Clone)]
pub struct Networks {
    dir: PathBuf,
}

/// The networks lock, held while the state is read for a change and written.
#[derive(Debug)]
pub struct NetworksLock {
    _file: File,
}

impl Networks {
    /// The networks under the store root `root`.
    pub fn new(root: &Path) -> Networks {
        Networks {
            dir: root.join("networks"),
        }
    }

    /// `<root>/networks`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        self.dir.parent().unwrap_or(Path::new("/"))
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Take the networks lock (blocking).
    pub fn lock(&self) -> Result<NetworksLock, NetworkError> {
        fs::create_dir_all(&self.dir).map_err(NetworkError::io(&self.dir))?;
        let path = self.dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(NetworkError::io(&path))?;
        // SAFETY: flock on an open descriptor we own.
        if unsafe { nix::libc::flock(file.as_raw_fd(), nix::libc::LOCK_EX) } < 0 {
            return Err(NetworkError::io(&path)(std::io::Error::last_os_error()));
        }
        Ok(NetworksLock { _file: file })
    }

    /// The state as stored, without defaults.
    fn read(&self) -> Result<NetworkState, NetworkError> {
        let path = self.state_path();
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| NetworkError::Invalid(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NetworkState::default()),
            Err(e) => Err(NetworkError::io(&path)(e)),
        }
    }

    /// Add the predefined networks `st` lacks; whether it lacked any.
    fn predefine(st: &mut NetworkState) -> bool {
        let now = crate::lifecycle::time::rfc3339_nano(crate::lifecycle::time::now_ns());
        let mut added = false;
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            if st.networks.iter().any(|n| n.name == name) {
                continue;
            }
            added = true;
            let bridge = name == "bridge";
            st.networks.push(NetworkRecord {
                id: new_id(),
                name: name.into(),
                driver: driver.into(),
                subnet: bridge.then(|| "172.17.0.0/16".parse().unwrap()),
                gateway: bridge.then_some(Ipv4Addr::new(172, 17, 0, 1)),
                internal: false,
                user_subnet: false,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                created: now.clone(),
                bridge: if bridge {
                    "rbuild0".into()
                } else {
                    String::new()
                },
            });
        }
        added
    }

    /// The state, with the predefined networks (made and stored on first use, so their IDs
    /// stay the same).
    pub fn load(&self) -> Result<NetworkState, NetworkError> {
        let mut st = self.read()?;
        if Self::predefine(&mut st) {
            let lock = self.lock()?;
            st = self.read()?;
            if Self::predefine(&mut st) {
                self.save(&lock, &st)?;
            }
        }
        Ok(st)
    }

    /// The state, with the predefined networks, never taking the lock nor writing (the hub
    /// reads it while the process that started it holds the lock).
    pub fn peek(&self) -> Result<NetworkState, NetworkError> {
        let mut st = self.read()?;
        Self::predefine(&mut st);
        Ok(st)
    }

    /// The state, with the predefined networks, for a caller holding the lock.
    pub fn load_locked(&self, _lock: &NetworksLock) -> Result<NetworkState, NetworkError> {
        let mut st = self.read()?;
        Self::predefine(&mut st);
        Ok(st)
    }

    /// Replace the stored state (under the lock).
    pub fn save(&self, _lock: &NetworksLock, st: &NetworkState) -> Result<(), NetworkError> {
        let path = self.state_path();
        let tmp = self.dir.join(format!(".state.json.{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(st).expect("network state serializes");
        let mut f = File::create(&tmp).map_err(NetworkError::io(&tmp))?;
        f.write_all(&bytes).map_err(NetworkError::io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(NetworkError::io(&path))
    }

    /// Give the addresses of container `id`'s endpoints back (it is removed, or a build's
    /// endpoint is done).
    pub fn release(&self, id: &str) -> Result<(), NetworkError> {
        self.update(|st| {
            st.endpoints.retain(|e| e.container != id);
            Ok(())
        })
    }

    /// Load, change and save the state under the lock; returns what `f` returned.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut NetworkState) -> Result<T, NetworkError>,
    ) -> Result<T, NetworkError> {
        let lock = self.lock()?;
        let mut st = self.read()?;
        Self::predefine(&mut st);
        let out = f(&mut st)?;
        self.save(&lock, &st)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> NetworkState {
        let dir = tempfile::tempdir().unwrap();
        Networks::new(dir.path()).load().unwrap()
    }

    #[test]
    fn predefined_networks_exist_and_user_networks_take_the_next_pool() {
        let mut st = state();
        let names: Vec<_> = st.networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["bridge", "host", "none"]);
        assert_eq!(st.next_subnet().unwrap().to_string(), "172.18.0.0/16");
        let mut n = st.networks[0].clone();
        n.subnet = Some("172.18.0.0/16".parse().unwrap());
        n.name = "a".into();
        st.networks.push(n);
        assert_eq!(st.next_subnet().unwrap().to_string(), "172.19.0.0/16");
        assert!(st.overlaps(&"172.18.5.0/24".parse().unwrap()));
        assert!(st.overlaps(&"172.0.0.0/8".parse().unwrap()));
        assert!(!st.overlaps(&"10.1.0.0/16".parse().unwrap()));
        assert!(
            st.overlaps(&"10.0.0.0/16".parse().unwrap()),
            "the uplink's subnet"
        );
    }

    #[test]
    fn addresses_skip_the_gateway_and_taken_ones() {
        let mut st = state();
        let bridge = st.networks[0].clone();
        let ip = st.allocate(&bridge, None).unwrap();
        assert_eq!(ip, Ipv4Addr::new(172, 17, 0, 2));
        st.endpoints.push(Endpoint {
            id: new_id(),
            container: new_id(),
            name: "a".into(),
            hostname: String::new(),
            network: bridge.id.clone(),
            ip,
            mac: mac_for(ip),
            aliases: vec![],
            static_ip: false,
            index: 0,
        });
        assert_eq!(
            st.allocate(&bridge, None).unwrap(),
            Ipv4Addr::new(172, 17, 0, 3)
        );
        // --ip only on a user-configured subnet.
        assert!(matches!(
            st.allocate(&bridge, Some(Ipv4Addr::new(172, 17, 0, 9))),
            Err(NetworkError::Invalid(_))
        ));
        let mut user = bridge.clone();
        user.user_subnet = true;
        assert!(matches!(
            st.allocate(&user, Some(ip)),
            Err(NetworkError::AddressInUse(_))
        ));
        assert_eq!(mac_for(ip), "02:42:ac:11:00:02");
    }

    #[test]
    fn endpoint_names() {
        let e = Endpoint {
            id: new_id(),
            container: "0123456789abcdef".repeat(4),
            name: "web".into(),
            hostname: "box".into(),
            network: "fedcba9876543210".repeat(4),
            ip: Ipv4Addr::new(172, 18, 0, 2),
            mac: String::new(),
            aliases: vec!["www".into()],
            static_ip: false,
            index: 1,
        };
        assert_eq!(e.host_ifname(), "vr01234567fedcb");
        assert_eq!(e.host_ifname().len(), 15);
        assert_eq!(e.ifname(), "eth1");
        for q in ["web", "WEB", "www", "box", "0123456789ab"] {
            assert!(e.answers_to(&q.to_lowercase()), "{q}");
        }
        assert!(!e.answers_to("0123"));
        assert!(!e.answers_to("db"));
    }
}
