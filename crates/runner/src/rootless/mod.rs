//! Rootless mode: rbuild run by a user without root privileges.
//!
//! [`enter`] (called by the front end before it does anything else, while it has one thread)
//! puts the process into a user namespace where it is root: container id 0 is the user and ids
//! 1..N the user's subordinate ranges (`/etc/subuid`, `/etc/subgid`, mapped by `newuidmap` and
//! `newgidmap`), as Podman does. The namespace is held by a *pause* process (`rbuild-pause`, its
//! PID in the runtime directory) so that every later command joins the same one: containers,
//! monitors and the network hub of one command are then reachable from the next (`exec`,
//! `stop`, `logs`). Each command also unshares a private mount namespace, so its mounts never
//! outlive it.
//!
//! Inside, files show the ids the container sees, so layers are extracted and committed with
//! the image's own ids. What the namespace cannot give: cgroups (only a delegated cgroup v2
//! subtree is writable: [`cgroups`]), `trusted.*` xattrs (overlay runs with `userxattr`).

mod enter;
pub mod idmap;
pub(crate) mod spawn;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::LinuxResources;

use crate::lifecycle::PortBinding;

pub use enter::{Entered, enter, runtime_dir};

/// The smallest number of subordinate ids rbuild accepts: container ids 0..=65535 must map
/// (images own files as `nobody`, 65534).
pub const MIN_SUBORDINATE_IDS: u64 = 65535;

/// What rootless mode could not set up, or refuses to do.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// The user has subordinate ids but `newuidmap`/`newgidmap` is not on `PATH` (not
    /// installed).
    #[error("rootless mode needs {tool} to map {user}'s subordinate ids, and it is not on PATH")]
    NoMapTool {
        /// `newuidmap` or `newgidmap`.
        tool: &'static str,
        /// The user's name.
        user: String,
    },
    /// The user's subordinate range is too small for images' ids.
    #[error(
        "{user} has {have} subordinate {kind}s in /etc/sub{kind}; rootless mode needs at least {need}"
    )]
    RangeTooSmall {
        /// The user's name.
        user: String,
        /// `uid` or `gid`.
        kind: &'static str,
        /// How many ids the files give.
        have: u64,
        /// How many are needed.
        need: u64,
    },
    /// `newuidmap`/`newgidmap` refused the map.
    #[error("{tool} failed: {message}")]
    MapFailed {
        /// The tool.
        tool: &'static str,
        /// Its status and error output.
        message: String,
    },
    /// A system call of the setup failed.
    #[error("rootless setup: {call}: {errno}")]
    Sys {
        /// Which call.
        call: &'static str,
        /// The kernel's answer.
        errno: nix::errno::Errno,
    },
    /// A file of the setup.
    #[error("rootless setup: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A resource limit was asked for and no cgroup can hold it.
    #[error("{option} needs cgroups, which rootless mode cannot use here: {reason}")]
    NoCgroups {
        /// The option, e.g. `--memory`.
        option: &'static str,
        /// Why cgroups are not available.
        reason: String,
    },
    /// A published host port below `net.ipv4.ip_unprivileged_port_start`, which only root may
    /// bind.
    #[error(
        "rootless mode cannot publish port {port} ({binding}): ports below {start} need root (net.ipv4.ip_unprivileged_port_start = {start})"
    )]
    PrivilegedPort {
        /// The host port.
        port: u16,
        /// The binding, `IP:PORT/PROTOCOL`.
        binding: String,
        /// The lowest port a user may bind.
        start: u16,
    },
    /// Something rootless mode does not do yet.
    #[error("not supported yet in rootless mode: {0}")]
    NotSupported(String),
}

impl RootlessError {
    /// How to fix it, when there is a fix.
    pub fn hint(&self) -> Option<String> {
        match self {
            RootlessError::NoMapTool { .. } => {
                Some("install the uidmap package (apt-get install uidmap), or run as root".into())
            }
            RootlessError::RangeTooSmall { user, .. } => Some(format!(
                "give {user} 65536 ids: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"
            )),
            RootlessError::PrivilegedPort { port, start, .. } => Some(format!(
                "publish on a host port of {start} or above, or let users bind lower ports (as root): sysctl net.ipv4.ip_unprivileged_port_start={port}"
            )),
            RootlessError::NoCgroups { .. } => Some(
                "delegate a cgroup v2 subtree to the user (systemd's user@.service with Delegate=yes on a cgroup v2 host), or run as root"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Whether this process is in a user namespace other than the host's (rootless mode, entered
/// by [`enter`] or inherited from the command that started this one).
pub fn active() -> bool {
    static ACTIVE: OnceLock<bool> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| !is_identity_map(&map))
    })
}

/// Whether the user namespace maps only one id (the user has no subordinate ids): files of
/// other owners cannot be made.
pub fn single_id() -> bool {
    active()
        && fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
            let counts: Vec<u64> = map
                .lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
                .collect();
            counts.iter().sum::<u64>() <= 1
        })
}

fn is_identity_map(map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    lines.len() == 1 && lines[0] == ["0", "0", "4294967295"]
}

/// Whether cgroups can be used: always as root; in rootless mode only a writable, delegated
/// cgroup v2 subtree. `Err` says why not.
pub fn cgroups() -> Result<(), &'static str> {
    static STATE: OnceLock<Result<(), &'static str>> = OnceLock::new();
    *STATE.get_or_init(|| {
        if !active() {
            return Ok(());
        }
        let root = Path::new("/sys/fs/cgroup");
        if !root.join("cgroup.controllers").exists() {
            return Err("the host has cgroup v1 controllers, which cannot be delegated to a user");
        }
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
            return Err("this process is in no cgroup v2 group");
        };
        let dir = root.join(path.trim_start_matches('/'));
        let writable = |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok();
        if writable(&dir) && writable(&dir.join("cgroup.subtree_control")) {
            Ok(())
        } else {
            Err("the user's cgroup v2 group is not delegated (not writable)")
        }
    })
}

/// Refuse limits that need cgroups when there are none to use (in rootless mode without a
/// delegated subtree), naming the option and the reason.
pub fn check_resources(resources: Option<&LinuxResources>) -> Result<(), RootlessError> {
    let Err(reason) = cgroups() else {
        return Ok(());
    };
    let Some(r) = resources else { return Ok(()) };
    let option = if r
        .memory()
        .as_ref()
        .is_some_and(|m| m.limit().is_some_and(|l| l > 0) || m.reservation().is_some())
    {
        Some("--memory")
    } else if r.pids().as_ref().is_some_and(|p| p.limit() > 0) {
        Some("--pids-limit")
    } else if r
        .cpu()
        .as_ref()
        .is_some_and(|c| c.quota().is_some_and(|q| q > 0) || c.shares().is_some())
    {
        Some("--cpus")
    } else {
        None
    };
    match option {
        Some(option) => Err(RootlessError::NoCgroups {
            option,
            reason: reason.into(),
        }),
        None => Ok(()),
    }
}

/// The lowest port a user may bind in this network namespace
/// (`net.ipv4.ip_unprivileged_port_start`; 1024 when it cannot be read, the kernel's default).
pub fn unprivileged_port_start() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// Refuse published host ports a rootless container's forwarder cannot bind: its sockets are
/// in the host's network namespace, which the user's namespace does not own, so ports below
/// `net.ipv4.ip_unprivileged_port_start` are root's (as rootless Podman and Docker refuse
/// them). Port 0 (any free port) is always allowed.
pub fn check_ports(bindings: &[PortBinding]) -> Result<(), RootlessError> {
    if !active() {
        return Ok(());
    }
    privileged_port(bindings, unprivileged_port_start())
}

/// The first binding of a host port below `start` (port 0 is any free port), as the error.
fn privileged_port(bindings: &[PortBinding], start: u16) -> Result<(), RootlessError> {
    match bindings
        .iter()
        .find(|b| b.host_port != 0 && b.host_port < start)
    {
        Some(b) => Err(RootlessError::PrivilegedPort {
            port: b.host_port,
            binding: format!("{}:{}/{}", b.host_ip, b.host_port, b.protocol.as_str()),
            start,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Protocol;

    fn binding(host_port: u16, protocol: Protocol) -> PortBinding {
        PortBinding {
            host_ip: "127.0.0.1".into(),
            host_port,
            container_port: 80,
            protocol,
        }
    }

    #[test]
    fn ports_below_the_unprivileged_start_are_refused_naming_both() {
        let ok = [binding(0, Protocol::Tcp), binding(1024, Protocol::Tcp)];
        assert!(privileged_port(&ok, 1024).is_ok());
        let low = [binding(8080, Protocol::Tcp), binding(53, Protocol::Udp)];
        let err = privileged_port(&low, 1024).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rootless mode cannot publish port 53 (127.0.0.1:53/udp): ports below 1024 need root (net.ipv4.ip_unprivileged_port_start = 1024)"
        );
        assert!(
            err.hint()
                .unwrap()
                .ends_with("sysctl net.ipv4.ip_unprivileged_port_start=53")
        );
        assert!(
            privileged_port(&low, 53).is_ok(),
            "the sysctl lowered to 53"
        );
    }
}
