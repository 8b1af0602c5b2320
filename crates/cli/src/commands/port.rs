//! `rbuild port CONTAINER [PRIVATE_PORT[/PROTO]]`: the host addresses a container's ports
//! are published on.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::Globals;
use super::common::store_root;
use super::containers::find;

/// Arguments of `rbuild port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container (name, ID or ID prefix)
    pub container: String,
    /// Only this container port (PORT or PORT/PROTO)
    pub private_port: Option<String>,
}

/// Run `rbuild port`.
pub fn run(args: PortArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = find(&store_root(globals), &args.container)?;
    let st = c.state()?;
    if !st.status.is_active() {
        return Ok(ExitCode::SUCCESS);
    }
    let wanted = args.private_port.as_deref().map(|p| {
        if p.contains('/') {
            p.to_owned()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut found = false;
    for b in &st.ports {
        let key = format!("{}/{}", b.container_port, b.protocol.as_str());
        match &wanted {
            Some(w) if *w == key => println!("{}:{}", b.host_ip, b.host_port),
            Some(_) => continue,
            None => println!("{key} -> {}:{}", b.host_ip, b.host_port),
        }
        found = true;
    }
    if let (Some(w), false) = (&wanted, found) {
        bail!("no public port '{w}' published for {}", c.name());
    }
    Ok(ExitCode::SUCCESS)
}
