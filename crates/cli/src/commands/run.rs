//! `rbuild run`: run a command in a new container from an image, in the foreground, with
//! `docker run`'s options and exit status conventions (125 rbuild error, 126 not executable,
//! 127 not found, otherwise the command's status; 128+N when killed by signal N).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_engine::{CreateOptions, Warning, options};
use rbuild_oci::Platform;
use rbuild_runner::Stdio;
use rbuild_runner::lifecycle::health::HealthConfig;
use rbuild_runner::lifecycle::{Container, RestartPolicy, monitor};

use super::Globals;
use crate::report::ExitStatus;
use crate::{signals, terminal};

/// Arguments of `rbuild run`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (`-h` is --hostname, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Run the container in the background and print its ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// The platform's image of a multi-platform image (os/arch[/variant]); a foreign one runs
    /// under qemu-user-static
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Pull the image first: always, missing (only when the store lacks it) or never
    #[arg(long, value_name = "POLICY", default_value = "missing",
          value_parser = ["always", "missing", "never"])]
    pub pull: String,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Restart policy: no, on-failure[:max-retries], always, unless-stopped
    #[arg(long, default_value = "no", value_name = "POLICY")]
    pub restart: String,
    /// Signal to stop the container [default: the image's STOPSIGNAL, else SIGTERM]
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds to wait for the stop signal before SIGKILL [default: 10]
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    pub stop_timeout: Option<u32>,
    /// Publish a container port on the host: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp]
    /// (host IP 127.0.0.1 unless given; forwarded by rbuild into the container's loopback)
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Publish every port the image EXPOSEs on a free host port
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Set a label on the container: KEY=VALUE (or KEY, for an empty value)
    #[arg(short = 'l', long = "label", value_name = "LABEL")]
    pub label: Vec<String>,
    /// Expose a port or a range of ports: PORT[-PORT][/PROTO]
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// Log options: max-size=SIZE, max-file=N
    #[arg(long = "log-opt", value_name = "OPT")]
    pub log_opt: Vec<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from this environment)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines, # comments)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container (created if missing)
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User and optional group, by name or number (USER[:GROUP])
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Override the image's ENTRYPOINT ("" clears it)
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Host name of the container [default: the first 12 characters of its ID]
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Bind-mount a host path or mount a volume ([HOST_PATH|NAME:]CONTAINER_PATH[:ro]; a bare
    /// path is an anonymous volume)
    #[arg(short = 'v', long = "volume", value_name = "[SRC:]DST[:ro]")]
    pub volume: Vec<String>,
    /// Attach a mount: type=bind|volume|tmpfs,source=…,target=…[,readonly]
    #[arg(long, value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Mount the volumes and binds of another container (CONTAINER[:ro|rw])
    #[arg(long = "volumes-from", value_name = "CONTAINER")]
    pub volumes_from: Vec<String>,
    /// Mount a tmpfs at PATH (PATH[:size=64m,mode=1777])
    #[arg(long, value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Network: bridge (the default), a user-defined network, none (own namespace, loopback
    /// only), host, or container:NAME (share that running container's network namespace)
    #[arg(
        long = "network",
        visible_alias = "net",
        default_value = "bridge",
        value_name = "NETWORK"
    )]
    pub network: String,
    /// More names for the container on a user-defined network
    #[arg(
        long = "network-alias",
        visible_alias = "net-alias",
        value_name = "NAME"
    )]
    pub network_alias: Vec<String>,
    /// IPv4 address on the network (networks with a user-configured subnet)
    #[arg(long, value_name = "IP")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// MAC address on the network (02:42:ac:11:00:02)
    #[arg(long = "mac-address", value_name = "MAC")]
    pub mac_address: Option<String>,
    /// DNS server for /etc/resolv.conf
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// DNS search domain
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// DNS resolver option
    #[arg(long = "dns-option", visible_alias = "dns-opt", value_name = "OPT")]
    pub dns_option: Vec<String>,
    /// Add a line to /etc/hosts (NAME:IP; IP may be host-gateway)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Memory limit (bytes, or with a b/k/m/g suffix)
    #[arg(short = 'm', long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit in CPUs (0.5 = half a CPU)
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Maximum number of processes
    #[arg(long = "pids-limit", value_name = "N")]
    pub pids_limit: Option<i64>,
    /// Keep standard input open (otherwise the container reads /dev/null)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal for the container
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run a minimal init as PID 1 that forwards signals and reaps zombies
    #[arg(long)]
    pub init: bool,
    /// Command to run to check health (run with /bin/sh -c in the container)
    #[arg(long = "health-cmd", value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) [default: 30s]
    #[arg(long = "health-interval", value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) [default: 30s]
    #[arg(long = "health-timeout", value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy [default: 3]
    #[arg(long = "health-retries", value_name = "N")]
    pub health_retries: Option<u32>,
    /// Start period for the container to initialize before failures count (ms|s|m|h)
    #[arg(long = "health-start-period", value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Time between probes during the start period (ms|s|m|h)
    #[arg(long = "health-start-interval", value_name = "DURATION")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Add a capability (CAP_X or X; ALL for all)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (CAP_X or X; ALL for all)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Give the container all capabilities, no masked paths and no seccomp filter
    #[arg(long)]
    pub privileged: bool,
    /// Security options: seccomp=unconfined, seccomp=FILE.json, no-new-privileges
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Use this directory as the root filesystem instead of an image (changes land in it;
    /// the first argument is then the command)
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// The image to run (name, name:tag, name@digest or image ID)
    #[arg(required_unless_present = "rootfs")]
    pub image: Option<String>,
    /// The command and its arguments (replacing the image's CMD)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// An rbuild-side failure: docker's status 125.
fn fail(e: anyhow::Error) -> anyhow::Error {
    e.context(ExitStatus(125))
}

/// Run `rbuild run`.
pub fn run(args: RunArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let (container, memory) = create(&args, globals).map_err(fail)?;
    if args.detach {
        super::common::engine(globals).start(&container)?;
        println!("{}", container.id());
        return Ok(ExitCode::SUCCESS);
    }
    if container.record.restart != RestartPolicy::No {
        let _ = container.remove();
        return Err(fail(anyhow::anyhow!(
            "--restart {} needs a detached container (-d): rbuild has no daemon to restart a foreground one",
            args.restart
        )));
    }
    foreground(args.tty, args.interactive, globals, &container, memory)
}

/// Run the container in the foreground, this process being its monitor (through the
/// engine's [`rbuild_engine::Foreground`]); the terminal, standard input and signals are ours.
pub(crate) fn foreground(
    tty: bool,
    interactive: bool,
    globals: &Globals,
    c: &Container,
    memory: Option<i64>,
) -> anyhow::Result<ExitCode> {
    let fg = super::common::engine(globals)
        .foreground(c)
        .map_err(|e| fail(e.into()))?;
    let forwarding = signals::catch();
    let start = |stdio: Stdio| -> Result<rbuild_runner::Running, rbuild_runner::Error> {
        let running = fg.spawn(stdio)?;
        forwarding.target(running.pid());
        Ok(running)
    };
    let ran = if tty {
        terminal::run_with_pty(start, interactive)
    } else {
        let stdin = if interactive {
            None
        } else {
            match File::open("/dev/null") {
                Ok(f) => Some(OwnedFd::from(f)),
                Err(e) => return Err(fail(anyhow::Error::new(e).context("opening /dev/null"))),
            }
        };
        start(Stdio {
            stdin,
            ..Default::default()
        })
    };
    let outcome = fg.wait(ran);
    drop(forwarding);
    fg.finish().map_err(|e| fail(e.into()))?;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let code = monitor::start_failure_code(&e) as u8;
            return Err(anyhow::Error::new(e).context(ExitStatus(code)));
        }
    };
    if outcome.oom_killed {
        let limit = memory.map(|m| format!(" of {m} bytes")).unwrap_or_default();
        eprintln!(
            "rbuild: the container ran out of memory: the memory limit{limit} was reached and the kernel killed it"
        );
        return Ok(ExitCode::from(137));
    }
    if outcome.status == rbuild_runner::ExitStatus::Signaled(9) {
        eprintln!("rbuild: the container was killed (SIGKILL)");
    }
    Ok(ExitCode::from(outcome.status.code().clamp(0, 255) as u8))
}

/// The engine's options for the container `args` describe: the text forms parsed, env files
/// read and bare `KEY`s taken from this environment.
fn options(args: &RunArgs) -> anyhow::Result<CreateOptions> {
    // With --rootfs there is no image: what clap took for it is the command.
    let cmd: Vec<String> = match (&args.rootfs, &args.image) {
        (Some(_), Some(first)) => std::iter::once(first.clone())
            .chain(args.command.iter().cloned())
            .collect(),
        _ => args.command.clone(),
    };
    let mut env = Vec::new();
    for f in &args.env_file {
        env.extend(options::read_env_file(f)?);
    }
    env.extend(args.env.iter().filter_map(|e| options::expand_env(e)));
    let ports = args
        .publish
        .iter()
        .map(|p| options::parse_publish(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CreateOptions {
        name: args.name.clone(),
        image: args.image.clone().filter(|_| args.rootfs.is_none()),
        rootfs: args.rootfs.clone(),
        cmd,
        entrypoint: args.entrypoint.clone(),
        env,
        labels: args
            .label
            .iter()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        hostname: args.hostname.clone(),
        restart: options::parse_restart(&args.restart)?,
        auto_remove: args.rm,
        stop_signal: args.stop_signal.clone(),
        stop_timeout: args.stop_timeout,
        ports,
        publish_all: args.publish_all,
        expose: args.expose.clone(),
        log: options::parse_log_opts(&args.log_opt)?,
        volumes: args.volume.clone(),
        mounts: args.mount.clone(),
        volumes_from: args.volumes_from.clone(),
        tmpfs: args.tmpfs.clone(),
        read_only: args.read_only,
        network: args.network.clone(),
        network_aliases: args.network_alias.clone(),
        ip: args.ip,
        mac_address: args.mac_address.clone(),
        dns: args.dns.clone(),
        dns_search: args.dns_search.clone(),
        dns_options: args.dns_option.clone(),
        extra_hosts: args.add_host.clone(),
        memory: args
            .memory
            .as_deref()
            .map(options::parse_size)
            .transpose()
            .context("--memory")?,
        cpus: args.cpus,
        pids_limit: args.pids_limit,
        interactive: args.interactive,
        stdin_once: args.interactive && !args.detach,
        tty: args.tty,
        init: args.init,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        privileged: args.privileged,
        security_opt: args.security_opt.clone(),
        platform: args
            .platform
            .as_deref()
            .map(Platform::parse_normalized)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--platform: {e}"))?,
        healthcheck: healthcheck(args)?,
    })
}

/// `--pull`: pull `image` (for `platform`, else this machine's) when the policy says so, as
/// `docker run` does: `missing` when the store has no such image (or not that platform's
/// image of a multi-platform one), saying `Unable to find image 'REF' locally` first; the
/// pull's progress goes to stderr. Registry settings come from the environment, as for a
/// build's `FROM`. An image ID that is not found is left for the create to report.
fn pull_if_needed(
    args: &RunArgs,
    globals: &Globals,
    image: &str,
    platform: Option<&Platform>,
) -> anyhow::Result<()> {
    use rbuild_store::StoreError;
    if args.pull == "never" {
        return Ok(());
    }
    let store = super::common::open_store(globals)?;
    let found = match platform {
        Some(p) => store.resolve_platform(image, p),
        None => store.resolve(image),
    };
    let missing = match &found {
        Err(StoreError::ImageNotFound(_)) => true,
        Err(e @ StoreError::NoPlatform { .. }) => e.to_string().contains("(not pulled)"),
        _ => false,
    };
    if !missing && args.pull != "always" {
        return Ok(());
    }
    let is_id = image.len() == 64 && image.bytes().all(|b| b.is_ascii_hexdigit());
    let Ok(reference) = image.parse::<rbuild_oci::Reference>() else {
        return Ok(());
    };
    if is_id {
        return Ok(());
    }
    if missing {
        eprintln!("Unable to find image '{}' locally", reference.familiar());
    }
    let registry = super::registry_opts::RegistryArgs::from_env()?;
    let platform = platform.cloned().unwrap_or_else(Platform::host);
    crate::transfer::pull_image_blocking(&registry, &store, &reference, &platform, false)?;
    Ok(())
}

/// docker's `--health-*` and `--no-healthcheck` as a healthcheck over the image's.
fn healthcheck(args: &RunArgs) -> anyhow::Result<Option<HealthConfig>> {
    let duration = |flag: &str, v: &Option<String>| -> anyhow::Result<i64> {
        match v {
            None => Ok(0),
            Some(s) => {
                let d = rbuild_parser::instructions::parse_go_duration(s).map_err(|e| {
                    anyhow::anyhow!("invalid argument {s:?} for \"--{flag}\" flag: {e}")
                })?;
                Ok(d.as_nanos() as i64)
            }
        }
    };
    let config = HealthConfig {
        test: args
            .health_cmd
            .as_ref()
            .map(|c| vec!["CMD-SHELL".to_owned(), c.clone()])
            .unwrap_or_default(),
        interval: duration("health-interval", &args.health_interval)?,
        timeout: duration("health-timeout", &args.health_timeout)?,
        start_period: duration("health-start-period", &args.health_start_period)?,
        retries: args.health_retries.unwrap_or(0),
        start_interval: duration("health-start-interval", &args.health_start_interval)?,
    };
    if args.no_healthcheck {
        if config != HealthConfig::default() {
            anyhow::bail!("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(Some(HealthConfig {
            test: vec!["NONE".into()],
            ..HealthConfig::default()
        }));
    }
    Ok((config != HealthConfig::default()).then_some(config))
}

/// Create the container `args` describe (`rbuild create`, and the first half of `run`)
/// through the engine, printing its warnings; returns it and its memory limit.
pub fn create(args: &RunArgs, globals: &Globals) -> anyhow::Result<(Container, Option<i64>)> {
    let opts = options(args)?;
    if let (Some(image), None) = (&args.image, &args.rootfs) {
        pull_if_needed(args, globals, image, opts.platform.as_ref())?;
    }
    let created = super::common::engine(globals).create_container(&opts)?;
    for w in &created.warnings {
        match w {
            Warning::PortsDiscardedOnHostNetwork => eprintln!("WARNING: {w}"),
            Warning::CopyingLayers(_) => eprintln!("rbuild: note: {w}"),
        }
    }
    Ok((created.container, opts.memory))
}
