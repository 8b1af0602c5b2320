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
const V1_CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "freezer"];

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

/// A process's cgroup path for a v1 controller (or v2 when `controller` is empty), from the
/// text of `/proc/PID/cgroup`.
fn own_path(text: &str, controller: &str) -> String {
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
    /// Create the cgroup `rbuild-<id>` below this process's own and apply the spec's limits.
    ///
    /// In rootless mode without a delegated cgroup v2 subtree the container gets no cgroup
    /// (an empty one: nothing to join, limit or remove); limits are then refused.
    pub fn create(id: &str, resources: Option<&LinuxResources>) -> Result<Cgroup, Error> {
        if crate::rootless::cgroups().is_err() {
            crate::rootless::check_resources(resources)?;
            return Ok(Cgroup {
                version: detect(),
                dirs: Vec::new(),
            });
        }
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Cgroup::create_at(Path::new(ROOT), detect(), &own, id, resources)
    }

    /// [`Cgroup::create`] with the hierarchy's mount point, layout and the creating process's
    /// `/proc/self/cgroup` text given.
    pub fn create_at(
        root: &Path,
        version: Version,
        own: &str,
        id: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<Cgroup, Error> {
        let name = format!("rbuild-{id}");
        let mut cg = Cgroup {
            version,
            dirs: Vec::new(),
        };
        let made = match version {
            Version::V2 => {
                let parent = root.join(own_path(own, ""));
                let wanted = ["memory", "cpu", "pids"];
                let available =
                    fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
                let enable: Vec<String> = wanted
                    .iter()
                    .filter(|c| available.split_whitespace().any(|a| a == **c))
                    .map(|c| format!("+{c}"))
                    .collect();
                if !enable.is_empty() {
                    // Refused when the parent has processes of its own (v2's no-internal-
                    // processes rule); a limit that needs the controller then fails naming
                    // its file, and a container without limits still runs.
                    let _ = write(&parent.join("cgroup.subtree_control"), &enable.join(" "));
                }
                cg.mkdir("", parent.join(&name))
            }
            Version::V1 => V1_CONTROLLERS.iter().try_for_each(|c| {
                let base = root.join(c);
                if !base.join("cgroup.procs").exists() {
                    return Ok(());
                }
                cg.mkdir(c, base.join(own_path(own, c)).join(&name))
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

/// Freeze (or thaw) the processes of a container's cgroup, given its directories: v1's
/// `freezer.state`, or v2's `cgroup.freeze`; returns once the kernel reports it done.
pub fn freeze(dirs: &[PathBuf], frozen: bool) -> Result<(), Error> {
    let v1 = dirs.iter().find(|d| d.join("freezer.state").exists());
    let v2 = dirs.iter().find(|d| d.join("cgroup.freeze").exists());
    match (v1, v2) {
        (Some(d), _) => {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            write(&d.join("freezer.state"), want)?;
            for _ in 0..1000 {
                let now = fs::read_to_string(d.join("freezer.state")).unwrap_or_default();
                if now.trim() == want {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(Error::Cgroup {
                path: d.join("freezer.state"),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the freezer did not settle",
                ),
            })
        }
        (None, Some(d)) => {
            write(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
            let want = if frozen { "frozen 1" } else { "frozen 0" };
            for _ in 0..1000 {
                let events = fs::read_to_string(d.join("cgroup.events")).unwrap_or_default();
                if events.lines().any(|l| l == want) {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(Error::Cgroup {
                path: d.join("cgroup.freeze"),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the freezer did not settle",
                ),
            })
        }
        (None, None) => Err(missing("freezer")),
    }
}

fn missing(controller: &str) -> Error {
    Error::Cgroup {
        path: Path::new(ROOT).join(controller),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "controller not available"),
    }
}

/// `rmdir` a cgroup, waiting for exiting processes and killing stragglers.
pub(crate) fn remove_dir(dir: &Path) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    const HYBRID: &str = "4:memory:/session/a\n8:pids:/\n1:cpu,cpuacct:/x\n0::/unified/y\n";

    fn resources() -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64i64 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000i64)
                    .period(100_000u64)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(20i64).build().unwrap())
            .build()
            .unwrap()
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    #[test]
    fn own_paths_come_from_proc_self_cgroup() {
        assert_eq!(own_path(HYBRID, "memory"), "session/a");
        assert_eq!(own_path(HYBRID, "cpu"), "x");
        assert_eq!(own_path(HYBRID, "pids"), "");
        assert_eq!(own_path(HYBRID, ""), "unified/y");
        assert_eq!(own_path(HYBRID, "blkio"), "");
    }

    #[test]
    fn v2_limits_are_written_to_the_unified_files() {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("user.slice");
        fs::create_dir_all(&parent).unwrap();
        fs::write(
            parent.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let cg = Cgroup::create_at(
            root.path(),
            Version::V2,
            "0::/user.slice\n",
            "c1",
            Some(&resources()),
        )
        .unwrap();
        assert_eq!(
            read(&parent.join("cgroup.subtree_control")),
            "+memory +cpu +pids"
        );
        let dir = parent.join("rbuild-c1");
        assert_eq!(cg.paths().collect::<Vec<_>>(), [dir.as_path()]);
        assert_eq!(read(&dir.join("memory.max")), (64u64 << 20).to_string());
        assert_eq!(read(&dir.join("cpu.max")), "50000 100000");
        assert_eq!(read(&dir.join("pids.max")), "20");
        assert!(!cg.oom_killed());
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert!(cg.oom_killed());
    }

    #[test]
    fn v1_limits_go_to_each_controllers_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        for c in V1_CONTROLLERS {
            fs::create_dir_all(root.path().join(c)).unwrap();
            fs::write(root.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        fs::create_dir_all(root.path().join("memory/session/a")).unwrap();
        fs::create_dir_all(root.path().join("cpu/x")).unwrap();
        let cg =
            Cgroup::create_at(root.path(), Version::V1, HYBRID, "c2", Some(&resources())).unwrap();
        let mem = root.path().join("memory/session/a/rbuild-c2");
        assert_eq!(
            read(&mem.join("memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            read(&root.path().join("cpu/x/rbuild-c2/cpu.cfs_quota_us")),
            "50000"
        );
        assert_eq!(
            read(&root.path().join("cpu/x/rbuild-c2/cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(read(&root.path().join("pids/rbuild-c2/pids.max")), "20");
        fs::write(
            mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .unwrap();
        assert!(!cg.oom_killed());
    }

    #[test]
    fn a_missing_controller_is_an_error_naming_it_and_nothing_is_left() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("pids")).unwrap();
        fs::write(root.path().join("pids/cgroup.procs"), "").unwrap();
        let err =
            Cgroup::create_at(root.path(), Version::V1, "", "c3", Some(&resources())).unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
        assert!(!root.path().join("pids/rbuild-c3").exists());
    }
}
