//! `rbuild run`: run a command in a new container from an image, in the foreground, with
//! `docker run`'s options and exit status conventions (125 rbuild error, 126 not executable,
//! 127 not found, otherwise the command's status; 128+N when killed by signal N).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_runner::lifecycle::{
    Container, ContainerRecord, Containers, LogLimits, MountRecord, PortBinding, RestartPolicy,
    monitor, ports,
};
use rbuild_runner::{Network, Rootfs, RunOptions, Stdio};

use super::{Globals, mounts};
use crate::report::{ExitStatus, Hint};
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
    /// Network: none (own namespace, loopback only), host, or container:NAME (share that
    /// running container's network namespace)
    #[arg(long, default_value = "none", value_name = "MODE")]
    pub network: String,
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

/// Parse `64m`, `1g`, `512k`, `1048576`.
pub fn parse_size(s: &str) -> anyhow::Result<i64> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, mult) = match lower.strip_suffix('b').unwrap_or(&lower) {
        n if n.ends_with('k') => (&n[..n.len() - 1], 1i64 << 10),
        n if n.ends_with('m') => (&n[..n.len() - 1], 1 << 20),
        n if n.ends_with('g') => (&n[..n.len() - 1], 1 << 30),
        n => (n, 1),
    };
    let v: f64 = num.parse().with_context(|| {
        format!("invalid size {s:?}: expected a number with an optional b/k/m/g suffix")
    })?;
    if v <= 0.0 {
        bail!("invalid size {s:?}: must be positive");
    }
    Ok((v * mult as f64) as i64)
}

fn read_env_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading env file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(expand_env)
        .collect())
}

/// `KEY=VALUE` as is; a bare `KEY` takes this process's value, or is dropped if unset.
fn expand_env(kv: &str) -> Option<String> {
    if kv.contains('=') {
        Some(kv.to_owned())
    } else {
        std::env::var(kv).ok().map(|v| format!("{kv}={v}"))
    }
}

/// What the image contributes: its config's process defaults and its layers.
struct ImageParts {
    /// The image ID, empty for `--rootfs`.
    id: String,
    config: Option<oci_spec::image::Config>,
    rootfs: Rootfs,
    /// Layer directories to read `/etc/passwd` and `/etc/group` from.
    layers: Vec<PathBuf>,
}

fn image_parts(args: &RunArgs, root: &Path) -> anyhow::Result<ImageParts> {
    if let Some(dir) = &args.rootfs {
        if !dir.is_dir() {
            bail!("rootfs {} is not a directory", dir.display());
        }
        return Ok(ImageParts {
            id: String::new(),
            config: None,
            rootfs: Rootfs::Directory(dir.clone()),
            layers: vec![dir.clone()],
        });
    }
    let image = args.image.as_deref().unwrap_or_default();
    crate::image_layers::resolve(root, image).map(|img| ImageParts {
        id: img.id,
        config: img.config,
        rootfs: Rootfs::Layers(img.layers.clone()),
        layers: img.layers,
    })
}

fn security(args: &RunArgs, opts: &mut RunOptions) -> anyhow::Result<()> {
    let mut seccomp_file = None;
    let mut unconfined = false;
    for o in &args.security_opt {
        match o.split_once(['=', ':']) {
            Some(("seccomp", "unconfined")) => unconfined = true,
            Some(("seccomp", file)) => seccomp_file = Some(PathBuf::from(file)),
            None if o == "no-new-privileges" => opts.no_new_privileges = true,
            Some(("no-new-privileges", v)) => opts.no_new_privileges = v != "false",
            _ => bail!(
                "unsupported --security-opt {o:?} (seccomp=unconfined|FILE.json, no-new-privileges)"
            ),
        }
    }
    if args.privileged || unconfined {
        return Ok(());
    }
    // The profile's capability conditions use the container's final capability set.
    let probe = rbuild_runner::docker_spec(opts)?;
    let caps = probe
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .unwrap_or_default();
    opts.seccomp = Some(match seccomp_file {
        Some(f) => {
            let json = std::fs::read_to_string(&f)
                .with_context(|| format!("reading seccomp profile {}", f.display()))?;
            rbuild_runner::seccomp::profile(&json, &caps)
                .with_context(|| format!("seccomp profile {}", f.display()))?
        }
        None => rbuild_runner::seccomp::docker_default(&caps)?,
    });
    Ok(())
}

/// Run `rbuild run`.
pub fn run(args: RunArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let root = super::common::store_root(globals);
    let (container, memory) = create(&args, &root).map_err(fail)?;
    if args.detach {
        super::start::start_detached(&container, &root)?;
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
    foreground(&args, &container, memory)
}

/// Run the container in the foreground, this process being its monitor.
fn foreground(args: &RunArgs, c: &Container, memory: Option<i64>) -> anyhow::Result<ExitCode> {
    let monitor = c
        .claim_monitor()
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| fail(anyhow::anyhow!("container {} is already running", c.id())))?;
    let published = match monitor::publish(c) {
        Ok(p) => p,
        Err(e) => {
            let _ = monitor::record_start_failure(c, &e);
            if c.record.auto_remove {
                let _ = c.remove();
            }
            return Err(fail(e.into()));
        }
    };
    let forwarding = signals::catch();
    let start = |stdio: Stdio| -> Result<rbuild_runner::Running, rbuild_runner::Error> {
        let lock = c.lock()?;
        let running = match rbuild_runner::spawn(monitor::container_config(c, stdio)?) {
            Ok(r) => r,
            Err(e) => {
                drop(lock);
                let _ = monitor::record_start_failure(c, &e);
                return Err(e);
            }
        };
        monitor::record_start(c, &lock, &running, &published.bound)?;
        published.target.set(running.pid());
        forwarding.target(running.pid());
        Ok(running)
    };
    let ran = if args.tty {
        terminal::run_with_pty(start, args.interactive)
    } else {
        let stdin = if args.interactive {
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
    let outcome = ran.and_then(|running| {
        running.wait_exit_ready()?;
        monitor::record_exit(c, running).map(|(_, o)| o)
    });
    drop(forwarding);
    drop(published);
    drop(monitor);
    if c.record.auto_remove {
        c.remove()
            .and_then(|()| c.remove_anonymous_volumes())
            .with_context(|| format!("removing container {}", c.id()))
            .map_err(fail)?;
    }
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

/// Create the container `args` describe (`rbuild create`, and the first half of `run`):
/// its record and spec under the root; returns it and its memory limit.
pub fn create(args: &RunArgs, root: &Path) -> anyhow::Result<(Container, Option<i64>)> {
    let (record, spec, memory) = prepare(args, root)?;
    let containers = Containers::new(root);
    if matches!(record.rootfs, Rootfs::Layers(_)) && !rbuild_runner::overlay_supported() {
        eprintln!(
            "rbuild: note: overlayfs is not available here; copying the image's layers into {}",
            containers.dir().join(&record.id).display()
        );
    }
    let c = containers.create(record, &spec)?;
    Ok((c, memory))
}

/// The published ports: `-p` specs, and with `-P` every EXPOSEd port on a free host port.
fn publish(args: &RunArgs, exposed: &[String]) -> anyhow::Result<Vec<PortBinding>> {
    let mut out = Vec::new();
    for p in &args.publish {
        out.push(ports::parse_publish(p).map_err(|e| anyhow::anyhow!(e))?);
    }
    if args.publish_all {
        for e in exposed {
            let b = ports::parse_publish(e).map_err(|e| anyhow::anyhow!(e))?;
            if !out
                .iter()
                .any(|o| o.container_port == b.container_port && o.protocol == b.protocol)
            {
                out.push(b);
            }
        }
    }
    if !out.is_empty() && args.network == "host" {
        eprintln!("WARNING: Published ports are discarded when using host network mode");
        out.clear();
    }
    Ok(out)
}

/// `max-size=10m`, `max-file=3`.
fn log_limits(opts: &[String]) -> anyhow::Result<LogLimits> {
    let mut l = LogLimits::default();
    for o in opts {
        match o.split_once('=') {
            Some(("max-size", v)) => {
                l.max_size = parse_size(v).context("--log-opt max-size")? as u64
            }
            Some(("max-file", v)) => {
                l.max_files = v.parse().ok().filter(|n| *n > 0).with_context(|| {
                    format!("invalid --log-opt max-file={v}: expected a positive number")
                })?;
            }
            _ => bail!("unsupported --log-opt {o:?} (max-size=SIZE, max-file=N)"),
        }
    }
    Ok(l)
}

fn prepare(
    args: &RunArgs,
    root: &Path,
) -> anyhow::Result<(ContainerRecord, oci_spec::runtime::Spec, Option<i64>)> {
    let parts = image_parts(args, root)?;
    let cfg = parts.config.clone().unwrap_or_default();
    let none: Vec<String> = Vec::new();
    // With --rootfs there is no image: what clap took for it is the command.
    let command: Vec<String> = match (&args.rootfs, &args.image) {
        (Some(_), Some(first)) => std::iter::once(first.clone())
            .chain(args.command.iter().cloned())
            .collect(),
        _ => args.command.clone(),
    };
    let args_cmd = rbuild_runner::image::command(
        cfg.entrypoint().as_ref().unwrap_or(&none),
        cfg.cmd().as_ref().unwrap_or(&none),
        args.entrypoint.as_deref(),
        &command,
    );
    if args_cmd.is_empty() {
        return Err(anyhow::anyhow!("no command specified").context(Hint(
            "give a command after the image, or use an image with ENTRYPOINT or CMD".into(),
        )));
    }
    let mut overrides = Vec::new();
    for f in &args.env_file {
        overrides.extend(read_env_file(f)?);
    }
    overrides.extend(args.env.iter().filter_map(|e| expand_env(e)));
    let env = rbuild_runner::image::merge_env(cfg.env().as_ref().unwrap_or(&none), &overrides);
    let user_spec = args
        .user
        .clone()
        .or_else(|| cfg.user().clone())
        .unwrap_or_default();
    let passwd = rbuild_runner::image::read_file(&parts.layers, "/etc/passwd");
    let group = rbuild_runner::image::read_file(&parts.layers, "/etc/group");
    let user = rbuild_runner::resolve_user(&user_spec, passwd.as_deref(), group.as_deref())?;
    let id = rbuild_runner::lifecycle::new_id();
    let network = match args.network.as_str() {
        "none" | "host" => args.network.clone(),
        n => match n.strip_prefix("container:") {
            Some(other) => {
                if !args.publish.is_empty() || args.publish_all {
                    bail!(
                        "conflicting options: port publishing and the container type network mode"
                    );
                }
                let target = Containers::new(root).get(other)?;
                format!("container:{}", target.id())
            }
            None => bail!(
                "invalid --network {n:?}: rbuild has none, host and container:NAME (no bridge networks)"
            ),
        },
    };
    let restart: RestartPolicy = args
        .restart
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    if args.rm && restart != RestartPolicy::No {
        bail!("conflicting options: cannot specify both --restart and --rm");
    }
    let memory = args
        .memory
        .as_deref()
        .map(parse_size)
        .transpose()
        .context("--memory")?;
    let sources = mounts::Sources {
        root,
        layers: if args.rootfs.is_some() {
            &[]
        } else {
            &parts.layers
        },
    };
    let mut planned = Vec::new();
    for v in &args.volumes_from {
        planned.extend(mounts::volumes_from(root, v)?);
    }
    for v in &args.volume {
        planned.push(mounts::parse_volume(&sources, v)?);
    }
    for m in &args.mount {
        planned.push(mounts::parse_mount(&sources, m)?);
    }
    for t in &args.tmpfs {
        planned.push(mounts::parse_tmpfs(t)?);
    }
    let image_volumes: Vec<String> = cfg.volumes().clone().unwrap_or_default();
    let anonymous = mounts::image_volumes(&sources, &image_volumes, &planned)?;
    planned.extend(anonymous);
    let mounts: Vec<_> = planned.iter().map(|(m, _)| m.clone()).collect();
    let mut opts = RunOptions {
        args: args_cmd,
        env,
        cwd: args
            .workdir
            .clone()
            .or_else(|| cfg.working_dir().clone())
            .unwrap_or_default(),
        user: Some(user),
        hostname: args.hostname.clone().unwrap_or_else(|| id[..12].to_owned()),
        network: if args.network == "host" {
            Network::Host
        } else {
            Network::None
        },
        terminal: args.tty,
        readonly_root: args.read_only,
        mounts,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        privileged: args.privileged,
        memory,
        cpus: args.cpus,
        pids_limit: args.pids_limit,
        ..Default::default()
    };
    if let Some(c) = args.cpus
        && c <= 0.0
    {
        bail!("invalid --cpus {c}: must be positive");
    }
    security(args, &mut opts)?;
    let spec = rbuild_runner::docker_spec(&opts)?;
    let mount_records: Vec<MountRecord> = planned.into_iter().map(|(_, r)| r).collect();
    let stop_signal = args
        .stop_signal
        .clone()
        .or_else(|| cfg.stop_signal().clone())
        .unwrap_or_else(|| "SIGTERM".into());
    crate::commands::containers::parse_signal(&stop_signal)?;
    let record = ContainerRecord {
        id: id.clone(),
        name: args.name.clone().unwrap_or_default(),
        created: rbuild_runner::lifecycle::time::now_ns(),
        image: args
            .image
            .clone()
            .filter(|_| args.rootfs.is_none())
            .unwrap_or_default(),
        image_id: parts.id.clone(),
        rootfs: parts.rootfs,
        command: opts.args.clone(),
        entrypoint: match &args.entrypoint {
            Some(e) if e.is_empty() => vec![],
            Some(e) => vec![e.clone()],
            None => cfg.entrypoint().clone().unwrap_or_default(),
        },
        cmd: if command.is_empty() {
            cfg.cmd().clone().unwrap_or_default()
        } else {
            command.clone()
        },
        env: spec
            .process()
            .as_ref()
            .and_then(|p| p.env().clone())
            .unwrap_or_default(),
        working_dir: opts.cwd.clone(),
        user: user_spec.clone(),
        hostname: opts.hostname.clone(),
        labels: cfg
            .labels()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        init: args.init,
        tty: args.tty,
        interactive: args.interactive,
        stdin_once: args.interactive && !args.detach,
        restart,
        auto_remove: args.rm,
        stop_signal,
        stop_timeout: args.stop_timeout,
        ports: publish(args, cfg.exposed_ports().as_deref().unwrap_or_default())?,
        exposed_ports: cfg.exposed_ports().clone().unwrap_or_default(),
        mounts: mount_records,
        network,
        log: log_limits(&args.log_opt)?,
    };
    Ok((record, spec, memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_docker_suffixes() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("100b").unwrap(), 100);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").unwrap_err().to_string().contains("lots"));
        assert!(parse_size("-1m").is_err());
    }
}
