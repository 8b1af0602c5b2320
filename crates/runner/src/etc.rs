//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` for the container: written into the
//! container's directory and bind-mounted, as docker does, unless the spec mounts its own.

use std::fs;
use std::path::Path;

use oci_spec::runtime::{MountBuilder, Spec};

use crate::error::Error;

/// The `/etc/hosts` docker writes for a container with its own network namespace, before
/// its own names.
pub const OWN_NETWORK_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
     fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// Which `/etc` files a container is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EtcFiles {
    /// docker run's: `/etc/hosts` (a fresh one in its own network namespace, the host's
    /// otherwise), `/etc/hostname` with the UTS name, the host's `/etc/resolv.conf`.
    #[default]
    Docker,
    /// A build step's, as BuildKit gives them: a generated `/etc/hosts` naming `localhost`
    /// and the host name for 127.0.0.1 and ::1, the host's `/etc/resolv.conf`, and the
    /// image's own `/etc/hostname` (none is mounted).
    Build,
    /// A build step's on a network the build was attached to: as [`EtcFiles::Build`], with
    /// this `/etc/resolv.conf` (the network's DNS server).
    BuildOnNetwork {
        /// The whole `/etc/resolv.conf`.
        resolv: String,
    },
    /// docker run's on a bridge network: these `/etc/hosts` and `/etc/resolv.conf` (the
    /// container's address and `--add-host` entries, the network's DNS server), and
    /// `/etc/hostname` with the UTS name.
    Given {
        /// The whole `/etc/hosts`.
        hosts: String,
        /// The whole `/etc/resolv.conf`.
        resolv: String,
    },
}

impl EtcFiles {
    fn is_build(&self) -> bool {
        matches!(self, EtcFiles::Build | EtcFiles::BuildOnNetwork { .. })
    }
}

/// Write the three files into `dir` and add their bind mounts to `spec`.
pub fn provide(
    spec: &mut Spec,
    dir: &Path,
    own_network: bool,
    kind: &EtcFiles,
) -> Result<(), Error> {
    let hostname = spec.hostname().clone().unwrap_or_default();
    let hosts = if let EtcFiles::Given { hosts, .. } = kind {
        hosts.clone()
    } else if kind.is_build() {
        build_hosts(&hostname)
    } else {
        docker_hosts(&hostname, own_network)
    };
    let resolv = match kind {
        EtcFiles::Given { resolv, .. } | EtcFiles::BuildOnNetwork { resolv } => resolv.clone(),
        _ => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    let mut files = vec![
        ("/etc/hosts", "hosts", hosts),
        ("/etc/resolv.conf", "resolv.conf", resolv),
    ];
    if !kind.is_build() {
        files.push(("/etc/hostname", "hostname", format!("{hostname}\n")));
    }
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (dest, name, content) in files {
        if mounts.iter().any(|m| m.destination() == Path::new(dest)) {
            continue;
        }
        let path = dir.join(name);
        fs::write(&path, content).map_err(Error::io(&path))?;
        let m = MountBuilder::default()
            .destination(dest)
            .typ("bind")
            .source(path)
            .options(vec!["rbind".to_owned(), "rprivate".to_owned()])
            .build()
            .map_err(|e| Error::InvalidSpec(e.to_string()))?;
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// docker run's `/etc/hosts` for a container on no bridge network: a fresh one naming
/// `hostname` in its own network namespace, the host's (ending in a newline) otherwise.
pub(crate) fn docker_hosts(hostname: &str, own_network: bool) -> String {
    if own_network {
        let mut h = String::from(OWN_NETWORK_HOSTS);
        if !hostname.is_empty() {
            h.push_str(&format!("127.0.1.1\t{hostname}\n"));
        }
        return h;
    }
    let mut h =
        fs::read_to_string("/etc/hosts").unwrap_or_else(|_| "127.0.0.1\tlocalhost\n".into());
    if !h.ends_with('\n') {
        h.push('\n');
    }
    h
}

/// BuildKit's `/etc/hosts` for a build step (`buildkitsandbox` when the step has no name).
fn build_hosts(hostname: &str) -> String {
    let name = if hostname.is_empty() {
        "buildkitsandbox"
    } else {
        hostname
    };
    format!("127.0.0.1\tlocalhost {name}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::Spec;

    use super::*;

    fn provided(kind: EtcFiles) -> (Vec<String>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = Spec::default();
        spec.set_mounts(Some(Vec::new()));
        spec.set_hostname(Some("buildkitsandbox".into()));
        provide(&mut spec, dir.path(), true, &kind).unwrap();
        let dests = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().to_string_lossy().into_owned())
            .collect();
        (dests, dir)
    }

    #[test]
    fn build_steps_keep_the_images_hostname_and_get_buildkits_hosts() {
        let (dests, dir) = provided(EtcFiles::Build);
        assert_eq!(dests, ["/etc/hosts", "/etc/resolv.conf"]);
        assert_eq!(
            fs::read_to_string(dir.path().join("hosts")).unwrap(),
            "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        );
    }

    #[test]
    fn containers_get_all_three() {
        let (dests, dir) = provided(EtcFiles::Docker);
        assert_eq!(dests, ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"]);
        assert_eq!(
            fs::read_to_string(dir.path().join("hostname")).unwrap(),
            "buildkitsandbox\n"
        );
    }
}
