//! `docker container inspect`'s shape, made from a container's record and state.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rbuild_runner::lifecycle::time::rfc3339_nano;
use rbuild_runner::lifecycle::{self as lc, Container, RestartPolicy, Status};
use serde::{Deserialize, Serialize};

use super::time_or_zero;

/// `{}`: docker's value in port sets (`ExposedPorts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmptyObject {}

/// A container as `docker container inspect` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerJson {
    /// The full ID.
    #[serde(rename = "Id")]
    pub id: String,
    /// Creation time (RFC 3339 with nanoseconds).
    #[serde(rename = "Created")]
    pub created: String,
    /// The program run.
    #[serde(rename = "Path")]
    pub path: String,
    /// Its arguments.
    #[serde(rename = "Args")]
    pub args: Vec<String>,
    /// Where it is in its life.
    #[serde(rename = "State")]
    pub state: ContainerState,
    /// The image ID.
    #[serde(rename = "Image")]
    pub image: String,
    /// The container's resolv.conf on the host.
    #[serde(rename = "ResolvConfPath")]
    pub resolv_conf_path: PathBuf,
    /// The container's hostname file on the host.
    #[serde(rename = "HostnamePath")]
    pub hostname_path: PathBuf,
    /// The container's hosts file on the host.
    #[serde(rename = "HostsPath")]
    pub hosts_path: PathBuf,
    /// Its json-file log.
    #[serde(rename = "LogPath")]
    pub log_path: PathBuf,
    /// `/NAME`.
    #[serde(rename = "Name")]
    pub name: String,
    /// Restarts by its policy since it was last started.
    #[serde(rename = "RestartCount")]
    pub restart_count: u32,
    /// Always `overlay2`.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// Always `linux`.
    #[serde(rename = "Platform")]
    pub platform: String,
    /// How the host runs it.
    #[serde(rename = "HostConfig")]
    pub host_config: HostConfig,
    /// Its volumes, binds and tmpfs mounts.
    #[serde(rename = "Mounts")]
    pub mounts: Vec<MountPoint>,
    /// Its process configuration.
    #[serde(rename = "Config")]
    pub config: ContainerConfig,
    /// Its network settings.
    #[serde(rename = "NetworkSettings")]
    pub network_settings: NetworkSettings,
}

/// Docker's `State`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// `created`, `running`, `paused`, `restarting`, `exited` or `dead`.
    #[serde(rename = "Status")]
    pub status: String,
    /// Running or paused.
    #[serde(rename = "Running")]
    pub running: bool,
    /// Paused.
    #[serde(rename = "Paused")]
    pub paused: bool,
    /// Waiting to be restarted by its policy.
    #[serde(rename = "Restarting")]
    pub restarting: bool,
    /// Killed for want of memory.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Its monitor died without recording its end.
    #[serde(rename = "Dead")]
    pub dead: bool,
    /// Its process on the host (0 when not running).
    #[serde(rename = "Pid")]
    pub pid: i32,
    /// The last exit status.
    #[serde(rename = "ExitCode")]
    pub exit_code: i32,
    /// Why it failed to start.
    #[serde(rename = "Error")]
    pub error: String,
    /// When it last started.
    #[serde(rename = "StartedAt")]
    pub started_at: String,
    /// When it last ended.
    #[serde(rename = "FinishedAt")]
    pub finished_at: String,
    /// Its health, once started with a healthcheck.
    #[serde(rename = "Health", default, skip_serializing_if = "Option::is_none")]
    pub health: Option<rbuild_runner::lifecycle::health::Health>,
}

/// One published port (`HostIp`, `HostPort`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBindingJson {
    /// The host address.
    #[serde(rename = "HostIp")]
    pub host_ip: String,
    /// The host port, as text.
    #[serde(rename = "HostPort")]
    pub host_port: String,
}

/// Docker's `HostConfig` (the fields rbuild has).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostConfig {
    /// Bind mounts as `SRC:DST[:ro]`.
    #[serde(rename = "Binds")]
    pub binds: Vec<String>,
    /// The json-file log's limits.
    #[serde(rename = "LogConfig")]
    pub log_config: LogConfig,
    /// `none`, `host` or `container:ID`.
    #[serde(rename = "NetworkMode")]
    pub network_mode: String,
    /// Ports asked for, by `PORT/PROTO`.
    #[serde(rename = "PortBindings")]
    pub port_bindings: BTreeMap<String, Vec<PortBindingJson>>,
    /// The restart policy.
    #[serde(rename = "RestartPolicy")]
    pub restart_policy: RestartPolicyJson,
    /// `--rm`.
    #[serde(rename = "AutoRemove")]
    pub auto_remove: bool,
    /// `--init`.
    #[serde(rename = "Init")]
    pub init: bool,
}

/// Docker's `LogConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Always `json-file`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `max-size` and `max-file`.
    #[serde(rename = "Config")]
    pub config: BTreeMap<String, String>,
}

/// Docker's `RestartPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicyJson {
    /// `no`, `always`, `unless-stopped` or `on-failure`.
    #[serde(rename = "Name")]
    pub name: String,
    /// `on-failure`'s limit (0: none).
    #[serde(rename = "MaximumRetryCount")]
    pub maximum_retry_count: u32,
}

/// One of docker's `Mounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name (`null` for binds and tmpfs).
    #[serde(rename = "Name")]
    pub name: Option<String>,
    /// The host path.
    #[serde(rename = "Source")]
    pub source: PathBuf,
    /// The path in the container.
    #[serde(rename = "Destination")]
    pub destination: String,
    /// Always empty.
    #[serde(rename = "Mode")]
    pub mode: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// `rprivate` for binds, else empty.
    #[serde(rename = "Propagation")]
    pub propagation: String,
}

/// Docker's `Config` of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Its host name.
    #[serde(rename = "Hostname")]
    pub hostname: String,
    /// `USER[:GROUP]` as given.
    #[serde(rename = "User")]
    pub user: String,
    /// A terminal was allocated.
    #[serde(rename = "Tty")]
    pub tty: bool,
    /// Standard input is kept open (`-i`).
    #[serde(rename = "OpenStdin")]
    pub open_stdin: bool,
    /// The first attacher's end of input closes it.
    #[serde(rename = "StdinOnce")]
    pub stdin_once: bool,
    /// The environment (`KEY=VALUE`).
    #[serde(rename = "Env")]
    pub env: Vec<String>,
    /// The command (image's CMD or the one given).
    #[serde(rename = "Cmd")]
    pub cmd: Vec<String>,
    /// The image as named at creation.
    #[serde(rename = "Image")]
    pub image: String,
    /// The working directory.
    #[serde(rename = "WorkingDir")]
    pub working_dir: String,
    /// The entrypoint (`null` when none).
    #[serde(rename = "Entrypoint")]
    pub entrypoint: Option<Vec<String>>,
    /// The image's labels.
    #[serde(rename = "Labels")]
    pub labels: BTreeMap<String, String>,
    /// The stop signal's name.
    #[serde(rename = "StopSignal")]
    pub stop_signal: String,
    /// Seconds between the stop signal and SIGKILL (`null`: 10).
    #[serde(rename = "StopTimeout")]
    pub stop_timeout: Option<u32>,
    /// Exposed and published ports (`null` when none).
    #[serde(rename = "ExposedPorts")]
    pub exposed_ports: Option<BTreeMap<String, EmptyObject>>,
    /// The healthcheck (the image's merged with `--health-*`).
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<rbuild_runner::lifecycle::health::HealthConfig>,
}

/// Docker's `NetworkSettings`: the ports, and for a container on bridge networks its
/// endpoint on each (`Networks`) and on the default `bridge` (the top-level fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSettings {
    /// Ports bound now, by `PORT/PROTO` (empty unless the container runs).
    #[serde(rename = "Ports")]
    pub ports: BTreeMap<String, Vec<PortBindingJson>>,
    /// The address on the default `bridge` network.
    #[serde(rename = "IPAddress", default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// The default `bridge` network's gateway.
    #[serde(rename = "Gateway", default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The prefix length on the default `bridge` network.
    #[serde(
        rename = "IPPrefixLen",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_prefix_len: Option<u8>,
    /// The MAC address on the default `bridge` network.
    #[serde(
        rename = "MacAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mac_address: Option<String>,
    /// The container's endpoint on each network it is on, by network name.
    #[serde(
        rename = "Networks",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// Docker's `EndpointSettings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSettings {
    /// `--ip` as asked (`{"IPv4Address": ...}`), or null.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<BTreeMap<String, String>>,
    /// Legacy links (none).
    #[serde(rename = "Links")]
    pub links: Option<Vec<String>>,
    /// Its aliases on the network (`--network-alias`, and the short ID on user networks).
    #[serde(rename = "Aliases")]
    pub aliases: Option<Vec<String>>,
    /// The network's ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The network's gateway.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// Its address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// The subnet's prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// Its MAC address.
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
}

impl NetworkSettings {
    /// `ports` and, for a bridged container, its endpoints from the network state.
    fn new(c: &Container, ports: BTreeMap<String, Vec<PortBindingJson>>) -> NetworkSettings {
        let mut out = NetworkSettings {
            ports,
            ip_address: None,
            gateway: None,
            ip_prefix_len: None,
            mac_address: None,
            networks: BTreeMap::new(),
        };
        if !c.record.is_bridged() {
            return out;
        }
        let Ok(st) = rbuild_runner::network::Networks::new(c.store_root()).load() else {
            return out;
        };
        for e in st.endpoints_of(c.id()) {
            let Some(n) = st.networks.iter().find(|n| n.id == e.network) else {
                continue;
            };
            let prefix = n.subnet.map(|s| s.prefix_len()).unwrap_or(0);
            let gateway = n.gateway.map(|g| g.to_string()).unwrap_or_default();
            let mut aliases = e.aliases.clone();
            if n.resolves_names() {
                aliases.push(c.id()[..12].to_owned());
            }
            if n.name == "bridge" {
                out.ip_address = Some(e.ip.to_string());
                out.gateway = Some(gateway.clone());
                out.ip_prefix_len = Some(prefix);
                out.mac_address = Some(e.mac.clone());
            }
            out.networks.insert(
                n.name.clone(),
                EndpointSettings {
                    ipam_config: e
                        .static_ip
                        .then(|| BTreeMap::from([("IPv4Address".to_owned(), e.ip.to_string())])),
                    links: None,
                    aliases: (!aliases.is_empty()).then_some(aliases),
                    network_id: n.id.clone(),
                    endpoint_id: e.id.clone(),
                    gateway,
                    ip_address: e.ip.to_string(),
                    ip_prefix_len: prefix,
                    mac_address: e.mac.clone(),
                },
            );
        }
        out
    }
}

fn port_key(p: &lc::PortBinding) -> String {
    format!("{}/{}", p.container_port, p.protocol.as_str())
}

impl ContainerJson {
    /// The inspect JSON of `c` in state `st`.
    pub fn new(c: &Container, st: &lc::ContainerState) -> ContainerJson {
        let r = &c.record;
        let bound = if st.ports.is_empty() {
            &r.ports
        } else {
            &st.ports
        };
        let mut port_map: BTreeMap<String, Vec<PortBindingJson>> = BTreeMap::new();
        let mut bindings: BTreeMap<String, Vec<PortBindingJson>> = BTreeMap::new();
        for p in bound {
            let entry = PortBindingJson {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port.to_string(),
            };
            bindings.entry(port_key(p)).or_default().push(entry.clone());
            if st.status.is_active() {
                port_map.entry(port_key(p)).or_default().push(entry);
            }
        }
        let exposed: BTreeMap<String, EmptyObject> = r
            .exposed_ports
            .iter()
            .cloned()
            .chain(bound.iter().map(port_key))
            .map(|p| (p, EmptyObject {}))
            .collect();
        let mounts = r
            .mounts
            .iter()
            .map(|m| MountPoint {
                kind: m.kind.clone(),
                name: (!m.name.is_empty()).then(|| m.name.clone()),
                source: m.source.clone(),
                destination: m.destination.clone(),
                mode: String::new(),
                rw: m.rw,
                propagation: if m.kind == "bind" { "rprivate" } else { "" }.into(),
            })
            .collect();
        let binds = r
            .mounts
            .iter()
            .filter(|m| m.kind == "bind")
            .map(|m| {
                format!(
                    "{}:{}{}",
                    m.source.display(),
                    m.destination,
                    if m.rw { "" } else { ":ro" }
                )
            })
            .collect();
        let restart_max = match r.restart {
            RestartPolicy::OnFailure { max } => max,
            _ => 0,
        };
        ContainerJson {
            id: r.id.clone(),
            created: rfc3339_nano(r.created),
            path: r.command.first().cloned().unwrap_or_default(),
            args: r.command.iter().skip(1).cloned().collect(),
            state: ContainerState {
                status: st.status.as_str().into(),
                running: matches!(st.status, Status::Running | Status::Paused),
                paused: st.status == Status::Paused,
                restarting: st.status == Status::Restarting,
                oom_killed: st.oom_killed,
                dead: st.status == Status::Dead,
                pid: st.pid,
                exit_code: st.exit_code,
                error: st.error.clone(),
                started_at: time_or_zero(st.started_at),
                finished_at: time_or_zero(st.finished_at),
                health: st.health.clone(),
            },
            image: r.image_id.clone(),
            resolv_conf_path: c.dir().join("resolv.conf"),
            hostname_path: c.dir().join("hostname"),
            hosts_path: c.dir().join("hosts"),
            log_path: c.log_path(),
            name: format!("/{}", r.name),
            restart_count: st.restart_count,
            driver: "overlay2".into(),
            platform: "linux".into(),
            host_config: HostConfig {
                binds,
                log_config: LogConfig {
                    kind: "json-file".into(),
                    config: BTreeMap::from([
                        ("max-size".to_owned(), r.log.max_size.to_string()),
                        ("max-file".to_owned(), r.log.max_files.to_string()),
                    ]),
                },
                network_mode: r.network.clone(),
                port_bindings: bindings,
                restart_policy: RestartPolicyJson {
                    name: r.restart.name().into(),
                    maximum_retry_count: restart_max,
                },
                auto_remove: r.auto_remove,
                init: r.init,
            },
            mounts,
            config: ContainerConfig {
                hostname: r.hostname.clone(),
                user: r.user.clone(),
                tty: r.tty,
                open_stdin: r.interactive,
                stdin_once: r.stdin_once,
                env: r.env.clone(),
                cmd: r.cmd.clone(),
                image: r.image.clone(),
                working_dir: r.working_dir.clone(),
                entrypoint: (!r.entrypoint.is_empty()).then(|| r.entrypoint.clone()),
                labels: r.labels.clone(),
                stop_signal: r.stop_signal.clone(),
                stop_timeout: r.stop_timeout,
                exposed_ports: (!exposed.is_empty()).then_some(exposed),
                healthcheck: r.healthcheck.clone(),
            },
            network_settings: NetworkSettings::new(c, port_map),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The typed JSON against the `json!` the CLI printed before it moved here: the same
    //! value, so `rbuild inspect` prints the same bytes.

    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use rbuild_runner::Rootfs;
    use rbuild_runner::lifecycle::{
        ContainerRecord, Containers, LogLimits, MountRecord, PortBinding, Protocol,
    };
    use serde_json::{Value, json};

    use super::*;

    /// A container as `docker container inspect` shows it.
    fn legacy_json(c: &Container, st: &lc::ContainerState) -> Value {
        let r = &c.record;
        let bound = if st.ports.is_empty() {
            &r.ports
        } else {
            &st.ports
        };
        let mut port_map = serde_json::Map::new();
        let mut bindings = serde_json::Map::new();
        for p in bound {
            let key = format!("{}/{}", p.container_port, p.protocol.as_str());
            let entry = json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()});
            if let Some(a) = bindings
                .entry(key.clone())
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                a.push(entry.clone());
            }
            if st.status.is_active()
                && let Some(a) = port_map
                    .entry(key)
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
            {
                a.push(entry);
            }
        }
        let exposed: serde_json::Map<String, Value> = r
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .chain(bound.iter().map(|p| {
                (
                    format!("{}/{}", p.container_port, p.protocol.as_str()),
                    json!({}),
                )
            }))
            .collect();
        let mounts: Vec<Value> = r
            .mounts
            .iter()
            .map(|m| {
                json!({
                    "Type": m.kind,
                    "Name": if m.name.is_empty() { Value::Null } else { Value::String(m.name.clone()) },
                    "Source": m.source,
                    "Destination": m.destination,
                    "Mode": "",
                    "RW": m.rw,
                    "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
                })
            })
            .collect();
        let binds: Vec<String> = r
            .mounts
            .iter()
            .filter(|m| m.kind == "bind")
            .map(|m| {
                format!(
                    "{}:{}{}",
                    m.source.display(),
                    m.destination,
                    if m.rw { "" } else { ":ro" }
                )
            })
            .collect();
        let restart_max = match r.restart {
            RestartPolicy::OnFailure { max } => max,
            _ => 0,
        };
        json!({
            "Id": r.id,
            "Created": rfc3339_nano(r.created),
            "Path": r.command.first().cloned().unwrap_or_default(),
            "Args": r.command.iter().skip(1).collect::<Vec<_>>(),
            "State": {
                "Status": st.status.as_str(),
                "Running": matches!(st.status, Status::Running | Status::Paused),
                "Paused": st.status == Status::Paused,
                "Restarting": st.status == Status::Restarting,
                "OOMKilled": st.oom_killed,
                "Dead": st.status == Status::Dead,
                "Pid": st.pid,
                "ExitCode": st.exit_code,
                "Error": st.error,
                "StartedAt": time_or_zero(st.started_at),
                "FinishedAt": time_or_zero(st.finished_at),
            },
            "Image": r.image_id,
            "ResolvConfPath": c.dir().join("resolv.conf"),
            "HostnamePath": c.dir().join("hostname"),
            "HostsPath": c.dir().join("hosts"),
            "LogPath": c.log_path(),
            "Name": format!("/{}", r.name),
            "RestartCount": st.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "HostConfig": {
                "Binds": binds,
                "LogConfig": {"Type": "json-file", "Config": {
                    "max-size": r.log.max_size.to_string(),
                    "max-file": r.log.max_files.to_string(),
                }},
                "NetworkMode": r.network,
                "PortBindings": bindings,
                "RestartPolicy": {"Name": r.restart.name(), "MaximumRetryCount": restart_max},
                "AutoRemove": r.auto_remove,
                "Init": r.init,
            },
            "Mounts": mounts,
            "Config": {
                "Hostname": r.hostname,
                "User": r.user,
                "Tty": r.tty,
                "OpenStdin": r.interactive,
                "StdinOnce": r.stdin_once,
                "Env": r.env,
                "Cmd": r.cmd,
                "Image": r.image,
                "WorkingDir": r.working_dir,
                "Entrypoint": if r.entrypoint.is_empty() { Value::Null } else { json!(r.entrypoint) },
                "Labels": r.labels,
                "StopSignal": r.stop_signal,
                "StopTimeout": r.stop_timeout,
                "ExposedPorts": if exposed.is_empty() { Value::Null } else { Value::Object(exposed) },
            },
            "NetworkSettings": {
                "Ports": port_map,
            },
        })
    }

    fn record(id: &str, restart: RestartPolicy) -> ContainerRecord {
        ContainerRecord {
            id: id.to_owned(),
            name: String::new(),
            created: 1_700_000_000_123_456_789,
            image: "busybox:1".into(),
            image_id: "sha256:abc".into(),
            rootfs: Rootfs::Directory(PathBuf::from("/nonexistent")),
            command: vec!["sh".into(), "-c".into(), "sleep 1".into()],
            entrypoint: Vec::new(),
            cmd: vec!["sh".into(), "-c".into(), "sleep 1".into()],
            env: vec!["PATH=/bin".into(), "A=1".into()],
            working_dir: "/srv".into(),
            user: "1000:1000".into(),
            hostname: "host".into(),
            labels: BTreeMap::from([("a".into(), "b".into())]),
            init: true,
            tty: false,
            interactive: true,
            stdin_once: true,
            restart,
            auto_remove: false,
            stop_signal: "SIGTERM".into(),
            stop_timeout: Some(3),
            ports: vec![PortBinding {
                host_ip: "127.0.0.1".into(),
                host_port: 0,
                container_port: 80,
                protocol: Protocol::Tcp,
            }],
            exposed_ports: vec!["80/tcp".into(), "53/udp".into()],
            mounts: vec![
                MountRecord {
                    kind: "bind".into(),
                    name: String::new(),
                    source: "/tmp".into(),
                    destination: "/data".into(),
                    rw: false,
                    anonymous: false,
                },
                MountRecord {
                    kind: "volume".into(),
                    name: "cache".into(),
                    source: "/v/cache/_data".into(),
                    destination: "/cache".into(),
                    rw: true,
                    anonymous: false,
                },
            ],
            network: "none".into(),
            dns: vec![],
            dns_search: vec![],
            dns_options: vec![],
            extra_hosts: vec![],
            log: LogLimits::default(),
            healthcheck: None,
        }
    }

    #[test]
    fn container_json_is_what_the_cli_printed_before() {
        let root = tempfile::tempdir().unwrap();
        let spec = rbuild_runner::docker_spec(&Default::default()).unwrap();
        let containers = Containers::new(root.path());
        let ids = ["a".repeat(64), "b".repeat(64)];
        let a = containers
            .create(record(&ids[0], RestartPolicy::OnFailure { max: 4 }), &spec)
            .unwrap();
        let b = containers
            .create(record(&ids[1], RestartPolicy::No), &spec)
            .unwrap();
        let created = a.state().unwrap();
        let running = lc::ContainerState {
            status: Status::Running,
            pid: 42,
            started_at: 1_700_000_001_000_000_000,
            ports: vec![PortBinding {
                host_ip: "127.0.0.1".into(),
                host_port: 32768,
                container_port: 80,
                protocol: Protocol::Tcp,
            }],
            restart_count: 2,
            ..Default::default()
        };
        let exited = lc::ContainerState {
            status: Status::Exited,
            exit_code: 3,
            oom_killed: true,
            error: "boom".into(),
            finished_at: 1_700_000_002_000_000_000,
            ..Default::default()
        };
        for (c, st) in [(&a, &created), (&a, &running), (&b, &exited)] {
            let typed = serde_json::to_value(ContainerJson::new(c, st)).unwrap();
            let legacy = legacy_json(c, st);
            assert_eq!(typed, legacy);
            assert_eq!(
                serde_json::to_string_pretty(&typed).unwrap(),
                serde_json::to_string_pretty(&legacy).unwrap()
            );
        }
    }
}
