//! Helpers shared by the container commands: finding containers, signals, and docker's
//! wording for a container's status, ports and command.

use std::path::Path;

use anyhow::Context;
use rbuild_runner::lifecycle::time::rfc3339_nano;
use rbuild_runner::lifecycle::{Container, ContainerState, Containers, RestartPolicy, Status};
use serde_json::{Value, json};

use super::Globals;
use super::common::{human_duration, now, store_root};

/// The containers of the store root the command works on.
pub fn containers(globals: &Globals) -> Containers {
    Containers::new(&store_root(globals))
}

/// A container by ID, name or unique ID prefix.
pub fn find(root: &Path, query: &str) -> anyhow::Result<Container> {
    Ok(Containers::new(root).get(query)?)
}

/// A signal by name (`SIGTERM`, `TERM`, `term`) or number.
pub fn parse_signal(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        anyhow::bail!("invalid signal: {s}");
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .with_context(|| format!("invalid signal: {s}"))
}

/// Seconds of a nanosecond timestamp.
pub fn secs(ns: i64) -> i64 {
    ns.div_euclid(1_000_000_000)
}

/// Docker's `STATUS` column: `Up 3 minutes`, `Exited (0) 2 minutes ago`, `Created`, …
pub fn status_text(st: &ContainerState) -> String {
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", human_duration(now() - secs(st.started_at))),
        Status::Paused => format!(
            "Up {} (Paused)",
            human_duration(now() - secs(st.started_at))
        ),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            human_duration(now() - secs(st.finished_at))
        ),
        Status::Exited if st.finished_at == 0 => String::new(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            st.exit_code,
            human_duration(now() - secs(st.finished_at))
        ),
        Status::Dead => "Dead".into(),
    }
}

/// Docker's `PORTS` column: `127.0.0.1:8080->80/tcp, 53/udp`.
pub fn ports_text(c: &Container, st: &ContainerState) -> String {
    let bound = if st.status.is_active() && !st.ports.is_empty() {
        &st.ports
    } else {
        &c.record.ports
    };
    let mut out: Vec<String> = Vec::new();
    for p in bound {
        if st.status.is_active() {
            out.push(format!(
                "{}:{}->{}/{}",
                p.host_ip,
                p.host_port,
                p.container_port,
                p.protocol.as_str()
            ));
        } else {
            out.push(format!("{}/{}", p.container_port, p.protocol.as_str()));
        }
    }
    for e in &c.record.exposed_ports {
        let port = if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        };
        if !bound
            .iter()
            .any(|p| format!("{}/{}", p.container_port, p.protocol.as_str()) == port)
        {
            out.push(port);
        }
    }
    out.join(", ")
}

/// The command as one string, arguments joined by spaces.
pub fn command_text(c: &Container) -> String {
    c.record.command.join(" ")
}

/// Docker's truncation with `…`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn time_or_zero(ns: i64) -> String {
    if ns == 0 {
        "0001-01-01T00:00:00Z".to_owned()
    } else {
        rfc3339_nano(ns)
    }
}

/// A container as `docker container inspect` shows it.
pub fn container_json(c: &Container, st: &ContainerState) -> Value {
    let r = &c.record;
    let bound = if st.ports.is_empty() {
        &r.ports
    } else {
        &st.ports
    };
    let mut port_map = serde_json::Map::new();
    let mut bindings = serde_json::Map::new();
    for p in bound {
        let key = format!("{}/{}", p.container_port, p.protocol.as_str());
        let entry = json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()});
        if let Some(a) = bindings
            .entry(key.clone())
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            a.push(entry.clone());
        }
        if st.status.is_active()
            && let Some(a) = port_map
                .entry(key)
                .or_insert_with(|| json!([]))
                .as_array_mut()
        {
            a.push(entry);
        }
    }
    let exposed: serde_json::Map<String, Value> = r
        .exposed_ports
        .iter()
        .map(|p| (p.clone(), json!({})))
        .chain(bound.iter().map(|p| {
            (
                format!("{}/{}", p.container_port, p.protocol.as_str()),
                json!({}),
            )
        }))
        .collect();
    let mounts: Vec<Value> = r
        .mounts
        .iter()
        .map(|m| {
            json!({
                "Type": m.kind,
                "Name": if m.name.is_empty() { Value::Null } else { Value::String(m.name.clone()) },
                "Source": m.source,
                "Destination": m.destination,
                "Mode": "",
                "RW": m.rw,
                "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
            })
        })
        .collect();
    let binds: Vec<String> = r
        .mounts
        .iter()
        .filter(|m| m.kind == "bind")
        .map(|m| {
            format!(
                "{}:{}{}",
                m.source.display(),
                m.destination,
                if m.rw { "" } else { ":ro" }
            )
        })
        .collect();
    let restart_max = match r.restart {
        RestartPolicy::OnFailure { max } => max,
        _ => 0,
    };
    json!({
        "Id": r.id,
        "Created": rfc3339_nano(r.created),
        "Path": r.command.first().cloned().unwrap_or_default(),
        "Args": r.command.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": st.status.as_str(),
            "Running": matches!(st.status, Status::Running | Status::Paused),
            "Paused": st.status == Status::Paused,
            "Restarting": st.status == Status::Restarting,
            "OOMKilled": st.oom_killed,
            "Dead": st.status == Status::Dead,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": time_or_zero(st.started_at),
            "FinishedAt": time_or_zero(st.finished_at),
        },
        "Image": r.image_id,
        "ResolvConfPath": c.dir().join("resolv.conf"),
        "HostnamePath": c.dir().join("hostname"),
        "HostsPath": c.dir().join("hosts"),
        "LogPath": c.log_path(),
        "Name": format!("/{}", r.name),
        "RestartCount": st.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "Binds": binds,
            "LogConfig": {"Type": "json-file", "Config": {
                "max-size": r.log.max_size.to_string(),
                "max-file": r.log.max_files.to_string(),
            }},
            "NetworkMode": r.network,
            "PortBindings": bindings,
            "RestartPolicy": {"Name": r.restart.name(), "MaximumRetryCount": restart_max},
            "AutoRemove": r.auto_remove,
            "Init": r.init,
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": r.hostname,
            "User": r.user,
            "Tty": r.tty,
            "OpenStdin": r.interactive,
            "StdinOnce": r.stdin_once,
            "Env": r.env,
            "Cmd": r.cmd,
            "Image": r.image,
            "WorkingDir": r.working_dir,
            "Entrypoint": if r.entrypoint.is_empty() { Value::Null } else { json!(r.entrypoint) },
            "Labels": r.labels,
            "StopSignal": r.stop_signal,
            "StopTimeout": r.stop_timeout,
            "ExposedPorts": if exposed.is_empty() { Value::Null } else { Value::Object(exposed) },
        },
        "NetworkSettings": {
            "Ports": port_map,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("USR1").unwrap(), 10);
        assert_eq!(parse_signal("2").unwrap(), 2);
        assert!(
            parse_signal("SIGNOPE")
                .unwrap_err()
                .to_string()
                .contains("SIGNOPE")
        );
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn status_wording_is_dockers() {
        let t = now() * 1_000_000_000;
        let st = ContainerState {
            status: Status::Exited,
            exit_code: 3,
            finished_at: t - 120_000_000_000,
            ..Default::default()
        };
        assert_eq!(status_text(&st), "Exited (3) 2 minutes ago");
        let st = ContainerState {
            status: Status::Running,
            started_at: t,
            ..Default::default()
        };
        assert_eq!(status_text(&st), "Up Less than a second");
        assert_eq!(
            ellipsis("sh -c 'sleep 1000; echo done'", 20),
            "sh -c 'sleep 1000; …"
        );
    }
}
