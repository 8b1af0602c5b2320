//! One loopback-only network namespace that many containers join instead of each creating its
//! own.
//!
//! A container with [`Network::None`](crate::Network::None) normally gets a fresh network
//! namespace from `clone(CLONE_NEWNET)`, and the kernel tears it down asynchronously after the
//! container exits (`cleanup_net` on a workqueue, RCU barriers, every pernet subsystem's exit
//! hook). On a busy machine that teardown competes with the next creation, so a build of many
//! `--network none` RUN steps pays for a namespace per step. A build instead makes one
//! [`LoopbackNetwork`] and every such step joins it with a `setns` plan step, through the same
//! path the runner uses for `--network container:NAME` ([`join_network`]).
//!
//! The namespace is held by a file descriptor only: no bind mount, nothing under `/run/netns`,
//! nothing a crash could leave on the host. When the value is dropped (or the process dies)
//! and the last container in it has exited, the kernel frees it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::libc;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::Error;
use crate::syscall::{LinuxSyscall, Syscall};

/// A network namespace with only `lo`, up, held open by this process.
#[derive(Debug)]
pub struct LoopbackNetwork {
    fd: OwnedFd,
}

impl LoopbackNetwork {
    /// Create the namespace and bring its loopback interface up.
    ///
    /// `unshare(CLONE_NEWNET)` moves only the calling thread, so it is done on a short-lived
    /// thread of its own: the caller and the process's other threads keep the host's network.
    pub fn create() -> Result<Self, Error> {
        std::thread::spawn(|| -> Result<OwnedFd, Error> {
            let sys = |call, errno| Error::Sys { call, errno };
            LinuxSyscall
                .unshare(libc::CLONE_NEWNET)
                .map_err(|e| sys("unshare(CLONE_NEWNET)", e))?;
            LinuxSyscall
                .loopback_up()
                .map_err(|e| sys("bring up lo in the build's network namespace", e))?;
            let path = "/proc/thread-self/ns/net";
            Ok(std::fs::File::open(path).map_err(Error::io(path))?.into())
        })
        .join()
        .map_err(|_| Error::InvalidSpec("the network namespace thread panicked".into()))?
        .map(|fd| LoopbackNetwork { fd })
    }

    /// A path naming the namespace while this value lives (`/proc/self/fd/N`), for
    /// [`join_network`] or a spec's network namespace `path`. Only this process can open it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Make `spec`'s container join this namespace instead of creating one.
    pub fn join(&self, spec: &mut Spec) {
        join_network(spec, self.path());
    }
}

/// Make `spec`'s container join the network namespace at `path` (opened by the parent and
/// entered by the child with `setns` before anything else) instead of creating its own. A
/// spec that shares the host's network (no network namespace entry) is left as it is.
pub fn join_network(spec: &mut Spec, path: PathBuf) {
    if let Some(linux) = spec.linux_mut().as_mut() {
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        for ns in &mut namespaces {
            if ns.typ() == LinuxNamespaceType::Network {
                ns.set_path(Some(path.clone()));
            }
        }
        linux.set_namespaces(Some(namespaces));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Network, RunOptions, docker_spec};

    fn net_path(spec: &Spec) -> Option<Option<PathBuf>> {
        spec.linux()
            .as_ref()?
            .namespaces()
            .as_ref()?
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Network)
            .map(|n| n.path().clone())
    }

    #[test]
    fn join_sets_the_network_namespace_path_only_where_there_is_one() {
        let mut none = docker_spec(&RunOptions {
            args: vec!["true".into()],
            network: Network::None,
            ..Default::default()
        })
        .unwrap();
        join_network(&mut none, "/proc/self/fd/9".into());
        assert_eq!(net_path(&none), Some(Some("/proc/self/fd/9".into())));

        let mut host = docker_spec(&RunOptions {
            args: vec!["true".into()],
            network: Network::Host,
            ..Default::default()
        })
        .unwrap();
        join_network(&mut host, "/proc/self/fd/9".into());
        assert_eq!(net_path(&host), None, "the host's network stays the host's");
    }

    #[test]
    fn created_namespace_is_not_the_callers_and_has_loopback_up() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let net = LoopbackNetwork::create().unwrap();
        let ours = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
        let its = std::fs::metadata(net.path()).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(ours.ino(), its.ino(), "the caller stays in its namespace");
        // Look inside from a thread that joins it: only `lo`, and it carries packets.
        let fd = std::fs::File::open(net.path()).unwrap();
        let (devices, echoed) = std::thread::spawn(move || {
            LinuxSyscall
                .setns(fd.as_raw_fd(), libc::CLONE_NEWNET)
                .unwrap();
            let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
            let devices: Vec<String> = dev
                .lines()
                .skip(2)
                .filter_map(|l| l.split(':').next())
                .map(|n| n.trim().to_owned())
                .collect();
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.send_to(b"ping", sock.local_addr().unwrap()).unwrap();
            let mut buf = [0u8; 4];
            let n = sock.recv(&mut buf).unwrap();
            (devices, buf[..n].to_vec())
        })
        .join()
        .unwrap();
        assert_eq!(devices, ["lo"]);
        assert_eq!(echoed, b"ping");
    }
}
