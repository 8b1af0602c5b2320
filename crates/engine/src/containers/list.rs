//! The container list (`docker ps`, the Engine API's `/containers/json`) with docker's
//! filters.

use rbuild_runner::lifecycle::{Container, ContainerState, Status};
use rbuild_runner::network::NetworkState;

use crate::Engine;
use crate::error::{EngineError, Result};

/// Which containers to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Stopped ones too (implied by a `status` or `exited` filter, as docker's CLI does).
    pub all: bool,
    /// At most this many (the first listed).
    pub limit: Option<usize>,
    /// Docker's filters, `(key, value)`: `id`, `name`, `status`, `exited`, `ancestor`,
    /// `label`, `before`, `since`, `network`, `volume`, `health`, `publish`, `expose`,
    /// `is-task`, `isolation`. Values of one key are ORed, keys ANDed (`label`'s all match).
    pub filters: Vec<(String, String)>,
}

/// A container of the list and its state when listed.
#[derive(Debug, Clone)]
pub struct ContainerSummary {
    /// The container.
    pub container: Container,
    /// Its state.
    pub state: ContainerState,
}

/// What the filters compare a container with, besides its own record and state: the
/// reference containers of `before`/`since` and the networks' endpoints.
struct Context {
    /// `before`: created before this time (ns).
    before: Option<i64>,
    /// `since`: created after this time (ns).
    since: Option<i64>,
    /// The network state, when a `network` filter needs it.
    networks: Option<NetworkState>,
}

/// A port filter's value (`80`, `80/udp`, `8000-8010/tcp`) as a range and a protocol.
fn port_spec(v: &str) -> Result<(u16, u16, &str)> {
    let (ports, proto) = v.split_once('/').unwrap_or((v, "tcp"));
    let bad = || EngineError::InvalidParameter(format!("invalid port filter {v:?}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let p = ports.parse().map_err(|_| bad())?;
            (p, p)
        }
    };
    if !matches!(proto, "tcp" | "udp" | "sctp") || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi, proto))
}

fn matches(r: &ContainerSummary, filters: &[(String, String)], cx: &Context) -> Result<bool> {
    let (c, st) = (&r.container, &r.state);
    // Docker ORs values of one key and ANDs keys, except `label`, whose values must all
    // match (docker's `MatchKVList`; docker compose finds a service's containers so).
    let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let values = filters
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
        let mut any = false;
        let mut all = true;
        for v in values {
            let hit = match key {
                "id" => c.id().starts_with(v),
                "name" => c.name().contains(v.trim_start_matches('/')),
                "status" => st.status.as_str() == v,
                "exited" => st.status == Status::Exited && v.parse() == Ok(st.exit_code),
                "ancestor" => {
                    c.record.image == v
                        || format!("{}:latest", c.record.image) == v
                        || c.record.image == format!("{v}:latest")
                        || (!v.is_empty()
                            && c.record
                                .image_id
                                .trim_start_matches("sha256:")
                                .starts_with(v.trim_start_matches("sha256:")))
                }
                "label" => match v.split_once('=') {
                    Some((k, val)) => c.record.labels.get(k).is_some_and(|x| x == val),
                    None => c.record.labels.contains_key(v),
                },
                // The reference container was looked up once, in `Context`.
                "before" => cx.before.is_some_and(|t| c.record.created < t),
                "since" => cx.since.is_some_and(|t| c.record.created > t),
                // Docker: the network's name, or a prefix of its ID.
                "network" => match &cx.networks {
                    Some(ns) if c.record.is_bridged() => ns.endpoints_of(c.id()).iter().any(|e| {
                        e.network.starts_with(v)
                            || ns.networks.iter().any(|n| n.id == e.network && n.name == v)
                    }),
                    Some(ns) => {
                        c.record.network == v
                            || ns
                                .networks
                                .iter()
                                .any(|n| n.name == c.record.network && n.id.starts_with(v))
                    }
                    None => false,
                },
                // Docker: a mount's volume name or its destination.
                "volume" => c
                    .record
                    .mounts
                    .iter()
                    .any(|m| (!m.name.is_empty() && m.name == v) || m.destination == v),
                // Docker's: `none` for a container without a healthcheck (or one not started).
                "health" => match v {
                    "none" => st.health.is_none(),
                    "starting" | "healthy" | "unhealthy" => {
                        st.health.as_ref().is_some_and(|h| h.status.as_str() == v)
                    }
                    _ => {
                        return Err(EngineError::InvalidParameter(format!(
                            "Unrecognised filter value for health: {v}"
                        )));
                    }
                },
                "publish" => {
                    let (lo, hi, proto) = port_spec(v)?;
                    c.record.ports.iter().any(|p| {
                        p.protocol.as_str() == proto && (lo..=hi).contains(&p.container_port)
                    })
                }
                "expose" => {
                    let (lo, hi, proto) = port_spec(v)?;
                    let exposed = c.record.exposed_ports.iter().filter_map(|e| {
                        let (port, p) = e.split_once('/').unwrap_or((e, "tcp"));
                        Some((port.parse::<u16>().ok()?, p))
                    });
                    let published = c
                        .record
                        .ports
                        .iter()
                        .map(|p| (p.container_port, p.protocol.as_str()));
                    exposed
                        .chain(published)
                        .any(|(port, p)| p == proto && (lo..=hi).contains(&port))
                }
                // rbuild has no swarm: no container is a task.
                "is-task" => v == "false" || v == "0",
                "isolation" => v == "default",
                _ => {
                    return Err(EngineError::InvalidParameter(format!(
                        "invalid filter '{key}'"
                    )));
                }
            };
            any |= hit;
            all &= hit;
        }
        if !any || (key == "label" && !all) {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Engine {
    /// The containers `opts` selects, in the records' order (newest first).
    pub fn list_containers(&self, opts: &ListOptions) -> Result<Vec<ContainerSummary>> {
        let all = opts.all
            || opts
                .filters
                .iter()
                .any(|(k, _)| k == "status" || k == "exited");
        let created_of = |key: &str| -> Result<Option<i64>> {
            match opts.filters.iter().find(|(k, _)| k == key) {
                Some((_, v)) => Ok(Some(self.container(v)?.record.created)),
                None => Ok(None),
            }
        };
        let cx = Context {
            before: created_of("before")?,
            since: created_of("since")?,
            networks: if opts.filters.iter().any(|(k, _)| k == "network") {
                Some(self.networks().load()?)
            } else {
                None
            },
        };
        let mut rows = Vec::new();
        for c in self.containers().list()? {
            let Ok(st) = c.state() else { continue };
            let r = ContainerSummary {
                container: c,
                state: st,
            };
            if (all || r.state.status.is_active()) && matches(&r, &opts.filters, &cx)? {
                rows.push(r);
            }
        }
        if let Some(n) = opts.limit {
            rows.truncate(n);
        }
        Ok(rows)
    }
}
