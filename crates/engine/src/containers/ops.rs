//! What a container is doing: `wait` for its run's end, `top` (its processes), `port` (where
//! its ports are published).

use std::collections::HashSet;
use std::process::Command;

use rbuild_runner::lifecycle::{Container, PortBinding, Status};

use crate::Engine;
use crate::error::{EngineError, OptionExt, Result, ResultExt};

/// `top`'s answer: the host `ps` output's header and its lines for the container's processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    /// The header line (docker's `Titles`, unsplit).
    pub header: String,
    /// One line per process (docker's `Processes`, unsplit).
    pub processes: Vec<String>,
}

impl Engine {
    /// Block until `c`'s current run ends; returns its exit code. Docker's wait returns at
    /// the run's first exit, even when the restart policy starts the container again.
    pub fn wait(&self, c: &Container) -> Result<i32> {
        let st = c.state()?;
        if st.status == Status::Restarting {
            return Ok(st.exit_code);
        }
        if matches!(st.status, Status::Running | Status::Paused)
            && c.wait_run()?
            && let Ok(st) = c.stored_state()
            && matches!(st.status, Status::Restarting | Status::Running)
        {
            return Ok(st.exit_code);
        }
        // The end is final: wait for the monitor's clean-up (and --rm) too.
        c.wait_monitor()?;
        match c.state() {
            Ok(st) => Ok(st.exit_code),
            // Removed at its end (--rm): the monitor left the code behind.
            Err(e) => std::fs::read_to_string(c.exit_record())
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| e.into()),
        }
    }

    /// `c`'s processes as the host's `ps` shows them with `ps_args` (default `-ef`), filtered
    /// to the container's cgroups, as docker does.
    pub fn top(&self, c: &Container, ps_args: &[String]) -> Result<Top> {
        let st = c.state()?;
        if !matches!(st.status, Status::Running | Status::Paused) {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                c.id()
            )));
        }
        let mut pids = HashSet::new();
        for dir in &st.cgroups {
            if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        }
        pids.insert(st.pid as u32);
        let ps_args = if ps_args.is_empty() {
            vec!["-ef".to_owned()]
        } else {
            ps_args.to_vec()
        };
        let out = Command::new("ps")
            .args(&ps_args)
            .output()
            .context("running ps")?;
        if !out.status.success() {
            return Err(EngineError::Failed(format!(
                "ps {}: {}",
                ps_args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let col = header
            .split_whitespace()
            .position(|h| h == "PID")
            .or_invalid(|| "ps output has no PID column")?;
        let processes = lines
            .filter(|l| {
                l.split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|p| pids.contains(&p))
            })
            .map(str::to_owned)
            .collect();
        Ok(Top {
            header: header.to_owned(),
            processes,
        })
    }

    /// Where `c`'s ports are published now (none unless it runs); with `private`
    /// (`PORT[/PROTO]`, tcp by default), only that port's, and an error if it has none.
    pub fn port(&self, c: &Container, private: Option<&str>) -> Result<Vec<PortBinding>> {
        let st = c.state()?;
        if !st.status.is_active() {
            return Ok(Vec::new());
        }
        let wanted = private.map(|p| {
            if p.contains('/') {
                p.to_owned()
            } else {
                format!("{p}/tcp")
            }
        });
        let found: Vec<PortBinding> = st
            .ports
            .into_iter()
            .filter(|b| {
                wanted
                    .as_ref()
                    .is_none_or(|w| *w == format!("{}/{}", b.container_port, b.protocol.as_str()))
            })
            .collect();
        if let (Some(w), true) = (&wanted, found.is_empty()) {
            return Err(EngineError::NotFound(format!(
                "no public port '{w}' published for {}",
                c.name()
            )));
        }
        Ok(found)
    }
}
