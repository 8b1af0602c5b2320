//! `rbuild compose`: multi-container applications from compose files, with docker compose v2's
//! project flags, verbs, output lines and exit codes. The project is loaded by
//! `rbuild-compose` and run by its [`Runtime`] over the engine; this file parses and prints.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use rbuild_compose::runtime::{
    DownOptions, Images, Kind, Progress, RunOptions, Runtime, ServiceContainer, Status, UpOptions,
};
use rbuild_compose::{LoadOptions, Project};
use rbuild_engine::LogPosition;
use rbuild_oci::{Platform, Reference};
use rbuild_runner::lifecycle::Container;
use rbuild_runner::lifecycle::log::LogEntry;
use serde_json::{Value, json};

mod args;
mod list;
mod logs;
mod oneoff;
mod transfer;

pub use args::*;
use list::{ls, ps};
use logs::{attached, logs};
use oneoff::{exec, run_oneoff};
use transfer::{pull, push};

use super::Globals;
use super::common::{docker_time, since, table};
use super::containers::{command_text, ports_text, secs, status_text};
use crate::build_progress::{BuildProgress, ProgressMode};
use crate::transfer::pull_image_blocking;

/// docker compose's verbs that rbuild does not have yet.
const LATER_VERBS: &[&str] = &["events", "cp", "wait", "watch", "attach", "scale", "stats"];

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
    // A verb's registry options reach what the engine fetches on its own too (the layers of
    // an image built from a lazily imported cache, for a build or a container).
    let engine = match args.command.registry() {
        Some(registry) => super::common::engine(globals).with_registry(registry.settings()),
        None => super::common::engine(globals),
    };
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
            rt.down(&DownOptions {
                volumes: a.volumes,
                remove_orphans: a.remove_orphans,
                timeout: a.timeout,
                rmi: a.rmi.as_deref().map(str::parse).transpose()?,
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
                    .map(|i| crate::commands::common::human_size(i.size))
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
        // Running, and healthy where there is a healthcheck: a container that ended or
        // turned unhealthy fails the wait, as compose's does.
        rt.wait_ready(&containers)?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.detach || a.no_start {
        return Ok(ExitCode::SUCCESS);
    }
    attached(rt, engine, &containers)
}
