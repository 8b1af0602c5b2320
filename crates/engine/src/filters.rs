//! Docker's list filters (`--filter key=value`, the Engine API's `filters` parameter), one
//! evaluation for every list the engine serves to the CLI and the API alike: values of one key
//! are ORed and keys ANDed, except `label`, whose values must all match (docker's
//! `MatchKVList`); an unknown key is an invalid parameter naming it.

use std::collections::BTreeMap;

use rbuild_runner::network::NetworkRecord;

use crate::Engine;
use crate::error::{EngineError, Result};

/// Whether the object `hit` describes passes `filters`: `hit(key, value)` answers one
/// filter. Keys not in `known` are refused.
pub(crate) fn passes(
    filters: &[(String, String)],
    known: &[&str],
    mut hit: impl FnMut(&str, &str) -> Result<bool>,
) -> Result<bool> {
    let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        if !known.contains(&key) {
            return Err(EngineError::InvalidParameter(format!(
                "invalid filter '{key}'"
            )));
        }
        let mut any = false;
        let mut all = true;
        for (_, v) in filters.iter().filter(|(k, _)| k == key) {
            let h = hit(key, v)?;
            any |= h;
            all &= h;
        }
        if !any || (key == "label" && !all) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `labels` match a `label` filter's value: `KEY` (present) or `KEY=VALUE`.
pub(crate) fn label_matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

/// The keys `network ls` takes.
const NETWORK_KEYS: &[&str] = &["name", "id", "driver", "label", "type", "scope"];

/// The keys `volume ls` takes.
const VOLUME_KEYS: &[&str] = &["name", "driver", "label", "dangling"];

impl Engine {
    /// The networks `filters` select (docker's `network ls` keys: `name` (substring), `id`
    /// (prefix), `driver`, `label`, `type=custom|builtin`, `scope`), sorted by name.
    pub fn list_networks_matching(
        &self,
        filters: &[(String, String)],
    ) -> Result<(Vec<NetworkRecord>, rbuild_runner::network::NetworkState)> {
        let (all, st) = self.list_networks()?;
        let mut out = Vec::new();
        for n in all {
            let keep = passes(filters, NETWORK_KEYS, |k, v| {
                Ok(match k {
                    "name" => n.name.contains(v),
                    "id" => n.id.starts_with(v),
                    "driver" => n.driver == v,
                    "label" => label_matches(&n.labels, v),
                    "scope" => v == "local",
                    _ => match v {
                        "custom" => !n.is_predefined(),
                        "builtin" => n.is_predefined(),
                        _ => {
                            return Err(EngineError::InvalidParameter(format!(
                                "invalid filter 'type={v}' (custom or builtin)"
                            )));
                        }
                    },
                })
            })?;
            if keep {
                out.push(n);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((out, st))
    }

    /// The volumes `filters` select (docker's `volume ls` keys: `name` (substring), `driver`,
    /// `label`, `dangling=true|false`: used by no container).
    pub fn list_volumes_matching(
        &self,
        filters: &[(String, String)],
    ) -> Result<Vec<rbuild_runner::lifecycle::Volume>> {
        let mut out = Vec::new();
        for v in self.list_volumes()? {
            let keep = passes(filters, VOLUME_KEYS, |k, want| {
                Ok(match k {
                    "name" => v.name.contains(want),
                    "driver" => want == "local",
                    "label" => label_matches(&v.labels, want),
                    _ => {
                        let dangling = match want {
                            "true" | "1" => true,
                            "false" | "0" => false,
                            _ => {
                                return Err(EngineError::InvalidParameter(format!(
                                    "invalid filter 'dangling={want}' (true or false)"
                                )));
                            }
                        };
                        dangling == self.volumes().users(&v.name)?.is_empty()
                    }
                })
            })?;
            if keep {
                out.push(v);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// An object with a name and labels, filtered as the engine's lists filter.
    fn pass(name: &str, labels: &[(&str, &str)], filters: &[(&str, &str)]) -> Result<bool> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        passes(&f(filters), &["name", "label"], |k, v| {
            Ok(match k {
                "name" => name.contains(v),
                _ => label_matches(&labels, v),
            })
        })
    }

    #[test]
    fn values_of_a_key_are_ored_keys_anded_and_labels_all_required() {
        let l = [("a", "1"), ("b", "2")];
        assert!(pass("web", &l, &[]).unwrap());
        assert!(pass("web", &l, &[("name", "db"), ("name", "we")]).unwrap());
        assert!(!pass("web", &l, &[("name", "db")]).unwrap());
        assert!(pass("web", &l, &[("name", "web"), ("label", "a=1")]).unwrap());
        assert!(!pass("web", &l, &[("name", "db"), ("label", "a=1")]).unwrap());
        assert!(pass("web", &l, &[("label", "a"), ("label", "b=2")]).unwrap());
        assert!(!pass("web", &l, &[("label", "a"), ("label", "b=3")]).unwrap());
    }

    #[test]
    fn an_unknown_key_is_an_invalid_parameter_naming_it() {
        match pass("web", &[], &[("colour", "red")]) {
            Err(EngineError::InvalidParameter(m)) => assert_eq!(m, "invalid filter 'colour'"),
            other => panic!("{other:?}"),
        }
    }
}
