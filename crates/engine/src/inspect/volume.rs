//! `docker volume inspect`'s shape.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rbuild_runner::lifecycle::Volume;
use rbuild_runner::lifecycle::time::rfc3339_nano;
use serde::{Deserialize, Serialize};

/// A volume as `docker volume inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeJson {
    /// Creation time (RFC 3339 with nanoseconds).
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    /// Always `local`.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// Labels given at creation.
    #[serde(rename = "Labels")]
    pub labels: BTreeMap<String, String>,
    /// The directory containers mount.
    #[serde(rename = "Mountpoint")]
    pub mountpoint: PathBuf,
    /// Its name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Driver options: none for `local` (`null`).
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    /// Always `local`.
    #[serde(rename = "Scope")]
    pub scope: String,
}

impl From<&Volume> for VolumeJson {
    fn from(v: &Volume) -> Self {
        VolumeJson {
            created_at: rfc3339_nano(v.created),
            driver: "local".into(),
            labels: v.labels.clone(),
            mountpoint: v.mountpoint.clone(),
            name: v.name.clone(),
            options: None,
            scope: "local".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn volume_json_is_what_the_cli_printed_before() {
        let v = Volume {
            name: "data".into(),
            created: 1_700_000_000_000_000_001,
            anonymous: false,
            labels: BTreeMap::from([("k".into(), "v".into())]),
            mountpoint: "/root/volumes/data/_data".into(),
        };
        let legacy = json!({
            "CreatedAt": rfc3339_nano(v.created),
            "Driver": "local",
            "Labels": v.labels,
            "Mountpoint": v.mountpoint,
            "Name": v.name,
            "Options": null,
            "Scope": "local",
        });
        assert_eq!(serde_json::to_value(VolumeJson::from(&v)).unwrap(), legacy);
    }
}
