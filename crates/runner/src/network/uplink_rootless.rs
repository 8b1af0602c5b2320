//! The uplink in rootless mode. As root the hub starts `slirp4netns` after unsharing its
//! network namespace, having it re-enter the host's; a user namespace cannot enter the host's
//! network namespace (the host's user namespace owns it), so the uplink's process is started
//! *before* the hub leaves it and waits, in a shell reading a line, until the hub's own
//! namespace exists.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};

use nix::libc;

use super::NetworkError;

/// The tun device slirp4netns makes its tap device with.
const TUN: &str = "/dev/net/tun";

/// A `slirp4netns` waiting to be told to start.
pub(super) struct PendingUplink {
    child: Child,
    go: ChildStdin,
    ready: File,
    _ready_w: OwnedFd,
}

/// Start the waiting uplink for the namespace the hub (this process) is about to unshare,
/// with the tap device `tap`. Call before `unshare(CLONE_NEWNET)`.
pub(super) fn prepare(tap: &str) -> Result<PendingUplink, NetworkError> {
    // slirp4netns opens the tun device as the user; try it first, so the reason is ours to
    // tell (a mode that shuts the user out, a device the cgroup denies, no device at all).
    if let Err(e) = std::fs::File::options().read(true).write(true).open(TUN) {
        return Err(NetworkError::Setup(format!(
            "rootless mode: {TUN} cannot be opened by this user ({e}), so slirp4netns cannot give containers a way out (as root: chmod 0666 {TUN}, Debian's default)"
        )));
    }
    let (r, w) = nix::unistd::pipe().map_err(|e| NetworkError::Setup(format!("pipe: {e}")))?;
    let wfd = w.as_raw_fd();
    let script = format!(
        "read -r _ || exit 1; exec slirp4netns --configure --mtu=65520 --ready-fd={wfd} --netns-type=path /proc/{}/ns/net {tap}",
        std::process::id()
    );
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    // SAFETY: async-signal-safe calls only: the ready pipe's write end stays open across exec,
    // and the uplink dies with the hub.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let flags = libc::fcntl(wfd, libc::F_GETFD);
            libc::fcntl(wfd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| NetworkError::Setup(format!("starting slirp4netns through /bin/sh: {e}")))?;
    let go = child
        .stdin
        .take()
        .ok_or_else(|| NetworkError::Setup("slirp4netns: no pipe to its shell".into()))?;
    Ok(PendingUplink {
        child,
        go,
        ready: File::from(r),
        _ready_w: w,
    })
}

impl PendingUplink {
    /// Let the uplink attach to the hub's namespace (unshared by now) and wait until its tap
    /// device is configured.
    pub(super) fn start(self) -> Result<Child, NetworkError> {
        let PendingUplink {
            mut child,
            mut go,
            mut ready,
            _ready_w,
        } = self;
        drop(_ready_w);
        let told = go.write_all(b"go\n");
        drop(go);
        let mut b = [0u8; 1];
        match (told, ready.read(&mut b)) {
            (Ok(()), Ok(1)) => Ok(child),
            _ => {
                let _ = child.kill();
                let status = child.wait();
                // The shell's 127: slirp4netns is not on PATH.
                Err(NetworkError::Setup(match status.ok().and_then(|s| s.code()) {
                    Some(127) => "slirp4netns is not installed (apt-get install slirp4netns)".into(),
                    _ => "slirp4netns ended before its interface was up (its messages are in the network hub's log, hub.log under the store's networks directory)".into(),
                }))
            }
        }
    }
}
