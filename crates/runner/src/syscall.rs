//! The kernel seam: every call the container's setup makes (mount, pivot_root, unshare,
//! capabilities, seccomp, ids…) goes through [`Syscall`], with a real implementation
//! ([`LinuxSyscall`], raw libc, safe to use between `clone` and `exec`) and a recording one
//! ([`RecordingSyscall`]) so the order of operations is unit-tested without root.

use std::ffi::{CStr, c_int, c_ulong};

use nix::errno::Errno;
use nix::libc;

/// What a path is, as far as masking it needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory (masked with a read-only tmpfs).
    Directory,
    /// Anything else (masked by bind-mounting `/dev/null` over it).
    Other,
}

/// The kernel operations a container's setup performs.
///
/// Implementations used in the child between `clone` and `exec` must not allocate.
pub trait Syscall {
    /// `mount(2)`.
    fn mount(
        &mut self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> Result<(), Errno>;
    /// `umount2(2)`.
    fn umount(&mut self, target: &CStr, flags: c_int) -> Result<(), Errno>;
    /// `mkdir(2)`.
    fn mkdir(&mut self, path: &CStr, mode: u32) -> Result<(), Errno>;
    /// Create an empty regular file (a bind-mount target) if it does not exist.
    fn create_file(&mut self, path: &CStr) -> Result<(), Errno>;
    /// `mknod(2)`.
    fn mknod(&mut self, path: &CStr, mode: u32, dev: u64) -> Result<(), Errno>;
    /// `chmod(2)`, used after `mknod` because the umask applies to it.
    fn chmod(&mut self, path: &CStr, mode: u32) -> Result<(), Errno>;
    /// `symlink(2)`.
    fn symlink(&mut self, target: &CStr, link: &CStr) -> Result<(), Errno>;
    /// `chdir(2)`.
    fn chdir(&mut self, path: &CStr) -> Result<(), Errno>;
    /// `pivot_root(2)`.
    fn pivot_root(&mut self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno>;
    /// `sethostname(2)`.
    fn sethostname(&mut self, name: &CStr) -> Result<(), Errno>;
    /// `stat(2)` reduced to what masking needs.
    fn file_kind(&mut self, path: &CStr) -> Result<FileKind, Errno>;
    /// `unshare(2)`.
    fn unshare(&mut self, flags: c_int) -> Result<(), Errno>;
    /// `setns(2)`.
    fn setns(&mut self, fd: c_int, nstype: c_int) -> Result<(), Errno>;
    /// `setrlimit(2)`.
    fn setrlimit(&mut self, resource: u32, soft: u64, hard: u64) -> Result<(), Errno>;
    /// `setgroups(2)`.
    fn setgroups(&mut self, groups: &[u32]) -> Result<(), Errno>;
    /// `setresgid(2)` with all three ids equal.
    fn setgid(&mut self, gid: u32) -> Result<(), Errno>;
    /// `setresuid(2)` with all three ids equal.
    fn setuid(&mut self, uid: u32) -> Result<(), Errno>;
    /// `prctl(PR_SET_KEEPCAPS)`.
    fn keep_caps(&mut self, keep: bool) -> Result<(), Errno>;
    /// `prctl(PR_CAPBSET_DROP)`.
    fn drop_bounding(&mut self, cap: u32) -> Result<(), Errno>;
    /// `capset(2)` with 64-bit masks of effective, permitted and inheritable capabilities.
    fn capset(&mut self, effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno>;
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE)`.
    fn raise_ambient(&mut self, cap: u32) -> Result<(), Errno>;
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    fn no_new_privs(&mut self) -> Result<(), Errno>;
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` with a classic BPF program.
    fn seccomp(&mut self, program: &[libc::sock_filter]) -> Result<(), Errno>;
    /// `umask(2)`.
    fn umask(&mut self, mask: u32);
    /// Bring the loopback interface of the current network namespace up.
    fn loopback_up(&mut self) -> Result<(), Errno>;
    /// Allocate a terminal in the container's `/dev/pts`: its slave side (owned by `uid:gid`,
    /// `rows`×`cols`) becomes fds 0, 1 and 2; its master side is sent over `socket`.
    fn console(
        &mut self,
        socket: c_int,
        uid: u32,
        gid: u32,
        rows: u16,
        cols: u16,
    ) -> Result<(), Errno>;
}

/// The real kernel, through raw libc calls (no allocation, safe after `clone`).
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

fn check(ret: c_int) -> Result<(), Errno> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn ptr_or_null(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

impl Syscall for LinuxSyscall {
    fn mount(
        &mut self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> Result<(), Errno> {
        // SAFETY: all pointers are NUL-terminated strings or null, as mount(2) accepts.
        check(unsafe {
            libc::mount(
                ptr_or_null(source),
                target.as_ptr(),
                ptr_or_null(fstype),
                flags,
                ptr_or_null(data).cast(),
            )
        })
    }

    fn umount(&mut self, target: &CStr, flags: c_int) -> Result<(), Errno> {
        // SAFETY: target is a valid C string.
        check(unsafe { libc::umount2(target.as_ptr(), flags) })
    }

    fn mkdir(&mut self, path: &CStr, mode: u32) -> Result<(), Errno> {
        // SAFETY: path is a valid C string.
        check(unsafe { libc::mkdir(path.as_ptr(), mode) })
    }

    fn create_file(&mut self, path: &CStr) -> Result<(), Errno> {
        // O_EXCL: an existing file is left alone. Opening it for writing would make overlayfs
        // copy it up, and the image's own /etc/hosts or /etc/resolv.conf would then land in
        // a RUN step's layer.
        // SAFETY: path is a valid C string; the fd is closed right away.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd < 0 {
            let err = Errno::last();
            return if err == Errno::EEXIST {
                Ok(())
            } else {
                Err(err)
            };
        }
        // SAFETY: fd was just opened by us.
        unsafe { libc::close(fd) };
        Ok(())
    }

    fn mknod(&mut self, path: &CStr, mode: u32, dev: u64) -> Result<(), Errno> {
        // SAFETY: path is a valid C string.
        check(unsafe { libc::mknod(path.as_ptr(), mode, dev) })
    }

    fn chmod(&mut self, path: &CStr, mode: u32) -> Result<(), Errno> {
        // SAFETY: path is a valid C string.
        check(unsafe { libc::chmod(path.as_ptr(), mode) })
    }

    fn symlink(&mut self, target: &CStr, link: &CStr) -> Result<(), Errno> {
        // SAFETY: both are valid C strings.
        check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) })
    }

    fn chdir(&mut self, path: &CStr) -> Result<(), Errno> {
        // SAFETY: path is a valid C string.
        check(unsafe { libc::chdir(path.as_ptr()) })
    }

    fn pivot_root(&mut self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
        // SAFETY: both are valid C strings; pivot_root has no libc wrapper.
        let ret =
            unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    fn sethostname(&mut self, name: &CStr) -> Result<(), Errno> {
        // SAFETY: name points to name.count_bytes() valid bytes.
        check(unsafe { libc::sethostname(name.as_ptr(), name.count_bytes()) })
    }

    fn file_kind(&mut self, path: &CStr) -> Result<FileKind, Errno> {
        // SAFETY: an all-zero stat is a valid value to be overwritten by stat(2).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: path is a valid C string and st a valid out pointer.
        check(unsafe { libc::stat(path.as_ptr(), &mut st) })?;
        Ok(if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            FileKind::Directory
        } else {
            FileKind::Other
        })
    }

    fn unshare(&mut self, flags: c_int) -> Result<(), Errno> {
        // SAFETY: unshare takes plain flags.
        check(unsafe { libc::unshare(flags) })
    }

    fn setns(&mut self, fd: c_int, nstype: c_int) -> Result<(), Errno> {
        // SAFETY: setns on a descriptor the parent opened.
        check(unsafe { libc::setns(fd, nstype) })
    }

    fn setrlimit(&mut self, resource: u32, soft: u64, hard: u64) -> Result<(), Errno> {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: lim is a valid rlimit.
        check(unsafe { libc::setrlimit(resource, &lim) })
    }

    fn setgroups(&mut self, groups: &[u32]) -> Result<(), Errno> {
        // SAFETY: the raw syscall (not glibc's, which signals every thread) with a valid array.
        let ret = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    fn setgid(&mut self, gid: u32) -> Result<(), Errno> {
        // SAFETY: raw syscall so only this thread (the only one after clone) changes.
        let ret = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    fn setuid(&mut self, uid: u32) -> Result<(), Errno> {
        // SAFETY: as for setgid.
        let ret = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    fn keep_caps(&mut self, keep: bool) -> Result<(), Errno> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, c_ulong::from(keep), 0, 0, 0) })
    }

    fn drop_bounding(&mut self, cap: u32) -> Result<(), Errno> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c_ulong::from(cap), 0, 0, 0) })
    }

    fn capset(&mut self, effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: c_int,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        let header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let split = |m: u64| (m as u32, (m >> 32) as u32);
        let (e0, e1) = split(effective);
        let (p0, p1) = split(permitted);
        let (i0, i1) = split(inheritable);
        let data = [
            Data {
                effective: e0,
                permitted: p0,
                inheritable: i0,
            },
            Data {
                effective: e1,
                permitted: p1,
                inheritable: i1,
            },
        ];
        // SAFETY: header and a two-element data array as capset(2) version 3 expects.
        let ret = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    fn raise_ambient(&mut self, cap: u32) -> Result<(), Errno> {
        // SAFETY: prctl with integer arguments.
        check(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as c_ulong,
                c_ulong::from(cap),
                0,
                0,
            )
        })
    }

    fn no_new_privs(&mut self) -> Result<(), Errno> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
    }

    fn seccomp(&mut self, program: &[libc::sock_filter]) -> Result<(), Errno> {
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: prog points to `len` valid instructions that outlive the call.
        let ret =
            unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    fn umask(&mut self, mask: u32) {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(mask) };
    }

    fn loopback_up(&mut self) -> Result<(), Errno> {
        // SAFETY: a datagram socket used only for the interface ioctls, then closed; the
        // ifreq is zeroed and holds the NUL-terminated name "lo".
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(Errno::last());
            }
            let mut req: libc::ifreq = std::mem::zeroed();
            req.ifr_name[0] = b'l' as libc::c_char;
            req.ifr_name[1] = b'o' as libc::c_char;
            let mut ret = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
            if ret == 0 {
                req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
                ret = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
            }
            let err = Errno::last();
            libc::close(fd);
            if ret < 0 { Err(err) } else { Ok(()) }
        }
    }

    fn console(
        &mut self,
        socket: c_int,
        uid: u32,
        gid: u32,
        rows: u16,
        cols: u16,
    ) -> Result<(), Errno> {
        // SAFETY: open/ioctl/sendmsg/dup2 on descriptors we own; the control buffer is a
        // suitably aligned stack array large enough for one descriptor.
        unsafe {
            let master = libc::open(
                c"/dev/ptmx".as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            );
            if master < 0 {
                return Err(Errno::last());
            }
            let fail = |master: c_int| {
                let e = Errno::last();
                libc::close(master);
                Err(e)
            };
            let unlock: c_int = 0;
            if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) < 0 {
                return fail(master);
            }
            let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
            if slave < 0 {
                return fail(master);
            }
            if libc::fchown(slave, uid, gid) < 0 {
                libc::close(slave);
                return fail(master);
            }
            if rows > 0 && cols > 0 {
                let ws = libc::winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                libc::ioctl(master, libc::TIOCSWINSZ, &ws);
            }
            #[repr(C, align(8))]
            struct Control([u8; 64]);
            let mut control = Control([0; 64]);
            let mut byte = 0u8;
            let mut iov = libc::iovec {
                iov_base: (&mut byte as *mut u8).cast(),
                iov_len: 1,
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), master);
            if libc::sendmsg(socket, &msg, 0) < 0 {
                libc::close(slave);
                return fail(master);
            }
            libc::close(master);
            for target in 0..3 {
                if libc::dup2(slave, target) < 0 {
                    return Err(Errno::last());
                }
            }
            libc::close(slave);
            Ok(())
        }
    }
}

/// Records every call as a line of text and answers from a table of simulated results,
/// so tests can assert on the exact sequence of kernel operations.
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    /// One line per call, in order, e.g. `mount proc /merged/proc proc 0xe none`.
    pub calls: Vec<String>,
    /// Paths (as given) that `file_kind` reports as directories.
    pub directories: Vec<String>,
    /// Paths (as given) for which `file_kind` and `mount` fail with `ENOENT`.
    pub missing: Vec<String>,
    /// Paths that already exist: `mkdir` fails on them with `EEXIST`.
    pub existing: Vec<String>,
}

fn show(s: Option<&CStr>) -> String {
    s.map_or_else(|| "none".to_owned(), |s| s.to_string_lossy().into_owned())
}

impl RecordingSyscall {
    fn is(&self, list: &[String], path: &CStr) -> bool {
        let p = path.to_string_lossy();
        list.iter().any(|m| *m == p)
    }
}

impl Syscall for RecordingSyscall {
    fn mount(
        &mut self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> Result<(), Errno> {
        self.calls.push(format!(
            "mount {} {} {} {:#x} {}",
            show(source),
            show(Some(target)),
            show(fstype),
            flags,
            show(data)
        ));
        if self.is(&self.missing, target) {
            Err(Errno::ENOENT)
        } else {
            Ok(())
        }
    }
    fn umount(&mut self, target: &CStr, flags: c_int) -> Result<(), Errno> {
        self.calls
            .push(format!("umount {} {flags:#x}", show(Some(target))));
        Ok(())
    }
    fn mkdir(&mut self, path: &CStr, mode: u32) -> Result<(), Errno> {
        self.calls
            .push(format!("mkdir {} {mode:o}", show(Some(path))));
        if self.is(&self.existing, path) {
            Err(Errno::EEXIST)
        } else {
            Ok(())
        }
    }
    fn create_file(&mut self, path: &CStr) -> Result<(), Errno> {
        self.calls.push(format!("create {}", show(Some(path))));
        Ok(())
    }
    fn mknod(&mut self, path: &CStr, mode: u32, dev: u64) -> Result<(), Errno> {
        self.calls
            .push(format!("mknod {} {mode:o} {dev:#x}", show(Some(path))));
        Ok(())
    }
    fn chmod(&mut self, path: &CStr, mode: u32) -> Result<(), Errno> {
        self.calls
            .push(format!("chmod {} {mode:o}", show(Some(path))));
        Ok(())
    }
    fn symlink(&mut self, target: &CStr, link: &CStr) -> Result<(), Errno> {
        self.calls.push(format!(
            "symlink {} {}",
            show(Some(target)),
            show(Some(link))
        ));
        Ok(())
    }
    fn chdir(&mut self, path: &CStr) -> Result<(), Errno> {
        self.calls.push(format!("chdir {}", show(Some(path))));
        Ok(())
    }
    fn pivot_root(&mut self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
        self.calls.push(format!(
            "pivot_root {} {}",
            show(Some(new_root)),
            show(Some(put_old))
        ));
        Ok(())
    }
    fn sethostname(&mut self, name: &CStr) -> Result<(), Errno> {
        self.calls.push(format!("sethostname {}", show(Some(name))));
        Ok(())
    }
    fn file_kind(&mut self, path: &CStr) -> Result<FileKind, Errno> {
        self.calls.push(format!("stat {}", show(Some(path))));
        if self.is(&self.missing, path) {
            Err(Errno::ENOENT)
        } else if self.is(&self.directories, path) {
            Ok(FileKind::Directory)
        } else {
            Ok(FileKind::Other)
        }
    }
    fn unshare(&mut self, flags: c_int) -> Result<(), Errno> {
        self.calls.push(format!("unshare {flags:#x}"));
        Ok(())
    }
    fn setns(&mut self, fd: c_int, nstype: c_int) -> Result<(), Errno> {
        self.calls.push(format!("setns {fd} {nstype:#x}"));
        Ok(())
    }
    fn setrlimit(&mut self, resource: u32, soft: u64, hard: u64) -> Result<(), Errno> {
        self.calls
            .push(format!("setrlimit {resource} {soft} {hard}"));
        Ok(())
    }
    fn setgroups(&mut self, groups: &[u32]) -> Result<(), Errno> {
        self.calls.push(format!("setgroups {groups:?}"));
        Ok(())
    }
    fn setgid(&mut self, gid: u32) -> Result<(), Errno> {
        self.calls.push(format!("setgid {gid}"));
        Ok(())
    }
    fn setuid(&mut self, uid: u32) -> Result<(), Errno> {
        self.calls.push(format!("setuid {uid}"));
        Ok(())
    }
    fn keep_caps(&mut self, keep: bool) -> Result<(), Errno> {
        self.calls.push(format!("keep_caps {keep}"));
        Ok(())
    }
    fn drop_bounding(&mut self, cap: u32) -> Result<(), Errno> {
        self.calls.push(format!("drop_bounding {cap}"));
        Ok(())
    }
    fn capset(&mut self, effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
        self.calls.push(format!(
            "capset {effective:#x} {permitted:#x} {inheritable:#x}"
        ));
        Ok(())
    }
    fn raise_ambient(&mut self, cap: u32) -> Result<(), Errno> {
        self.calls.push(format!("raise_ambient {cap}"));
        Ok(())
    }
    fn no_new_privs(&mut self) -> Result<(), Errno> {
        self.calls.push("no_new_privs".to_owned());
        Ok(())
    }
    fn seccomp(&mut self, program: &[libc::sock_filter]) -> Result<(), Errno> {
        self.calls
            .push(format!("seccomp {} instructions", program.len()));
        Ok(())
    }
    fn umask(&mut self, mask: u32) {
        self.calls.push(format!("umask {mask:o}"));
    }
    fn loopback_up(&mut self) -> Result<(), Errno> {
        self.calls.push("loopback_up".to_owned());
        Ok(())
    }
    fn console(
        &mut self,
        socket: c_int,
        uid: u32,
        gid: u32,
        rows: u16,
        cols: u16,
    ) -> Result<(), Errno> {
        self.calls
            .push(format!("console {socket} {uid}:{gid} {rows}x{cols}"));
        Ok(())
    }
}
