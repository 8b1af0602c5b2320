//! Interface plumbing through rtnetlink, inside a given network namespace: a short-lived
//! thread enters the namespace (`setns` moves only that thread), opens a netlink socket
//! there and runs the requests on a current-thread tokio runtime.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use super::NetworkError;

/// Run `f` on a thread inside the network namespace `ns` (the caller's for `None`).
pub(crate) fn in_netns<T: Send>(
    ns: Option<BorrowedFd<'_>>,
    f: impl FnOnce() -> Result<T, NetworkError> + Send,
) -> Result<T, NetworkError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(fd) = ns {
                // SAFETY: setns on an open namespace descriptor; it moves this thread only.
                if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
                    return Err(NetworkError::Setup(format!(
                        "entering a network namespace: {}",
                        std::io::Error::last_os_error()
                    )));
                }
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(NetworkError::Setup("a network thread panicked".into())))
    })
}

/// Run netlink requests in this thread's namespace.
pub(crate) fn run<T, Fut>(what: &str, f: impl FnOnce(Handle) -> Fut) -> Result<T, NetworkError>
where
    Fut: Future<Output = Result<T, rtnetlink::Error>>,
{
    let fail = |e: &dyn std::fmt::Display| NetworkError::Setup(format!("{what}: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| fail(&e))?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| fail(&e))?;
        tokio::spawn(conn);
        f(handle).await.map_err(|e| fail(&e))
    })
}

/// The index of interface `name` in this thread's namespace.
pub(crate) fn index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// Make bridge `name` with `gateway/prefix` and bring it up, unless it exists.
pub(crate) fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<(), NetworkError> {
    if index(name).is_some() {
        return Ok(());
    }
    let name = name.to_owned();
    run(
        &format!("creating bridge {name}"),
        async move |h: Handle| {
            h.link()
                .add(LinkBridge::new(&name).build())
                .execute()
                .await?;
            let idx = index(&name).unwrap_or_default();
            h.address()
                .add(idx, IpAddr::V4(gateway), prefix)
                .execute()
                .await?;
            h.link()
                .set(LinkUnspec::new_with_index(idx).up().build())
                .execute()
                .await
        },
    )
}

/// Delete interface `name` if it exists (a veth's peer goes with it).
pub(crate) fn delete(name: &str) -> Result<(), NetworkError> {
    let Some(idx) = index(name) else {
        return Ok(());
    };
    run(&format!("deleting {name}"), async move |h: Handle| {
        h.link().del(idx).execute().await
    })
}

/// A veth pair in one request: `host` enslaved to `bridge` and up, its peer made directly
/// inside the namespace `target` as `peer` with MAC `mac` (moving an interface between
/// namespaces afterwards costs the kernel a network-wide synchronisation).
pub(crate) fn add_veth(
    host: &str,
    peer: &str,
    mac: [u8; 6],
    bridge: &str,
    target: BorrowedFd<'_>,
) -> Result<(), NetworkError> {
    let br = index(bridge)
        .ok_or_else(|| NetworkError::Setup(format!("bridge {bridge} does not exist")))?;
    let fd = target.as_raw_fd();
    let peer_msg = LinkUnspec::new_with_name(peer)
        .address(mac.to_vec())
        .setns_by_fd(fd)
        .build();
    let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host.to_owned())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
        .controller(br)
        .up()
        .build();
    run(&format!("creating veth {host}"), async move |h: Handle| {
        h.link().add(msg).execute().await
    })
}

/// In the container's namespace: give interface `name` its address `ip/prefix`, bring it
/// up, and route everything through `gateway` when given.
pub(crate) fn configure(
    name: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<(), NetworkError> {
    let idx = index(name)
        .ok_or_else(|| NetworkError::Setup(format!("interface {name} did not arrive")))?;
    run(&format!("configuring {name}"), async move |h: Handle| {
        h.address()
            .add(idx, IpAddr::V4(ip), prefix)
            .execute()
            .await?;
        h.link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await?;
        if let Some(gw) = gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(idx)
                .build();
            h.route().add(route).execute().await?;
        }
        Ok(())
    })
}

/// `02:42:ac:11:00:02` → bytes.
pub(crate) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    parts.try_into().ok()
}
