//! Options shared by the commands that talk to registries, and the client they build:
//! credentials from docker's config.json, insecure hosts from flags, `RBUILD_INSECURE_REGISTRIES`
//! and `/etc/rbuild/registries.json`, extra CA certificates, concurrency.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rbuild_engine::RegistrySettings;
use rbuild_registry::Client;

/// Registry connection options.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Allow plain HTTP to this registry (host[:port]); repeatable. Loopback is always allowed
    #[arg(
        long = "insecure-registry",
        value_name = "HOST",
        env = "RBUILD_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// Trust the *.crt CA certificates in DIR (besides /etc/rbuild/certs.d/HOST/)
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Credentials file [default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json]
    #[arg(long, value_name = "FILE", env = "RBUILD_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// How many blobs to transfer at once
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_concurrent: usize,
}

/// Only the registry options, for parsing them from the environment alone.
#[derive(Debug, clap::Parser)]
#[command(name = "rbuild")]
struct EnvOnly {
    #[command(flatten)]
    registry: RegistryArgs,
}

impl RegistryArgs {
    /// The options a registry command has when given no flags: what the environment
    /// (`RBUILD_INSECURE_REGISTRIES`, `RBUILD_AUTH_FILE`) and the defaults say. Parsed by the
    /// same clap definition, so a transfer the user did not start with flags (a build's `FROM`
    /// or `--push`, `run`'s pull of a missing image) behaves exactly as a flagless
    /// `rbuild pull`/`rbuild push`.
    pub fn from_env() -> anyhow::Result<RegistryArgs> {
        use clap::Parser;
        EnvOnly::try_parse_from(["rbuild"])
            .map(|e| e.registry)
            .context("reading registry settings from the environment")
    }

    /// The engine's registry settings these options give.
    pub fn settings(&self) -> RegistrySettings {
        RegistrySettings {
            insecure_registries: self.insecure_registries.clone(),
            cert_dir: self.cert_dir.clone(),
            authfile: self.authfile.clone(),
            max_concurrent: self.max_concurrent,
        }
    }

    /// A registry client with these options and the system-wide insecure hosts.
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(self.settings().client()?)
    }
}

/// A runtime for one command's transfers.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Run a transfer to its end, or until SIGINT/SIGTERM: then the transfer is dropped (its
/// unfinished blobs are discarded, nothing half-written stays) and the command exits 130.
pub fn run_interruptible<T>(
    rt: &tokio::runtime::Runtime,
    transfer: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("watching SIGTERM")?;
        tokio::select! {
            r = transfer => r,
            _ = tokio::signal::ctrl_c() => Err(interrupted()),
            _ = term.recv() => Err(interrupted()),
        }
    })
}

fn interrupted() -> anyhow::Error {
    anyhow::anyhow!("interrupted; the unfinished transfer was discarded")
        .context(crate::report::ExitStatus(130))
}
