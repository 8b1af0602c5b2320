//! `docker info`'s shape (the Engine API's `/info`): what this engine has and runs on.

use serde::{Deserialize, Serialize};

use rbuild_runner::lifecycle::Status;

use crate::Engine;
use crate::error::Result;

/// The system as `docker info` shows it (the fields rbuild can fill).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// Containers of every state.
    #[serde(rename = "Containers")]
    pub containers: usize,
    /// Of those, running (restarting included).
    #[serde(rename = "ContainersRunning")]
    pub containers_running: usize,
    /// Of those, paused.
    #[serde(rename = "ContainersPaused")]
    pub containers_paused: usize,
    /// Of those, created, exited or dead.
    #[serde(rename = "ContainersStopped")]
    pub containers_stopped: usize,
    /// Images in the store.
    #[serde(rename = "Images")]
    pub images: usize,
    /// Always `overlay2` (overlayfs over unpacked layers).
    #[serde(rename = "Driver")]
    pub driver: String,
    /// The store root.
    #[serde(rename = "DockerRootDir")]
    pub docker_root_dir: String,
    /// `cgroupfs`: rbuild writes the cgroup tree itself.
    #[serde(rename = "CgroupDriver")]
    pub cgroup_driver: String,
    /// `1` or `2`.
    #[serde(rename = "CgroupVersion")]
    pub cgroup_version: String,
    /// The kernel's release (`uname -r`).
    #[serde(rename = "KernelVersion")]
    pub kernel_version: String,
    /// `/etc/os-release`'s `PRETTY_NAME`.
    #[serde(rename = "OperatingSystem")]
    pub operating_system: String,
    /// Always `linux`.
    #[serde(rename = "OSType")]
    pub os_type: String,
    /// The machine (`uname -m`: `x86_64`, `aarch64`).
    #[serde(rename = "Architecture")]
    pub architecture: String,
    /// Online CPUs.
    #[serde(rename = "NCPU")]
    pub ncpu: usize,
    /// Physical memory in bytes.
    #[serde(rename = "MemTotal")]
    pub mem_total: u64,
    /// The host name.
    #[serde(rename = "Name")]
    pub name: String,
    /// rbuild's version.
    #[serde(rename = "ServerVersion")]
    pub server_version: String,
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// `PRETTY_NAME` of `/etc/os-release`.
fn operating_system() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// A platform whose programs this machine runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnablePlatform {
    /// `linux/arm64`.
    #[serde(rename = "Platform")]
    pub platform: String,
    /// The binfmt_misc handler that emulates it (`qemu-aarch64`), none when native.
    #[serde(rename = "Emulator", skip_serializing_if = "Option::is_none")]
    pub emulator: Option<String>,
}

/// The platforms this machine runs: its own, then those a binfmt_misc handler emulates.
pub fn runnable_platforms() -> Vec<RunnablePlatform> {
    use rbuild_runner::binfmt;
    let dir = std::path::Path::new(binfmt::BINFMT_DIR);
    let native = binfmt::native_architectures();
    let known = [
        "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "mips64",
        "loong64",
    ];
    let mut out: Vec<RunnablePlatform> = native
        .iter()
        .map(|a| RunnablePlatform {
            platform: format!("linux/{a}"),
            emulator: None,
        })
        .collect();
    let handlers = binfmt::handlers(dir);
    for arch in known.iter().filter(|a| !native.contains(a)) {
        if let Some(h) = binfmt::emulator(arch, &handlers) {
            out.push(RunnablePlatform {
                platform: format!("linux/{arch}"),
                emulator: Some(h.name.clone()),
            });
        }
    }
    out
}

impl Engine {
    /// What this engine has (containers by state, images) and runs on.
    pub fn info(&self) -> Result<SystemInfo> {
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        let containers = self.containers().list()?;
        for c in &containers {
            match c.state().map(|s| s.status) {
                Ok(Status::Running | Status::Restarting) => running += 1,
                Ok(Status::Paused) => paused += 1,
                _ => stopped += 1,
            }
        }
        let kernel = |f: &str| {
            std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
                .map(|t| t.trim().to_owned())
                .unwrap_or_default()
        };
        Ok(SystemInfo {
            containers: containers.len(),
            containers_running: running,
            containers_paused: paused,
            containers_stopped: stopped,
            images: self.store()?.images()?.len(),
            driver: "overlay2".into(),
            docker_root_dir: self.root().display().to_string(),
            cgroup_driver: "cgroupfs".into(),
            cgroup_version: if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                "2".into()
            } else {
                "1".into()
            },
            kernel_version: kernel("osrelease"),
            operating_system: operating_system(),
            os_type: "linux".into(),
            architecture: std::env::consts::ARCH.into(),
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_total: mem_total(),
            name: kernel("hostname"),
            server_version: env!("CARGO_PKG_VERSION").into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_store_has_nothing_and_says_what_it_runs_on() {
        let dir = tempfile::tempdir().unwrap();
        let info = Engine::new(dir.path()).info().unwrap();
        assert_eq!((info.containers, info.images), (0, 0));
        assert_eq!(info.docker_root_dir, dir.path().display().to_string());
        assert!(!info.kernel_version.is_empty());
        assert!(info.ncpu >= 1 && info.mem_total > 0);
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["OSType"], "linux");
        assert_eq!(v["Driver"], "overlay2");
    }
}
