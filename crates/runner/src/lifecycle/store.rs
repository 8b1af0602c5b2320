//! Containers under the store root: one directory per container, `<root>/containers/<id>/`,
//! holding `config.json` (the [`ContainerRecord`], written at creation and by a rename), `spec.json` (the OCI spec),
//! `state.json` (the [`ContainerState`], replaced atomically), `lock` (a `flock` taken for
//! every read-modify-write of the state), `monitor.lock` (an OFD lock held by the monitor
//! for its whole life, so its death is seen without trusting PIDs) and the log. Names are
//! symlinks `<root>/container-names/<name> -> <id>`, so taking one is a single atomic
//! `symlink(2)`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::libc;
use oci_spec::runtime::Spec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ContainerError;
use super::names;
use super::record::{ContainerRecord, ContainerState, Status};
use super::time::now_ns;
use crate::error::Error;

/// The containers of one store root.
#[derive(Debug, Clone)]
pub struct Containers {
    dir: PathBuf,
    names: PathBuf,
}

/// One container's record and directory.
#[derive(Debug, Clone)]
pub struct Container {
    dir: PathBuf,
    names: PathBuf,
    /// What it was created with.
    pub record: ContainerRecord,
}

/// The container's state lock; released when dropped.
#[derive(Debug)]
pub struct StateLock(#[allow(dead_code)] Flock<File>);

/// A random 64-hex-digit container ID.
pub fn new_id() -> String {
    random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if let Ok(mut f) = File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes
}

fn is_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let bytes = fs::read(path).map_err(Error::io(path))?;
    serde_json::from_slice(&bytes).map_err(|source| {
        ContainerError::Corrupt {
            path: path.to_owned(),
            source,
        }
        .into()
    })
}

/// Write `value` as JSON to `path` through a temporary file and a rename, so a reader sees
/// the old or the new content, never a mix.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec(value).map_err(|source| ContainerError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    let mut f = File::create(&tmp).map_err(Error::io(&tmp))?;
    f.write_all(&bytes).map_err(Error::io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(Error::io(path))
}

impl Containers {
    /// The containers under the store root `root`.
    pub fn new(root: &Path) -> Containers {
        Containers {
            dir: root.join("containers"),
            names: root.join("container-names"),
        }
    }

    /// The directory holding one directory per container.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Delete what interrupted creations and removals left (`.creating-*`, `.removing-*`
    /// older than a minute: nothing is working on them any more) and old exit records of
    /// removed containers (`.exit-*`).
    pub fn sweep(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                continue;
            }
            let stale = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < minute_ago);
            if !stale {
                continue;
            }
            if name.starts_with(".creating-") || name.starts_with(".removing-") {
                let _ = fs::remove_dir_all(e.path());
            } else if name.starts_with(".exit-") {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Record a new container. An empty `record.name` gets a generated one; the state
    /// starts as `created`.
    pub fn create(&self, mut record: ContainerRecord, spec: &Spec) -> Result<Container, Error> {
        for d in [&self.dir, &self.names] {
            fs::create_dir_all(d).map_err(Error::io(d))?;
        }
        self.sweep();
        record.name = record.name.trim_start_matches('/').to_owned();
        if record.name.is_empty() {
            let mut retry = 0;
            loop {
                let name = names::generate(&random_bytes::<3>(), retry);
                match self.reserve(&name, &record.id) {
                    Ok(()) => {
                        record.name = name;
                        break;
                    }
                    Err(Error::Container(ContainerError::NameInUse { .. })) if retry < 50 => {
                        retry += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        } else {
            if !names::valid(&record.name) {
                return Err(ContainerError::InvalidName(record.name).into());
            }
            self.reserve(&record.name, &record.id)?;
        }
        let staging = self.dir.join(format!(".creating-{}", record.id));
        let made = (|| {
            fs::create_dir(&staging).map_err(Error::io(&staging))?;
            write_json(&staging.join("spec.json"), spec)?;
            write_json(&staging.join("state.json"), &ContainerState::default())?;
            write_json(&staging.join("config.json"), &record)?;
            let dir = self.dir.join(&record.id);
            fs::rename(&staging, &dir).map_err(Error::io(&dir))
        })();
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&staging);
            let _ = fs::remove_file(self.names.join(&record.name));
            return Err(e);
        }
        Ok(Container {
            dir: self.dir.join(&record.id),
            names: self.names.clone(),
            record,
        })
    }

    /// Take `name` for `id`: fails if a live container has it; a link left by a container
    /// that no longer exists is replaced.
    fn reserve(&self, name: &str, id: &str) -> Result<(), Error> {
        let link = self.names.join(name);
        for _ in 0..3 {
            match std::os::unix::fs::symlink(id, &link) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_link(&link)
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let alive = self.dir.join(&owner).exists()
                        || self.dir.join(format!(".creating-{owner}")).exists();
                    if alive || owner.is_empty() {
                        return Err(ContainerError::NameInUse {
                            name: name.to_owned(),
                            id: owner,
                        }
                        .into());
                    }
                    let _ = fs::remove_file(&link);
                }
                Err(e) => return Err(Error::io(&link)(e)),
            }
        }
        Err(ContainerError::NameInUse {
            name: name.to_owned(),
            id: String::new(),
        }
        .into())
    }

    fn load(&self, id: &str) -> Result<Container, Error> {
        let dir = self.dir.join(id);
        let record = read_json(&dir.join("config.json"))?;
        Ok(Container {
            dir,
            names: self.names.clone(),
            record,
        })
    }

    /// The IDs of all containers (unordered).
    pub fn ids(&self) -> Result<Vec<String>, Error> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir)(e)),
        };
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_id(n))
            .collect())
    }

    /// All containers, newest first.
    pub fn list(&self) -> Result<Vec<Container>, Error> {
        let mut all: Vec<Container> = self
            .ids()?
            .iter()
            .filter_map(|id| self.load(id).ok())
            .collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.record.created));
        Ok(all)
    }

    /// Find a container by full ID, name, or unique ID prefix (docker's order).
    pub fn get(&self, query: &str) -> Result<Container, Error> {
        let q = query.trim_start_matches('/');
        if q.is_empty() {
            return Err(ContainerError::NotFound(query.to_owned()).into());
        }
        if is_id(q) && self.dir.join(q).join("config.json").exists() {
            return self.load(q);
        }
        if names::valid(q)
            && let Ok(target) = fs::read_link(self.names.join(q))
        {
            let id = target.to_string_lossy();
            if self.dir.join(&*id).join("config.json").exists() {
                return self.load(&id);
            }
        }
        let matches: Vec<String> = self
            .ids()?
            .into_iter()
            .filter(|id| id.starts_with(q))
            .collect();
        match matches.as_slice() {
            [one] => self.load(one),
            [] => Err(ContainerError::NotFound(query.to_owned()).into()),
            _ => Err(ContainerError::Ambiguous(query.to_owned()).into()),
        }
    }
}

impl Container {
    /// The 64-hex-digit ID.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The name (without docker's leading `/`).
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The container's directory (also the runner's: upper, work and merged dirs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store root the container belongs to.
    pub fn store_root(&self) -> &Path {
        self.dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(&self.dir)
    }

    /// Remove the anonymous volumes the container was created with (`rm -v`, `--rm`).
    pub fn remove_anonymous_volumes(&self) -> Result<(), Error> {
        let vols = super::Volumes::new(self.store_root());
        for m in self
            .record
            .mounts
            .iter()
            .filter(|m| m.kind == "volume" && m.anonymous)
        {
            match vols.remove(&m.name) {
                Ok(()) | Err(Error::Container(ContainerError::NoSuchVolume(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Where the exit code of a container removed by `--rm` is left for `wait` (swept a
    /// minute later).
    pub fn exit_record(&self) -> PathBuf {
        self.dir.with_file_name(format!(".exit-{}", self.record.id))
    }

    /// The json-file log, `<dir>/<id>-json.log` (rotated files get `.1`, `.2`, …).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.record.id))
    }

    /// The OCI runtime spec it runs with.
    pub fn spec(&self) -> Result<Spec, Error> {
        read_json(&self.dir.join("spec.json"))
    }

    /// Take the state lock (blocking).
    pub fn lock(&self) -> Result<StateLock, Error> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map(StateLock)
            .map_err(|(_, errno)| Error::Sys {
                call: "flock",
                errno,
            })
    }

    /// The state as last written, without checking the monitor.
    pub fn stored_state(&self) -> Result<ContainerState, Error> {
        read_json(&self.dir.join("state.json"))
    }

    /// Replace the state (the caller holds the lock).
    pub fn write_state(&self, _lock: &StateLock, state: &ContainerState) -> Result<(), Error> {
        write_json(&self.dir.join("state.json"), state)
    }

    /// Change the state under its lock; returns the new state.
    pub fn update(&self, f: impl FnOnce(&mut ContainerState)) -> Result<ContainerState, Error> {
        let lock = self.lock()?;
        let mut state = self.stored_state()?;
        f(&mut state);
        self.write_state(&lock, &state)?;
        Ok(state)
    }

    /// The current state. A container whose monitor died while it was active (SIGKILL,
    /// the machine went down) is found out here: what is left of it (processes in its
    /// cgroups, the cgroups) is swept, and it is recorded as `dead` — or removed, if it was
    /// to be removed when it ended.
    pub fn state(&self) -> Result<ContainerState, Error> {
        let state = self.stored_state()?;
        if !state.status.is_active() || self.monitor_running() {
            return Ok(state);
        }
        let lock = self.lock()?;
        let mut state = self.stored_state()?;
        if !state.status.is_active() || self.monitor_running() {
            return Ok(state);
        }
        self.sweep(&state);
        state.error = format!(
            "the container's monitor (pid {}) ended without recording its exit; the container was killed",
            state.monitor_pid
        );
        state.status = Status::Dead;
        state.pid = 0;
        state.monitor_pid = 0;
        state.exit_code = 137;
        state.signal = Some(libc::SIGKILL);
        state.finished_at = now_ns();
        state.cgroups.clear();
        self.write_state(&lock, &state)?;
        drop(lock);
        if self.record.auto_remove {
            self.remove()?;
        }
        Ok(state)
    }

    /// Kill whatever is left in the recorded cgroups and remove them.
    fn sweep(&self, state: &ContainerState) {
        for dir in &state.cgroups {
            let _ = crate::cgroup::remove_dir(dir);
        }
    }

    /// Whether a monitor owns the container now.
    pub fn monitor_running(&self) -> bool {
        let Ok(f) = File::open(self.dir.join("monitor.lock")) else {
            return false;
        };
        // A read-lock query conflicts only with the monitor's write lock (not with waiters).
        matches!(ofd_lock(&f, libc::F_OFD_GETLK, libc::F_RDLCK), Ok(true))
    }

    /// Become the container's monitor: an OFD write lock on `monitor.lock`, held while the
    /// returned descriptor (or a copy inherited by a child) is open. `None` if a monitor
    /// already runs.
    pub fn claim_monitor(&self) -> Result<Option<OwnedFd>, Error> {
        let f = self.lock_file("monitor.lock")?;
        loop {
            match ofd_lock(&f, libc::F_OFD_SETLK, libc::F_WRLCK) {
                Ok(_) => return Ok(Some(f.into())),
                Err(Errno::EAGAIN | Errno::EACCES) => {
                    if self.monitor_running() {
                        return Ok(None);
                    }
                    // Only waiters' short-lived read locks: wait them out.
                    match ofd_lock(&f, libc::F_OFD_SETLKW, libc::F_WRLCK) {
                        Ok(_) => return Ok(Some(f.into())),
                        Err(Errno::EINTR) => continue,
                        Err(errno) => {
                            return Err(Error::Sys {
                                call: "fcntl",
                                errno,
                            });
                        }
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(Error::Sys {
                        call: "fcntl",
                        errno,
                    });
                }
            }
        }
    }

    /// Open (creating) the lock file `name` in the container's directory, for OFD locks.
    fn lock_file(&self, name: &str) -> Result<File, Error> {
        let path = self.dir.join(name);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::io(&path))
    }

    /// Take the run lock (an OFD write lock on `run.lock`), which the monitor holds from
    /// before a run is recorded as started until its end is recorded; released when the
    /// returned descriptor is dropped.
    pub fn claim_run(&self) -> Result<OwnedFd, Error> {
        let f = self.lock_file("run.lock")?;
        loop {
            match ofd_lock(&f, libc::F_OFD_SETLKW, libc::F_WRLCK) {
                Ok(_) => return Ok(f.into()),
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(Error::Sys {
                        call: "fcntl",
                        errno,
                    });
                }
            }
        }
    }

    /// Block until the current run (if one is recorded as running) has ended and its end
    /// is recorded — the first exit, even if the restart policy starts it again. `false`
    /// when there is no run lock (a foreground `run` is its own monitor and takes none).
    pub fn wait_run(&self) -> Result<bool, Error> {
        let Ok(f) = File::open(self.dir.join("run.lock")) else {
            return Ok(false);
        };
        loop {
            match ofd_lock(&f, libc::F_OFD_SETLKW, libc::F_RDLCK) {
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(Error::Sys {
                        call: "fcntl",
                        errno,
                    });
                }
            }
        }
    }

    /// Block until no monitor owns the container.
    pub fn wait_monitor(&self) -> Result<(), Error> {
        let Ok(f) = File::open(self.dir.join("monitor.lock")) else {
            return Ok(());
        };
        loop {
            match ofd_lock(&f, libc::F_OFD_SETLKW, libc::F_RDLCK) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(Error::Sys {
                        call: "fcntl",
                        errno,
                    });
                }
            }
        }
    }

    /// Like [`Container::remove`], but only the rename and the name are done now: the
    /// files are deleted by an `rm -rf` left running in the background (removing a tree
    /// costs a metadata write per file, which slow filesystems make the bulk of `rm`).
    pub fn remove_in_background(&self) -> Result<(), Error> {
        let doomed = self
            .dir
            .with_file_name(format!(".removing-{}", self.record.id));
        match fs::rename(&self.dir, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&self.dir)(e)),
        }
        self.release_name_and_addresses()?;
        let spawned = std::process::Command::new("rm")
            .arg("-rf")
            .arg(&doomed)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_err() {
            fs::remove_dir_all(&doomed).map_err(Error::io(&doomed))?;
        }
        Ok(())
    }

    /// Give the container the name `new` (docker's `rename`): the new name is taken
    /// atomically (fails with [`ContainerError::NameInUse`] if another container has it), the
    /// record is rewritten under the state lock, and the old name is given up.
    pub fn rename(&mut self, new: &str) -> Result<(), Error> {
        let new = new.trim_start_matches('/');
        if !names::valid(new) {
            return Err(ContainerError::InvalidName(new.to_owned()).into());
        }
        let containers = Containers {
            dir: self.dir.parent().unwrap_or(&self.dir).to_owned(),
            names: self.names.clone(),
        };
        containers.reserve(new, &self.record.id)?;
        let lock = self.lock();
        let written = lock.and_then(|_lock| {
            let mut record: ContainerRecord = read_json(&self.dir.join("config.json"))?;
            let old = std::mem::replace(&mut record.name, new.to_owned());
            write_json(&self.dir.join("config.json"), &record)?;
            Ok((old, record))
        });
        match written {
            Ok((old, record)) => {
                let link = self.names.join(&old);
                if fs::read_link(&link).is_ok_and(|t| t.as_os_str() == self.record.id.as_str()) {
                    let _ = fs::remove_file(&link);
                }
                self.record = record;
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(self.names.join(new));
                Err(e)
            }
        }
    }

    /// Give up the container's name, and its endpoints' addresses on the networks.
    fn release_name_and_addresses(&self) -> Result<(), Error> {
        let link = self.names.join(&self.record.name);
        if fs::read_link(&link).is_ok_and(|t| t.as_os_str() == self.record.id.as_str()) {
            let _ = fs::remove_file(&link);
        }
        if self.record.is_bridged() {
            crate::network::Networks::new(self.store_root()).release(&self.record.id)?;
        }
        Ok(())
    }

    /// Remove the container's directory and name. The caller made sure it is not active.
    pub fn remove(&self) -> Result<(), Error> {
        let doomed = self
            .dir
            .with_file_name(format!(".removing-{}", self.record.id));
        match fs::rename(&self.dir, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&self.dir)(e)),
        }
        self.release_name_and_addresses()?;
        fs::remove_dir_all(&doomed).map_err(Error::io(&doomed))
    }
}

/// An OFD lock operation on the whole file. For `F_OFD_GETLK`, `Ok(true)` means a
/// conflicting lock is held; for the set commands, `Ok(_)` means the lock was taken.
fn ofd_lock(f: &File, cmd: libc::c_int, typ: libc::c_int) -> Result<bool, Errno> {
    // SAFETY: a zeroed flock is valid; fcntl fills or reads it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = typ as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl with a lock command and a pointer to a live flock.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), cmd, &mut fl) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(cmd == libc::F_OFD_GETLK && fl.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::record::RestartPolicy;

    fn record(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.to_owned(),
            name: name.to_owned(),
            created: now_ns(),
            image: "bb".into(),
            image_id: String::new(),
            rootfs: crate::Rootfs::Directory("/nonexistent".into()),
            command: vec!["true".into()],
            entrypoint: vec![],
            cmd: vec!["true".into()],
            env: vec![],
            working_dir: String::new(),
            user: String::new(),
            hostname: String::new(),
            labels: Default::default(),
            init: false,
            tty: false,
            interactive: false,
            stdin_once: false,
            restart: RestartPolicy::No,
            auto_remove: false,
            stop_signal: "SIGTERM".into(),
            stop_timeout: None,
            ports: vec![],
            exposed_ports: vec![],
            mounts: vec![],
            network: "none".into(),
            dns: vec![],
            dns_search: vec![],
            dns_options: vec![],
            extra_hosts: vec![],
            log: Default::default(),
            healthcheck: None,
        }
    }

    #[test]
    fn rename_moves_the_name_and_refuses_a_taken_or_invalid_one() {
        let root = tempfile::tempdir().unwrap();
        let cs = Containers::new(root.path());
        let spec = Spec::default();
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        let mut web = cs.create(record(&a, "web"), &spec).unwrap();
        cs.create(record(&b, "db"), &spec).unwrap();
        web.rename("/front").unwrap();
        assert_eq!(web.name(), "front");
        assert_eq!(cs.get("front").unwrap().id(), a);
        assert_eq!(
            cs.get("front").unwrap().name(),
            "front",
            "the record is rewritten"
        );
        assert!(cs.get("web").is_err(), "the old name is given up");
        assert!(matches!(
            web.rename("db"),
            Err(Error::Container(ContainerError::NameInUse { .. }))
        ));
        assert!(matches!(
            web.rename("b/d"),
            Err(Error::Container(ContainerError::InvalidName(_)))
        ));
        assert_eq!(
            cs.get("db").unwrap().id(),
            b,
            "a refused rename changes nothing"
        );
        assert_eq!(cs.get("front").unwrap().id(), a);
        // The old name can be taken again.
        cs.create(record(&"ef".repeat(32), "web"), &spec).unwrap();
    }

    #[test]
    fn names_ids_and_prefixes_resolve_as_dockers_do() {
        let root = tempfile::tempdir().unwrap();
        let cs = Containers::new(root.path());
        let spec = Spec::default();
        let a = "ab".repeat(32);
        let b = format!("abc{}", "0".repeat(61));
        cs.create(record(&a, "web"), &spec).unwrap();
        let generated = cs.create(record(&b, ""), &spec).unwrap();
        assert!(names::valid(generated.name()), "{}", generated.name());
        assert_eq!(cs.get("web").unwrap().id(), a);
        assert_eq!(cs.get("/web").unwrap().id(), a);
        assert_eq!(cs.get(&a).unwrap().id(), a);
        assert_eq!(cs.get("abc").unwrap().id(), b, "a unique prefix");
        assert!(matches!(
            cs.get("ab"),
            Err(Error::Container(ContainerError::Ambiguous(_)))
        ));
        assert!(matches!(
            cs.get("nope"),
            Err(Error::Container(ContainerError::NotFound(_)))
        ));
        let taken = cs.create(record(&"cd".repeat(32), "web"), &spec);
        assert!(matches!(
            taken,
            Err(Error::Container(ContainerError::NameInUse { .. }))
        ));
        assert!(
            !cs.dir()
                .join(".creating-".to_owned() + &"cd".repeat(32))
                .exists()
                && !cs.dir().join("cd".repeat(32)).exists(),
            "a refused creation leaves nothing"
        );
        let c = cs.get("web").unwrap();
        assert_eq!(
            c.stored_state().unwrap().status,
            super::super::Status::Created
        );
        c.update(|s| s.exit_code = 3).unwrap();
        assert_eq!(c.state().unwrap().exit_code, 3);
        assert!(!c.monitor_running());
        let claim = c.claim_monitor().unwrap().expect("free");
        assert!(c.monitor_running());
        assert!(
            c.claim_monitor().unwrap().is_none(),
            "one monitor at a time"
        );
        drop(claim);
        assert!(!c.monitor_running());
        c.remove().unwrap();
        assert!(cs.get("web").is_err());
        // The name is free again.
        cs.create(record(&"ef".repeat(32), "web"), &spec).unwrap();
        assert_eq!(cs.list().unwrap().len(), 2);
    }
}
