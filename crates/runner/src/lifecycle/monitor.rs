//! The monitor: the process that owns a detached container, like conmon. It holds the
//! container's `monitor.lock` for its whole life, starts the container with [`crate::spawn`],
//! copies its output into the json-file log, reaps it, records how it ended, restarts it as
//! its policy says, and removes its cgroups (and, with `--rm`, the container).
//!
//! The container's PID is only reaped while the state lock is held, so a command that reads
//! `running` and a PID under that lock may signal it without racing PID reuse.

use std::os::fd::OwnedFd;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::libc;

use super::health;
pub use super::health::HealthObserver;
use super::log::{self, LogWriter};
use super::ports;
use super::record::{ContainerRecord, ContainerState, PortBinding, Status};
use super::stdin::StdinServer;
use super::store::Container;
use super::time::now_ns;
use crate::container::{ConsoleSize, ContainerConfig, ExitStatus, Outcome, Running, Stdio};
use crate::error::Error;
use crate::network::{ContainerNetwork, Networks};

/// Docker's exit status for a container that could not start: 127 command not found, 126
/// not executable, 125 anything else.
pub fn start_failure_code(e: &Error) -> i32 {
    match e {
        Error::CommandNotFound { .. } => 127,
        Error::NotExecutable { .. } => 126,
        _ => 125,
    }
}

/// For `--network container:ID`: point the spec's network namespace at that container's,
/// which must be running now.
fn join_network(c: &Container, spec: &mut oci_spec::runtime::Spec) -> Result<(), Error> {
    let Some(target) = c.record.network.strip_prefix("container:") else {
        return Ok(());
    };
    let other = super::Containers::new(c.store_root()).get(target)?;
    let st = other.state()?;
    if !matches!(st.status, Status::Running | Status::Paused) || st.pid <= 0 {
        return Err(super::ContainerError::NotRunning(other.id().to_owned()).into());
    }
    crate::netns::join_network(spec, format!("/proc/{}/ns/net", st.pid).into());
    Ok(())
}

/// The runner configuration for one start of `c`, with the given streams; `net` is its
/// network namespace when it is on bridge networks ([`attach_network`]).
pub fn container_config(
    c: &Container,
    stdio: Stdio,
    net: Option<&ContainerNetwork>,
) -> Result<ContainerConfig, Error> {
    let mut spec = c.spec()?;
    join_network(c, &mut spec)?;
    let etc = match net {
        Some(net) => {
            crate::netns::join_network(&mut spec, net.path());
            bridged_etc(c, net)
        }
        None => unbridged_etc(c),
    };
    Ok(ContainerConfig {
        id: c.id().to_owned(),
        dir: c.dir().to_owned(),
        spec,
        rootfs: c.record.rootfs.clone(),
        init: c.record.init,
        stdio,
        remove: false,
        // A `--rm` container's writable layer goes with it: no sync when it ends.
        volatile: c.record.auto_remove,
        etc,
    })
}

/// For a container on bridge networks: its own network namespace with its endpoints
/// plugged in (the hub started with `program` if need be), held for all its runs; `None`
/// for other network modes.
pub fn attach_network(
    c: &Container,
    program: &std::path::Path,
) -> Result<Option<ContainerNetwork>, Error> {
    if !c.record.is_bridged() {
        return Ok(None);
    }
    Ok(Some(
        Networks::new(c.store_root()).attach_container(program, c.id())?,
    ))
}

/// docker's `/etc/hosts` and `/etc/resolv.conf` for a bridged container: its address named
/// by its host name, `--add-host` entries, and the first network's DNS server (the gateway)
/// or the `--dns` servers, with `--dns-search`/`--dns-option` or the host's search domains.
fn bridged_etc(c: &Container, net: &ContainerNetwork) -> crate::EtcFiles {
    let r = &c.record;
    let mut hosts = String::from(crate::etc::OWN_NETWORK_HOSTS);
    add_hosts(&mut hosts, &r.extra_hosts);
    if let Some(first) = net.endpoints.first() {
        hosts.push_str(&format!("{}\t{}\n", first.ip, r.hostname));
    }
    let gateway = Networks::new(c.store_root()).load().ok().and_then(|st| {
        let first = net.endpoints.first()?;
        st.networks.iter().find(|n| n.id == first.network)?.gateway
    });
    let resolv = resolv_conf(
        r,
        gateway.map(|gw| format!("nameserver {gw}\n")),
        &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    );
    crate::EtcFiles::Given { hosts, resolv }
}

/// The `/etc` files of a container on no bridge network: docker's own ones, or, with
/// `--add-host`, `--dns`, `--dns-search` or `--dns-option`, those applied to them (the
/// `none` network's fresh `/etc/hosts`, the host's with `--network host`; the host's
/// `resolv.conf`), as docker writes them.
fn unbridged_etc(c: &Container) -> crate::EtcFiles {
    let r = &c.record;
    if r.extra_hosts.is_empty()
        && r.dns.is_empty()
        && r.dns_search.is_empty()
        && r.dns_options.is_empty()
    {
        return crate::EtcFiles::Docker;
    }
    let mut hosts = crate::etc::docker_hosts(&r.hostname, r.network != "host");
    add_hosts(&mut hosts, &r.extra_hosts);
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_servers: String = host_resolv
        .lines()
        .filter(|l| l.starts_with("nameserver "))
        .map(|l| format!("{l}\n"))
        .collect();
    let resolv = resolv_conf(r, Some(host_servers), &host_resolv);
    crate::EtcFiles::Given { hosts, resolv }
}

/// Append `--add-host NAME:IP` entries (an IPv6 address may hold colons) to `hosts`.
fn add_hosts(hosts: &mut String, extra: &[String]) {
    for h in extra {
        if let Some((name, ip)) = h
            .rsplit_once(':')
            .filter(|(_, ip)| !ip.contains(']'))
            .or_else(|| h.split_once(':'))
        {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
}

/// A container's `resolv.conf`: the `--dns` servers, else `servers` (the network's DNS
/// server, or the host's); `--dns-search`, else the host's search/domain lines;
/// `--dns-option`, else the host's options.
fn resolv_conf(r: &ContainerRecord, servers: Option<String>, host_resolv: &str) -> String {
    let mut resolv = String::new();
    if r.dns.is_empty() {
        resolv.push_str(&servers.unwrap_or_default());
    } else {
        for d in &r.dns {
            resolv.push_str(&format!("nameserver {d}\n"));
        }
    }
    if r.dns_search.is_empty() {
        for l in host_resolv
            .lines()
            .filter(|l| l.starts_with("search ") || l.starts_with("domain "))
        {
            resolv.push_str(l);
            resolv.push('\n');
        }
    } else {
        resolv.push_str(&format!("search {}\n", r.dns_search.join(" ")));
    }
    if r.dns_options.is_empty() {
        for l in host_resolv.lines().filter(|l| l.starts_with("options ")) {
            resolv.push_str(l);
            resolv.push('\n');
        }
    } else {
        resolv.push_str(&format!("options {}\n", r.dns_options.join(" ")));
    }
    resolv
}

/// A container's published ports being forwarded: dropping it closes them all.
#[derive(Debug)]
pub struct Published {
    /// Where connections go; point it at each run's process.
    pub target: ports::Target,
    /// The bindings with the host ports actually bound.
    pub bound: Vec<PortBinding>,
    _serving: Vec<ports::Serving>,
}

/// Listen on `c`'s published ports and forward connections to wherever the returned
/// target points, until the [`Published`] is dropped.
pub fn publish(c: &Container) -> Result<Published, Error> {
    let target = ports::Target::default();
    let mut bound = Vec::new();
    let mut serving = Vec::new();
    for (listener, b) in ports::listen(&c.record.ports)? {
        serving.push(ports::serve(listener, b.container_port, target.clone()));
        bound.push(b);
    }
    Ok(Published {
        target,
        bound,
        _serving: serving,
    })
}

/// Record that `running` is `c`'s process now, its published ports bound to `ports` (the
/// caller holds the state lock).
pub fn record_start(
    c: &Container,
    lock: &super::store::StateLock,
    running: &Running,
    ports: &[PortBinding],
) -> Result<ContainerState, Error> {
    let mut st = c.stored_state()?;
    st.ports = ports.to_vec();
    st.status = Status::Running;
    st.pid = running.pid();
    st.monitor_pid = std::process::id() as i32;
    st.started_at = now_ns();
    st.error.clear();
    st.signal = None;
    st.oom_killed = false;
    st.cgroups = running.cgroup_paths();
    c.write_state(lock, &st)?;
    Ok(st)
}

/// Record a start that failed (the container stays `created`, as docker's does).
pub fn record_start_failure(c: &Container, e: &Error) -> Result<(), Error> {
    c.update(|st| {
        if st.started_at == 0 {
            st.status = Status::Created;
        } else {
            st.status = Status::Exited;
            st.finished_at = now_ns();
        }
        st.pid = 0;
        st.monitor_pid = 0;
        st.exit_code = start_failure_code(e);
        st.error = e.to_string();
        st.cgroups.clear();
    })
    .map(|_| ())
}

/// Reap `running` (its exit is ready), and record the end under the state lock; returns
/// the state written. `restart` decides, from the state, whether the policy restarts it.
pub fn record_exit(c: &Container, running: Running) -> Result<(ContainerState, Outcome), Error> {
    let lock = c.lock()?;
    let outcome = running.wait();
    let mut st = c.stored_state()?;
    st.pid = 0;
    st.finished_at = now_ns();
    st.cgroups.clear();
    st.status = Status::Exited;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            st.error = e.to_string();
            c.write_state(&lock, &st)?;
            return Err(e);
        }
    };
    st.exit_code = if outcome.oom_killed {
        137
    } else {
        outcome.status.code()
    };
    st.signal = match outcome.status {
        ExitStatus::Signaled(s) => Some(s),
        ExitStatus::Exited(_) => None,
    };
    st.oom_killed = outcome.oom_killed;
    let again =
        c.record
            .restart
            .should_restart(st.exit_code, st.restart_count, st.manually_stopped);
    if again {
        st.status = Status::Restarting;
        st.restart_count += 1;
    } else {
        st.monitor_pid = 0;
    }
    c.write_state(&lock, &st)?;
    Ok((st, outcome))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::Sys {
        call: "pipe2",
        errno,
    })
}

/// Start `c` once with its output going to the log; the pump thread ends when the output
/// does. With `-i`, the container's stdin is a pipe whose write end goes to `input` (the
/// attach socket), so it stays open instead of reading end-of-file at once, as docker keeps
/// it, and attachers' input reaches it.
fn start_logged(
    c: &Container,
    input: Option<&StdinServer>,
    net: Option<&ContainerNetwork>,
) -> Result<(Running, JoinHandle<Result<(), Error>>), Error> {
    let mut writer = LogWriter::open(&c.log_path(), c.record.log)?;
    let (stdin, stdin_writer): (OwnedFd, Option<OwnedFd>) = if input.is_some() {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        let null = std::fs::File::open("/dev/null").map_err(Error::io("/dev/null"))?;
        (null.into(), None)
    };
    let (stdio, pipes) = if c.record.tty {
        (
            Stdio {
                console: Some(ConsoleSize::default()),
                ..Stdio::default()
            },
            None,
        )
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        (
            Stdio {
                stdin: Some(stdin),
                stdout: Some(out_w),
                stderr: Some(err_w),
                ..Stdio::default()
            },
            Some((out_r, err_r)),
        )
    };
    let mut running = crate::spawn(container_config(c, stdio, net)?)?;
    let streams = match pipes {
        Some((out, err)) => {
            if let Some(input) = input {
                input.set(stdin_writer);
            }
            vec![("stdout", out), ("stderr", err)]
        }
        None => {
            let master = running.take_console();
            // With a terminal, input is typed into its master side.
            if let (Some(input), Some(m)) = (input, &master) {
                input.set(m.try_clone().ok());
            }
            master.map(|m| vec![("stdout", m)]).unwrap_or_default()
        }
    };
    let pump = std::thread::spawn(move || log::pump(streams, &mut writer));
    Ok((running, pump))
}

/// Docker's restart delay: 100 ms, doubling after each restart, back to 100 ms once a run
/// lasted 10 s; at most a minute.
fn restart_delay(previous: Duration, ran: Duration) -> Duration {
    if ran >= Duration::from_secs(10) || previous.is_zero() {
        Duration::from_millis(100)
    } else {
        (previous * 2).min(Duration::from_secs(60))
    }
}

/// What happened to a supervised container's runs, for its monitor's observers (events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// A run ended; its state as recorded (`Restarting` when the policy starts it again).
    Exited(ContainerState),
    /// The restart policy started it again, with this PID.
    Restarted(i32),
}

/// Supervise `c` until it ends for good. `monitor` is the claimed `monitor.lock`
/// ([`Container::claim_monitor`]), held until this returns. `started` is told once how the
/// first start went (the container's PID, or the error, also recorded in its state).
pub fn supervise(
    c: &Container,
    monitor: OwnedFd,
    hub_program: &std::path::Path,
    started: impl FnOnce(Result<i32, &Error>),
) -> Result<ContainerState, Error> {
    supervise_observed(c, monitor, hub_program, started, |_| {})
}

/// [`supervise`], telling `observe` of every run's end and every restart (the final end
/// included, before the monitor lock is released).
pub fn supervise_observed(
    c: &Container,
    monitor: OwnedFd,
    hub_program: &std::path::Path,
    started: impl FnOnce(Result<i32, &Error>),
    observe: impl FnMut(RunEvent),
) -> Result<ContainerState, Error> {
    supervise_with_health(
        c,
        monitor,
        hub_program,
        started,
        observe,
        std::sync::Arc::new(|_| {}),
    )
}

/// [`supervise_observed`], also running the container's healthcheck during each run
/// ([`health::start`]); `health` hears each change of its status (from another thread).
pub fn supervise_with_health(
    c: &Container,
    monitor: OwnedFd,
    hub_program: &std::path::Path,
    started: impl FnOnce(Result<i32, &Error>),
    mut observe: impl FnMut(RunEvent),
    health: health::HealthObserver,
) -> Result<ContainerState, Error> {
    let mut started = Some(started);
    let mut delay = Duration::ZERO;
    let net = match attach_network(c, hub_program) {
        Ok(n) => n,
        Err(e) => {
            record_start_failure(c, &e)?;
            if let Some(tell) = started.take() {
                tell(Err(&e));
            }
            return Err(e);
        }
    };
    let published = match publish(c) {
        Ok(p) => p,
        Err(e) => {
            record_start_failure(c, &e)?;
            if let Some(tell) = started.take() {
                tell(Err(&e));
            }
            return Err(e);
        }
    };
    let input = if c.record.interactive {
        match StdinServer::listen(c.dir(), c.record.stdin_once) {
            Ok(s) => Some(s),
            Err(e) => {
                record_start_failure(c, &e)?;
                if let Some(tell) = started.take() {
                    tell(Err(&e));
                }
                return Err(e);
            }
        }
    } else {
        None
    };
    let last = loop {
        // Held from before the run is recorded until its end is, for `wait`.
        let run = c.claim_run()?;
        let lock = c.lock()?;
        let begun = std::time::Instant::now();
        let (running, pump) = match start_logged(c, input.as_ref(), net.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                drop(lock);
                record_start_failure(c, &e)?;
                if let Some(tell) = started.take() {
                    tell(Err(&e));
                }
                return Err(e);
            }
        };
        let st = record_start(c, &lock, &running, &published.bound);
        drop(lock);
        st?;
        published.target.set(running.pid());
        match started.take() {
            Some(tell) => tell(Ok(running.pid())),
            None => observe(RunEvent::Restarted(running.pid())),
        }
        let prober = health::start(c, running.pid(), health.clone()).unwrap_or(None);
        running.wait_exit_ready()?;
        drop(prober);
        // The output ends with the container's processes (its PID namespace dies with
        // PID 1): all of it is in the log before the end is recorded.
        let _ = pump.join();
        published.target.set(0);
        if let Some(input) = &input {
            input.set(None);
        }
        let (st, _) = record_exit(c, running)?;
        drop(run);
        observe(RunEvent::Exited(st.clone()));
        if st.status != Status::Restarting {
            break st;
        }
        delay = restart_delay(delay, begun.elapsed());
        let until = std::time::Instant::now() + delay;
        let mut stopped = false;
        while std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10).min(delay));
            if c.stored_state()?.manually_stopped {
                stopped = true;
                break;
            }
        }
        if stopped {
            break c.update(|st| {
                st.status = Status::Exited;
                st.monitor_pid = 0;
            })?;
        }
    };
    if c.record.auto_remove {
        // For `wait`, which may only look once the container is gone.
        let _ = std::fs::write(c.exit_record(), last.exit_code.to_string());
        c.remove()?;
        c.remove_anonymous_volumes()?;
    }
    // Nothing may listen on the container's ports once the monitor lock is free.
    drop(input);
    drop(published);
    drop(net);
    drop(monitor);
    Ok(last)
}

/// Send `signal` to the container's first process if it runs; returns whether it did.
/// Under the state lock, so the PID is still the container's.
pub fn signal(c: &Container, signal: i32, manual_stop: bool) -> Result<bool, Error> {
    let lock = c.lock()?;
    let mut st = c.stored_state()?;
    if manual_stop && st.status.is_active() {
        st.manually_stopped = true;
        c.write_state(&lock, &st)?;
    }
    if !matches!(st.status, Status::Running | Status::Paused) || st.pid <= 0 {
        return Ok(false);
    }
    // SAFETY: kill(2) on the container's unreaped process.
    if unsafe { libc::kill(st.pid, signal) } < 0 {
        return Err(Error::Sys {
            call: "kill",
            errno: nix::errno::Errno::last(),
        });
    }
    Ok(true)
}
