//! `rbuild port CONTAINER [PRIVATE_PORT[/PROTO]]`: the host addresses a container's ports
//! are published on.

use std::process::ExitCode;

use clap::Args;

use super::Globals;

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
    let c = super::common::engine(globals).container(&args.container)?;
    let private = args.private_port.as_deref();
    for b in super::common::engine(globals).port(&c, private)? {
        match private {
            Some(_) => println!("{}:{}", b.host_ip, b.host_port),
            None => println!(
                "{}/{} -> {}:{}",
                b.container_port,
                b.protocol.as_str(),
                b.host_ip,
                b.host_port
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
