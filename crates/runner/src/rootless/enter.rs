//! Entering the user's rootless user namespace: joining the one its pause process holds, or
//! making it (pause process, `newuidmap`/`newgidmap`) when there is none.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::libc;
use nix::unistd::{ForkResult, Uid};

use super::RootlessError;
use super::idmap::{self, Range};

/// The name the pause process shows in `ps` (and is recognized by).
const PAUSE_NAME: &str = "rbuild-pause";

/// What [`enter`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entered {
    /// The namespace maps only the user's own id (no subordinate ids in `/etc/subuid` or
    /// `/etc/subgid`): every file is owned by root inside, other owners cannot be made.
    pub single_id: bool,
    /// The user whose namespace it is.
    pub user: String,
}

fn sys(call: &'static str) -> impl FnOnce(Errno) -> RootlessError {
    move |errno| RootlessError::Sys { call, errno }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RootlessError + '_ {
    move |source| RootlessError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The host uid this process runs as: its own outside a user namespace, the one container
/// id 0 maps to inside.
fn host_uid() -> u32 {
    let own = nix::unistd::getuid().as_raw();
    fs::read_to_string("/proc/self/uid_map")
        .ok()
        .and_then(|map| {
            map.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[0] == "0" && f[2] != "4294967295").then(|| f[1].parse().ok())?
            })
        })
        .unwrap_or(own)
}

/// Where the user's runtime directory for rbuild is: `$XDG_RUNTIME_DIR/rbuild` when
/// `$XDG_RUNTIME_DIR` is an absolute path to a directory, otherwise `/tmp/rbuild-UID`.
fn runtime_dir_path() -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && fs::metadata(d).is_ok_and(|m| m.is_dir()));
    match xdg {
        Some(x) => x.join("rbuild"),
        None => PathBuf::from(format!("/tmp/rbuild-{}", host_uid())),
    }
}

/// The user's runtime directory for rbuild: `$XDG_RUNTIME_DIR/rbuild` when that directory is
/// the user's, otherwise a private (0700) `/tmp/rbuild-UID`; made when missing. A `/tmp`
/// directory that someone else owns, or that others may enter, is refused.
pub fn runtime_dir() -> Result<PathBuf, RootlessError> {
    let dir = runtime_dir_path();
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(&dir)(e)),
    }
    let meta = fs::symlink_metadata(&dir).map_err(io(&dir))?;
    let own = nix::unistd::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != own || meta.permissions().mode() & 0o077 != 0 {
        return Err(RootlessError::Io {
            path: dir,
            source: std::io::Error::other(
                "not a private directory of this user (it must be a 0700 directory the user owns)",
            ),
        });
    }
    Ok(dir)
}

/// The subordinate ranges a new namespace maps (uids, gids); `None`: the single-id map.
type Ranges = Option<(Vec<Range>, Vec<Range>)>;

/// The id maps a new namespace of `user` gets. Refuses too small a range, and ranges without
/// `newuidmap` and `newgidmap` on `PATH` to map them.
fn plan_maps(user: &str, uid: Uid) -> Result<Ranges, RootlessError> {
    let subuid = fs::read_to_string("/etc/subuid").unwrap_or_default();
    let subgid = fs::read_to_string("/etc/subgid").unwrap_or_default();
    let uids = idmap::ranges(&subuid, user, uid.as_raw());
    let gids = idmap::ranges(&subgid, user, uid.as_raw());
    if uids.is_empty() && gids.is_empty() {
        return Ok(None);
    }
    for (kind, ranges) in [("uid", &uids), ("gid", &gids)] {
        let have = idmap::total(ranges);
        if have < super::MIN_SUBORDINATE_IDS {
            return Err(RootlessError::RangeTooSmall {
                user: user.to_owned(),
                kind,
                have,
                need: super::MIN_SUBORDINATE_IDS,
            });
        }
    }
    for tool in ["newuidmap", "newgidmap"] {
        if find_tool(tool).is_none() {
            return Err(RootlessError::NoMapTool {
                tool,
                user: user.to_owned(),
            });
        }
    }
    Ok(Some((uids, gids)))
}

/// Put this process into the user's rootless user namespace (as its root) and a private mount
/// namespace; nothing when it runs as root already. Must be called while the process has one
/// thread (`setns` of a user namespace requires it).
pub fn enter() -> Result<Option<Entered>, RootlessError> {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return Ok(None);
    }
    let gid = nix::unistd::getegid().as_raw();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    // What a new namespace needs is checked before anything is made, so a refusal leaves
    // nothing behind (not even the runtime directory).
    if live_pause(&runtime_dir_path(), uid).is_none() {
        plan_maps(&user, uid)?;
    }
    let dir = runtime_dir()?;
    let lock_path = dir.join("pause.lock");
    let lock = fs::File::create(&lock_path).map_err(io(&lock_path))?;
    // SAFETY: flock on a descriptor we own.
    Errno::result(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }).map_err(sys("flock"))?;
    let pid = match live_pause(&dir, uid) {
        Some(pid) => pid,
        None => {
            let ranges = plan_maps(&user, uid)?;
            let pid = start_pause(
                uid.as_raw(),
                gid,
                ranges.as_ref().map(|(u, g)| (u.as_slice(), g.as_slice())),
            )?;
            let pid_file = dir.join("pause.pid");
            let tmp = dir.join("pause.pid.tmp");
            fs::write(&tmp, pid.to_string()).map_err(io(&tmp))?;
            fs::rename(&tmp, &pid_file).map_err(io(&pid_file))?;
            pid
        }
    };
    join(pid)?;
    drop(lock);
    Ok(Some(Entered {
        single_id: super::single_id(),
        user,
    }))
}

/// `tool` on `PATH`, as Podman looks `newuidmap` up (they are setuid programs: which one runs
/// is the user's choice, as with any command).
fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(tool))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// The pause process recorded in `dir`, when it still runs, is this user's and is not the
/// namespace this process is already in.
fn live_pause(dir: &Path, uid: Uid) -> Option<i32> {
    let pid: i32 = fs::read_to_string(dir.join("pause.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let comm = fs::read_to_string(proc.join("comm")).ok()?;
    if comm.trim_end() != PAUSE_NAME {
        return None;
    }
    let status = fs::read_to_string(proc.join("status")).ok()?;
    let real_uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?;
    if real_uid != uid.to_string() {
        return None;
    }
    let theirs = fs::read_link(proc.join("ns/user")).ok()?;
    let ours = fs::read_link("/proc/self/ns/user").ok()?;
    (theirs != ours).then_some(pid)
}

/// Start the pause process: it unshares a user namespace, is mapped (by `newuidmap` and
/// `newgidmap` with `ranges`, or by itself to the user's single id), then sleeps forever,
/// detached (its own session, reparented to init). Returns its PID.
fn start_pause(
    uid: u32,
    gid: u32,
    ranges: Option<(&[Range], &[Range])>,
) -> Result<i32, RootlessError> {
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    // SAFETY: the process has one thread (enter's contract); the children only make raw
    // system calls and end with _exit.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            drop(ready_r);
            drop(go_w);
            // SAFETY: as above.
            match unsafe { nix::unistd::fork() } {
                Ok(ForkResult::Child) => pause_main(ready_w, go_r, uid, gid, ranges.is_none()),
                // SAFETY: leaving the intermediate child without running destructors.
                _ => unsafe { libc::_exit(0) },
            }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(go_r);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut msg = [0u8; 8];
            fs::File::from(ready_r)
                .read_exact(&mut msg)
                .map_err(|_| RootlessError::Sys {
                    call: "starting the pause process",
                    errno: Errno::EPIPE,
                })?;
            let pid = i32::from_ne_bytes(msg[..4].try_into().unwrap_or_default());
            let errno = i32::from_ne_bytes(msg[4..].try_into().unwrap_or_default());
            if errno != 0 {
                return Err(RootlessError::Sys {
                    call: "unshare(CLONE_NEWUSER)",
                    errno: Errno::from_raw(errno),
                });
            }
            if let Some((uids, gids)) = ranges {
                // On failure the pause process sees its pipe close and exits.
                map_ids("newuidmap", pid, uid, uids)?;
                map_ids("newgidmap", pid, gid, gids)?;
            }
            fs::File::from(go_w)
                .write_all(b"1")
                .map_err(|_| RootlessError::Sys {
                    call: "starting the pause process",
                    errno: Errno::EPIPE,
                })?;
            Ok(pid)
        }
    }
}

fn map_ids(tool: &'static str, pid: i32, id: u32, ranges: &[Range]) -> Result<(), RootlessError> {
    let out = Command::new(find_tool(tool).unwrap_or_else(|| tool.into()))
        .arg(pid.to_string())
        .args(idmap::map_args(id, ranges))
        .output()
        .map_err(|e| RootlessError::MapFailed {
            tool,
            message: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(RootlessError::MapFailed {
        tool,
        message: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), RootlessError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe2"))
}

/// The pause process: never returns.
fn pause_main(ready: OwnedFd, go: OwnedFd, uid: u32, gid: u32, single: bool) -> ! {
    // SAFETY: raw system calls on valid, NUL-terminated arguments; the process is a fresh
    // single-threaded child.
    unsafe {
        libc::setsid();
        libc::prctl(
            libc::PR_SET_NAME,
            c"rbuild-pause".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        let mut errno = 0;
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            errno = Errno::last_raw();
        } else if single {
            let maps = [
                (c"/proc/self/setgroups", "deny".to_owned()),
                (c"/proc/self/uid_map", format!("0 {uid} 1")),
                (c"/proc/self/gid_map", format!("0 {gid} 1")),
            ];
            for (path, text) in maps {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, text.as_ptr().cast(), text.len()) < 0 {
                    errno = Errno::last_raw();
                    break;
                }
                libc::close(fd);
            }
        }
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&libc::getpid().to_ne_bytes());
        msg[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(ready.as_raw_fd(), msg.as_ptr().cast(), msg.len());
        let mut byte = 0u8;
        if errno != 0 || libc::read(go.as_raw_fd(), (&raw mut byte).cast(), 1) != 1 {
            libc::_exit(1);
        }
        // Nothing of the starting command's is kept: its standard streams may be pipes a
        // caller reads to their end. Without /dev/null they are closed instead.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            if null < 0 || libc::dup2(null, fd) < 0 {
                libc::close(fd);
            }
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        libc::chdir(c"/".as_ptr());
        loop {
            libc::pause();
        }
    }
}

/// Join the pause process's user namespace (becoming its root, with every capability in it)
/// and unshare a private mount namespace for this command's mounts.
fn join(pid: i32) -> Result<(), RootlessError> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/user"));
    let ns = fs::File::open(&path).map_err(io(&path))?;
    // SAFETY: setns/unshare/mount with valid arguments; the process has one thread.
    unsafe {
        Errno::result(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWUSER))
            .map_err(sys("setns(user)"))?;
        // Supplementary groups the namespace does not map would show as nogroup; drop them
        // (refused, and harmless, in a single-id namespace).
        libc::setgroups(0, std::ptr::null());
        Errno::result(libc::setresgid(0, 0, 0)).map_err(sys("setresgid"))?;
        Errno::result(libc::setresuid(0, 0, 0)).map_err(sys("setresuid"))?;
        Errno::result(libc::unshare(libc::CLONE_NEWNS)).map_err(sys("unshare(CLONE_NEWNS)"))?;
        Errno::result(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))
        .map_err(sys("making the mounts private"))?;
    }
    Ok(())
}
