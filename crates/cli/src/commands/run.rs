//! `rbuild run`: run a command in a new container from an image, in the foreground, with
//! `docker run`'s options and exit status conventions (125 rbuild error, 126 not executable,
//! 127 not found, otherwise the command's status; 128+N when killed by signal N).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_runner::{ContainerConfig, Network, Rootfs, RunOptions, Stdio, spec};

use super::Globals;
use crate::report::{ExitStatus, Hint};
use crate::{signals, terminal};

/// Arguments of `rbuild run`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (`-h` is --hostname, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Remove the container's directory when it exits
    #[arg(long)]
    pub rm: bool,
    /// Name of the container (its directory under the root's containers/)
    #[arg(long)]
    pub name: Option<String>,
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
    /// Bind-mount a host path (HOST:CONTAINER[:ro])
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    pub volume: Vec<String>,
    /// Mount a tmpfs at PATH
    #[arg(long, value_name = "PATH")]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Network: none (own namespace, loopback only) or host
    #[arg(long, default_value = "none", value_parser = ["none", "host"])]
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

fn parse_volume(v: &str) -> anyhow::Result<oci_spec::runtime::Mount> {
    let parts: Vec<&str> = v.split(':').collect();
    let (host, ctr, ro) = match parts.as_slice() {
        [h, c] => (*h, *c, false),
        [h, c, "ro"] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, false),
        _ => bail!("invalid volume {v:?}: expected HOST:CONTAINER[:ro]"),
    };
    if !host.starts_with('/') {
        bail!(
            "invalid volume {v:?}: the host path must be absolute (named volumes are not supported)"
        );
    }
    if !ctr.starts_with('/') {
        bail!("invalid volume {v:?}: the container path must be absolute");
    }
    if !Path::new(host).exists() {
        bail!("invalid volume {v:?}: bind mount source {host} does not exist");
    }
    Ok(spec::bind_mount(host, ctr, ro))
}

fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/rbuild");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
        });
    data.join("rbuild")
}

/// What the image contributes: its config's process defaults and its layers.
struct ImageParts {
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
            config: None,
            rootfs: Rootfs::Directory(dir.clone()),
            layers: vec![dir.clone()],
        });
    }
    let image = args.image.as_deref().unwrap_or_default();
    crate::images::resolve(root, image).map(|(config, layers)| ImageParts {
        config,
        rootfs: Rootfs::Layers(layers.clone()),
        layers,
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
    let root = globals.root.clone().unwrap_or_else(default_root);
    let prepared = prepare(&args, &root).map_err(fail)?;
    let (config, opts_memory) = prepared;
    let tty = args.tty;
    let outcome = if tty {
        terminal::run_with_pty(config)
    } else {
        let running = rbuild_runner::spawn(config);
        match running {
            Ok(r) => {
                let _guard = signals::forward_to(r.pid());
                r.wait()
            }
            Err(e) => Err(e),
        }
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let code = match &e {
                rbuild_runner::Error::CommandNotFound { .. } => 127,
                rbuild_runner::Error::NotExecutable { .. } => 126,
                _ => 125,
            };
            return Err(anyhow::Error::new(e).context(ExitStatus(code)));
        }
    };
    if outcome.oom_killed {
        let limit = opts_memory
            .map(|m| format!(" of {m} bytes"))
            .unwrap_or_default();
        eprintln!(
            "rbuild: the container ran out of memory: the memory limit{limit} was reached and the kernel killed it"
        );
        return Ok(ExitCode::from(137));
    }
    Ok(ExitCode::from(outcome.status.code().clamp(0, 255) as u8))
}

fn prepare(args: &RunArgs, root: &Path) -> anyhow::Result<(ContainerConfig, Option<i64>)> {
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
    let id = random_id();
    let name = args.name.clone().unwrap_or_else(|| id[..12].to_owned());
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("invalid container name {name:?}");
    }
    let dir = root.join("containers").join(&name);
    if dir.exists() {
        return Err(anyhow::anyhow!(
            "the container name {name:?} is already in use ({})",
            dir.display()
        )
        .context(Hint(
            "remove that directory, or choose another --name".into(),
        )));
    }
    let memory = args
        .memory
        .as_deref()
        .map(parse_size)
        .transpose()
        .context("--memory")?;
    let mut mounts = Vec::new();
    for v in &args.volume {
        mounts.push(parse_volume(v)?);
    }
    for t in &args.tmpfs {
        if !t.starts_with('/') {
            bail!("invalid --tmpfs {t:?}: the path must be absolute");
        }
        mounts.push(spec::tmpfs_mount(t));
    }
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
    std::fs::create_dir_all(root.join("containers"))
        .with_context(|| format!("creating {}", root.join("containers").display()))?;
    let stdin = if args.interactive || args.tty {
        None
    } else {
        Some(OwnedFd::from(
            File::open("/dev/null").context("opening /dev/null")?,
        ))
    };
    if matches!(parts.rootfs, Rootfs::Layers(_)) && !rbuild_runner::overlay_supported() {
        eprintln!(
            "rbuild: note: overlayfs is not available here; copying the image's layers into {}",
            dir.display()
        );
    }
    let config = ContainerConfig {
        id,
        dir,
        spec,
        rootfs: parts.rootfs,
        init: args.init,
        stdio: Stdio {
            stdin,
            ..Default::default()
        },
        remove: args.rm,
    };
    Ok((config, memory))
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

    #[test]
    fn volumes_need_absolute_existing_paths() {
        assert!(parse_volume("/tmp:/data:ro").is_ok());
        let e = parse_volume("named:/data").unwrap_err().to_string();
        assert!(e.contains("absolute"), "{e}");
        let e = parse_volume("/no/such/dir:/data").unwrap_err().to_string();
        assert!(e.contains("/no/such/dir"), "{e}");
        assert!(parse_volume("/tmp:/data:rx").is_err());
    }
}
