//! One module per `rbuild` subcommand: its clap arguments and its `run`.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Args, Subcommand};

mod attach;
mod build;
mod builder;
mod commit;
pub mod common;
mod compose;
mod container;
pub mod containers;
mod copy;
mod cp;
mod create;
mod events;
mod exec;
mod export;
mod history;
mod image;
mod images;
mod import;
mod info;
mod inspect;
mod load;
mod login;
mod logs;
mod manifest;
mod network;
mod parse;
mod pause;
mod port;
mod ps;
mod pull;
mod push;
pub mod registry_opts;
mod rename;
mod rm;
mod rmi;
mod run;
mod save;
mod search;
mod start;
mod stop;
pub(crate) mod system;
mod tag;
mod tags;
mod top;
mod version;
mod volume;
mod wait;

/// Options every subcommand accepts.
#[derive(Debug, Args)]
pub struct Globals {
    /// Root directory of the image and container store
    /// [default: /var/lib/rbuild for root, $XDG_DATA_HOME/rbuild otherwise]
    #[arg(long, global = true, env = "RBUILD_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// Every `rbuild` subcommand.
///
/// Each subcommand's arguments are defined only when that subcommand is the one invoked
/// (`defer`): building the whole tree cost every start ~1.6 M instructions and ~180 page
/// faults, and a `run` clones the process with all of it still in its heap.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Build an image from a Dockerfile
    Build(Box<build::BuildArgs>),
    /// Manage the build cache
    Builder(builder::BuilderArgs),
    /// Parse a Dockerfile and print its parse tree or typed instructions
    Parse(parse::ParseArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Give an image another name
    Tag(tag::TagArgs),
    /// Remove images
    Rmi(rmi::RmiArgs),
    /// Show low-level information on objects as JSON
    Inspect(inspect::InspectArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Save images to a docker-archive or OCI archive
    Save(save::SaveArgs),
    /// Load images from a docker-archive or OCI archive
    Load(load::LoadArgs),
    /// Import a rootfs tarball as a single-layer image
    Import(import::ImportArgs),
    /// Manage images
    Image(image::ImageArgs),
    /// Run a command in a new container
    Run(Box<run::RunArgs>),
    /// Create a new container without starting it
    Create(Box<run::RunArgs>),
    /// List containers
    Ps(ps::PsArgs),
    /// Start stopped containers
    Start(start::StartArgs),
    /// Stop running containers (stop signal, then SIGKILL)
    Stop(stop::StopArgs),
    /// Kill running containers
    Kill(stop::KillArgs),
    /// Restart containers
    Restart(stop::StopArgs),
    /// Remove containers
    Rm(rm::RmArgs),
    /// Rename a container
    Rename(rename::RenameArgs),
    /// Block until containers stop, then print their exit codes
    Wait(wait::WaitArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Show a running container's output until it ends
    Attach(attach::AttachArgs),
    /// Pause all processes of containers
    Pause(pause::PauseArgs),
    /// Unpause all processes of containers
    Unpause(pause::PauseArgs),
    /// Run a command in a running container
    Exec(exec::ExecArgs),
    /// Display the running processes of a container
    Top(top::TopArgs),
    /// List a container's published ports
    Port(port::PortArgs),
    /// Manage containers
    Container(container::ContainerArgs),
    /// Manage volumes
    Volume(volume::VolumeArgs),
    /// Manage networks
    Network(network::NetworkArgs),
    /// The owner of the networks' namespace (internal)
    #[command(name = "network-hub", hide = true)]
    NetworkHub(network::HubArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Export a container's filesystem as a tar archive
    Export(export::ExportArgs),
    /// Copy files between a container and the local filesystem
    Cp(cp::CpArgs),
    /// The monitor of a detached container (internal)
    #[command(name = "container-monitor", hide = true)]
    ContainerMonitor(start::MonitorArgs),
    /// Download an image from a registry into the store
    Pull(pull::PullArgs),
    /// Upload a stored image to a registry
    Push(push::PushArgs),
    /// Copy an image between registries, OCI layouts, archives and the store
    Copy(copy::CopyArgs),
    /// Log in to a registry (credentials go to docker's config.json)
    Login(login::LoginArgs),
    /// Log out from a registry
    Logout(login::LogoutArgs),
    /// List the tags of a registry repository
    Tags(tags::TagsArgs),
    /// List the repositories of a registry
    Catalog(tags::CatalogArgs),
    /// Search a registry (Docker Hub's or Harbor's search API) for repositories
    Search(search::SearchArgs),
    /// Inspect or delete manifests on a registry
    Manifest(manifest::ManifestArgs),
    /// Multi-container applications from compose files
    Compose(compose::ComposeArgs),
    /// Show what the store holds and what this machine runs
    Info(info::InfoArgs),
    /// Show what rbuild did to containers, images and volumes (past and live)
    Events(events::EventsArgs),
    /// Manage rbuild: serve the Docker Engine API, disk usage, prune
    System(system::SystemArgs),
    /// Show rbuild's version and the Engine API versions it serves
    Version(version::VersionArgs),
}

impl Command {
    /// Run the chosen subcommand.
    pub fn run(self, globals: &Globals) -> anyhow::Result<ExitCode> {
        match self {
            Command::Build(args) => build::run(*args, globals),
            Command::Parse(args) => parse::run(args),
            Command::Images(args) => images::run(args, globals),
            Command::Tag(args) => tag::run(args, globals),
            Command::Rmi(args) => rmi::run(args, globals),
            Command::Inspect(args) => inspect::run(args, globals),
            Command::History(args) => history::run(args, globals),
            Command::Save(args) => save::run(args, globals),
            Command::Load(args) => load::run(args, globals),
            Command::Import(args) => import::run(args, globals),
            Command::Image(args) => image::run(args, globals),
            Command::Builder(args) => builder::run(args, globals),
            Command::Run(args) => run::run(*args, globals),
            Command::Create(args) => create::run(*args, globals),
            Command::Ps(args) => ps::run(args, globals),
            Command::Start(args) => start::run(args, globals),
            Command::Stop(args) => stop::run_stop(args, globals),
            Command::Kill(args) => stop::run_kill(args, globals),
            Command::Restart(args) => stop::run_restart(args, globals),
            Command::Rm(args) => rm::run(args, globals),
            Command::Rename(args) => rename::run(args, globals),
            Command::Wait(args) => wait::run(args, globals),
            Command::Logs(args) => logs::run(args, globals),
            Command::Attach(args) => attach::run(args, globals),
            Command::Pause(args) => pause::run_pause(args, globals),
            Command::Unpause(args) => pause::run_unpause(args, globals),
            Command::Exec(args) => exec::run(args, globals),
            Command::Top(args) => top::run(args, globals),
            Command::Port(args) => port::run(args, globals),
            Command::Container(args) => container::run(args, globals),
            Command::Volume(args) => volume::run(args, globals),
            Command::Network(args) => network::run(args, globals),
            Command::NetworkHub(args) => network::hub(args, globals),
            Command::Commit(args) => commit::run(args, globals),
            Command::Export(args) => export::run(args, globals),
            Command::Cp(args) => cp::run(args, globals),
            Command::ContainerMonitor(args) => start::monitor(args, globals),
            Command::Pull(args) => pull::run(args, globals),
            Command::Push(args) => push::run(args, globals),
            Command::Copy(args) => copy::run(args, globals),
            Command::Login(args) => login::run_login(args),
            Command::Logout(args) => login::run_logout(args),
            Command::Tags(args) => tags::run_tags(args),
            Command::Catalog(args) => tags::run_catalog(args),
            Command::Search(args) => search::run(args),
            Command::Manifest(args) => manifest::run(args, globals),
            Command::Compose(args) => compose::run(args, globals),
            Command::Info(args) => info::run(args, globals),
            Command::Events(args) => events::run(args, globals),
            Command::System(args) => system::run(args, globals),
            Command::Version(args) => version::run(args),
        }
    }
}
