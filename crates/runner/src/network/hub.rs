//! The hub: the process that owns rbuild's network namespace.
//!
//! `PROGRAM --root ROOT network-hub` (the front end re-executed, as for a container's
//! monitor) unshares a network namespace of its own, which every bridge of the store root
//! lives in, and serves it: the uplink (`slirp4netns`, user-mode networking from the
//! host's side, so containers reach what the host reaches without any host route), NAT and
//! isolation rules (`iptables-restore` inside the namespace), and the DNS server on every
//! bridge's gateway address. It reports `ok PID` on its standard output once all of that
//! is up, and ends by itself once no container has been attached for [`linger`] (a veth
//! of ours in its namespace is a container attached), taking the namespace, the uplink and
//! every bridge with it. The host's namespace never changes.
//!
//! `hub.json` under `<root>/networks` names the running hub (PID and start time, so a
//! reused PID is not mistaken for it); it is written and removed under the networks lock,
//! which the hub also takes before it decides to end, so a container being attached and a
//! hub ending cannot cross. A hub killed with SIGKILL is found dead by the next command
//! that needs it, which starts a new one and plugs the running containers in again.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::libc;
use serde::{Deserialize, Serialize};

use super::state::{NetworkState, Networks, NetworksLock};
use super::{NetworkError, netlink};

/// The uplink's interface in the hub's namespace.
pub const UPLINK: &str = "tap0";
/// The uplink's DNS forwarder (slirp4netns's built-in address).
pub const UPLINK_DNS: &str = "10.0.2.3:53";
/// The host's loopback as the uplink shows it (`host-gateway`).
pub const HOST_GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 2);

/// How long a hub stays up with no container attached: `RBUILD_NETWORK_LINGER` seconds
/// (fractions allowed), 5 by default, so a script of short `run --rm`s does not start a hub
/// for each.
pub fn linger() -> Duration {
    std::env::var("RBUILD_NETWORK_LINGER")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(5))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HubFile {
    pid: i32,
    start: u64,
    /// Why the hub has no uplink (containers on its bridges cannot leave them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uplink_error: Option<String>,
}

/// A running hub, and its network namespace held open.
#[derive(Debug)]
pub struct Hub {
    /// Its process.
    pub pid: i32,
    ns: OwnedFd,
    /// Why it has no uplink, when its uplink could not start: containers on its bridges
    /// reach each other but not the outside.
    pub uplink_error: Option<String>,
}

impl Hub {
    /// The hub's network namespace.
    pub fn ns(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ns.as_fd()
    }
}

/// The start time of process `pid` (field 22 of its stat), to tell it from a reused PID.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Networks {
    /// The running hub, if there is one.
    pub fn running_hub(&self) -> Option<Hub> {
        let f: HubFile =
            serde_json::from_slice(&fs::read(self.dir().join("hub.json")).ok()?).ok()?;
        if start_time(f.pid) != Some(f.start) {
            return None;
        }
        let ns = File::open(format!("/proc/{}/ns/net", f.pid)).ok()?;
        // Still the same process after the open: the descriptor is its namespace.
        (start_time(f.pid) == Some(f.start)).then(|| Hub {
            pid: f.pid,
            ns: ns.into(),
            uplink_error: f.uplink_error,
        })
    }

    /// The running hub, or a new one started with `program` (the front end, which runs
    /// [`serve_hub`] as `network-hub`); a new hub gets the running containers plugged in
    /// again (a hub that was killed took their interfaces with it).
    pub fn ensure_hub(&self, lock: &NetworksLock, program: &Path) -> Result<Hub, NetworkError> {
        if let Some(h) = self.running_hub() {
            return Ok(h);
        }
        let hub = self.start_hub(program)?;
        let st = self.load_locked(lock)?;
        self.replug(&hub, &st);
        Ok(hub)
    }

    fn start_hub(&self, program: &Path) -> Result<Hub, NetworkError> {
        let log_path = self.dir().join("hub.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(NetworkError::io(&log_path))?;
        let mut cmd = Command::new(program);
        cmd.arg("--root")
            .arg(self.root())
            .arg("network-hub")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        // SAFETY: only async-signal-safe calls between fork and exec. The child forks again
        // and ends, so the hub is nobody's child (no zombie under a long-lived caller such as
        // a container's monitor); its exec reports through the inherited pipe as usual.
        unsafe {
            cmd.pre_exec(|| {
                match libc::fork() {
                    -1 => return Err(std::io::Error::last_os_error()),
                    0 => {}
                    _ => libc::_exit(0),
                }
                libc::setsid();
                libc::chdir(c"/".as_ptr());
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            NetworkError::Setup(format!(
                "starting the network hub ({}): {e}",
                program.display()
            ))
        })?;
        let mut report = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut report);
        }
        // The intermediate process ended at once; the hub's PID is in its report
        // (`ok PID`, or `ok PID no-uplink REASON`).
        let _ = child.wait();
        let (pid, uplink_error) = parse_report(&report);
        if pid <= 0 {
            let tail = fs::read_to_string(&log_path).unwrap_or_default();
            let last = tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(NetworkError::Setup(format!(
                "the network hub did not start: {} (see {})",
                if last.is_empty() { report.trim() } else { last },
                log_path.display()
            )));
        }
        let start = start_time(pid).unwrap_or_default();
        let f = HubFile {
            pid,
            start,
            uplink_error: uplink_error.clone(),
        };
        let path = self.dir().join("hub.json");
        fs::write(&path, serde_json::to_vec(&f).expect("serializes"))
            .map_err(NetworkError::io(&path))?;
        let ns = File::open(format!("/proc/{pid}/ns/net"))
            .map_err(NetworkError::io(format!("/proc/{pid}/ns/net")))?;
        Ok(Hub {
            pid,
            ns: ns.into(),
            uplink_error,
        })
    }

    /// Plug every running container's endpoints into a new hub.
    fn replug(&self, hub: &Hub, st: &NetworkState) {
        let containers = crate::lifecycle::Containers::new(self.root());
        let mut done = std::collections::BTreeSet::new();
        for e in &st.endpoints {
            if !done.insert(e.container.clone()) {
                continue;
            }
            let Ok(c) = containers.get(&e.container) else {
                continue;
            };
            let Ok(s) = c.state() else { continue };
            if s.pid <= 0 || !s.status.is_active() {
                continue;
            }
            let Ok(ns) = File::open(format!("/proc/{}/ns/net", s.pid)) else {
                continue;
            };
            let ns: OwnedFd = ns.into();
            for ep in st.endpoints_of(&e.container) {
                if let Err(err) = super::attach::plug(hub, st, ep, ns.as_fd(), true) {
                    let _ = err;
                }
            }
        }
    }

    /// Rewrite the hub's NAT and isolation rules from `st` (when a network is created or
    /// removed while it runs).
    pub fn refresh_firewall(&self, hub: &Hub, st: &NetworkState) -> Result<(), NetworkError> {
        firewall(Some(hub.ns.as_raw_fd()), st)
    }
}

/// The hub's report on its standard output: `ok PID` or `ok PID no-uplink REASON` once it
/// serves (PID, and why it has no uplink), anything else when it failed (PID 0).
fn parse_report(report: &str) -> (i32, Option<String>) {
    let Some(ok) = report.trim().strip_prefix("ok ") else {
        return (0, None);
    };
    let (pid, reason) = ok.split_once(" no-uplink ").unwrap_or((ok, ""));
    (
        pid.parse().unwrap_or(0),
        (!reason.is_empty()).then(|| reason.to_owned()),
    )
}

/// The rules of the hub's namespace: forward only within a bridge, from a non-internal
/// bridge out through the uplink, and replies back; masquerade what leaves by the uplink.
fn rules(st: &NetworkState) -> String {
    let mut filter = String::from(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
    );
    for n in st.networks.iter().filter(|n| n.is_bridge()) {
        filter.push_str(&format!("-A FORWARD -i {0} -o {0} -j ACCEPT\n", n.bridge));
        if !n.internal {
            filter.push_str(&format!(
                "-A FORWARD -i {} -o {UPLINK} -j ACCEPT\n",
                n.bridge
            ));
        }
    }
    filter.push_str("COMMIT\n");
    filter.push_str(&format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         -A POSTROUTING -o {UPLINK} -j MASQUERADE\nCOMMIT\n"
    ));
    filter
}

/// Load [`rules`] with `iptables-restore`, in the namespace `ns` (this process's for `None`).
fn firewall(ns: Option<i32>, st: &NetworkState) -> Result<(), NetworkError> {
    let mut cmd = Command::new("iptables-restore");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(fd) = ns {
        // SAFETY: setns is async-signal-safe; the descriptor stays open across fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|e| {
        NetworkError::Setup(format!(
            "iptables-restore: {e} (containers on bridge networks need iptables for their way out: apt-get install iptables)"
        ))
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(rules(st).as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetworkError::Setup(format!("iptables-restore: {e}")))?;
    if !out.status.success() {
        return Err(NetworkError::Setup(format!(
            "iptables-restore: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Start `slirp4netns` on this process's namespace and wait until its `tap0` is configured.
/// It runs in the host's namespace (`host`, the one this process left), where its sockets
/// must be: the uplink's far side is the host's networking.
fn uplink(host: &OwnedFd) -> Result<Child, NetworkError> {
    let host_fd = host.as_raw_fd();
    let (r, w) = nix::unistd::pipe().map_err(|e| NetworkError::Setup(format!("pipe: {e}")))?;
    let wfd = w.as_raw_fd();
    let mut cmd = Command::new("slirp4netns");
    cmd.arg("--configure")
        .arg("--mtu=65520")
        .arg(format!("--ready-fd={wfd}"))
        .arg("--netns-type=path")
        .arg(format!("/proc/{}/ns/net", std::process::id()))
        .arg(UPLINK)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: async-signal-safe calls only; the ready pipe's write end is kept open in the
    // child, and the child dies with the hub.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(host_fd, libc::CLONE_NEWNET) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let flags = libc::fcntl(wfd, libc::F_GETFD);
            libc::fcntl(wfd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        NetworkError::Setup(format!(
            "slirp4netns: {e} (containers on bridge networks reach the outside through it: apt-get install slirp4netns)"
        ))
    })?;
    drop(w);
    let mut f = File::from(r);
    let mut b = [0u8; 1];
    match f.read(&mut b) {
        Ok(1) => Ok(child),
        _ => Err(NetworkError::Setup(
            "slirp4netns ended before its interface was up".into(),
        )),
    }
}

/// Whether any of our veths is in this process's namespace (a container is attached).
fn anything_attached() -> bool {
    fs::read_to_string("/proc/self/net/dev")
        .map(|d| {
            d.lines()
                .skip(2)
                .filter_map(|l| l.split(':').next())
                .any(|n| n.trim().starts_with("vr"))
        })
        .unwrap_or(true)
}

/// Be the hub of the store root `root` (the front end's hidden `network-hub` command); see
/// the module. Must be called while the process has a single thread. Returns when the hub
/// ends.
pub fn serve_hub(root: &Path) -> Result<(), NetworkError> {
    let networks = Networks::new(root);
    let report = |line: &str| {
        let mut out = std::io::stdout();
        let _ = out.write_all(format!("{line}\n").as_bytes());
        let _ = out.flush();
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            // SAFETY: replacing our own standard output.
            unsafe { libc::dup2(null.as_raw_fd(), 1) };
        }
    };
    let host: OwnedFd = match File::open("/proc/self/ns/net") {
        Ok(f) => f.into(),
        Err(e) => {
            report(&format!("error /proc/self/ns/net: {e}"));
            return Err(NetworkError::io("/proc/self/ns/net")(e));
        }
    };
    // Rootless: the uplink cannot re-enter the host's namespace later; it starts now.
    let pending = crate::rootless::active().then(|| super::uplink_rootless::prepare(UPLINK));
    // SAFETY: unshare on the only thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
        let e = std::io::Error::last_os_error();
        report(&format!("error unshare(CLONE_NEWNET): {e}"));
        return Err(NetworkError::Setup(format!("unshare(CLONE_NEWNET): {e}")));
    }
    type Setup = (Result<Child, String>, std::thread::JoinHandle<()>);
    let setup = || -> Result<Setup, NetworkError> {
        use crate::syscall::Syscall;
        crate::syscall::LinuxSyscall
            .loopback_up()
            .map_err(|e| NetworkError::Setup(format!("bringing up lo: {e}")))?;
        let _ = fs::write("/proc/sys/net/ipv4/ip_forward", "1");
        let _ = fs::write("/proc/sys/net/bridge/bridge-nf-call-iptables", "0");
        let st = networks.peek()?;
        for n in st.networks.iter().filter(|n| n.is_bridge()) {
            if let (Some(subnet), Some(gw)) = (n.subnet, n.gateway) {
                netlink::ensure_bridge(&n.bridge, gw, subnet.prefix_len())?;
            }
        }
        let started = match pending {
            Some(p) => p.and_then(super::uplink_rootless::PendingUplink::start),
            None => uplink(&host),
        };
        let slirp = started.map_err(|e| {
            eprintln_log(&format!("no way out for containers: {e}"));
            match e {
                NetworkError::Setup(m) => m,
                e => e.to_string(),
            }
        });
        if slirp.is_ok()
            && let Err(e) = firewall(None, &st)
        {
            eprintln_log(&format!("no NAT for containers: {e}"));
        }
        let dns = super::dns::serve(networks.clone())?;
        Ok((slirp, dns))
    };
    let (slirp, _dns) = match setup() {
        Ok(x) => x,
        Err(e) => {
            report(&format!("error {e}"));
            return Err(e);
        }
    };
    // The reason for a missing uplink goes with the report (one line): the commands that
    // attach containers say it, instead of it being only in this log.
    let mut slirp = match slirp {
        Ok(c) => {
            report(&format!("ok {}", std::process::id()));
            Some(c)
        }
        Err(reason) => {
            let reason = reason.replace('\n', " ");
            report(&format!("ok {} no-uplink {reason}", std::process::id()));
            None
        }
    };
    let linger = linger();
    let mut idle_since: Option<Instant> = None;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if !networks.dir().exists() {
            break;
        }
        if anything_attached() {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < linger {
            continue;
        }
        // Decide under the lock: nobody is attaching a container now.
        let Ok(lock) = networks.lock() else { break };
        if anything_attached() {
            idle_since = None;
            continue;
        }
        let path = networks.dir().join("hub.json");
        let ours = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<HubFile>(&b).ok())
            .is_some_and(|f| f.pid == std::process::id() as i32);
        if ours {
            let _ = fs::remove_file(&path);
        }
        if let Some(c) = slirp.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        drop(lock);
        return Ok(());
    }
    if let Some(c) = slirp.as_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    Ok(())
}

/// A line in the hub's log (its standard error).
pub(crate) fn eprintln_log(line: &str) {
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "{} {line}",
        crate::lifecycle::time::rfc3339_nano(crate::lifecycle::time::now_ns())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_gives_the_pid_and_why_there_is_no_uplink() {
        assert_eq!(parse_report("ok 42\n"), (42, None));
        assert_eq!(
            parse_report("ok 42 no-uplink /dev/net/tun cannot be opened\n"),
            (42, Some("/dev/net/tun cannot be opened".into()))
        );
        assert_eq!(
            parse_report("error unshare(CLONE_NEWNET): EPERM"),
            (0, None)
        );
        assert_eq!(parse_report(""), (0, None));
    }

    #[test]
    fn rules_isolate_networks_and_keep_internal_ones_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = Networks::new(dir.path()).load().unwrap();
        let mut internal = st.networks[0].clone();
        internal.name = "secret".into();
        internal.bridge = "rb-secret".into();
        internal.internal = true;
        st.networks.push(internal);
        let r = rules(&st);
        assert!(r.contains(":FORWARD DROP"));
        assert!(r.contains("-A FORWARD -i rbuild0 -o tap0 -j ACCEPT"));
        assert!(r.contains("-A FORWARD -i rb-secret -o rb-secret -j ACCEPT"));
        assert!(!r.contains("-A FORWARD -i rb-secret -o tap0"));
        assert!(r.contains("-A POSTROUTING -o tap0 -j MASQUERADE"));
    }
}
