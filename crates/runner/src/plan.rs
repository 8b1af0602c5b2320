//! A container's setup as data: the ordered list of kernel operations ([`Op`]) the child
//! performs between `clone` and `exec`, built in the parent (where allocating is safe) and
//! applied in the child through a [`Syscall`] with [`apply`], which never allocates.

use std::ffi::{CString, c_int, c_ulong};

use nix::errno::Errno;
use nix::libc;

use crate::syscall::{FileKind, Syscall};

/// One step of a container's setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `mount(2)`; a failure with `ENOENT` is ignored when `optional`.
    Mount {
        /// Mount source (`None` for remounts and propagation changes).
        source: Option<CString>,
        /// Mount point.
        target: CString,
        /// Filesystem type.
        fstype: Option<CString>,
        /// `MS_*` flags.
        flags: c_ulong,
        /// Filesystem-specific options.
        data: Option<CString>,
    },
    /// `umount2(2)`.
    Umount {
        /// Mount point.
        target: CString,
        /// `MNT_*` flags.
        flags: c_int,
    },
    /// `mkdir(2)`, an existing directory being fine.
    Mkdir {
        /// Directory to create.
        path: CString,
        /// Permission bits.
        mode: u32,
    },
    /// Create an empty file to bind-mount a file over.
    CreateFile {
        /// File to create.
        path: CString,
    },
    /// A device node: `mknod`, or a bind mount of the host's node where mknod is refused.
    Device {
        /// Node to create inside the container's `/dev`.
        path: CString,
        /// Host node to bind-mount when `mknod` fails with `EPERM`.
        host: CString,
        /// Permission bits plus `S_IFCHR`.
        mode: u32,
        /// `makedev(major, minor)`.
        dev: u64,
    },
    /// `symlink(2)`, an existing link being fine.
    Symlink {
        /// What the link points to.
        target: CString,
        /// The link itself.
        link: CString,
    },
    /// `chdir(2)`.
    Chdir {
        /// New working directory.
        path: CString,
    },
    /// `pivot_root(".", ".")` in the current directory, then detach the old root.
    PivotRoot,
    /// Hide a path: a read-only tmpfs over a directory, `/dev/null` over anything else.
    Mask {
        /// Path inside the container; missing paths are skipped.
        path: CString,
    },
    /// Make a path read-only with a bind mount onto itself; missing paths are skipped.
    ReadOnly {
        /// Path inside the container.
        path: CString,
    },
    /// `sethostname(2)`.
    Hostname {
        /// The new host name.
        name: CString,
    },
    /// `unshare(2)`.
    Unshare {
        /// `CLONE_NEW*` flags.
        flags: c_int,
    },
    /// `setns(2)`: join an existing namespace (for exec in a running container).
    Setns {
        /// An open `/proc/PID/ns/*` descriptor.
        fd: c_int,
        /// Its `CLONE_NEW*` type.
        nstype: c_int,
    },
    /// `setrlimit(2)`.
    Rlimit {
        /// `RLIMIT_*` resource.
        resource: u32,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// `prctl(PR_SET_KEEPCAPS)`.
    KeepCaps(bool),
    /// `setgroups(2)`.
    Groups(Vec<u32>),
    /// `setresgid(2)`.
    Gid(u32),
    /// `setresuid(2)`.
    Uid(u32),
    /// Drop one capability from the bounding set.
    DropBounding(u32),
    /// `capset(2)`.
    Capabilities {
        /// Effective set mask.
        effective: u64,
        /// Permitted set mask.
        permitted: u64,
        /// Inheritable set mask.
        inheritable: u64,
    },
    /// Raise one ambient capability.
    Ambient(u32),
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs,
    /// Load a seccomp BPF filter.
    Seccomp(Vec<libc::sock_filter>),
    /// `umask(2)`.
    Umask(u32),
    /// Bring up `lo` in the container's own network namespace.
    LoopbackUp,
    /// Allocate the container's terminal in its own `/dev/pts` and send the master side to
    /// the parent over a socket.
    Console {
        /// The child's end of the socket pair.
        socket: c_int,
        /// Owner of the terminal (the process's user).
        uid: u32,
        /// Group of the terminal.
        gid: u32,
        /// Initial rows.
        rows: u16,
        /// Initial columns.
        cols: u16,
    },
}

/// The index of the failed operation and the kernel's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Index into the plan.
    pub index: usize,
    /// The error the kernel returned.
    pub errno: Errno,
}

fn ok_if(res: Result<(), Errno>, allowed: Errno) -> Result<(), Errno> {
    match res {
        Err(e) if e == allowed => Ok(()),
        other => other,
    }
}

const DEV_NULL: &std::ffi::CStr = c"/dev/null";
const TMPFS: &std::ffi::CStr = c"tmpfs";
const DOT: &std::ffi::CStr = c".";
const SLASH: &std::ffi::CStr = c"/";

fn apply_one<S: Syscall>(op: &Op, sys: &mut S) -> Result<(), Errno> {
    match op {
        Op::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => sys.mount(
            source.as_deref(),
            target,
            fstype.as_deref(),
            *flags,
            data.as_deref(),
        ),
        Op::Umount { target, flags } => sys.umount(target, *flags),
        Op::Mkdir { path, mode } => ok_if(sys.mkdir(path, *mode), Errno::EEXIST),
        Op::CreateFile { path } => sys.create_file(path),
        Op::Device {
            path,
            host,
            mode,
            dev,
        } => match sys.mknod(path, *mode, *dev) {
            Ok(()) => sys.chmod(path, *mode & 0o7777),
            Err(Errno::EPERM) => {
                sys.create_file(path)?;
                sys.mount(Some(host), path, None, libc::MS_BIND, None)
            }
            Err(e) => Err(e),
        },
        Op::Symlink { target, link } => ok_if(sys.symlink(target, link), Errno::EEXIST),
        Op::Chdir { path } => sys.chdir(path),
        Op::PivotRoot => {
            sys.pivot_root(DOT, DOT)?;
            // The old root is stacked under the new one at "/": detach it.
            sys.umount(DOT, libc::MNT_DETACH)?;
            sys.chdir(SLASH)
        }
        Op::Mask { path } => match sys.file_kind(path) {
            Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e),
            Ok(FileKind::Directory) => {
                sys.mount(Some(TMPFS), path, Some(TMPFS), libc::MS_RDONLY, None)
            }
            Ok(FileKind::Other) => sys.mount(Some(DEV_NULL), path, None, libc::MS_BIND, None),
        },
        Op::ReadOnly { path } => match sys.file_kind(path) {
            Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => {
                sys.mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None)?;
                let flags = libc::MS_BIND
                    | libc::MS_REMOUNT
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC
                    | libc::MS_REC;
                sys.mount(Some(path), path, None, flags, None)
            }
        },
        Op::Hostname { name } => sys.sethostname(name),
        Op::Unshare { flags } => sys.unshare(*flags),
        Op::Setns { fd, nstype } => sys.setns(*fd, *nstype),
        Op::Rlimit {
            resource,
            soft,
            hard,
        } => sys.setrlimit(*resource, *soft, *hard),
        Op::KeepCaps(keep) => sys.keep_caps(*keep),
        Op::Groups(groups) => sys.setgroups(groups),
        Op::Gid(gid) => sys.setgid(*gid),
        Op::Uid(uid) => sys.setuid(*uid),
        Op::DropBounding(cap) => ok_if(sys.drop_bounding(*cap), Errno::EINVAL),
        Op::Capabilities {
            effective,
            permitted,
            inheritable,
        } => sys.capset(*effective, *permitted, *inheritable),
        Op::Ambient(cap) => sys.raise_ambient(*cap),
        Op::NoNewPrivs => sys.no_new_privs(),
        Op::Seccomp(program) => sys.seccomp(program),
        Op::Umask(mask) => {
            sys.umask(*mask);
            Ok(())
        }
        Op::LoopbackUp => sys.loopback_up(),
        Op::Console {
            socket,
            uid,
            gid,
            rows,
            cols,
        } => sys.console(*socket, *uid, *gid, *rows, *cols),
    }
}

/// Apply a plan in order, stopping at the first failure. Does not allocate.
pub fn apply<S: Syscall>(ops: &[Op], sys: &mut S) -> Result<(), Failure> {
    for (index, op) in ops.iter().enumerate() {
        apply_one(op, sys).map_err(|errno| Failure { index, errno })?;
    }
    Ok(())
}

impl Op {
    /// A one-line description for error messages, e.g. `mount proc on /proc`.
    pub fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Op::Mount {
                source,
                target,
                fstype,
                ..
            } => format!(
                "mount {} ({}) on {}",
                source.as_ref().map_or_else(|| "-".to_owned(), s),
                fstype.as_ref().map_or_else(|| "bind/remount".to_owned(), s),
                s(target)
            ),
            Op::Umount { target, .. } => format!("unmount {}", s(target)),
            Op::Mkdir { path, .. } => format!("create directory {}", s(path)),
            Op::CreateFile { path } => format!("create mount point {}", s(path)),
            Op::Device { path, .. } => format!("create device {}", s(path)),
            Op::Symlink { link, .. } => format!("create symlink {}", s(link)),
            Op::Chdir { path } => format!("change directory to {}", s(path)),
            Op::PivotRoot => "pivot_root into the container's root filesystem".to_owned(),
            Op::Mask { path } => format!("mask {}", s(path)),
            Op::ReadOnly { path } => format!("make {} read-only", s(path)),
            Op::Hostname { name } => format!("set hostname {}", s(name)),
            Op::Unshare { flags } => format!("unshare namespaces {flags:#x}"),
            Op::Setns { nstype, .. } => format!("join the container's namespace {nstype:#x}"),
            Op::Rlimit { resource, .. } => format!("set rlimit {resource}"),
            Op::KeepCaps(_) => "keep capabilities across setuid".to_owned(),
            Op::Groups(g) => format!("set supplementary groups {g:?}"),
            Op::Gid(g) => format!("set group id {g}"),
            Op::Uid(u) => format!("set user id {u}"),
            Op::DropBounding(c) => format!("drop capability {c} from the bounding set"),
            Op::Capabilities { .. } => {
                "set capabilities (each must be in rbuild's own bounding set)".to_owned()
            }
            Op::Ambient(c) => format!("raise ambient capability {c}"),
            Op::NoNewPrivs => "set no_new_privs".to_owned(),
            Op::Seccomp(_) => "load the seccomp filter".to_owned(),
            Op::Umask(m) => format!("set umask {m:o}"),
            Op::LoopbackUp => "bring the loopback interface up".to_owned(),
            Op::Console { .. } => "allocate the container's terminal".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::RecordingSyscall;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn mask_uses_tmpfs_for_directories_and_dev_null_for_files_and_skips_missing() {
        let ops = vec![
            Op::Mask {
                path: c("/proc/acpi"),
            },
            Op::Mask {
                path: c("/proc/kcore"),
            },
            Op::Mask {
                path: c("/proc/nothere"),
            },
        ];
        let mut sys = RecordingSyscall {
            directories: vec!["/proc/acpi".into()],
            missing: vec!["/proc/nothere".into()],
            ..Default::default()
        };
        apply(&ops, &mut sys).unwrap();
        assert_eq!(
            sys.calls,
            [
                "stat /proc/acpi",
                "mount tmpfs /proc/acpi tmpfs 0x1 none",
                "stat /proc/kcore",
                "mount /dev/null /proc/kcore none 0x1000 none",
                "stat /proc/nothere",
            ]
        );
    }

    #[test]
    fn apply_stops_at_first_failure_and_names_it() {
        let ops = vec![
            Op::Hostname { name: c("box") },
            Op::Mount {
                source: Some(c("proc")),
                target: c("/m/proc"),
                fstype: Some(c("proc")),
                flags: 0,
                data: None,
            },
            Op::Hostname { name: c("never") },
        ];
        let mut sys = RecordingSyscall {
            missing: vec!["/m/proc".into()],
            ..Default::default()
        };
        let failure = apply(&ops, &mut sys).unwrap_err();
        assert_eq!(
            failure,
            Failure {
                index: 1,
                errno: Errno::ENOENT
            }
        );
        assert_eq!(sys.calls.len(), 2);
        assert_eq!(
            ops[failure.index].describe(),
            "mount proc (proc) on /m/proc"
        );
    }

    #[test]
    fn mkdir_of_existing_directory_is_fine() {
        let ops = vec![Op::Mkdir {
            path: c("/m"),
            mode: 0o755,
        }];
        let mut sys = RecordingSyscall {
            existing: vec!["/m".into()],
            ..Default::default()
        };
        apply(&ops, &mut sys).unwrap();
    }

    #[test]
    fn pivot_root_detaches_the_old_root() {
        let mut sys = RecordingSyscall::default();
        apply(&[Op::PivotRoot], &mut sys).unwrap();
        assert_eq!(sys.calls, ["pivot_root . .", "umount . 0x2", "chdir /"]);
    }
}
