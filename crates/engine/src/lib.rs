//! rbuild's engine: the operations users perform on images, containers, volumes and
//! registries, as typed Rust APIs that never print, shared by every front end (the `rbuild`
//! CLI, and the Engine API service and `rbuild compose` to come).
//!
//! It sits above the crates that do the work and composes them: the store (`rbuild-store`)
//! for images, layers and snapshots; the registry client (`rbuild-registry`) for transfers;
//! the runner (`rbuild-runner`, with its `lifecycle` records and monitor) for containers; the
//! builder (`rbuild-builder`) for builds. A front end parses its input into the engine's
//! option types, calls an [`Engine`] method, and renders the result or the [`EngineError`]
//! (whose `source()` chain reads as the causes a user sees).
//!
//! - images: [`Engine::list_images`], [`Engine::history`], [`Engine::resolve_image`] (an
//!   image's layers unpacked for a container), [`Engine::image_inspect`], [`Engine::tag`],
//!   [`Engine::remove_image`] (docker's conflicts), [`Engine::prune_images`],
//!   [`Engine::import`], [`Engine::save`], [`Engine::load`].
//! - transfers: [`Engine::pull`], [`Engine::push`] (async, progress through the registry's
//!   `Reporter`), [`transfer::copy`] between registries, layouts, archives and the store,
//!   [`transfer::block_on`] for synchronous callers; [`registry`]: settings, login, logout.
//! - containers: [`Engine::list_containers`] (docker's filters), [`Engine::create_container`]
//!   from [`CreateOptions`] (`docker run`'s options, typed), [`Engine::start`],
//!   [`Engine::stop`], [`Engine::kill`], [`Engine::restart`], [`Engine::pause`],
//!   [`Engine::remove_container`], [`Engine::wait`], [`Engine::logs`],
//!   [`Engine::follow_logs`] (a stream), [`Engine::attach_stdin`], [`Engine::top`],
//!   [`Engine::port`], [`Engine::commit`], [`Engine::export`], [`Engine::exec_create`] and
//!   [`Engine::exec_start`], [`Engine::copy_from_container`], [`Engine::copy_to_container`],
//!   [`Engine::container_inspect`], [`Engine::autostart`]. [`Engine::serve_monitor`] is a
//!   detached container's monitor; [`Engine::foreground`] makes the caller a container's
//!   monitor (`docker run` without `-d`).
//! - volumes: [`Engine::create_volume`], [`Engine::list_volumes`], [`Engine::volume_inspect`],
//!   [`Engine::remove_volume`], [`Engine::prune_volumes`].
//! - builds: [`Engine::build`] with base images from [`build::BaseImages`] (the store, then
//!   the front end's pull).
//! - docker's JSON shapes, defined once with serde: [`ContainerJson`], [`ImageInspect`],
//!   [`VolumeJson`], [`SystemInfo`] ([`Engine::info`]).
//! - events: every action is recorded in the store's [`journal`] (read and followed by
//!   observers in any process) and sent to the engine's [`EventSink`] as docker's [`Event`].

pub mod build;
pub mod cache;
mod containers;
mod engine;
mod error;
pub mod events;
mod files;
mod filters;
mod images;
mod info;
pub mod inspect;
pub mod journal;
mod networks;
pub mod options;
pub mod registry;
pub mod transfer;
mod usage;
mod volumes;

pub use containers::{
    CommitOptions, ContainerSummary, Created, Exec, ExecOptions, Foreground, ListOptions,
    LogOptions, LogPosition, Top, Warning,
};
pub use engine::Engine;
pub use error::{EngineError, OptionExt, Result, ResultExt};
pub use events::{Event, EventSink, EventType, NoEvents};
pub use images::{
    EntryPlatform, HistoryEntry, ImageDeleted, ImageLayers, ImageSummary, ImagesPruned,
    ImportOptions, IndexSummary, PullFn, SaveList, SaveLists, apply_changes,
};
pub use info::{RunnablePlatform, SystemInfo, runnable_platforms};
pub use inspect::{ContainerJson, ImageInspect, NetworkJson, VolumeJson};
pub use networks::{BuildNetwork, EndpointRequest, NetworkCreate};
pub use options::CreateOptions;
pub use registry::RegistrySettings;
pub use usage::{
    ContainerUsage, DiskUsage, ImageUsage, SystemPrune, SystemPruned, VolumeUsage,
    build_prune_options,
};
