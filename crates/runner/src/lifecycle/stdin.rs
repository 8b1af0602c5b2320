//! A detached container's standard input (`-i`), as conmon's attach socket: the monitor
//! keeps the write end of the container's stdin pipe and listens on a unix socket,
//! `<dir>/attach.sock`; each `attach` or `start -a -i` connects and streams its own standard
//! input into the pipe. With docker's `StdinOnce` (`create -i`, `run -i`), the end of an
//! attacher's input closes the container's stdin, so `cat` ends; without it (`run -d -i`),
//! stdin stays open for the next attacher.
//!
//! The socket is bound and connected through `/proc/self/fd/<dir>/attach.sock`, so a long
//! store root does not run into the 108-byte limit of a socket path.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::libc;

use crate::error::Error;

/// The socket's name in the container's directory.
const SOCKET: &str = "attach.sock";

/// Where attachers' input goes: the container's stdin of the current run (none between
/// runs, or once closed).
#[derive(Debug, Clone, Default)]
struct Slot(Arc<Mutex<Option<File>>>);

impl Slot {
    fn set(&self, writer: Option<File>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = writer;
    }

    /// Write all of `data`; false when there is no stdin any more.
    fn write(&self, data: &[u8]) -> bool {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            Some(w) => {
                if w.write_all(data).is_err() {
                    *slot = None;
                    return false;
                }
                true
            }
            None => false,
        }
    }
}

/// The monitor's attach socket for a container's standard input. Dropping it stops
/// accepting (the socket is shut down and its thread joined) and removes the socket file.
#[derive(Debug)]
pub struct StdinServer {
    slot: Slot,
    listener: Arc<UnixListener>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

/// A path naming `name` in `dir` that stays short whatever `dir`'s length: through a
/// descriptor of `dir` in `/proc/self/fd` (kept open by the returned `File`).
fn short_path(dir: &Path, name: &str) -> Result<(File, PathBuf), Error> {
    let d = File::open(dir).map_err(Error::io(dir))?;
    let p = PathBuf::from(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()));
    Ok((d, p))
}

impl StdinServer {
    /// Listen on `<dir>/attach.sock`. With `once`, an attacher's end of input closes the
    /// container's stdin.
    pub fn listen(dir: &Path, once: bool) -> Result<StdinServer, Error> {
        let path = dir.join(SOCKET);
        let (_dir, short) = short_path(dir, SOCKET)?;
        let _ = std::fs::remove_file(&short);
        let listener = Arc::new(UnixListener::bind(&short).map_err(Error::io(&path))?);
        let slot = Slot::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (listener, slot, stop) = (listener.clone(), slot.clone(), stop.clone());
            std::thread::spawn(move || accept(&listener, &slot, &stop, once))
        };
        Ok(StdinServer {
            slot,
            listener,
            stop,
            thread: Some(thread),
            path,
        })
    }

    /// Give attachers the current run's stdin (`None` between runs).
    pub fn set(&self, writer: Option<OwnedFd>) {
        self.slot.set(writer.map(File::from));
    }
}

impl Drop for StdinServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // SAFETY: shutdown on an open socket: a thread blocked in accept returns.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.slot.set(None);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept(listener: &UnixListener, slot: &Slot, stop: &AtomicBool, once: bool) {
    loop {
        let conn = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok((conn, _)) = conn else {
            // Out of descriptors, say: try again a little later rather than spin.
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        };
        let slot = slot.clone();
        std::thread::spawn(move || copy_in(conn, &slot, once));
    }
}

/// Copy one attacher's input into the container's stdin until either ends.
fn copy_in(mut conn: UnixStream, slot: &Slot, once: bool) {
    let mut buf = [0u8; 16 << 10];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !slot.write(&buf[..n]) {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
    if once {
        slot.set(None);
    }
}

/// Connect to the attach socket of the container in `dir`; `None` when it has none (not
/// started with `-i`, or not running under a monitor).
pub fn connect(dir: &Path) -> Result<Option<UnixStream>, Error> {
    let (_dir, short) = short_path(dir, SOCKET)?;
    match UnixStream::connect(&short) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::io(dir.join(SOCKET))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (File, OwnedFd) {
        let (r, w) = nix::unistd::pipe().unwrap();
        (File::from(r), w)
    }

    #[test]
    fn attachers_input_reaches_stdin_and_once_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let server = StdinServer::listen(dir.path(), true).unwrap();
        let (mut r, w) = pipe();
        server.set(Some(w));
        let mut a = connect(dir.path()).unwrap().expect("listening");
        a.write_all(b"hello\n").unwrap();
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello\n", "input then end of file");
        drop(server);
        assert!(!dir.path().join(SOCKET).exists(), "socket removed");
        assert!(connect(dir.path()).unwrap().is_none());
    }

    #[test]
    fn without_once_stdin_outlives_an_attacher() {
        let dir = tempfile::tempdir().unwrap();
        let server = StdinServer::listen(dir.path(), false).unwrap();
        let (mut r, w) = pipe();
        server.set(Some(w));
        for word in ["one\n", "two\n"] {
            let mut a = connect(dir.path()).unwrap().unwrap();
            a.write_all(word.as_bytes()).unwrap();
            drop(a);
            let mut buf = [0u8; 4];
            r.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, word.as_bytes());
        }
        server.set(None);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
}
