//! Chroot isolation (`rbuild build --isolation chroot`), for builds where namespaces cannot be
//! created — inside a container started without `--privileged`, under docker's default
//! seccomp profile and capabilities — as buildah's chroot isolation does.
//!
//! A RUN step gets a copy of its stage's files (the layers copied bottom first, whiteouts
//! applied: no overlayfs, which needs a mount), and its command runs `chroot`ed into that copy
//! with the caller's capabilities, in the caller's namespaces: it shares their processes,
//! network, IPC, hostname and cgroups, and has no `/proc` unless the stage has one. The step's
//! changes are found by comparing the copy with a record of it taken before the command ran
//! (inode, change time and metadata of every entry), and written as an overlay upper
//! directory (whiteouts as character devices 0/0) that the store turns into the layer.

mod diff;

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::libc;

use crate::container::{cstrings, exec_candidates, pointers};
use crate::error::Error;
use crate::user::Identity;

/// What chroot isolation does not isolate, for the front end to say once.
pub const LIMITS: &str = "RUN steps share rbuild's own processes, network, IPC, hostname and cgroups (no namespaces), see no /proc, and each starts from a copy of its stage's files";

/// Whether this process can create the namespaces a container needs (a mount, PID, UTS and
/// IPC namespace): probed with a child cloned into new ones. False inside an unprivileged
/// container, where chroot isolation is the way to run RUN steps.
pub fn namespaces_available() -> bool {
    let flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    // SAFETY: a fork-like clone whose child exits at once.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if pid == 0 {
        // SAFETY: leaving the probe child without running anything of the parent's.
        unsafe { libc::_exit(0) }
    }
    if pid < 0 {
        return false;
    }
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
    true
}

/// One RUN step under chroot isolation.
#[derive(Debug)]
pub struct ChrootStep<'a> {
    /// The stage's layers (overlay form, as the store unpacks them), bottom first.
    pub lowers: &'a [PathBuf],
    /// A fresh directory for the step: `rootfs` (the copy) and `upper` (its changes) go here.
    pub dir: &'a Path,
    /// argv.
    pub args: &'a [String],
    /// `KEY=VALUE` environment.
    pub env: &'a [String],
    /// Working directory inside (created when missing).
    pub cwd: &'a str,
    /// Who runs it (root when `None`).
    pub user: Option<&'a Identity>,
    /// The command's standard output and error.
    pub output: OwnedFd,
}

/// Device nodes a command expects in `/dev`, made in the copy when the stage lacks them (and
/// removed again, so they never reach the layer).
const DEVICES: [(&str, u32, u32); 5] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path)(e)
}

/// Run `step`: returns the command's exit status (128+N for a signal) and, when it is 0, the
/// upper directory holding its changes.
pub fn run(step: &ChrootStep<'_>) -> Result<(i32, Option<PathBuf>), Error> {
    let rootfs = step.dir.join("rootfs");
    crate::copy::copy_layers(step.lowers, &rootfs)?;
    let before = diff::scan(&rootfs)?;
    // What the command needs that the stage may lack: device nodes, the caller's DNS and
    // hosts files, the working directory. Made after the record, undone before the diff.
    let mut made: Vec<PathBuf> = Vec::new();
    let dev = rootfs.join("dev");
    let dev_times = fs::symlink_metadata(&dev).ok();
    if dev_times.is_none() {
        fs::create_dir_all(&dev).map_err(io(&dev))?;
        made.push(dev.clone());
    }
    for (name, major, minor) in DEVICES {
        let p = dev.join(name);
        if fs::symlink_metadata(&p).is_err() {
            let c = CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
            // SAFETY: mknod on a NUL-terminated path.
            let r = unsafe {
                libc::mknod(
                    c.as_ptr(),
                    libc::S_IFCHR | 0o666,
                    libc::makedev(major, minor),
                )
            };
            if r == 0 {
                let _ =
                    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o666));
                made.push(p);
            }
        }
    }
    let etc = rootfs.join("etc");
    let etc_times = fs::symlink_metadata(&etc).ok();
    for name in ["resolv.conf", "hosts"] {
        let p = etc.join(name);
        let host = Path::new("/etc").join(name);
        if fs::symlink_metadata(&p).is_err() && etc.is_dir() && fs::copy(&host, &p).is_ok() {
            made.push(p);
        }
    }
    let cwd = rootfs.join(step.cwd.trim_start_matches('/'));
    if !cwd.exists() {
        fs::create_dir_all(&cwd).map_err(io(&cwd))?;
    }
    let status = spawn_and_wait(&rootfs, step)?;
    for p in made.iter().rev() {
        let _ = if p.is_dir() {
            fs::remove_dir(p)
        } else {
            fs::remove_file(p)
        };
    }
    // Adding and removing those entries touched their directories' times: restore them.
    for (dir, meta) in [(&dev, dev_times), (&etc, etc_times)] {
        if let Some(m) = meta {
            diff::restore_times(dir, &m);
        }
    }
    if status != 0 {
        return Ok((status, None));
    }
    let after = diff::scan(&rootfs)?;
    let upper = step.dir.join("upper");
    diff::write_upper(&rootfs, &before, &after, &upper)?;
    Ok((0, Some(upper)))
}

/// Fork, chroot, change identity and exec; wait for the command.
fn spawn_and_wait(rootfs: &Path, step: &ChrootStep<'_>) -> Result<i32, Error> {
    let arg0 = step
        .args
        .first()
        .ok_or_else(|| Error::InvalidSpec("the process has no command".into()))?;
    let candidates = exec_candidates(arg0, step.env)?;
    let argv_c = cstrings(step.args, "an argument")?;
    let env_c = cstrings(step.env, "an environment variable")?;
    let argv = pointers(&argv_c);
    let envp = pointers(&env_c);
    let root_c = CString::new(rootfs.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidSpec("rootfs path contains a NUL byte".into()))?;
    let cwd_c = CString::new(if step.cwd.is_empty() { "/" } else { step.cwd })
        .map_err(|_| Error::InvalidSpec("working directory contains a NUL byte".into()))?;
    let (uid, gid, groups) = step
        .user
        .map(|u| (u.uid, u.gid, u.additional_gids.clone()))
        .unwrap_or((0, 0, Vec::new()));
    let groups: Vec<libc::gid_t> = groups;
    let null = fs::File::open("/dev/null").map_err(io(Path::new("/dev/null")))?;
    let (err_r, err_w) = crate::container::pipe()?;
    let out = step.output.as_raw_fd();
    // SAFETY: the child only makes raw system calls on memory prepared before the fork and
    // ends in execve or _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            let fail = |what: u8| -> ! {
                let msg = [what, Errno::last_raw() as u8];
                libc::write(err_w.as_raw_fd(), msg.as_ptr().cast(), 2);
                libc::_exit(125)
            };
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(out, 1);
            libc::dup2(out, 2);
            if libc::chroot(root_c.as_ptr()) != 0 {
                fail(1);
            }
            if libc::chdir(cwd_c.as_ptr()) != 0 {
                fail(2);
            }
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0 && !groups.is_empty() {
                fail(3);
            }
            if libc::setresgid(gid, gid, gid) != 0 {
                fail(3);
            }
            if libc::setresuid(uid, uid, uid) != 0 {
                fail(3);
            }
            let mut last = libc::ENOENT;
            for c in &candidates {
                libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr());
                let e = Errno::last_raw();
                if e != libc::ENOENT {
                    last = e;
                }
            }
            let msg = [4u8, last as u8];
            libc::write(err_w.as_raw_fd(), msg.as_ptr().cast(), 2);
            libc::_exit(if last == libc::ENOENT { 127 } else { 126 })
        }
    }
    if pid < 0 {
        return Err(Error::Sys {
            call: "fork",
            errno: Errno::last(),
        });
    }
    drop(err_w);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 && Errno::last() == Errno::EINTR {}
    let mut msg = [0u8; 2];
    let got = nix::unistd::read(&err_r, &mut msg).unwrap_or(0);
    if got == 2 {
        let errno = Errno::from_raw(i32::from(msg[1]));
        return Err(match msg[0] {
            1 => Error::Setup {
                step: format!("chroot into {}", rootfs.display()),
                errno,
            },
            2 => Error::Setup {
                step: format!("chdir to {}", step.cwd),
                errno,
            },
            3 => Error::Setup {
                step: format!("switching to user {uid}:{gid}"),
                errno,
            },
            _ if errno == Errno::ENOENT => Error::CommandNotFound {
                command: arg0.clone(),
                searched: candidates
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            _ => Error::NotExecutable {
                command: arg0.clone(),
                errno,
            },
        });
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    })
}
