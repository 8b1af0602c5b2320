//! `docker image inspect`'s shape, made from a stored image.

use rbuild_store::{Image, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An image as `docker image inspect` shows it.
///
/// `Config` and `History` are the image config's own sections, kept as the JSON they are
/// stored as (docker shows them the same way).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInspect {
    /// The image ID (its config's digest).
    #[serde(rename = "Id")]
    pub id: String,
    /// Its tagged names, in docker's familiar form (`alpine:3`).
    #[serde(rename = "RepoTags")]
    pub repo_tags: Vec<String>,
    /// `NAME@MANIFEST_DIGEST` for each name.
    #[serde(rename = "RepoDigests")]
    pub repo_digests: Vec<String>,
    /// Always empty (no parent chains here).
    #[serde(rename = "Parent")]
    pub parent: String,
    /// The config's `comment`.
    #[serde(rename = "Comment")]
    pub comment: Value,
    /// The config's `created`.
    #[serde(rename = "Created")]
    pub created: Value,
    /// The config's `docker_version`.
    #[serde(rename = "DockerVersion")]
    pub docker_version: Value,
    /// The config's `author`.
    #[serde(rename = "Author")]
    pub author: Value,
    /// The config's process defaults (`null` when it has none).
    #[serde(rename = "Config")]
    pub config: Value,
    /// The config's `architecture`.
    #[serde(rename = "Architecture")]
    pub architecture: Value,
    /// The config's `variant` (`null` when none).
    #[serde(rename = "Variant")]
    pub variant: Option<Value>,
    /// The config's `os`.
    #[serde(rename = "Os")]
    pub os: Value,
    /// The size of its layers, uncompressed.
    #[serde(rename = "Size")]
    pub size: u64,
    /// The same as `Size` (docker's deprecated field).
    #[serde(rename = "VirtualSize")]
    pub virtual_size: u64,
    /// Its layers by diffID.
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    /// The config's `history` (`[]` when none).
    #[serde(rename = "History")]
    pub history: Value,
    /// When it was last named here.
    #[serde(rename = "Metadata")]
    pub metadata: ImageMetadata,
    /// For a name of a multi-platform image: each platform's entry (docker's `Manifests`,
    /// API 1.48: `ID`, `Descriptor`, `Available`, `Kind`, `ImageData.Platform`); the rest of
    /// the object describes this machine's platform's image (or the one asked for).
    #[serde(rename = "Manifests", default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<Value>>,
}

/// Docker's `RootFS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The layers' diffIDs, bottom first.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// Docker's `Metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMetadata {
    /// When the image was last named in the store (RFC 3339).
    #[serde(rename = "LastTagTime")]
    pub last_tag_time: String,
}

impl ImageInspect {
    /// The inspect JSON of the stored `img`.
    pub fn new(store: &Store, img: &Image) -> ImageInspect {
        let cfg = img.config_json();
        let get = |k: &str| cfg.get(k).cloned().unwrap_or(Value::String(String::new()));
        let size = store.image_size(img);
        let repo_tags = img
            .names
            .iter()
            .filter(|n| n.tag().is_some())
            .map(|n| n.familiar())
            .collect();
        let mut repo_digests: Vec<String> = img
            .names
            .iter()
            .map(|n| n.with_digest(img.manifest_digest.clone()).familiar())
            .collect();
        repo_digests.dedup();
        ImageInspect {
            id: img.id.to_string(),
            repo_tags,
            repo_digests,
            parent: String::new(),
            comment: get("comment"),
            created: get("created"),
            docker_version: get("docker_version"),
            author: get("author"),
            config: cfg.get("config").cloned().unwrap_or(Value::Null),
            architecture: get("architecture"),
            variant: cfg.get("variant").cloned(),
            os: get("os"),
            size,
            virtual_size: size,
            root_fs: RootFs {
                kind: "layers".into(),
                layers: img
                    .diff_ids()
                    .unwrap_or_default()
                    .iter()
                    .map(|d| d.to_string())
                    .collect(),
            },
            history: cfg
                .get("history")
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
            metadata: ImageMetadata {
                last_tag_time: rbuild_builder::config::rfc3339(img.added as i64, 0),
            },
            manifests: None,
        }
    }

    /// The inspect JSON of `img` as the image of the multi-platform `list`: the list's names
    /// (digests: the index's) and every platform's entry in `Manifests`.
    pub fn of_list(store: &Store, list: &rbuild_store::ImageList, img: &Image) -> ImageInspect {
        let mut out = ImageInspect::new(store, img);
        out.repo_tags = list
            .names
            .iter()
            .filter(|n| n.tag().is_some())
            .map(|n| n.familiar())
            .collect();
        out.repo_digests = list
            .names
            .iter()
            .map(|n| n.with_digest(list.digest.clone()).familiar())
            .collect();
        out.repo_digests.dedup();
        let table = store.table().unwrap_or_default();
        out.manifests = Some(
            rbuild_oci::manifest::index_images(&list.index)
                .into_iter()
                .map(|(digest, platform, desc)| {
                    let available = table.images.contains_key(&digest);
                    let platform = platform.map(|p| {
                        serde_json::json!({
                            "architecture": p.architecture,
                            "os": p.os,
                            "variant": p.variant,
                        })
                    });
                    serde_json::json!({
                        "ID": digest.to_string(),
                        "Descriptor": desc,
                        "Available": available,
                        "Kind": "image",
                        "ImageData": { "Platform": platform },
                    })
                })
                .collect(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    //! The typed JSON against the `json!` the CLI printed before it moved here.

    use rbuild_oci::{Platform, Reference};
    use serde_json::json;

    use super::*;

    fn rfc3339(secs: i64) -> String {
        rbuild_builder::config::rfc3339(secs, 0)
    }

    /// An image as `docker image inspect` shows it.
    fn legacy_json(store: &Store, img: &Image) -> Value {
        let cfg = img.config_json();
        let get = |k: &str| cfg.get(k).cloned().unwrap_or(Value::String(String::new()));
        let size = store.image_size(img);
        let repo_tags: Vec<String> = img
            .names
            .iter()
            .filter(|n| n.tag().is_some())
            .map(|n| n.familiar())
            .collect();
        let mut repo_digests: Vec<String> = img
            .names
            .iter()
            .map(|n| n.with_digest(img.manifest_digest.clone()).familiar())
            .collect();
        repo_digests.dedup();
        json!({
            "Id": img.id.to_string(),
            "RepoTags": repo_tags,
            "RepoDigests": repo_digests,
            "Parent": "",
            "Comment": cfg.get("comment").cloned().unwrap_or(Value::String(String::new())),
            "Created": get("created"),
            "DockerVersion": get("docker_version"),
            "Author": get("author"),
            "Config": cfg.get("config").cloned().unwrap_or(Value::Null),
            "Architecture": get("architecture"),
            "Variant": cfg.get("variant").cloned(),
            "Os": get("os"),
            "Size": size,
            "VirtualSize": size,
            "RootFS": {
                "Type": "layers",
                "Layers": img.diff_ids().unwrap_or_default().iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            },
            "History": cfg.get("history").cloned().unwrap_or(json!([])),
            "Metadata": { "LastTagTime": rfc3339(img.added as i64) },
        })
    }

    #[test]
    fn image_inspect_is_what_the_cli_printed_before() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "etc/x", &b"abc"[..]).unwrap();
        let layer = store
            .add_layer_tar(&b.into_inner().unwrap()[..], "test")
            .unwrap();
        let host = Platform::host();
        for (config, names) in [
            (
                json!({
                    "architecture": host.architecture, "os": host.os, "variant": "v8",
                    "created": "2024-01-02T03:04:05Z", "author": "me", "comment": "c",
                    "config": {"Cmd": ["/bin/sh"], "Env": ["A=1"]},
                    "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
                    "history": [{"created_by": "x"}],
                }),
                vec![
                    "localhost:5000/app:1".parse::<Reference>().unwrap(),
                    "app:2".parse().unwrap(),
                ],
            ),
            (
                json!({
                    "architecture": host.architecture, "os": host.os,
                    "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
                }),
                Vec::new(),
            ),
        ] {
            let img = store
                .commit_image(&serde_json::to_vec(&config).unwrap(), &names)
                .unwrap();
            let typed = serde_json::to_value(ImageInspect::new(&store, &img)).unwrap();
            let legacy = legacy_json(&store, &img);
            assert_eq!(typed, legacy);
            assert_eq!(
                serde_json::to_string_pretty(&typed).unwrap(),
                serde_json::to_string_pretty(&legacy).unwrap()
            );
        }
    }
}
