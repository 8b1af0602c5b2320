//! Docker's JSON shapes, defined once with serde, for `rbuild inspect`, `--format json` and
//! the Engine API alike: [`ContainerJson`] (`docker container inspect`), [`ImageInspect`]
//! (`docker image inspect`), [`VolumeJson`] (`docker volume inspect`).
//!
//! Field names are docker's (`#[serde(rename)]`); only the fields rbuild can fill are
//! present. Front ends that print them as docker does go through `serde_json::Value`, whose
//! maps keep their keys sorted.
//!
//! `SystemInfo` (`docker info`) is made by [`Engine::info`](crate::Engine::info). A
//! `Network` shape is left for the networks issue.

mod container;
mod image;
mod network;
mod volume;

pub use container::{
    ContainerConfig, ContainerJson, ContainerState, EmptyObject, EndpointSettings, HostConfig,
    LogConfig, MountPoint, NetworkSettings, PortBindingJson, RestartPolicyJson,
};
pub use image::{ImageInspect, ImageMetadata, RootFs};
pub use network::{Ipam, IpamConfig, NetworkContainer, NetworkJson};
pub use volume::VolumeJson;

/// Docker's zero time for timestamps never set, else the RFC 3339 time with nanoseconds.
pub(crate) fn time_or_zero(ns: i64) -> String {
    if ns == 0 {
        "0001-01-01T00:00:00Z".to_owned()
    } else {
        rbuild_runner::lifecycle::time::rfc3339_nano(ns)
    }
}
