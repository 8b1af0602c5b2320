//! The container list (`docker ps`, the Engine API's `/containers/json`) with docker's
//! filters.

use rbuild_runner::lifecycle::{Container, ContainerState, Status};

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
    /// `label`. Values of one key are ORed, keys ANDed.
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

fn matches(r: &ContainerSummary, filters: &[(String, String)]) -> Result<bool> {
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
        let mut rows = Vec::new();
        for c in self.containers().list()? {
            let Ok(st) = c.state() else { continue };
            let r = ContainerSummary {
                container: c,
                state: st,
            };
            if (all || r.state.status.is_active()) && matches(&r, &opts.filters)? {
                rows.push(r);
            }
        }
        if let Some(n) = opts.limit {
            rows.truncate(n);
        }
        Ok(rows)
    }
}
