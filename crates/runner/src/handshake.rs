//! The parent's side of its handshake with a freshly cloned child: writing user namespace id
//! maps, reading the exec-or-failure report from the close-on-exec pipe and turning it into
//! an error, receiving the terminal's master side, and reaping.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::libc;
use oci_spec::runtime::Spec;

use crate::child::{self, ChildContext, Report};
use crate::container::ExitStatus;
use crate::error::Error;
use crate::plan::Op;

/// Receive the terminal's master side the child sent before exec.
pub(crate) fn receive_console(sock: &OwnedFd) -> Result<OwnedFd, Error> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(std::os::fd::RawFd);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|errno| Error::Sys {
        call: "recvmsg (console)",
        errno,
    })?;
    for cmsg in msg.cmsgs().map_err(|errno| Error::Sys {
        call: "recvmsg (console)",
        errno,
    })? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    Err(Error::Sys {
        call: "recvmsg (console)",
        errno: Errno::EBADMSG,
    })
}

/// Write the user namespace's uid and gid maps (the child waits for them before its setup).
pub(crate) fn write_id_maps(pid: libc::pid_t, spec: &Spec) -> Result<(), Error> {
    let linux = spec.linux().clone().unwrap_or_default();
    let render = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    for (file, maps) in [
        ("uid_map", linux.uid_mappings()),
        ("gid_map", linux.gid_mappings()),
    ] {
        let text = render(maps);
        if text.is_empty() {
            return Err(Error::InvalidSpec(format!(
                "a user namespace needs {file} entries (linux.uidMappings/gidMappings)"
            )));
        }
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        fs::write(&path, text).map_err(Error::io(&path))?;
    }
    Ok(())
}

pub(crate) fn read_report(fd: RawFd) -> Result<Option<Report>, Error> {
    let mut r = Report::default();
    let size = std::mem::size_of::<Report>();
    loop {
        // SAFETY: reading at most size_of::<Report>() bytes into a repr(C) plain struct.
        let n = unsafe { libc::read(fd, (&mut r as *mut Report).cast(), size) };
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        return match n {
            0 => Ok(None),
            n if n as usize == size => Ok(Some(r)),
            n if n < 0 => Err(Error::Sys {
                call: "read",
                errno: Errno::last(),
            }),
            _ => Err(Error::Sys {
                call: "read",
                errno: Errno::EIO,
            }),
        };
    }
}

pub(crate) fn report_error(r: &Report, ctx: &ChildContext, arg0: &str) -> Error {
    let errno = Errno::from_raw(r.errno);
    match r.stage {
        child::STAGE_SETUP => Error::Setup {
            step: ctx
                .ops
                .get(r.index as usize)
                .map_or_else(|| "unknown step".into(), Op::describe),
            errno,
        },
        child::STAGE_EXEC if errno == Errno::ENOENT || errno == Errno::ENOTDIR => {
            Error::CommandNotFound {
                command: arg0.to_owned(),
                searched: ctx
                    .candidates
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        }
        child::STAGE_EXEC => Error::NotExecutable {
            command: arg0.to_owned(),
            errno,
        },
        child::STAGE_STDIO => Error::Setup {
            step: format!("set up standard stream {}", r.index),
            errno,
        },
        _ => Error::Setup {
            step: "start the init process".into(),
            errno,
        },
    }
}

pub(crate) fn reap(pid: libc::pid_t) -> Option<ExitStatus> {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return None;
        }
        return Some(if libc::WIFEXITED(status) {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        } else {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        });
    }
}
