//! `rbuild compose`'s arguments: docker compose v2's flags for each verb.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::commands::registry_opts::RegistryArgs;

/// Arguments of `rbuild compose`.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Compose configuration files; later ones merge over earlier ones
    /// [default: compose.yaml (or docker-compose.yml …) here or in a parent directory]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name [default: the files' `name:`, else the project directory's name]
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Alternate working directory [default: the first file's directory]
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Environment files to read instead of the project directory's .env
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable services of this profile
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// What to do
    #[command(subcommand)]
    pub command: ComposeCommand,
}

/// The `rbuild compose` verbs.
#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Parse, resolve and render the project in canonical form
    Config(ConfigArgs),
    /// Create and start containers
    Up(UpArgs),
    /// Stop and remove containers and networks
    Down(DownArgs),
    /// List containers
    Ps(PsArgs),
    /// View output from containers
    Logs(LogsArgs),
    /// Stop services
    Stop(StopArgs),
    /// Start services
    Start(ServicesArgs),
    /// Restart service containers
    Restart(StopArgs),
    /// Remove stopped service containers
    Rm(RmArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Run a one-off command on a service
    Run(RunArgs),
    /// Creates containers for a service (up --no-start)
    Create(CreateArgs),
    /// Build the services' images
    Build(BuildImagesArgs),
    /// Force stop service containers
    Kill(KillArgs),
    /// Pause services
    Pause(ServicesArgs),
    /// Unpause services
    Unpause(ServicesArgs),
    /// Print the public port for a port binding
    Port(PortArgs),
    /// Display the running processes
    Top(ServicesArgs),
    /// List running compose projects
    Ls(LsArgs),
    /// List images used by the created containers
    Images(ImagesArgs),
    /// Pull service images
    Pull(TransferArgs),
    /// Push service images
    Push(TransferArgs),
    /// Any other verb
    #[command(external_subcommand)]
    Other(Vec<String>),
}

impl ComposeCommand {
    /// The registry options of a verb that has them.
    pub fn registry(&self) -> Option<&RegistryArgs> {
        match self {
            ComposeCommand::Up(a) => Some(&a.registry),
            ComposeCommand::Run(a) => Some(&a.registry),
            ComposeCommand::Create(a) => Some(&a.registry),
            ComposeCommand::Build(a) => Some(&a.registry),
            ComposeCommand::Pull(a) | ComposeCommand::Push(a) => Some(&a.registry),
            _ => None,
        }
    }
}

/// Arguments of `rbuild compose config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the service names, one per line
    #[arg(long, conflicts_with = "volumes")]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Only validate; print nothing
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: ConfigFormat,
}

/// How `config` prints the model.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ConfigFormat {
    /// YAML, as docker compose prints it
    Yaml,
    /// JSON
    Json,
}

/// Arguments of `rbuild compose up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Detached mode: run containers in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Build images before starting containers
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Don't build an image, even if it's missing
    #[arg(long)]
    pub no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them
    #[arg(long)]
    pub no_recreate: bool,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Don't start the services after creating them
    #[arg(long)]
    pub no_start: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Wait for services to be running and healthy (implies -d)
    #[arg(long)]
    pub wait: bool,
    /// Scale SERVICE to NUM instances; overrides the `scale` setting in the Compose file
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Services
    pub services: Vec<String>,
}

/// Arguments of `rbuild compose down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the volumes section and anonymous volumes
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Remove images used by services: "local" removes only images built without an `image:` name, "all" every service's image
    #[arg(long, value_name = "TYPE")]
    pub rmi: Option<String>,
    /// Shutdown timeout in seconds
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<i64>,
}

/// Arguments of `rbuild compose ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all stopped containers
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display services
    #[arg(long)]
    pub services: bool,
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Services
    pub service: Vec<String>,
}

/// Arguments of `rbuild compose logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<String>,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Services
    pub services: Vec<String>,
}

/// Arguments of `rbuild compose stop` and `restart`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<i64>,
    /// Services
    pub services: Vec<String>,
}

/// Arguments naming services.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Services
    pub services: Vec<String>,
}

/// Arguments of `rbuild compose rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short = 's', long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Services
    pub services: Vec<String>,
}

/// Arguments of `rbuild compose exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Disable pseudo-TTY allocation (by default one is allocated when stdin is a terminal)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Detached mode: run the command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Path to workdir directory for this command
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Run the command as this user
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Give extended privileges to the process
    #[arg(long)]
    pub privileged: bool,
    /// Index of the container if the service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u64,
    /// The service
    pub service: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Arguments of `rbuild compose run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run the container in the background and print its name
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Override the entrypoint of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run as this user
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Run command with the service's ports enabled and mapped to the host
    #[arg(long)]
    pub service_ports: bool,
    /// Disable pseudo-TTY allocation (by default one is allocated when stdin is a terminal)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The service
    pub service: String,
    /// The command and its arguments [default: the service's]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Arguments of `rbuild compose create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Build images before creating containers
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Don't build an image, even if it's missing
    #[arg(long)]
    pub no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long)]
    pub force_recreate: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Services
    pub services: Vec<String>,
}

/// Arguments of `rbuild compose build`.
#[derive(Debug, Args)]
pub struct BuildImagesArgs {
    /// Don't print anything to stdout
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Services
    pub services: Vec<String>,
}

/// Arguments of `rbuild compose kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// SIGNAL to send to the container
    #[arg(short = 's', long, default_value = "SIGKILL")]
    pub signal: String,
    /// Services
    pub services: Vec<String>,
}

/// Arguments of `rbuild compose port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// Index of the container if the service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u64,
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// The service
    pub service: String,
    /// The private port
    pub private_port: u16,
}

/// Arguments of `rbuild compose pull` and `push`.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Pull/push without printing progress information
    #[arg(short, long)]
    pub quiet: bool,
    /// Pull what it can and ignore images with pull failures / push what it can
    #[arg(long)]
    pub ignore_pull_failures: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Services
    pub services: Vec<String>,
}

/// Arguments of `rbuild compose images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services
    pub services: Vec<String>,
}

/// Arguments of `rbuild compose ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display project names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
}
