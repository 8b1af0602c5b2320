//! Compose files for rbuild: a project's files found (or given with `-f`) and merged by the
//! Compose Specification's rules, its variables interpolated from the process environment and
//! `.env`/`--env-file`, `extends` resolved, profiles applied, the project name normalized as
//! docker compose does, and the result checked against the specification (the `compose_spec`
//! crate's typed model: an unknown key, a bad port or duration is an error naming the file)
//! and for `depends_on` that names an undefined service or goes round in a circle.
//!
//! No containers are touched here: the engine turns a [`Project`] into networks, volumes and
//! containers.

mod env;
mod error;
mod interpolate;
mod merge;
mod project;

pub use compose_spec;
pub use env::{EnvFileError, parse_env_file};
pub use error::ComposeError;
pub use interpolate::{InterpolateError, interpolate_str, interpolate_value};
pub use merge::{merge_documents, merge_service};
pub use project::{FILE_NAMES, LoadOptions, Project, find_files, normalize_project_name};
