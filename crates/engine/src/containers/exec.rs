//! Running a command in a running container (`docker exec`): the process made from the
//! container's spec and the exec options (its namespaces, cgroups, capabilities and seccomp
//! profile), then started by joining the container. Terminals, detaching and signal
//! forwarding are the front end's.

use oci_spec::runtime::{LinuxCapabilitiesBuilder, LinuxSeccomp, Process};
use rbuild_runner::exec::ExecConfig;
use rbuild_runner::lifecycle::{Container, ContainerError, Status};
use rbuild_runner::{Running, Stdio};

use crate::Engine;
use crate::error::{EngineError, Result, ResultExt};

/// `docker exec`'s options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// Variables (`KEY=VALUE`) over the container's.
    pub env: Vec<String>,
    /// Working directory [default: the container's].
    pub workdir: Option<String>,
    /// `USER[:GROUP]`, resolved in the container's passwd/group [default: the container's].
    pub user: Option<String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// All capabilities and no seccomp filter.
    pub privileged: bool,
}

/// A command ready to run in a container ([`Engine::exec_create`]).
#[derive(Debug, Clone)]
pub struct Exec {
    container: Container,
    process: Process,
    seccomp: Option<LinuxSeccomp>,
}

impl Engine {
    /// Make the process `opts` describe in the running container `c` (docker's exec create).
    pub fn exec_create(&self, c: &Container, opts: &ExecOptions) -> Result<Exec> {
        let st = c.state()?;
        match st.status {
            Status::Running => {}
            Status::Paused => {
                return Err(EngineError::Conflict(format!(
                    "container {} is paused, unpause the container before exec",
                    c.id()
                )));
            }
            _ => {
                return Err(EngineError::Conflict(format!(
                    "container {} is not running",
                    c.id()
                )));
            }
        }
        let spec = c.spec()?;
        let mut process = spec.process().clone().unwrap_or_default();
        let env =
            rbuild_runner::image::merge_env(&process.env().clone().unwrap_or_default(), &opts.env);
        process.set_args(Some(opts.cmd.clone()));
        process.set_env(Some(env));
        process.set_terminal(Some(opts.tty));
        if let Some(w) = &opts.workdir {
            process.set_cwd(w.into());
        }
        if let Some(u) = &opts.user {
            let etc =
                |f: &str| std::fs::read_to_string(format!("/proc/{}/root/etc/{f}", st.pid)).ok();
            let id =
                rbuild_runner::resolve_user(u, etc("passwd").as_deref(), etc("group").as_deref())?;
            let mut user = process.user().clone();
            user.set_uid(id.uid);
            user.set_gid(id.gid);
            user.set_additional_gids(Some(id.additional_gids.clone()));
            process.set_user(user);
            if id.uid != 0
                && let Some(caps) = process.capabilities().clone()
            {
                let mut caps = caps;
                caps.set_effective(None);
                caps.set_permitted(None);
                process.set_capabilities(Some(caps));
            }
        }
        if opts.privileged {
            let all = rbuild_runner::caps::all();
            process.set_capabilities(Some(
                LinuxCapabilitiesBuilder::default()
                    .bounding(all.clone())
                    .effective(all.clone())
                    .permitted(all)
                    .build()
                    .map_err(|e| EngineError::Failed(e.to_string()))
                    .context("capabilities")?,
            ));
        }
        let seccomp = if opts.privileged {
            None
        } else {
            spec.linux().as_ref().and_then(|l| l.seccomp().clone())
        };
        Ok(Exec {
            container: c.clone(),
            process,
            seccomp,
        })
    }

    /// Start `exec` in its container with `stdio` (docker's exec start). The container's PID
    /// stays its own while its lock is held (its monitor reaps under it), so the join cannot
    /// reach another process. Errors are the runner's, whose exit statuses
    /// (`lifecycle::monitor::start_failure_code`) front ends report.
    pub fn exec_start(
        &self,
        exec: &Exec,
        stdio: Stdio,
    ) -> std::result::Result<Running, rbuild_runner::Error> {
        let c = &exec.container;
        let lock = c.lock()?;
        let now = c.stored_state()?;
        if now.status != Status::Running {
            return Err(rbuild_runner::Error::Container(ContainerError::NotRunning(
                c.id().to_owned(),
            )));
        }
        let r = rbuild_runner::exec::exec(ExecConfig {
            pid: now.pid,
            cgroups: now.cgroups.clone(),
            process: exec.process.clone(),
            seccomp: exec.seccomp.clone(),
            stdio,
        });
        drop(lock);
        r
    }
}
