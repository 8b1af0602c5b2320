//! Helpers shared by the container commands: docker's wording for a
//! container's status, ports and command (the `ps` columns).

use rbuild_runner::lifecycle::{Container, ContainerState, Status};

use super::common::{human_duration, now};

/// Seconds of a nanosecond timestamp.
pub fn secs(ns: i64) -> i64 {
    ns.div_euclid(1_000_000_000)
}

/// Docker's `STATUS` column: `Up 3 minutes`, `Exited (0) 2 minutes ago`, `Created`, …
pub fn status_text(st: &ContainerState) -> String {
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => match &st.health {
            Some(h) => format!(
                "Up {} ({})",
                human_duration(now() - secs(st.started_at)),
                h.summary()
            ),
            None => format!("Up {}", human_duration(now() - secs(st.started_at))),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

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
