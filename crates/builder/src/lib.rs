//! rbuild's builder: Dockerfile stages → step graph → image.
//!
//! - [`ignore`]: `.dockerignore` patterns with moby's exact matching rules;
//! - [`context`]: the build context: walking it with the ignore rules, resolving COPY/ADD
//!   sources (wildcards, directories, refusing paths outside the context);
//! - [`checksum`]: content digests of context files, with a stat-keyed cache so a no-op
//!   rebuild never hashes unchanged files again;
//! - [`graph`]: which stages a target needs and which can run in parallel;
//! - [`cache_key`]: the cache key contract of every step;
//! - [`copy`]: writing a COPY/ADD selection into the step's layer tree;
//! - [`archive`]: ADD of a local tar archive: detection and safe extraction;
//! - [`remote`]: ADD of an http(s) URL: download, `--checksum`, docker's file name and mtime;
//! - [`config`]: the docker-compatible image config being built;
//! - [`lower`]: reading a stage's filesystem from its snapshot layers;
//! - [`run`]: a RUN step in a real container, its changes left in the upper dir;
//! - [`build`]: the driver: stages in dependency batches, cached steps, the final image;
//! - [`reporter`]: the progress callbacks the CLI implements.
//!
//! The builder never prints: progress goes through a reporter the CLI implements.

pub mod checksum;
pub mod context;
mod error;
pub mod ignore;

pub use error::BuildError;
pub mod archive;
pub mod build;
pub mod cache_key;
pub mod config;
pub mod copy;
pub mod graph;
pub mod lower;
pub mod remote;
pub mod reporter;
pub mod run;
