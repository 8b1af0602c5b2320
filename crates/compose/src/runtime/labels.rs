//! The labels docker compose puts on what it creates, by which `ps`, `down` and a second
//! `up` find them again.

/// The project a container, network or volume belongs to.
pub const PROJECT: &str = "com.docker.compose.project";
/// A container's service.
pub const SERVICE: &str = "com.docker.compose.service";
/// A container's replica number (1, 2 …).
pub const NUMBER: &str = "com.docker.compose.container-number";
/// The hash of the service's configuration the container was made from.
pub const HASH: &str = "com.docker.compose.config-hash";
/// `True` for `run`'s one-off containers, else `False`.
pub const ONEOFF: &str = "com.docker.compose.oneoff";
/// The image the container was made from.
pub const IMAGE: &str = "com.docker.compose.image";
/// The project directory.
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
/// The project's files, comma separated.
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
/// The compose version that made it.
pub const VERSION: &str = "com.docker.compose.version";
/// A network's key in the project.
pub const NETWORK: &str = "com.docker.compose.network";
/// A volume's key in the project.
pub const VOLUME: &str = "com.docker.compose.volume";
/// The docker compose version rbuild's resources say they were made by.
pub const COMPOSE_VERSION: &str = "2.24.0";
