//! Per-container cgroups with memory, CPU and pids limits, on cgroup v2 and on v1/hybrid hosts
//! (v1 controllers plus an empty v2 hierarchy, where v1 is what has the controllers).
//!
//! A container's cgroup is created below the cgroup rbuild itself runs in (so limits placed on
//! rbuild also bind its containers), and removed when the container ends.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use crate::error::Error;

const ROOT: &str = "/sys/fs/cgroup";
/// The v1 controllers a container gets a cgroup in.
const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One unified hierarchy at `/sys/fs/cgroup`.
    V2,
    /// One hierarchy per controller under `/sys/fs/cgroup/<controller>`.
    V1,
}

/// The host's cgroup layout.
pub fn detect() -> Version {
    if Path::new(ROOT).join("cgroup.controllers").exists() {
        Version::V2
    } else {
        Version::V1
    }
}

/// A container's cgroup (one directory per v1 controller, or one v2 directory).
#[derive(Debug)]
pub struct Cgroup {
    version: Version,
    /// (controller, directory); the controller is empty on v2.
    dirs: Vec<(&'static str, PathBuf)>,
}

/// The current process's cgroup path for a v1 controller (or v2 when `controller` is empty),
/// from `/proc/self/cgroup`.
fn own_path(controller: &str) -> String {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        let matches = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        if matches {
            return path.trim_start_matches('/').to_owned();
        }
    }
    String::new()
}

fn write(path: &Path, value: &str) -> Result<(), Error> {
    fs::write(path, value).map_err(|source| Error::Cgroup {
        path: path.to_owned(),
        source,
    })
}

impl Cgroup {
    /// Create the cgroup `rbuild-<id>` and apply the spec's limits.
    pub fn create(id: &str, resources: Option<&LinuxResources>) -> Result<Cgroup, Error> {
        let version = detect();
        let name = format!("rbuild-{id}");
        let mut cg = Cgroup {
            version,
            dirs: Vec::new(),
        };
        let made = match version {
            Version::V2 => {
                let parent = Path::new(ROOT).join(own_path(""));
                let wanted = ["memory", "cpu", "pids"];
                let available =
                    fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
                let enable: Vec<String> = wanted
                    .iter()
                    .filter(|c| available.split_whitespace().any(|a| a == **c))
                    .map(|c| format!("+{c}"))
                    .collect();
                if !enable.is_empty() {
                    write(&parent.join("cgroup.subtree_control"), &enable.join(" "))?;
                }
                cg.mkdir("", parent.join(&name))
            }
            Version::V1 => V1_CONTROLLERS.iter().try_for_each(|c| {
                let base = Path::new(ROOT).join(c);
                if !base.join("cgroup.procs").exists() {
                    return Ok(());
                }
                cg.mkdir(c, base.join(own_path(c)).join(&name))
            }),
        };
        let applied = made.and_then(|()| match resources {
            Some(r) => cg.apply(r),
            None => Ok(()),
        });
        if let Err(e) = applied {
            let _ = cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    fn mkdir(&mut self, controller: &'static str, dir: PathBuf) -> Result<(), Error> {
        fs::create_dir(&dir).map_err(|source| Error::Cgroup {
            path: dir.clone(),
            source,
        })?;
        self.dirs.push((controller, dir));
        Ok(())
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| c.is_empty() || *c == controller)
            .map(|(_, d)| d.as_path())
    }

    fn apply(&self, r: &LinuxResources) -> Result<(), Error> {
        let v2 = self.version == Version::V2;
        if let Some(limit) = r
            .memory()
            .as_ref()
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
        {
            let dir = self.dir("memory").ok_or_else(|| missing("memory"))?;
            if v2 {
                write(&dir.join("memory.max"), &limit.to_string())?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
            } else {
                write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
                // Memory plus swap capped at the same figure: no swapping past the limit.
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &limit.to_string())?;
                }
            }
        }
        if let Some(cpu) = r
            .cpu()
            .as_ref()
            .filter(|c| c.quota().is_some_and(|q| q > 0))
        {
            let dir = self.dir("cpu").ok_or_else(|| missing("cpu"))?;
            let period = cpu.period().unwrap_or(100_000);
            let quota = cpu.quota().unwrap_or(-1);
            if v2 {
                write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
            } else {
                write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        if let Some(pids) = r.pids().as_ref().filter(|p| p.limit() > 0) {
            let dir = self.dir("pids").ok_or_else(|| missing("pids"))?;
            write(&dir.join("pids.max"), &pids.limit().to_string())?;
        }
        Ok(())
    }

    /// Move a process into the cgroup.
    pub fn add(&self, pid: i32) -> Result<(), Error> {
        for (_, dir) in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The cgroup's directories (one per v1 controller, or one on v2).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let Some(dir) = self.dir("memory") else {
            return false;
        };
        let file = if self.version == Version::V2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = fs::read_to_string(dir.join(file)).unwrap_or_default();
        text.lines().any(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    }

    /// Kill what is left in the cgroup and remove its directories.
    pub fn remove(&mut self) -> Result<(), Error> {
        let mut first_err = None;
        while let Some((_, dir)) = self.dirs.pop() {
            if let Err(e) = remove_dir(&dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn missing(controller: &str) -> Error {
    Error::Cgroup {
        path: Path::new(ROOT).join(controller),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "controller not available"),
    }
}

/// `rmdir` a cgroup, waiting for exiting processes and killing stragglers.
fn remove_dir(dir: &Path) -> Result<(), Error> {
    for attempt in 0..200 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt == 199 => {
                return Err(Error::Cgroup {
                    path: dir.to_owned(),
                    source: e,
                });
            }
            Err(_) => {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
    Ok(())
}
