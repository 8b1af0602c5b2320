//! OCI runtime specs with docker's defaults: mounts, masked and read-only paths, capability
//! set, seccomp profile, namespaces and rlimits, from `docker run`-like options.

use std::path::PathBuf;

use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder,
    LinuxSeccomp, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::caps;
use crate::container::DEFAULT_PATH;
use crate::error::Error;
use crate::user::Identity;

/// The container's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Its own network namespace with only loopback (up).
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

/// `docker run`-like options for a container.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The command and its arguments (after ENTRYPOINT/CMD combination).
    pub args: Vec<String>,
    /// `KEY=VALUE` environment; `PATH` and `HOME` are added when missing.
    pub env: Vec<String>,
    /// Working directory (created if missing); empty means `/`.
    pub cwd: String,
    /// Who the process runs as.
    pub user: Option<Identity>,
    /// Host name in the UTS namespace.
    pub hostname: String,
    /// Network mode.
    pub network: Network,
    /// A terminal is attached.
    pub terminal: bool,
    /// Root filesystem mounted read-only.
    pub readonly_root: bool,
    /// Extra mounts (binds, tmpfs), after the standard ones.
    pub mounts: Vec<Mount>,
    /// Capabilities added to docker's default set.
    pub cap_add: Vec<String>,
    /// Capabilities removed (`ALL` removes every one).
    pub cap_drop: Vec<String>,
    /// All capabilities, no masked or read-only paths, no seccomp.
    pub privileged: bool,
    /// The seccomp profile; `None` runs unconfined.
    pub seccomp: Option<LinuxSeccomp>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPU limit in CPUs (0.5 = half of one CPU).
    pub cpus: Option<f64>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
    /// Set `no_new_privs`.
    pub no_new_privileges: bool,
    /// Also create a user namespace (ids mapped one to one for the first 65536).
    pub user_namespace: bool,
    /// Also create a cgroup namespace.
    pub cgroup_namespace: bool,
}

/// Docker's masked paths.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mount(dest: &str, typ: &str, src: &str, opts: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(src)
        .options(opts.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        .build()
        .expect("static mount")
}

/// Docker's standard mounts.
pub fn default_mounts(privileged: bool) -> Vec<Mount> {
    let sys_mode = if privileged { "rw" } else { "ro" };
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        ),
    ]
}

/// A bind mount `host:container[:ro]`.
pub fn bind_mount(host: impl Into<PathBuf>, container: &str, readonly: bool) -> Mount {
    let mut opts = vec!["rbind".to_owned(), "rprivate".to_owned()];
    if readonly {
        opts.push("ro".to_owned());
    }
    MountBuilder::default()
        .destination(container)
        .typ("bind")
        .source(host.into())
        .options(opts)
        .build()
        .expect("bind mount")
}

/// A tmpfs mount like `docker run --tmpfs PATH`.
pub fn tmpfs_mount(container: &str) -> Mount {
    mount(container, "tmpfs", "tmpfs", &["nosuid", "nodev", "noexec"])
}

fn capabilities(o: &RunOptions) -> Result<oci_spec::runtime::Capabilities, Error> {
    let mut set = if o.privileged {
        caps::all()
    } else {
        caps::docker_default()
    };
    for name in &o.cap_add {
        if name.eq_ignore_ascii_case("ALL") {
            set = caps::all();
        } else {
            set.insert(caps::parse(name)?);
        }
    }
    for name in &o.cap_drop {
        if name.eq_ignore_ascii_case("ALL") {
            set.clear();
        } else {
            set.remove(&caps::parse(name)?);
        }
    }
    Ok(set)
}

/// The open-files limit: docker's 1048576, or the host's hard limit if lower.
fn nofile() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(_, hard)| hard.min(1_048_576))
}

/// Build a spec with docker's defaults.
pub fn docker_spec(o: &RunOptions) -> Result<Spec, Error> {
    let bad = |e: oci_spec::OciSpecError| Error::InvalidSpec(e.to_string());
    let id = o.user.clone().unwrap_or(Identity {
        uid: 0,
        gid: 0,
        additional_gids: vec![],
        home: "/root".into(),
    });
    let mut env = o.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) && !o.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", o.hostname));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", id.home));
    }
    if o.terminal && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_owned());
    }
    let set = capabilities(o)?;
    // Docker gives a non-root user no effective capabilities, only the bounding set.
    let (eff, perm) = if id.uid == 0 {
        (set.clone(), set.clone())
    } else {
        Default::default()
    };
    let caps = LinuxCapabilitiesBuilder::default()
        .bounding(set)
        .effective(eff)
        .permitted(perm)
        .inheritable(oci_spec::runtime::Capabilities::new())
        .ambient(oci_spec::runtime::Capabilities::new())
        .build()
        .map_err(bad)?;
    let user = UserBuilder::default()
        .uid(id.uid)
        .gid(id.gid)
        .additional_gids(id.additional_gids.clone())
        .build()
        .map_err(bad)?;
    let rlimit = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(nofile())
        .hard(nofile())
        .build()
        .map_err(bad)?;
    let process = ProcessBuilder::default()
        .terminal(o.terminal)
        .args(o.args.clone())
        .env(env)
        .cwd(if o.cwd.is_empty() { "/" } else { &o.cwd })
        .user(user)
        .capabilities(caps)
        .rlimits(vec![rlimit])
        .no_new_privileges(o.no_new_privileges)
        .build()
        .map_err(bad)?;
    let mut ns_types = vec![
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
    ];
    if o.network == Network::None {
        ns_types.push(LinuxNamespaceType::Network);
    }
    if o.cgroup_namespace {
        ns_types.push(LinuxNamespaceType::Cgroup);
    }
    if o.user_namespace {
        ns_types.push(LinuxNamespaceType::User);
    }
    let namespaces = ns_types
        .into_iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build().map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(m) = o.memory {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(m)
                .build()
                .map_err(bad)?,
        );
    }
    if let Some(c) = o.cpus {
        let period = 100_000u64;
        let quota = (c * period as f64).round() as i64;
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .period(period)
                .quota(quota)
                .build()
                .map_err(bad)?,
        );
    }
    if let Some(p) = o.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(p).build().map_err(bad)?);
    }
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(bad)?);
    if !o.privileged {
        linux = linux
            .masked_paths(
                MASKED_PATHS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect::<Vec<_>>(),
            )
            .readonly_paths(
                READONLY_PATHS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect::<Vec<_>>(),
            );
        if let Some(s) = &o.seccomp {
            linux = linux.seccomp(s.clone());
        }
    }
    let mut mounts = default_mounts(o.privileged);
    mounts.extend(o.mounts.iter().cloned());
    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(o.readonly_root)
                .build()
                .map_err(bad)?,
        )
        .process(process)
        .mounts(mounts)
        .linux(linux.build().map_err(bad)?)
        .build()
        .map_err(bad)?;
    if !o.hostname.is_empty() {
        spec.set_hostname(Some(o.hostname.clone()));
    }
    if o.user_namespace {
        let map = oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(0u32)
            .size(65536u32)
            .build()
            .map_err(bad)?;
        if let Some(l) = spec.linux_mut().as_mut() {
            l.set_uid_mappings(Some(vec![map]));
            l.set_gid_mappings(Some(vec![map]));
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_dockers() {
        let spec = docker_spec(&RunOptions {
            args: vec!["true".into()],
            ..Default::default()
        })
        .unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.env().as_ref().unwrap()[0], format!("PATH={DEFAULT_PATH}"));
        let bounding = p
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap();
        assert_eq!(caps::mask(Some(bounding), 40).unwrap(), 0xa804_25fb);
        let linux = spec.linux().as_ref().unwrap();
        assert!(
            linux
                .masked_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/kcore".to_owned())
        );
        let ns = linux.namespaces().as_ref().unwrap();
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        let host = docker_spec(&RunOptions {
            network: Network::Host,
            ..Default::default()
        })
        .unwrap();
        let ns = host.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    }

    #[test]
    fn cap_add_drop_and_non_root_users() {
        let o = RunOptions {
            cap_add: vec!["SYS_ADMIN".into()],
            cap_drop: vec!["CAP_CHOWN".into()],
            user: Some(Identity {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![],
                home: "/home/u".into(),
            }),
            ..Default::default()
        };
        let spec = docker_spec(&o).unwrap();
        let c = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        let b = caps::mask(c.bounding().as_ref(), 40).unwrap();
        assert_eq!(b, (0xa804_25fb | 1 << 21) & !1);
        assert_eq!(caps::mask(c.effective().as_ref(), 40).unwrap(), 0);
        let err = docker_spec(&RunOptions {
            cap_add: vec!["NOPE".into()],
            ..Default::default()
        });
        assert!(err.unwrap_err().to_string().contains("NOPE"));
    }
}
