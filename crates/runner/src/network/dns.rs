//! The networks' name server, in the hub's namespace on every bridge's gateway address
//! (UDP port 53), as docker's embedded DNS: on a user-defined network a container resolves
//! the names, short IDs, host names and aliases of the running containers on the networks
//! it is on (A records; AAAA gets an empty answer, there is no IPv6), never others'; every
//! other question is relayed to the uplink's resolver (the host's). Messages are parsed and
//! built with hickory-proto. The state is re-read when its file changes.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType, rdata::A};

use super::state::{NetworkState, Networks};
use super::{NetworkError, hub, netlink};

/// Answers for `query` (lower case, no trailing dot) asked from `source`: the addresses of
/// the running containers it names on the networks `source`'s container is on (those
/// with name resolution), the one on the network the question came from first. `None`
/// when no container by that name is in reach: the question goes upstream.
pub(crate) fn resolve(
    st: &NetworkState,
    source: Ipv4Addr,
    query: &str,
    running: impl Fn(&super::Endpoint) -> bool,
) -> Option<Vec<Ipv4Addr>> {
    let asker = st.endpoints.iter().find(|e| e.ip == source)?;
    let shared: BTreeSet<&str> = st
        .endpoints_of(&asker.container)
        .into_iter()
        .map(|e| e.network.as_str())
        .filter(|id| {
            st.networks
                .iter()
                .any(|n| n.id == *id && n.resolves_names())
        })
        .collect();
    let mut found: Vec<(bool, Ipv4Addr)> = st
        .endpoints
        .iter()
        .filter(|e| shared.contains(e.network.as_str()) && e.answers_to(query) && running(e))
        .map(|e| (e.network != asker.network, e.ip))
        .collect();
    if found.is_empty() {
        return None;
    }
    found.sort();
    let mut out: Vec<Ipv4Addr> = Vec::new();
    for (_, ip) in found {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Some(out)
}

/// The answer to `request` from `source`, or `None` to relay it upstream.
fn answer(
    st: &NetworkState,
    source: Ipv4Addr,
    request: &Message,
    running: impl Fn(&super::Endpoint) -> bool,
) -> Option<Message> {
    let q = request.queries.first()?;
    let name = q.name().to_ascii().to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    let ips = resolve(st, source, name, running)?;
    let mut resp = Message::response(request.metadata.id, request.metadata.op_code);
    resp.metadata.message_type = MessageType::Response;
    resp.metadata.recursion_desired = request.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    resp.metadata.response_code = ResponseCode::NoError;
    resp.add_query(q.clone());
    if matches!(q.query_type(), RecordType::A | RecordType::ANY) {
        for ip in ips {
            resp.add_answer(Record::from_rdata(q.name().clone(), 600, RData::A(A(ip))));
        }
    }
    Some(resp)
}

/// Relay `packet` to the upstream resolver and its reply back to `client`, on a thread of
/// its own (a slow upstream holds no other question up).
fn relay(server: Arc<UdpSocket>, packet: Vec<u8>, client: SocketAddr) {
    std::thread::spawn(move || {
        let Ok(up) = UdpSocket::bind("0.0.0.0:0") else {
            return;
        };
        let _ = up.set_read_timeout(Some(Duration::from_secs(5)));
        if up.send_to(&packet, hub::UPLINK_DNS).is_err() {
            return;
        }
        let mut buf = vec![0u8; 65535];
        if let Ok((n, _)) = up.recv_from(&mut buf) {
            let _ = server.send_to(&buf[..n], client);
        }
    });
}

/// Serve DNS on UDP port 53 of every address of this (the hub's) namespace until the
/// process ends.
pub(crate) fn serve(networks: Networks) -> Result<JoinHandle<()>, NetworkError> {
    let sock = UdpSocket::bind("0.0.0.0:53")
        .map_err(|e| NetworkError::Setup(format!("DNS server on port 53: {e}")))?;
    let sock = Arc::new(sock);
    Ok(std::thread::spawn(move || {
        let path = networks.dir().join("state.json");
        let mut cached: Option<(SystemTime, NetworkState)> = None;
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let packet = buf[..n].to_vec();
            let Ok(request) = Message::from_vec(&packet) else {
                continue;
            };
            let mtime = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if cached.as_ref().is_none_or(|(t, _)| *t != mtime)
                && let Ok(st) = networks.peek()
            {
                cached = Some((mtime, st));
            }
            let source = match from.ip() {
                IpAddr::V4(ip) => ip,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            };
            let local = cached.as_ref().and_then(|(_, st)| {
                answer(st, source, &request, |e| {
                    netlink::index(&e.host_ifname()).is_some()
                })
            });
            match local {
                Some(resp) => {
                    if let Ok(bytes) = resp.to_vec() {
                        let _ = sock.send_to(&bytes, from);
                    }
                }
                None => relay(sock.clone(), packet, from),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::state::{Endpoint, mac_for, new_id};

    fn endpoint(
        container: &str,
        name: &str,
        network: &str,
        ip: [u8; 4],
        aliases: &[&str],
    ) -> Endpoint {
        let ip = Ipv4Addr::from(ip);
        Endpoint {
            id: new_id(),
            container: container.into(),
            name: name.into(),
            hostname: String::new(),
            network: network.into(),
            ip,
            mac: mac_for(ip),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            static_ip: false,
            index: 0,
        }
    }

    #[test]
    fn names_resolve_only_on_shared_user_networks() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = Networks::new(dir.path()).load().unwrap();
        let bridge_id = st.networks[0].id.clone();
        for (name, subnet) in [("front", "172.18.0.0/16"), ("back", "172.19.0.0/16")] {
            let mut n = st.networks[0].clone();
            n.id = format!("{name:0<64}");
            n.name = name.into();
            n.subnet = Some(subnet.parse().unwrap());
            st.networks.push(n);
        }
        let front = format!("{:0<64}", "front");
        let back = format!("{:0<64}", "back");
        let (web, client, other) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        st.endpoints = vec![
            endpoint(&web, "web", &front, [172, 18, 0, 2], &["www"]),
            endpoint(&client, "client", &front, [172, 18, 0, 3], &[]),
            endpoint(&other, "other", &back, [172, 19, 0, 2], &[]),
            endpoint(&other, "other", &bridge_id, [172, 17, 0, 2], &[]),
            endpoint(&web, "web", &bridge_id, [172, 17, 0, 3], &[]),
        ];
        let all = |_: &Endpoint| true;
        let from_client = Ipv4Addr::new(172, 18, 0, 3);
        assert_eq!(
            resolve(&st, from_client, "web", all),
            Some(vec![Ipv4Addr::new(172, 18, 0, 2)])
        );
        assert_eq!(
            resolve(&st, from_client, "www", all),
            Some(vec![Ipv4Addr::new(172, 18, 0, 2)])
        );
        assert_eq!(
            resolve(&st, from_client, &"a".repeat(12), all),
            Some(vec![Ipv4Addr::new(172, 18, 0, 2)])
        );
        assert_eq!(
            resolve(&st, from_client, "other", all),
            None,
            "not on a shared network"
        );
        // The default bridge has no name resolution.
        assert_eq!(resolve(&st, Ipv4Addr::new(172, 17, 0, 2), "web", all), None);
        // Stopped containers are not answered.
        assert_eq!(resolve(&st, from_client, "web", |_| false), None);
        // Unknown askers go upstream.
        assert_eq!(resolve(&st, Ipv4Addr::new(10, 0, 0, 1), "web", all), None);
    }

    #[test]
    fn answers_are_dns_messages_with_the_question() {
        use hickory_proto::op::Query;
        use hickory_proto::rr::Name;
        let dir = tempfile::tempdir().unwrap();
        let mut st = Networks::new(dir.path()).load().unwrap();
        let mut n = st.networks[0].clone();
        n.name = "net".into();
        n.id = "d".repeat(64);
        st.networks.push(n);
        st.endpoints = vec![
            endpoint(
                &"a".repeat(64),
                "web",
                &"d".repeat(64),
                [172, 18, 0, 2],
                &[],
            ),
            endpoint(&"b".repeat(64), "c", &"d".repeat(64), [172, 18, 0, 3], &[]),
        ];
        let mut q = Message::query();
        q.metadata.id = 4321;
        q.add_query(Query::query(
            Name::from_ascii("WEB.").unwrap(),
            RecordType::A,
        ));
        let wire = Message::from_vec(&q.to_vec().unwrap()).unwrap();
        let r = answer(&st, Ipv4Addr::new(172, 18, 0, 3), &wire, |_| true).unwrap();
        let r = Message::from_vec(&r.to_vec().unwrap()).unwrap();
        assert_eq!(r.metadata.id, 4321);
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data, RData::A(A(Ipv4Addr::new(172, 18, 0, 2))));
        let mut q6 = Message::query();
        q6.add_query(Query::query(
            Name::from_ascii("web").unwrap(),
            RecordType::AAAA,
        ));
        let r6 = answer(&st, Ipv4Addr::new(172, 18, 0, 3), &q6, |_| true).unwrap();
        assert!(
            r6.answers.is_empty(),
            "no IPv6: an empty answer, not a relay"
        );
    }
}
