//! rbuild's Docker Engine API service (`rbuild system service`): the REST API the docker
//! CLI, docker-compose and the Docker SDKs speak, served over a unix socket (or loopback
//! TCP) by the same engine the `rbuild` CLI calls, so every one of those clients drives
//! rbuild unchanged.
//!
//! - [`server`]: the address, the socket (0660), HTTP/1 connections with upgrades, bounded
//!   headers, the idle exit.
//! - `router`: docker's routes, versioned (`/v1.41/...`) and not.
//! - `system`, `containers`, `streams` (logs, attach), `exec`, `images` (with pull, push,
//!   save/load, build), `volumes`, `networks` (the engine's: predefined and user-defined).
//! - [`tls`]: `--tls`/`--tlsverify` for TCP (rustls), client certificates required off
//!   loopback.
//! - [`http`]: requests taken apart, bounded bodies, docker's replies and `{"message"}`
//!   errors with their status codes.

mod containers;
mod exec;
pub mod http;
mod images;
mod networks;
mod router;
pub mod server;
mod state;
mod streams;
mod system;
pub mod tls;
mod volumes;

pub use http::{API_VERSION, ApiError, MIN_API_VERSION};
pub use server::{Address, Listener, ServeError, ServeOptions, bind, default_address, serve};
pub use tls::{Tls, TlsError, TlsOptions};
