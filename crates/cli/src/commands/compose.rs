//! `rbuild compose`: multi-container applications from compose files, with docker compose v2's
//! project flags, verbs, output lines and exit codes. The project is loaded by
//! `rbuild-compose` and run by its [`Runtime`] over the engine; this file parses and prints.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use rbuild_compose::runtime::{
    DownOptions, Images, Kind, Progress, RunOptions, Runtime, ServiceContainer, Status, UpOptions,
};
use rbuild_compose::{LoadOptions, Project};
use rbuild_engine::LogPosition;
use rbuild_oci::{Platform, Reference};
use rbuild_runner::lifecycle::Container;
use rbuild_runner::lifecycle::log::LogEntry;
use serde_json::{Value, json};

use super::Globals;
use super::common::{docker_time, since, table};
use super::containers::{command_text, ports_text, secs, status_text};
use super::registry_opts::RegistryArgs;
use crate::build_progress::{BuildProgress, ProgressMode};
use crate::transfer::pull_image_blocking;

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
    /// Wait for services to be running (implies -d; healthchecks are not run yet)
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
    /// Remove images used by services (not supported yet)
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

/// docker compose's verbs that rbuild does not have yet.
const LATER_VERBS: &[&str] = &[
    "build", "pull", "push", "kill", "top", "port", "images", "ls", "create", "events", "pause",
    "unpause", "cp", "wait", "watch", "attach", "scale", "stats",
];

/// docker compose's progress lines on standard error: `Container p-web-1  Started` when
/// not a terminal (every step), ` ✔ Container p-web-1  Started` on one (final steps).
struct Lines {
    tty: bool,
}

impl Progress for Lines {
    fn event(&self, kind: Kind, name: &str, status: Status) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            if status.is_done() {
                let _ = writeln!(
                    err,
                    " \u{2714} {} {name}  {}",
                    kind.as_str(),
                    status.as_str()
                );
            }
        } else {
            let _ = writeln!(err, "{} {name}  {}", kind.as_str(), status.as_str());
        }
    }

    fn warning(&self, message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "WARN[0000] {message}");
    }
}

fn load(args: &ComposeArgs) -> anyhow::Result<Project> {
    let opts = LoadOptions {
        files: args.files.clone(),
        project_directory: args.project_directory.clone(),
        project_name: args.project_name.clone(),
        env_files: args.env_files.clone(),
        profiles: args.profiles.clone(),
        working_dir: std::env::current_dir().context("the current directory")?,
        environment: std::env::vars().collect(),
    };
    Ok(Project::load(&opts)?)
}

/// Run `rbuild compose`.
pub fn run(args: ComposeArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    if let ComposeCommand::Other(words) = &args.command {
        let verb = words.first().map(String::as_str).unwrap_or_default();
        if LATER_VERBS.contains(&verb) {
            bail!("rbuild compose {verb}: not supported yet");
        }
        bail!("rbuild compose: unknown command {verb:?} (see `rbuild compose --help`)");
    }
    let engine = super::common::engine(globals);
    if let ComposeCommand::Ls(a) = &args.command {
        return ls(&engine, a);
    }
    let project = load(&args)?;
    let lines = Lines {
        tty: std::io::stderr().is_terminal(),
    };
    let rt = Runtime::new(&engine, &project, &lines);
    match args.command {
        ComposeCommand::Config(c) => config(&project, &c),
        ComposeCommand::Up(a) => up(&rt, &engine, a),
        ComposeCommand::Down(a) => {
            if a.rmi.is_some() {
                bail!("rbuild compose down --rmi: not supported yet");
            }
            rt.down(&DownOptions {
                volumes: a.volumes,
                remove_orphans: a.remove_orphans,
                timeout: a.timeout,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Ps(a) => ps(&rt, &project, a),
        ComposeCommand::Logs(a) => logs(&rt, &engine, a),
        ComposeCommand::Stop(a) => {
            rt.stop(&a.services, a.timeout)?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Start(a) => {
            rt.start(&a.services)?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Restart(a) => {
            rt.restart(&a.services, a.timeout)?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Rm(a) => {
            let stopped: Vec<ServiceContainer> = rt
                .service_containers(&a.services)?
                .into_iter()
                .filter(|c| a.stop || !c.summary.state.status.is_active())
                .collect();
            if stopped.is_empty() {
                eprintln!("No stopped containers");
                return Ok(ExitCode::SUCCESS);
            }
            if !a.force {
                bail!(
                    "rbuild compose rm: asking for confirmation is not supported yet: pass -f to remove {}",
                    stopped
                        .iter()
                        .map(|c| c.container().name().to_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            rt.rm(&a.services, a.stop, a.volumes)?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Exec(a) => exec(&rt, a, globals),
        ComposeCommand::Run(a) => run_oneoff(&rt, &engine, a, globals),
        ComposeCommand::Create(a) => {
            let store = engine.store()?;
            let registry = &a.registry;
            let pull = |reference: &Reference, platform: &Platform| {
                pull_image_blocking(registry, store, reference, platform, true)
                    .map_err(|e| format!("{e:#}"))
            };
            let reporter = BuildProgress::new(ProgressMode::Auto);
            let images = Images {
                pull: &pull,
                reporter: &reporter,
            };
            rt.up(
                &UpOptions {
                    services: a.services,
                    build: a.build,
                    no_build: a.no_build,
                    force_recreate: a.force_recreate,
                    no_start: true,
                    ..UpOptions::default()
                },
                &images,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Build(a) => {
            let store = engine.store()?;
            let registry = &a.registry;
            let quiet = a.quiet;
            let pull = |reference: &Reference, platform: &Platform| {
                pull_image_blocking(registry, store, reference, platform, quiet)
                    .map_err(|e| format!("{e:#}"))
            };
            let reporter = BuildProgress::new(if a.quiet {
                ProgressMode::Quiet
            } else {
                ProgressMode::Auto
            });
            let images = Images {
                pull: &pull,
                reporter: &reporter,
            };
            rt.build_images(&a.services, &images)?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Kill(a) => {
            let sig = rbuild_engine::options::parse_signal(&a.signal)?;
            rt.kill(&a.services, sig)?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Pause(a) => {
            rt.pause(&a.services, true)?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Unpause(a) => {
            rt.pause(&a.services, false)?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Port(a) => {
            let cs = rt.service_containers(std::slice::from_ref(&a.service))?;
            let Some(c) = cs.iter().find(|c| c.number == a.index) else {
                bail!("service {:?} has no container #{}", a.service, a.index);
            };
            let private = format!("{}/{}", a.private_port, a.protocol);
            let bound = engine.port(c.container(), Some(&private))?;
            let Some(p) = bound.first() else {
                bail!("no port {private} for container {}", c.container().name());
            };
            println!("{}:{}", p.host_ip, p.host_port);
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Top(a) => {
            let mut out = std::io::stdout().lock();
            for c in rt.service_containers(&a.services)? {
                if !c.summary.state.status.is_active() {
                    continue;
                }
                let top = engine.top(c.container(), &[])?;
                writeln!(out, "{}", c.container().name())?;
                writeln!(out, "{}", top.header)?;
                for p in &top.processes {
                    writeln!(out, "{p}")?;
                }
                writeln!(out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Ls(_) => unreachable!("handled above"),
        ComposeCommand::Pull(a) => pull(&rt, &engine, &a),
        ComposeCommand::Images(a) => {
            let all = engine.list_images(None)?;
            let mut rows = vec![
                ["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"]
                    .map(String::from)
                    .to_vec(),
            ];
            let mut out = std::io::stdout().lock();
            for c in rt.service_containers(&a.services)? {
                let rec = &c.container().record;
                let id = rec.image_id.trim_start_matches("sha256:");
                if a.quiet {
                    writeln!(out, "{}", rec.image_id)?;
                    continue;
                }
                let size = all
                    .iter()
                    .find(|i| i.image.id.to_string() == rec.image_id)
                    .map(|i| super::common::human_size(i.size))
                    .unwrap_or_default();
                let (repo, tag) = match rec.image.rsplit_once(':') {
                    Some((r, t)) if !t.contains('/') => (r.to_owned(), t.to_owned()),
                    _ => (rec.image.clone(), "latest".to_owned()),
                };
                rows.push(vec![
                    c.container().name().to_owned(),
                    repo,
                    tag,
                    id.chars().take(12).collect(),
                    size,
                ]);
            }
            if !a.quiet {
                out.write_all(table(&rows).as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Push(a) => push(&rt, &engine, &a),
        ComposeCommand::Other(_) => unreachable!("handled above"),
    }
}

fn config(project: &Project, config: &ConfigArgs) -> anyhow::Result<ExitCode> {
    if config.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    if config.services || config.volumes {
        let names = if config.services {
            project.service_names()
        } else {
            project.volume_names()
        };
        for n in names {
            writeln!(out, "{n}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match config.format {
        ConfigFormat::Yaml => out.write_all(project.config_yaml().as_bytes())?,
        ConfigFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &project.model)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn up(rt: &Runtime<'_>, engine: &rbuild_engine::Engine, a: UpArgs) -> anyhow::Result<ExitCode> {
    let mut scale = std::collections::BTreeMap::new();
    for s in &a.scale {
        let (svc, n) = s
            .split_once('=')
            .and_then(|(svc, n)| Some((svc.to_owned(), n.parse::<u64>().ok()?)))
            .with_context(|| format!("--scale {s:?}: expected SERVICE=NUM"))?;
        scale.insert(svc, n);
    }
    let registry = &a.registry;
    let store = engine.store()?;
    let pull = |reference: &Reference, platform: &Platform| {
        pull_image_blocking(registry, store, reference, platform, true)
            .map_err(|e| format!("{e:#}"))
    };
    let reporter = BuildProgress::new(ProgressMode::Auto);
    let images = Images {
        pull: &pull,
        reporter: &reporter,
    };
    let opts = UpOptions {
        services: a.services.clone(),
        build: a.build,
        no_build: a.no_build,
        force_recreate: a.force_recreate,
        no_recreate: a.no_recreate,
        no_deps: a.no_deps,
        remove_orphans: a.remove_orphans,
        no_start: a.no_start,
        scale,
    };
    let containers = rt.up(&opts, &images)?;
    if a.wait && !a.no_start {
        // Healthchecks are refused before anything starts, so running is what to wait for:
        // a container that ended instead fails the wait, as compose's does.
        for c in &containers {
            let st = c.state()?;
            if !st.status.is_active() {
                bail!("container {} exited ({})", c.name(), st.exit_code);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.detach || a.no_start {
        return Ok(ExitCode::SUCCESS);
    }
    attached(rt, engine, &containers)
}

/// Attached `up`: the containers' output multiplexed until they all end, or until Ctrl-C
/// (then they are stopped, as docker compose does).
fn attached(
    rt: &Runtime<'_>,
    engine: &rbuild_engine::Engine,
    containers: &[Container],
) -> anyhow::Result<ExitCode> {
    static INTERRUPTED: AtomicBool = AtomicBool::new(false);
    extern "C" fn on_signal(_: i32) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_signal),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &action) };
    }
    let width = prefix_width(containers);
    let handles: Vec<_> = containers
        .iter()
        .map(|c| {
            let c = c.clone();
            let engine = engine.clone();
            let prefix = prefix(&c, width);
            std::thread::spawn(move || {
                let from = LogPosition::end_of(&c);
                for e in engine.logs(&c, &rbuild_engine::LogOptions::default()) {
                    print_entry(&prefix, &e, false);
                }
                let _ = engine.follow_logs(&c, from, |e| print_entry(&prefix, e, false));
            })
        })
        .collect();
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            let services: Vec<String> = Vec::new();
            rt.stop(&services, None)?;
            return Ok(ExitCode::from(130));
        }
        if handles.iter().all(|h| h.is_finished()) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A container's log prefix: its name without the project (`web-1`).
fn short_name(c: &Container) -> String {
    let project = c
        .record
        .labels
        .get(rbuild_compose::runtime::labels::PROJECT)
        .cloned()
        .unwrap_or_default();
    c.name()
        .strip_prefix(&format!("{project}-"))
        .unwrap_or(c.name())
        .to_owned()
}

fn prefix_width(cs: &[Container]) -> usize {
    cs.iter().map(|c| short_name(c).len()).max().unwrap_or(0)
}

fn prefix(c: &Container, width: usize) -> String {
    format!("{:width$}  | ", short_name(c))
}

fn print_entry(prefix: &str, e: &LogEntry, timestamps: bool) {
    let mut text = String::new();
    for line in e.log.split_inclusive('\n') {
        text.push_str(prefix);
        if timestamps {
            text.push_str(&e.time);
            text.push(' ');
        }
        text.push_str(line);
        if !line.ends_with('\n') {
            text.push('\n');
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn logs(rt: &Runtime<'_>, engine: &rbuild_engine::Engine, a: LogsArgs) -> anyhow::Result<ExitCode> {
    let tail = match a.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .with_context(|| format!("--tail {n:?}: expected a number or \"all\""))?,
        ),
    };
    let cs: Vec<Container> = rt
        .service_containers(&a.services)?
        .into_iter()
        .map(|c| c.container().clone())
        .collect();
    let width = prefix_width(&cs);
    let opts = rbuild_engine::LogOptions {
        tail,
        ..Default::default()
    };
    let handles: Vec<_> = cs
        .into_iter()
        .map(|c| {
            let engine = engine.clone();
            let prefix = if a.no_log_prefix {
                String::new()
            } else {
                prefix(&c, width)
            };
            let (follow, ts) = (a.follow, a.timestamps);
            std::thread::spawn(move || {
                let from = LogPosition::end_of(&c);
                for e in engine.logs(&c, &opts) {
                    print_entry(&prefix, &e, ts);
                }
                if follow {
                    let _ = engine.follow_logs(&c, from, |e| print_entry(&prefix, e, ts));
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Ok(ExitCode::SUCCESS)
}

fn ps(rt: &Runtime<'_>, project: &Project, a: PsArgs) -> anyhow::Result<ExitCode> {
    let cs: Vec<ServiceContainer> = rt
        .service_containers(&a.service)?
        .into_iter()
        .filter(|c| a.all || c.summary.state.status.is_active())
        .collect();
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for c in &cs {
            writeln!(out, "{}", c.container().id())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.services {
        let mut names: Vec<&str> = cs.iter().map(|c| c.service.as_str()).collect();
        names.dedup();
        for n in names {
            writeln!(out, "{n}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match a.format.as_str() {
        "json" => {
            for c in &cs {
                writeln!(out, "{}", ps_json(c, &project.name))?;
            }
        }
        "table" => {
            let mut rows = vec![
                [
                    "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for c in &cs {
                let k = c.container();
                rows.push(vec![
                    k.name().to_owned(),
                    k.record.image.clone(),
                    format!("{:?}", super::containers::ellipsis(&command_text(k), 20)),
                    c.service.clone(),
                    since(secs(k.record.created)),
                    status_text(&c.summary.state),
                    ports_text(k, &c.summary.state),
                ]);
            }
            out.write_all(table(&rows).as_bytes())?;
        }
        other => bail!("--format {other:?}: expected table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `ps --format json`, as docker compose v2 prints it.
fn ps_json(c: &ServiceContainer, project: &str) -> Value {
    let k = c.container();
    let st = &c.summary.state;
    let created = secs(k.record.created);
    let labels: Vec<String> = k
        .record
        .labels
        .iter()
        .map(|(a, b)| format!("{a}={b}"))
        .collect();
    let publishers: Vec<Value> = st
        .ports
        .iter()
        .map(|p| {
            json!({
                "URL": p.host_ip,
                "TargetPort": p.container_port,
                "PublishedPort": p.host_port,
                "Protocol": p.protocol.as_str(),
            })
        })
        .collect();
    json!({
        "Command": format!("{:?}", command_text(k)),
        "CreatedAt": docker_time(created),
        "ExitCode": st.exit_code,
        "Health": "",
        "ID": k.id(),
        "Image": k.record.image,
        "Labels": labels.join(","),
        "LocalVolumes": k.record.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
        "Mounts": k.record.mounts.iter().map(|m| if m.name.is_empty() { m.destination.clone() } else { m.name.clone() }).collect::<Vec<_>>().join(","),
        "Name": k.name(),
        "Names": k.name(),
        "Networks": k.record.network,
        "Ports": ports_text(k, st),
        "Project": project,
        "Publishers": publishers,
        "RunningFor": since(created),
        "Service": c.service,
        "Size": "0B",
        "State": st.status.as_str(),
        "Status": status_text(st),
    })
}

fn run_oneoff(
    rt: &Runtime<'_>,
    engine: &rbuild_engine::Engine,
    a: RunArgs,
    globals: &Globals,
) -> anyhow::Result<ExitCode> {
    let store = engine.store()?;
    let registry = &a.registry;
    let pull = |reference: &Reference, platform: &Platform| {
        pull_image_blocking(registry, store, reference, platform, true)
            .map_err(|e| format!("{e:#}"))
    };
    let reporter = BuildProgress::new(ProgressMode::Auto);
    let images = Images {
        pull: &pull,
        reporter: &reporter,
    };
    let interactive = !a.detach;
    let tty = !a.detach && !a.no_tty && std::io::stdin().is_terminal();
    let env = a
        .env
        .iter()
        .filter_map(|e| rbuild_engine::options::expand_env(e))
        .collect();
    let c = rt.create_oneoff(
        &RunOptions {
            service: a.service.clone(),
            command: a.command.clone(),
            env,
            entrypoint: a.entrypoint.clone(),
            user: a.user.clone(),
            workdir: a.workdir.clone(),
            rm: a.rm,
            no_deps: a.no_deps,
            service_ports: a.service_ports,
            name: a.name.clone(),
            tty,
            interactive,
        },
        &images,
    )?;
    if a.detach {
        engine.start(&c)?;
        println!("{}", c.name());
        return Ok(ExitCode::SUCCESS);
    }
    super::run::foreground(tty, interactive, globals, &c, None)
}

/// `pull`: the `image:` of every selected service without `build:`.
fn pull(
    rt: &Runtime<'_>,
    engine: &rbuild_engine::Engine,
    a: &TransferArgs,
) -> anyhow::Result<ExitCode> {
    let store = engine.store()?;
    for name in rt.selected(&a.services, true)? {
        let (build, image) = rt.image_source(&name);
        if !image || build {
            eprintln!("{name} Skipped - No image to be pulled");
            continue;
        }
        let tag = rt.image_name(&name);
        let reference: Reference = tag
            .parse()
            .with_context(|| format!("service {name:?}: invalid image {tag:?}"))?;
        eprintln!("{name} Pulling");
        match pull_image_blocking(&a.registry, store, &reference, &Platform::host(), true) {
            Ok(_) => eprintln!("{name} Pulled"),
            Err(e) if a.ignore_pull_failures => eprintln!("{name} Warning: {e:#}"),
            Err(e) => return Err(e.context(format!("pulling {tag} for service {name:?}"))),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `push`: the images of the selected services that have both `build:` and `image:`.
fn push(
    rt: &Runtime<'_>,
    engine: &rbuild_engine::Engine,
    a: &TransferArgs,
) -> anyhow::Result<ExitCode> {
    let store = engine.store()?;
    for name in rt.selected(&a.services, true)? {
        let (build, image) = rt.image_source(&name);
        if !(build && image) {
            continue;
        }
        let tag = rt.image_name(&name);
        let reference: Reference = tag
            .parse()
            .with_context(|| format!("service {name:?}: invalid image {tag:?}"))?;
        eprintln!("Pushing {name}: {tag}");
        match crate::transfer::push_image_blocking(&a.registry, store, &reference, true) {
            Ok(digest) => eprintln!("{name} Pushed {tag}@{digest}"),
            Err(e) if a.ignore_pull_failures => eprintln!("{name} Warning: {e:#}"),
            Err(e) => return Err(e.context(format!("pushing {tag} for service {name:?}"))),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ls`: the projects of the store's containers, from their labels.
fn ls(engine: &rbuild_engine::Engine, a: &LsArgs) -> anyhow::Result<ExitCode> {
    use rbuild_compose::runtime::labels;
    let list = engine.list_containers(&rbuild_engine::ListOptions {
        all: true,
        limit: None,
        filters: vec![("label".into(), labels::PROJECT.into())],
    })?;
    // project -> (state -> count, config files)
    let mut projects: std::collections::BTreeMap<
        String,
        (std::collections::BTreeMap<String, usize>, String),
    > = Default::default();
    for c in &list {
        let l = &c.container.record.labels;
        let entry = projects
            .entry(l.get(labels::PROJECT).cloned().unwrap_or_default())
            .or_default();
        *entry
            .0
            .entry(c.state.status.as_str().to_owned())
            .or_default() += 1;
        if let Some(f) = l.get(labels::CONFIG_FILES) {
            entry.1 = f.clone();
        }
    }
    projects.retain(|_, (states, _)| a.all || states.contains_key("running"));
    let mut out = std::io::stdout().lock();
    let status = |states: &std::collections::BTreeMap<String, usize>| {
        states
            .iter()
            .map(|(s, n)| format!("{s}({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if a.quiet {
        for name in projects.keys() {
            writeln!(out, "{name}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<Value> = projects
                .iter()
                .map(|(n, (st, f))| json!({"Name": n, "Status": status(st), "ConfigFiles": f}))
                .collect();
            writeln!(out, "{}", Value::Array(v))?;
        }
        "table" => {
            let mut rows = vec![vec![
                "NAME".to_owned(),
                "STATUS".to_owned(),
                "CONFIG FILES".to_owned(),
            ]];
            for (n, (st, f)) in &projects {
                rows.push(vec![n.clone(), status(st), f.clone()]);
            }
            out.write_all(table(&rows).as_bytes())?;
        }
        other => bail!("--format {other:?}: expected table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

fn exec(rt: &Runtime<'_>, a: ExecArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let cs = rt.service_containers(std::slice::from_ref(&a.service))?;
    let Some(c) = cs.iter().find(|c| c.number == a.index) else {
        bail!(
            "service {:?} is not running container #{}",
            a.service,
            a.index
        );
    };
    if !c.summary.state.status.is_active() {
        bail!("service {:?} is not running", a.service);
    }
    let tty = !a.no_tty && std::io::stdin().is_terminal();
    super::exec::run(
        super::exec::ExecArgs {
            interactive: true,
            tty,
            detach: a.detach,
            env: a.env,
            workdir: a.workdir,
            user: a.user,
            privileged: a.privileged,
            container: c.container().id().to_owned(),
            command: a.command,
        },
        globals,
    )
}
