//! `EXPOSE` values as docker reads them: `PORT[/PROTO]`, a range `START-END[/PROTO]` (one
//! entry per port), and the `[IP:][HOST:]CONTAINER` forms docker tolerates, each turned into
//! the `port/proto` keys of the image config's `ExposedPorts`.

use super::Expose;

impl Expose {
    /// Every exposed port as `port/proto` (`8000-8002` gives `8000/tcp`, `8001/tcp`,
    /// `8002/tcp`), in the order written; the ports must have been expanded already.
    pub fn port_protos(&self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for spec in &self.ports {
            out.extend(port_protos(spec)?);
        }
        Ok(out)
    }
}

/// One EXPOSE word as `port/proto` keys.
fn port_protos(raw: &str) -> Result<Vec<String>, String> {
    // `[ip:]host:container`: only the container part is exposed.
    let container = raw.rsplit(':').next().unwrap_or(raw);
    let (ports, proto) = match container.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (container, "tcp".to_string()),
    };
    if ports.is_empty() {
        return Err(format!("invalid port {raw:?}: no port specified"));
    }
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid port {raw:?}: invalid proto: {proto}"));
    }
    let number = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n <= 65535)
            .ok_or_else(|| format!("invalid port {raw:?}: invalid containerPort: {ports}"))
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) if a != b => (number(a)?, number(b)?),
        Some((a, _)) => (number(a)?, number(a)?),
        None => (number(ports)?, number(ports)?),
    };
    if end < start {
        return Err(format!("invalid port {raw:?}: invalid port range: {ports}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expose(words: &[&str]) -> Result<Vec<String>, String> {
        Expose {
            ports: words.iter().map(|w| w.to_string()).collect(),
        }
        .port_protos()
    }

    #[test]
    fn ranges_expand_to_one_key_per_port() {
        // regression: `EXPOSE 8000-8002` stayed one `8000-8002/tcp` key.
        assert_eq!(
            expose(&["8000-8002", "53/UDP", "9000-9001/sctp"]).unwrap(),
            [
                "8000/tcp",
                "8001/tcp",
                "8002/tcp",
                "53/udp",
                "9000/sctp",
                "9001/sctp"
            ]
        );
        assert_eq!(expose(&["80-80"]).unwrap(), ["80/tcp"]);
        assert_eq!(expose(&["127.0.0.1:8080:80/udp"]).unwrap(), ["80/udp"]);
    }

    #[test]
    fn bad_ports_are_refused() {
        for bad in ["", "/tcp", "80/xyz", "x", "70000", "90-80", "1-x"] {
            assert!(expose(&[bad]).is_err(), "{bad:?} accepted");
        }
    }
}
