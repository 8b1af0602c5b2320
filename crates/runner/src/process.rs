//! The process part of a container's plan, after `pivot_root`: hostname, working directory,
//! rlimits, bounding set, ids, `no_new_privs`, capabilities, umask and seccomp — in the order
//! that keeps each step permitted (the seccomp filter last when `no_new_privs` is set, first
//! otherwise, since loading it then needs `CAP_SYS_ADMIN`).

use std::path::Path;

use nix::libc;
use oci_spec::runtime::{PosixRlimitType, Process};

use crate::caps;
use crate::error::Error;
use crate::plan::Op;
use crate::rootfs::{container_path, cstring};

/// What the process plan needs besides the spec's `process`.
#[derive(Debug, Clone, Copy)]
pub struct ProcessSpec<'a> {
    /// The spec's process.
    pub process: &'a Process,
    /// Host name for the UTS namespace (`None`: keep).
    pub hostname: Option<&'a str>,
    /// The kernel's highest capability number.
    pub last_cap: u32,
    /// A compiled seccomp filter.
    pub seccomp: Option<&'a [libc::sock_filter]>,
}

fn rlimit_resource(t: PosixRlimitType) -> u32 {
    use PosixRlimitType as R;
    match t {
        R::RlimitCpu => libc::RLIMIT_CPU,
        R::RlimitFsize => libc::RLIMIT_FSIZE,
        R::RlimitData => libc::RLIMIT_DATA,
        R::RlimitStack => libc::RLIMIT_STACK,
        R::RlimitCore => libc::RLIMIT_CORE,
        R::RlimitRss => libc::RLIMIT_RSS,
        R::RlimitNproc => libc::RLIMIT_NPROC,
        R::RlimitNofile => libc::RLIMIT_NOFILE,
        R::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        R::RlimitAs => libc::RLIMIT_AS,
        R::RlimitLocks => libc::RLIMIT_LOCKS,
        R::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        R::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        R::RlimitNice => libc::RLIMIT_NICE,
        R::RlimitRtprio => libc::RLIMIT_RTPRIO,
        R::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Build the process part of a container's plan.
pub fn process_ops(spec: &ProcessSpec<'_>) -> Result<Vec<Op>, Error> {
    let p = spec.process;
    let mut ops = Vec::new();
    if let Some(h) = spec.hostname {
        ops.push(Op::Hostname {
            name: cstring(h, "hostname")?,
        });
    }
    // The working directory is created (as root) if the image lacks it, as docker does.
    let cwd = container_path(Path::new("/"), p.cwd())?;
    let mut cur = std::path::PathBuf::from("/");
    for comp in cwd.components().skip(1) {
        cur.push(comp);
        ops.push(Op::Mkdir {
            path: cstring(cur.as_os_str().as_encoded_bytes(), "cwd")?,
            mode: 0o755,
        });
    }
    for r in p.rlimits().iter().flatten() {
        ops.push(Op::Rlimit {
            resource: rlimit_resource(r.typ()),
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    let nnp = p.no_new_privileges().unwrap_or(false);
    if let (Some(prog), false) = (spec.seccomp, nnp) {
        ops.push(Op::Seccomp(prog.to_vec()));
    }
    let c = p.capabilities().as_ref();
    let bounding = caps::mask(c.and_then(|c| c.bounding().as_ref()), spec.last_cap)?;
    for cap in 0..=spec.last_cap {
        if bounding & (1 << cap) == 0 {
            ops.push(Op::DropBounding(cap));
        }
    }
    let user = p.user();
    ops.push(Op::KeepCaps(true));
    // A single-id user namespace denies setgroups(2) (and maps no other group anyway).
    if !crate::rootless::single_id() {
        ops.push(Op::Groups(
            user.additional_gids().clone().unwrap_or_default(),
        ));
    }
    ops.push(Op::Gid(user.gid()));
    ops.push(Op::Uid(user.uid()));
    ops.push(Op::KeepCaps(false));
    ops.push(Op::Chdir {
        path: cstring(cwd.as_os_str().as_encoded_bytes(), "cwd")?,
    });
    if nnp {
        ops.push(Op::NoNewPrivs);
    }
    ops.push(Op::Capabilities {
        effective: caps::mask(c.and_then(|c| c.effective().as_ref()), spec.last_cap)?,
        permitted: caps::mask(c.and_then(|c| c.permitted().as_ref()), spec.last_cap)?,
        inheritable: caps::mask(c.and_then(|c| c.inheritable().as_ref()), spec.last_cap)?,
    });
    for cap in c.and_then(|c| c.ambient().as_ref()).into_iter().flatten() {
        ops.push(Op::Ambient(caps::number_of(cap)?));
    }
    ops.push(Op::Umask(user.umask().unwrap_or(0o022)));
    if let (Some(prog), true) = (spec.seccomp, nnp) {
        ops.push(Op::Seccomp(prog.to_vec()));
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::apply;
    use crate::syscall::RecordingSyscall;
    use oci_spec::runtime::{LinuxCapabilitiesBuilder, ProcessBuilder, UserBuilder};

    fn process(nnp: bool) -> Process {
        let set = caps::docker_default();
        ProcessBuilder::default()
            .cwd("/work/dir")
            .user(
                UserBuilder::default()
                    .uid(1000u32)
                    .gid(1000u32)
                    .additional_gids(vec![10u32])
                    .build()
                    .unwrap(),
            )
            .no_new_privileges(nnp)
            .capabilities(
                LinuxCapabilitiesBuilder::default()
                    .bounding(set.clone())
                    .effective(set.clone())
                    .permitted(set)
                    .inheritable(oci_spec::runtime::Capabilities::new())
                    .ambient(oci_spec::runtime::Capabilities::new())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    fn record(nnp: bool) -> Vec<String> {
        let p = process(nnp);
        let prog = [libc::sock_filter {
            code: 6,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        }];
        let spec = ProcessSpec {
            process: &p,
            hostname: Some("box"),
            last_cap: 40,
            seccomp: Some(&prog),
        };
        let mut sys = RecordingSyscall::default();
        apply(&process_ops(&spec).unwrap(), &mut sys).unwrap();
        sys.calls
    }

    #[test]
    fn drops_bounding_set_before_ids_and_sets_caps_after_then_seccomp_last() {
        let calls = record(true);
        let pos = |s: &str| {
            calls
                .iter()
                .position(|c| c == s)
                .unwrap_or_else(|| panic!("{s}: {calls:?}"))
        };
        assert_eq!(calls[0], "sethostname box");
        assert_eq!(&calls[1..3], ["mkdir /work 755", "mkdir /work/dir 755"]);
        // Docker's set keeps 14 of the 41 capabilities.
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.starts_with("drop_bounding"))
                .count(),
            41 - 14
        );
        assert!(pos("drop_bounding 21") < pos("keep_caps true"));
        assert!(pos("setgroups [10]") < pos("setgid 1000"));
        assert!(pos("setgid 1000") < pos("setuid 1000"));
        assert!(pos("setuid 1000") < pos("chdir /work/dir"));
        assert!(pos("no_new_privs") < pos("capset 0xa80425fb 0xa80425fb 0x0"));
        assert_eq!(calls.last().unwrap(), "seccomp 1 instructions");
    }

    #[test]
    fn without_no_new_privs_seccomp_is_loaded_while_still_privileged() {
        let calls = record(false);
        let seccomp = calls.iter().position(|c| c.starts_with("seccomp")).unwrap();
        let first_drop = calls
            .iter()
            .position(|c| c.starts_with("drop_bounding"))
            .unwrap();
        assert!(seccomp < first_drop);
        assert!(!calls.contains(&"no_new_privs".to_owned()));
    }
}
