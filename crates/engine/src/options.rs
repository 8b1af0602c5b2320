//! [`CreateOptions`]: what `docker run`/`docker create` say about a new container, typed, and
//! the parsers front ends share for the forms users write (`64m`, `SIGTERM`,
//! `max-size=10m`, env files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rbuild_runner::lifecycle::{LogLimits, PortBinding, RestartPolicy};

use crate::error::{EngineError, OptionExt, Result, ResultExt};

/// A new container, as `docker run`'s options describe it.
///
/// Values a user writes as text and docker's API receives typed (restart policy, published
/// ports, log limits, memory) are typed here; the front end parses them (with the helpers of
/// this module). Mount specs keep docker's text forms, as docker's API `Binds` does.
/// Environment variables arrive resolved (`KEY=VALUE`): env files and bare `KEY`s name the
/// front end's files and environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateOptions {
    /// The container's name [default: none, found by ID].
    pub name: Option<String>,
    /// The image (name, name:tag, name@digest, ID); `None` with [`CreateOptions::rootfs`].
    pub image: Option<String>,
    /// A directory to use as the root filesystem instead of an image (changes land in it).
    pub rootfs: Option<PathBuf>,
    /// The command and its arguments, replacing the image's CMD (empty: the image's).
    pub cmd: Vec<String>,
    /// Docker's `--entrypoint`: replaces the image's ENTRYPOINT; `""` clears it.
    pub entrypoint: Option<String>,
    /// Environment variables (`KEY=VALUE`) over the image's.
    pub env: Vec<String>,
    /// Labels over the image's.
    pub labels: BTreeMap<String, String>,
    /// Working directory [default: the image's WORKDIR].
    pub workdir: Option<String>,
    /// `USER[:GROUP]` by name or number [default: the image's USER].
    pub user: Option<String>,
    /// Host name [default: the first 12 characters of the ID].
    pub hostname: Option<String>,
    /// Restart policy (detached containers only).
    pub restart: RestartPolicy,
    /// Remove the container when it exits (`--rm`).
    pub auto_remove: bool,
    /// Stop signal [default: the image's STOPSIGNAL, else SIGTERM].
    pub stop_signal: Option<String>,
    /// Seconds between the stop signal and SIGKILL [default: 10].
    pub stop_timeout: Option<u32>,
    /// Published ports (`-p`).
    pub ports: Vec<PortBinding>,
    /// Publish every port the image EXPOSEs on a free host port (`-P`).
    pub publish_all: bool,
    /// Ports exposed besides the image's (`--expose PORT[-PORT][/PROTO]`, the API's
    /// `ExposedPorts`).
    pub expose: Vec<String>,
    /// Limits of the json-file log.
    pub log: LogLimits,
    /// `-v [HOST_PATH|NAME:]CONTAINER_PATH[:ro]`.
    pub volumes: Vec<String>,
    /// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]`.
    pub mounts: Vec<String>,
    /// `--volumes-from CONTAINER[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// `--tmpfs PATH[:OPTS]`.
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only.
    pub read_only: bool,
    /// `bridge` (also for `""` and `default`), a user network's name or ID, `none`, `host`
    /// or `container:NAME`.
    pub network: String,
    /// `--network-alias`: more names on a user network.
    pub network_aliases: Vec<String>,
    /// `--ip`: the address on the network (user-configured subnets only).
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--mac-address`.
    pub mac_address: Option<String>,
    /// `--dns` servers.
    pub dns: Vec<String>,
    /// `--dns-search` domains.
    pub dns_search: Vec<String>,
    /// `--dns-option` options.
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP` (`IP` may be `host-gateway`).
    pub extra_hosts: Vec<String>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPU limit in CPUs.
    pub cpus: Option<f64>,
    /// Most processes.
    pub pids_limit: Option<i64>,
    /// Keep standard input open (docker's `OpenStdin`).
    pub interactive: bool,
    /// The first attacher's end of input closes standard input (docker's `StdinOnce`).
    pub stdin_once: bool,
    /// Allocate a terminal.
    pub tty: bool,
    /// Run a minimal init as PID 1.
    pub init: bool,
    /// Capabilities to add (`CAP_X`, `X`, `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    pub cap_drop: Vec<String>,
    /// All capabilities, no masked paths, no seccomp filter.
    pub privileged: bool,
    /// `seccomp=unconfined`, `seccomp=FILE.json`, `no-new-privileges`.
    pub security_opt: Vec<String>,
    /// Docker's `--platform`: of a multi-platform image, this platform's image; a single
    /// image must be for it [default: this machine's platform's image of an index].
    pub platform: Option<rbuild_oci::Platform>,
    /// `--health-*` options (fields not given come from the image's HEALTHCHECK; `Test`
    /// `["NONE"]` is `--no-healthcheck`) [default: the image's].
    pub healthcheck: Option<rbuild_runner::lifecycle::health::HealthConfig>,
}

impl CreateOptions {
    /// Options running `cmd` in `image` with docker's defaults (`--network none` here).
    pub fn new(image: impl Into<String>, cmd: Vec<String>) -> CreateOptions {
        CreateOptions {
            image: Some(image.into()),
            cmd,
            network: "none".into(),
            ..CreateOptions::default()
        }
    }
}

/// Parse `64m`, `1g`, `512k`, `1048576`.
pub fn parse_size(s: &str) -> Result<i64> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, mult) = match lower.strip_suffix('b').unwrap_or(&lower) {
        n if n.ends_with('k') => (&n[..n.len() - 1], 1i64 << 10),
        n if n.ends_with('m') => (&n[..n.len() - 1], 1 << 20),
        n if n.ends_with('g') => (&n[..n.len() - 1], 1 << 30),
        n => (n, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|e: std::num::ParseFloatError| EngineError::InvalidParameter(e.to_string()))
        .with_context(|| {
            format!("invalid size {s:?}: expected a number with an optional b/k/m/g suffix")
        })?;
    if v <= 0.0 {
        return Err(EngineError::InvalidParameter(format!(
            "invalid size {s:?}: must be positive"
        )));
    }
    Ok((v * mult as f64) as i64)
}

/// A signal by name (`SIGTERM`, `TERM`, `term`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(EngineError::InvalidParameter(format!(
            "invalid signal: {s}"
        )));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|e| EngineError::InvalidParameter(e.to_string()))
        .with_context(|| format!("invalid signal: {s}"))
}

/// `--log-opt`s: `max-size=10m`, `max-file=3`.
pub fn parse_log_opts(opts: &[String]) -> Result<LogLimits> {
    let mut l = LogLimits::default();
    for o in opts {
        match o.split_once('=') {
            Some(("max-size", v)) => {
                l.max_size = parse_size(v).context("--log-opt max-size")? as u64
            }
            Some(("max-file", v)) => {
                l.max_files = v.parse().ok().filter(|n| *n > 0).or_invalid(|| {
                    format!("invalid --log-opt max-file={v}: expected a positive number")
                })?;
            }
            _ => {
                return Err(EngineError::InvalidParameter(format!(
                    "unsupported --log-opt {o:?} (max-size=SIZE, max-file=N)"
                )));
            }
        }
    }
    Ok(l)
}

/// A restart policy: `no`, `on-failure[:max-retries]`, `always`, `unless-stopped`.
pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    s.parse().map_err(EngineError::InvalidParameter)
}

/// A `-p` spec: `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]`.
pub fn parse_publish(s: &str) -> Result<PortBinding> {
    rbuild_runner::lifecycle::ports::parse_publish(s).map_err(EngineError::InvalidParameter)
}

/// A time given as RFC 3339, Unix seconds (`1700000000.5`) or a duration ago (`90s`,
/// `10m`, `1h30m`), in nanoseconds since the epoch.
pub fn parse_when(s: &str) -> Result<i64> {
    if let Some(t) = rbuild_runner::lifecycle::time::parse_rfc3339(s) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    let mut total = 0f64;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() || ch == '.' {
            num.push(ch);
            continue;
        }
        let n: f64 = num
            .parse()
            .map_err(|e: std::num::ParseFloatError| EngineError::InvalidParameter(e.to_string()))
            .with_context(|| {
                format!(
                    "invalid time {s:?}: expected RFC 3339, Unix seconds or a duration like 10m"
                )
            })?;
        total += n * match ch {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid time {s:?}: unknown duration unit {ch:?} (s, m, h)"
                )));
            }
        };
        num.clear();
    }
    if !num.is_empty() {
        return Err(EngineError::InvalidParameter(format!(
            "invalid time {s:?}: a duration needs a unit (s, m, h)"
        )));
    }
    Ok(rbuild_runner::lifecycle::time::now_ns() - (total * 1e9) as i64)
}

/// The variables of an env file (`KEY=VALUE` lines, `#` comments; a bare `KEY` takes this
/// process's value, or is dropped if unset).
pub fn read_env_file(path: &Path) -> Result<Vec<String>> {
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
pub fn expand_env(kv: &str) -> Option<String> {
    if kv.contains('=') {
        Some(kv.to_owned())
    } else {
        std::env::var(kv).ok().map(|v| format!("{kv}={v}"))
    }
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
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("USR1").unwrap(), 10);
        assert_eq!(parse_signal("2").unwrap(), 2);
        assert!(
            parse_signal("SIGNOPE")
                .unwrap_err()
                .to_string()
                .contains("SIGNOPE")
        );
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn log_options() {
        let l = parse_log_opts(&["max-size=1k".into(), "max-file=2".into()]).unwrap();
        assert_eq!((l.max_size, l.max_files), (1024, 2));
        assert!(parse_log_opts(&["max-file=0".into()]).is_err());
        assert!(parse_log_opts(&["mode=fast".into()]).is_err());
    }

    #[test]
    fn times_are_absolute_or_ago() {
        assert_eq!(parse_when("1970-01-01T00:00:10Z").unwrap(), 10_000_000_000);
        assert_eq!(parse_when("10").unwrap(), 10_000_000_000);
        let ago = rbuild_runner::lifecycle::time::now_ns() - parse_when("1h30m").unwrap();
        assert!(
            (5_399_000_000_000..5_401_000_000_000).contains(&ago),
            "{ago}"
        );
        assert!(parse_when("10x").unwrap_err().to_string().contains("10x"));
    }
}
