//! `rbuild system service [--time SECONDS] [--tlsverify --tlscacert CA --tlscert CERT --tlskey KEY] [URI]`: serve the Docker Engine API (so the
//! docker CLI, docker-compose and the SDKs drive rbuild), as `podman system service`;
//! `rbuild system df` (disk use by images, containers, volumes) and `rbuild system prune`.

use std::process::ExitCode;
use std::time::Duration;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::Globals;
use super::common::{human_size, since, table};

/// Arguments of `rbuild system`.
#[derive(Debug, Args)]
pub struct SystemArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: SystemCommand,
}

/// `rbuild system` subcommands.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Serve the Docker Engine API on a unix socket (or loopback TCP)
    Service(ServiceArgs),
    /// Show disk usage by images, containers, volumes and the build cache
    Df(DfArgs),
    /// Remove stopped containers, unused networks, dangling images, unused build cache (and with --volumes, unused anonymous volumes)
    Prune(PruneArgs),
}

/// Arguments of `rbuild system df`.
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show each image, container and volume
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// Arguments of `rbuild system prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not just dangling ones, and all build cache
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Also remove anonymous volumes no container uses
    #[arg(long)]
    pub volumes: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Arguments of `rbuild system service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Exit after this many seconds without a connection (0: never)
    #[arg(
        short = 't',
        long = "time",
        value_name = "SECONDS",
        default_value_t = 5
    )]
    pub time: u64,
    /// Where to listen: unix:///PATH or tcp://IP:PORT (an address other than loopback only
    /// with --tlsverify)
    /// [default: unix:///run/rbuild/rbuild.sock for root, $XDG_RUNTIME_DIR/rbuild/rbuild.sock otherwise]
    #[arg(value_name = "URI")]
    pub uri: Option<String>,
    /// Serve a tcp:// address over TLS (implied by --tlsverify)
    #[arg(long)]
    pub tls: bool,
    /// Serve over TLS and accept only clients with a certificate signed by --tlscacert
    #[arg(long)]
    pub tlsverify: bool,
    /// The CA that signs client certificates [default: ~/.docker/ca.pem]
    #[arg(long, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// The server's TLS certificate [default: ~/.docker/cert.pem]
    #[arg(long, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// The server's TLS key [default: ~/.docker/key.pem]
    #[arg(long, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
}

impl ServiceArgs {
    /// The TLS options, if any was given (a file option alone implies --tls, as with
    /// dockerd); docker's defaults are `$DOCKER_CERT_PATH` or `~/.docker`.
    fn tls_options(&self) -> Option<rbuild_api::TlsOptions> {
        let any = self.tls
            || self.tlsverify
            || self.tlscacert.is_some()
            || self.tlscert.is_some()
            || self.tlskey.is_some();
        if !any {
            return None;
        }
        let dir = std::env::var_os("DOCKER_CERT_PATH")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from(".docker"));
        Some(rbuild_api::TlsOptions {
            verify: self.tlsverify,
            ca: self.tlscacert.clone().unwrap_or_else(|| dir.join("ca.pem")),
            cert: self.tlscert.clone().unwrap_or_else(|| dir.join("cert.pem")),
            key: self.tlskey.clone().unwrap_or_else(|| dir.join("key.pem")),
        })
    }
}

/// Run `rbuild system`.
pub fn run(args: SystemArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        SystemCommand::Service(a) => service(a, globals),
        SystemCommand::Df(a) => df(a, globals),
        SystemCommand::Prune(a) => prune(a, globals),
    }
}

fn service(args: ServiceArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let address = match &args.uri {
        Some(u) => u.parse::<rbuild_api::Address>()?,
        None => rbuild_api::default_address(),
    };
    let tls = args
        .tls_options()
        .map(|o| rbuild_api::Tls::load(&o))
        .transpose()
        .context("loading the service's TLS files")?;
    let engine = super::common::engine(globals);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = rbuild_api::bind(&address, tls.as_ref())?;
        let opts = rbuild_api::ServeOptions {
            idle: (args.time > 0).then(|| Duration::from_secs(args.time)),
        };
        rbuild_api::serve(engine, listener, opts)
            .await
            .with_context(|| format!("serving on {address}"))
    })?;
    // Blocking work (a followed log, an events stream) may still hold a thread: don't wait.
    runtime.shutdown_background();
    Ok(ExitCode::SUCCESS)
}

fn reclaimable(part: u64, whole: u64) -> String {
    let pct = (part * 100).checked_div(whole).unwrap_or(0);
    format!("{} ({pct}%)", human_size(part))
}

fn df(args: DfArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let usage = super::common::engine(globals).disk_usage()?;
    let (img_total, img_unused) = usage.images_size();
    let (c_total, c_stopped) = usage.containers_size();
    let (v_total, v_unused) = usage.volumes_size();
    let img_active = usage.images.iter().filter(|i| i.containers > 0).count();
    let c_active = usage
        .containers
        .iter()
        .filter(|c| c.summary.state.status.is_active())
        .count();
    let v_active = usage.volumes.iter().filter(|v| v.links > 0).count();
    let mut out = std::io::stdout().lock();
    let rows = vec![
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
            .map(String::from)
            .to_vec(),
        vec![
            "Images".into(),
            usage.images.len().to_string(),
            img_active.to_string(),
            human_size(img_total),
            reclaimable(img_unused, img_total),
        ],
        vec![
            "Containers".into(),
            usage.containers.len().to_string(),
            c_active.to_string(),
            human_size(c_total),
            reclaimable(c_stopped, c_total),
        ],
        vec![
            "Local Volumes".into(),
            usage.volumes.len().to_string(),
            v_active.to_string(),
            human_size(v_total),
            reclaimable(v_unused, v_total),
        ],
        // No object is in use outside a running build, which `df` does not wait for.
        vec![
            "Build Cache".into(),
            usage.build_cache.objects.len().to_string(),
            "0".into(),
            human_size(usage.build_cache.size()),
            human_size(usage.build_cache.reclaimable()),
        ],
    ];
    write!(out, "{}", table(&rows))?;
    if args.verbose {
        let mut rows = vec![
            ["REPOSITORY", "TAG", "IMAGE ID", "SIZE", "CONTAINERS"]
                .map(String::from)
                .to_vec(),
        ];
        for i in &usage.images {
            let id = i.summary.image.id.to_string();
            let short = id.trim_start_matches("sha256:")[..12].to_owned();
            let names: Vec<(String, String)> = if i.summary.names.is_empty() {
                vec![("<none>".into(), "<none>".into())]
            } else {
                i.summary
                    .names
                    .iter()
                    .map(|n| {
                        (
                            n.familiar_repository(),
                            n.tag().unwrap_or("<none>").to_owned(),
                        )
                    })
                    .collect()
            };
            for (repo, tag) in names {
                rows.push(vec![
                    repo,
                    tag,
                    short.clone(),
                    human_size(i.summary.size),
                    i.containers.to_string(),
                ]);
            }
        }
        write!(out, "\nImages space usage:\n\n{}", table(&rows))?;
        let mut rows = vec![
            ["CONTAINER ID", "IMAGE", "SIZE", "STATUS", "NAMES"]
                .map(String::from)
                .to_vec(),
        ];
        for c in &usage.containers {
            let container = &c.summary.container;
            rows.push(vec![
                container.id()[..12].to_owned(),
                container.record.image.clone(),
                human_size(c.size),
                c.summary.state.status.as_str().to_owned(),
                container.name().to_owned(),
            ]);
        }
        write!(out, "\nContainers space usage:\n\n{}", table(&rows))?;
        let mut rows = vec![["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()];
        for v in &usage.volumes {
            rows.push(vec![
                v.volume.name.clone(),
                v.links.to_string(),
                human_size(v.size),
            ]);
        }
        write!(out, "\nLocal Volumes space usage:\n\n{}", table(&rows))?;
        let mut rows = vec![
            [
                "CACHE ID",
                "CACHE TYPE",
                "SIZE",
                "CREATED",
                "LAST USED",
                "USAGE",
                "SHARED",
            ]
            .map(String::from)
            .to_vec(),
        ];
        let secs = |ns: i64| ns / 1_000_000_000;
        for o in &usage.build_cache.objects {
            rows.push(vec![
                o.id.clone(),
                o.kind.as_str().to_owned(),
                human_size(o.size),
                since(secs(o.created)),
                since(secs(o.last_used)),
                o.usage_count.to_string(),
                o.shared.to_string(),
            ]);
        }
        write!(
            out,
            "\nBuild cache usage: {}\n\n{}",
            human_size(usage.build_cache.size()),
            table(&rows)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn prune(args: PruneArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    if !args.force {
        let mut what = vec![
            "  - all stopped containers",
            "  - all networks not used by at least one container",
        ];
        if args.volumes {
            what.push("  - all anonymous volumes not used by at least one container");
        }
        what.push(if args.all {
            "  - all images without at least one container associated to them"
        } else {
            "  - all dangling images"
        });
        what.push(if args.all {
            "  - all build cache"
        } else {
            "  - unused build cache"
        });
        let prompt = format!(
            "WARNING! This will remove:\n{}\n\nAre you sure you want to continue?",
            what.join("\n")
        );
        if !super::common::confirm(&prompt)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let pruned = super::common::engine(globals).system_prune(&rbuild_engine::SystemPrune {
        all_images: args.all,
        volumes: args.volumes,
    })?;
    let images: Vec<String> = pruned
        .images
        .iter()
        .map(|d| match d {
            rbuild_engine::ImageDeleted::Untagged(r) => format!("untagged: {}", r.familiar()),
            rbuild_engine::ImageDeleted::Deleted(d) => format!("deleted: {d}"),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    for (title, items) in [
        ("Deleted Containers:", &pruned.containers),
        ("Deleted Networks:", &pruned.networks),
        ("Deleted Volumes:", &pruned.volumes),
        ("Deleted Images:", &images),
        ("Deleted build cache objects:", &pruned.build_cache),
    ] {
        if !items.is_empty() {
            writeln!(out, "{title}")?;
            for i in items {
                writeln!(out, "{i}")?;
            }
            writeln!(out)?;
        }
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(pruned.reclaimed)
    )?;
    Ok(ExitCode::SUCCESS)
}
