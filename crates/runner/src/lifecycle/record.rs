//! What is stored about a container: its creation record (`config.json`, written at creation
//! and by a rename) and its
//! state (`state.json`, replaced atomically on every change).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::container::Rootfs;

/// A container's restart policy (`--restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "Name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max` times (0: without limit).
    OnFailure {
        /// Most restarts (docker's `MaximumRetryCount`).
        #[serde(rename = "MaximumRetryCount")]
        max: u32,
    },
    /// Always restart, unless stopped by a user.
    Always,
    /// Like `Always`; docker also keeps such containers stopped across daemon restarts.
    UnlessStopped,
}

impl std::str::FromStr for RestartPolicy {
    type Err = String;

    /// `no`, `on-failure[:N]`, `always`, `unless-stopped`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid restart policy {s:?}: expected no, on-failure[:N], always or unless-stopped"
            )
        };
        match s.split_once(':') {
            None => match s {
                "no" | "" => Ok(RestartPolicy::No),
                "on-failure" => Ok(RestartPolicy::OnFailure { max: 0 }),
                "always" => Ok(RestartPolicy::Always),
                "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
                _ => Err(bad()),
            },
            Some(("on-failure", n)) => n
                .parse()
                .map(|max| RestartPolicy::OnFailure { max })
                .map_err(|_| bad()),
            Some(_) => Err(format!(
                "invalid restart policy {s:?}: only on-failure takes a maximum retry count"
            )),
        }
    }
}

impl RestartPolicy {
    /// Docker's name for the policy (`HostConfig.RestartPolicy.Name`).
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// Whether a container that ended with `exit_code`, after `restarts` restarts, starts
    /// again. A container stopped by a user never does.
    pub fn should_restart(self, exit_code: i32, restarts: u32, manually_stopped: bool) -> bool {
        if manually_stopped {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max } => exit_code != 0 && (max == 0 || restarts < max),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

impl ContainerRecord {
    /// Whether the container is on bridge networks (its own namespace with an interface per
    /// network), rather than `none`, `host` or another container's.
    pub fn is_bridged(&self) -> bool {
        !matches!(self.network.as_str(), "none" | "host" | "")
            && !self.network.starts_with("container:")
    }
}

impl RestartPolicy {
    /// Whether a container that is not running, having ended with `exit_code`, is started
    /// when rbuild's containers come back after a reboot (`rbuild container autostart`, what
    /// dockerd does when it starts): `always` even when a user stopped it, `unless-stopped`
    /// only if no user did, `on-failure` after a non-zero exit.
    pub fn starts_at_boot(self, exit_code: i32, manually_stopped: bool) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { .. } => exit_code != 0 && !manually_stopped,
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !manually_stopped,
        }
    }
}

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A published port: `-p [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// Address the forwarder listens on (docker's default is all addresses; rbuild's is
    /// 127.0.0.1).
    pub host_ip: String,
    /// Host port; 0 picks a free port when the container starts.
    pub host_port: u16,
    /// Port on the container's loopback.
    pub container_port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// A mount as `docker inspect` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// Volume name (volumes only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Host path (empty for tmpfs).
    pub source: PathBuf,
    /// Path in the container.
    pub destination: String,
    /// Writable.
    pub rw: bool,
    /// An anonymous volume, removed with `rm -v`.
    #[serde(default)]
    pub anonymous: bool,
}

/// Limits of the json-file log (`--log-opt max-size=…,max-file=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLimits {
    /// Rotate when the current file reaches this many bytes (0: never).
    pub max_size: u64,
    /// Files kept, the current one included.
    pub max_files: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_size: 20 << 20,
            max_files: 3,
        }
    }
}

/// Everything fixed when the container is created (`config.json`). The OCI runtime spec is
/// kept beside it in `spec.json` (it is large, and only starting needs it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Creation time, nanoseconds since the epoch.
    pub created: i64,
    /// The image as the user named it.
    pub image: String,
    /// The image's ID (`sha256:…`), empty for `--rootfs`.
    pub image_id: String,
    /// The root filesystem's source.
    pub rootfs: Rootfs,
    /// The command after ENTRYPOINT/CMD combination (docker's `Path` + `Args`).
    pub command: Vec<String>,
    /// The entrypoint part of it, as configured.
    pub entrypoint: Vec<String>,
    /// The cmd part of it, as configured.
    pub cmd: Vec<String>,
    /// The environment.
    pub env: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// `USER[:GROUP]` as given.
    pub user: String,
    /// Host name.
    pub hostname: String,
    /// Image labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Run a minimal init as PID 1.
    pub init: bool,
    /// A terminal is allocated.
    pub tty: bool,
    /// Standard input kept open.
    pub interactive: bool,
    /// Docker's `StdinOnce`: the end of an attacher's input closes the container's stdin
    /// (`create -i`, `run -i`; not `run -d -i`).
    #[serde(default)]
    pub stdin_once: bool,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Remove the container when it ends (`--rm`).
    pub auto_remove: bool,
    /// Signal `stop` sends first (`--stop-signal`, the image's STOPSIGNAL, or SIGTERM).
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL (`--stop-timeout`), default 10.
    pub stop_timeout: Option<u32>,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<PortBinding>,
    /// Ports the image EXPOSEs (`80/tcp`).
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// Mounts besides the standard ones.
    #[serde(default)]
    pub mounts: Vec<MountRecord>,
    /// `none`, `host`, `container:ID`, or the network a bridged container was created on
    /// (`bridge` or a user network's name; its endpoints are in the network state).
    pub network: String,
    /// `--dns` servers (replace the network's name server in `/etc/resolv.conf`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `--dns-search` domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `--dns-option` options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP` entries, `host-gateway` already resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Log rotation.
    #[serde(default)]
    pub log: LogLimits,
    /// The healthcheck its monitor runs (the image's merged with `--health-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<super::health::HealthConfig>,
}

/// A container's status, as `docker inspect` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started.
    #[default]
    Created,
    /// Its process runs.
    Running,
    /// Frozen.
    Paused,
    /// Ended, and about to start again by its restart policy.
    Restarting,
    /// Ended.
    Exited,
    /// Its monitor died without recording the end (killed, or the machine went down).
    Dead,
}

impl Status {
    /// Docker's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// A monitor owns the container in this status.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

/// A container's changing state (`state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerState {
    /// Current status.
    pub status: Status,
    /// The container's first process on the host (0 when not running).
    pub pid: i32,
    /// The process supervising it (0 when none).
    pub monitor_pid: i32,
    /// Last start, nanoseconds since the epoch (0: never).
    pub started_at: i64,
    /// Last end, nanoseconds since the epoch (0: never).
    pub finished_at: i64,
    /// Last exit code (128 + N when killed by signal N).
    pub exit_code: i32,
    /// The signal that killed the last run's first process, if one did.
    pub signal: Option<i32>,
    /// The memory limit's OOM killer struck.
    pub oom_killed: bool,
    /// Why the container could not start, or why it is dead.
    pub error: String,
    /// Restarts done by the restart policy since the last start by a user.
    pub restart_count: u32,
    /// Stopped or killed by a user: the restart policy does not apply.
    pub manually_stopped: bool,
    /// The current run's cgroup directories (for sweeping them when the monitor died).
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// Host ports the forwarder listens on, for published ports given as 0.
    #[serde(default)]
    pub ports: Vec<PortBinding>,
    /// Its health, when it has a healthcheck and was started (docker's `State.Health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::Health>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_parse_and_decide_as_docker() {
        let p = |s: &str| s.parse::<RestartPolicy>();
        assert_eq!(p("no").unwrap(), RestartPolicy::No);
        assert_eq!(
            p("on-failure:3").unwrap(),
            RestartPolicy::OnFailure { max: 3 }
        );
        assert_eq!(p("unless-stopped").unwrap(), RestartPolicy::UnlessStopped);
        assert!(p("sometimes").unwrap_err().contains("sometimes"));
        assert!(p("always:2").is_err());
        let three = RestartPolicy::OnFailure { max: 3 };
        assert!(three.should_restart(1, 2, false));
        assert!(!three.should_restart(1, 3, false), "at most 3 restarts");
        assert!(!three.should_restart(0, 0, false), "success is final");
        assert!(RestartPolicy::Always.should_restart(0, 100, false));
        assert!(!RestartPolicy::Always.should_restart(1, 0, true));
        // Docker's difference between always and unless-stopped: at a (daemon) start.
        assert!(RestartPolicy::Always.starts_at_boot(0, true));
        assert!(!RestartPolicy::UnlessStopped.starts_at_boot(0, true));
        assert!(RestartPolicy::UnlessStopped.starts_at_boot(137, false));
        assert!(!three.starts_at_boot(0, false));
        assert!(!RestartPolicy::No.starts_at_boot(1, false));
        let json = serde_json::to_string(&three).unwrap();
        assert_eq!(json, r#"{"Name":"on-failure","MaximumRetryCount":3}"#);
    }
}
