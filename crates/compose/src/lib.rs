//! Compose files for rbuild: a project's files found (or given with `-f`) and merged by the
//! Compose Specification's rules, its variables interpolated from the process environment and
//! `.env`/`--env-file`, `extends` resolved, profiles applied, the project name normalized as
//! docker compose does, and the result checked against the specification (the `compose_spec`
//! crate's typed model: an unknown key, a bad port or duration is an error naming the file)
//! and for `depends_on` that names an undefined service or goes round in a circle.
//!
//! [`runtime::Runtime`] runs a project on rbuild's engine (`up`, `down`, `ps`, `start`,
//! `stop` …) as docker compose v2 does on dockerd, with its resource names and labels.

mod env;
mod error;
mod interpolate;
mod merge;
mod project;
pub mod runtime;

pub use compose_spec;
pub use env::{EnvFileError, parse_env_file};
pub use error::ComposeError;
pub use interpolate::{InterpolateError, interpolate_str, interpolate_value};
pub use merge::{merge_documents, merge_service};
pub use project::{FILE_NAMES, LoadOptions, Project, find_files, normalize_project_name};
