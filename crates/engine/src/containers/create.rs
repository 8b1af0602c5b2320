//! Creating a container from [`CreateOptions`]: the image's defaults merged with the options,
//! the user resolved in the image's passwd/group, mounts planned (volumes made and filled),
//! docker's runtime spec, and the record written under the store root.

use std::path::PathBuf;

use rbuild_runner::lifecycle::health::HealthConfig;
use rbuild_runner::lifecycle::{ContainerRecord, MountRecord, PortBinding, RestartPolicy};
use rbuild_runner::{Network, Rootfs, RunOptions};

use super::mounts;
use super::{Created, Warning};
use crate::Engine;
use crate::error::{EngineError, Result, ResultExt};
use crate::events::{Event, EventType};
use crate::options::{CreateOptions, parse_publish, parse_signal};

/// What the image contributes: its config's process defaults and its layers.
struct ImageParts {
    /// The image ID, empty for `rootfs`.
    id: String,
    config: Option<oci_spec::image::Config>,
    healthcheck: Option<rbuild_runner::lifecycle::health::HealthConfig>,
    rootfs: Rootfs,
    /// Layer directories to read `/etc/passwd` and `/etc/group` from.
    layers: Vec<PathBuf>,
}

fn invalid(message: String) -> EngineError {
    EngineError::InvalidParameter(message)
}

impl Engine {
    /// Create the container `opts` describe (`docker create`, and the first half of `docker
    /// run`): its record and spec under the store root. Sends a `create` event.
    pub fn create_container(&self, opts: &CreateOptions) -> Result<Created> {
        let mut warnings = Vec::new();
        let (record, spec) = self.prepare(opts, &mut warnings)?;
        let containers = self.containers();
        if matches!(record.rootfs, Rootfs::Layers(_)) && !rbuild_runner::overlay_supported() {
            warnings.push(Warning::CopyingLayers(containers.dir().join(&record.id)));
        }
        let c = containers.create(record, &spec)?;
        if c.record.is_bridged() {
            let req = crate::networks::EndpointRequest {
                aliases: opts.network_aliases.clone(),
                ip: opts.ip,
                mac: opts.mac_address.clone(),
            };
            let attached = self.networks().update(|st| {
                let net = st.find(&c.record.network)?.clone();
                let e = crate::networks::new_endpoint(
                    st,
                    &net,
                    c.id(),
                    c.name(),
                    &c.record.hostname,
                    &req,
                )?;
                st.endpoints.push(e);
                Ok(())
            });
            if let Err(e) = attached {
                let _ = c.remove();
                return Err(e.into());
            }
        }
        self.emit(Event::now(
            EventType::Container,
            "create",
            c.id(),
            [
                ("image", c.record.image.clone()),
                ("name", c.name().to_owned()),
            ],
        ));
        Ok(Created {
            container: c,
            warnings,
        })
    }

    fn image_parts(&self, opts: &CreateOptions) -> Result<ImageParts> {
        if let Some(dir) = &opts.rootfs {
            if !dir.is_dir() {
                return Err(invalid(format!(
                    "rootfs {} is not a directory",
                    dir.display()
                )));
            }
            return Ok(ImageParts {
                id: String::new(),
                config: None,
                healthcheck: None,
                rootfs: Rootfs::Directory(dir.clone()),
                layers: vec![dir.clone()],
            });
        }
        let image = opts.image.as_deref().unwrap_or_default();
        self.resolve_image_for(image, opts.platform.as_ref())
            .map(|img| ImageParts {
                id: img.id,
                config: img.config,
                healthcheck: img.healthcheck,
                rootfs: Rootfs::Layers(img.layers.clone()),
                layers: img.layers,
            })
    }

    fn prepare(
        &self,
        opts: &CreateOptions,
        warnings: &mut Vec<Warning>,
    ) -> Result<(ContainerRecord, oci_spec::runtime::Spec)> {
        let root = self.root();
        let parts = self.image_parts(opts)?;
        let cfg = parts.config.clone().unwrap_or_default();
        let none: Vec<String> = Vec::new();
        let command = &opts.cmd;
        let args_cmd = rbuild_runner::image::command(
            cfg.entrypoint().as_ref().unwrap_or(&none),
            cfg.cmd().as_ref().unwrap_or(&none),
            opts.entrypoint.as_deref(),
            command,
        );
        if args_cmd.is_empty() {
            return Err(invalid("no command specified".into()).with_hint(
                "give a command after the image, or use an image with ENTRYPOINT or CMD",
            ));
        }
        let env = rbuild_runner::image::merge_env(cfg.env().as_ref().unwrap_or(&none), &opts.env);
        let user_spec = opts
            .user
            .clone()
            .or_else(|| cfg.user().clone())
            .unwrap_or_default();
        let passwd = rbuild_runner::image::read_file(&parts.layers, "/etc/passwd");
        let group = rbuild_runner::image::read_file(&parts.layers, "/etc/group");
        let user = rbuild_runner::resolve_user(&user_spec, passwd.as_deref(), group.as_deref())?;
        let id = rbuild_runner::lifecycle::new_id();
        let network = match opts.network.as_str() {
            "none" | "host" => opts.network.clone(),
            "" | "default" => "bridge".to_owned(),
            n => match n.strip_prefix("container:") {
                Some(other) => {
                    if !opts.ports.is_empty() || opts.publish_all {
                        return Err(EngineError::Conflict(
                            "conflicting options: port publishing and the container type network mode".into(),
                        ));
                    }
                    let target = self.containers().get(other)?;
                    format!("container:{}", target.id())
                }
                None => self.networks().load()?.find(n)?.name.clone(),
            },
        };
        // Rootless: host ports only root may bind are refused here, before anything is made.
        if network != "host" {
            rbuild_runner::rootless::check_ports(&opts.ports)
                .map_err(rbuild_runner::Error::from)?;
        }
        let bridged =
            !matches!(network.as_str(), "none" | "host") && !network.starts_with("container:");
        if !bridged
            && (!opts.network_aliases.is_empty() || opts.ip.is_some() || opts.mac_address.is_some())
        {
            return Err(invalid(format!(
                "--network-alias, --ip and --mac-address need a bridge network, not {network:?}"
            )));
        }
        // A container joining another's network namespace shares its /etc files (docker's
        // words).
        if network.starts_with("container:") {
            if !opts.extra_hosts.is_empty() {
                return Err(invalid(
                    "conflicting options: custom host-to-IP mapping and the network mode".into(),
                ));
            }
            if !opts.dns.is_empty() || !opts.dns_search.is_empty() || !opts.dns_options.is_empty() {
                return Err(invalid(
                    "conflicting options: dns and the network mode".into(),
                ));
            }
        }
        let extra_hosts = opts
            .extra_hosts
            .iter()
            .map(|h| {
                let (name, ip) = h.split_once(['=', ':']).filter(|(n, i)| !n.is_empty() && !i.is_empty()).ok_or_else(|| {
                    invalid(format!("invalid argument {h:?} for \"--add-host\" flag: expected NAME:IP"))
                })?;
                let ip = if ip == "host-gateway" {
                    if bridged {
                        rbuild_runner::network::HOST_GATEWAY.to_string()
                    } else {
                        "127.0.0.1".to_owned()
                    }
                } else {
                    let bare = ip.trim_start_matches('[').trim_end_matches(']');
                    bare.parse::<std::net::IpAddr>().map_err(|_| {
                        invalid(format!("invalid argument {h:?} for \"--add-host\" flag: invalid IP address {ip:?}"))
                    })?;
                    bare.to_owned()
                };
                Ok(format!("{name}:{ip}"))
            })
            .collect::<Result<Vec<_>>>()?;
        if opts.auto_remove && opts.restart != RestartPolicy::No {
            return Err(EngineError::Conflict(
                "conflicting options: cannot specify both --restart and --rm".into(),
            ));
        }
        let sources = mounts::Sources {
            root,
            layers: if opts.rootfs.is_some() {
                &[]
            } else {
                &parts.layers
            },
        };
        let mut planned = Vec::new();
        for v in &opts.volumes_from {
            planned.extend(mounts::volumes_from(root, v)?);
        }
        for v in &opts.volumes {
            planned.push(mounts::parse_volume(&sources, v)?);
        }
        for m in &opts.mounts {
            planned.push(mounts::parse_mount(&sources, m)?);
        }
        for t in &opts.tmpfs {
            planned.push(mounts::parse_tmpfs(t)?);
        }
        let image_volumes: Vec<String> = cfg.volumes().clone().unwrap_or_default();
        let anonymous = mounts::image_volumes(&sources, &image_volumes, &planned)?;
        planned.extend(anonymous);
        let mounts: Vec<_> = planned.iter().map(|(m, _)| m.clone()).collect();
        let mut run = RunOptions {
            args: args_cmd,
            env,
            cwd: opts
                .workdir
                .clone()
                .or_else(|| cfg.working_dir().clone())
                .unwrap_or_default(),
            user: Some(user),
            hostname: opts.hostname.clone().unwrap_or_else(|| id[..12].to_owned()),
            network: if network == "host" {
                Network::Host
            } else {
                Network::None
            },
            terminal: opts.tty,
            readonly_root: opts.read_only,
            mounts,
            cap_add: opts.cap_add.clone(),
            cap_drop: opts.cap_drop.clone(),
            privileged: opts.privileged,
            memory: opts.memory,
            cpus: opts.cpus,
            pids_limit: opts.pids_limit,
            ..Default::default()
        };
        if let Some(c) = opts.cpus
            && c <= 0.0
        {
            return Err(invalid(format!("invalid --cpus {c}: must be positive")));
        }
        security(opts, &mut run)?;
        let spec = rbuild_runner::docker_spec(&run)?;
        // Rootless without a delegated cgroup: limits are refused at create, not at start.
        rbuild_runner::rootless::check_resources(
            spec.linux().as_ref().and_then(|l| l.resources().as_ref()),
        )
        .map_err(rbuild_runner::Error::from)?;
        let mount_records: Vec<MountRecord> = planned.into_iter().map(|(_, r)| r).collect();
        let stop_signal = opts
            .stop_signal
            .clone()
            .or_else(|| cfg.stop_signal().clone())
            .unwrap_or_else(|| "SIGTERM".into());
        parse_signal(&stop_signal)?;
        let mut labels: std::collections::BTreeMap<String, String> = cfg
            .labels()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        labels.extend(opts.labels.clone());
        let mut exposed = cfg.exposed_ports().clone().unwrap_or_default();
        for e in &opts.expose {
            for port in expose_spec(e)? {
                if !exposed.contains(&port) {
                    exposed.push(port);
                }
            }
        }
        let record = ContainerRecord {
            id: id.clone(),
            name: opts.name.clone().unwrap_or_default(),
            created: rbuild_runner::lifecycle::time::now_ns(),
            image: opts
                .image
                .clone()
                .filter(|_| opts.rootfs.is_none())
                .unwrap_or_default(),
            image_id: parts.id.clone(),
            rootfs: parts.rootfs,
            command: run.args.clone(),
            entrypoint: match &opts.entrypoint {
                Some(e) if e.is_empty() => vec![],
                Some(e) => vec![e.clone()],
                None => cfg.entrypoint().clone().unwrap_or_default(),
            },
            cmd: if command.is_empty() {
                cfg.cmd().clone().unwrap_or_default()
            } else {
                command.clone()
            },
            env: spec
                .process()
                .as_ref()
                .and_then(|p| p.env().clone())
                .unwrap_or_default(),
            working_dir: run.cwd.clone(),
            user: user_spec.clone(),
            hostname: run.hostname.clone(),
            labels,
            init: opts.init,
            tty: opts.tty,
            interactive: opts.interactive,
            stdin_once: opts.stdin_once,
            restart: opts.restart,
            auto_remove: opts.auto_remove,
            stop_signal,
            stop_timeout: opts.stop_timeout,
            ports: publish(opts, &exposed, warnings)?,
            exposed_ports: exposed,
            mounts: mount_records,
            network,
            dns: opts.dns.clone(),
            dns_search: opts.dns_search.clone(),
            dns_options: opts.dns_options.clone(),
            extra_hosts,
            log: opts.log,
            healthcheck: healthcheck(opts, parts.healthcheck.as_ref())?,
        };
        Ok((record, spec))
    }
}

/// The healthcheck the container's monitor runs: the options' fields over the image's
/// (docker's merge); `None` when there is none, or it is disabled (`NONE`) — docker keeps
/// `["NONE"]` in the config, so it is kept too, and the monitor runs nothing.
fn healthcheck(opts: &CreateOptions, image: Option<&HealthConfig>) -> Result<Option<HealthConfig>> {
    let merged = match opts.healthcheck.clone() {
        Some(given) => given.merged_over(image),
        None => match image {
            Some(h) => h.clone(),
            None => return Ok(None),
        },
    };
    if merged.interval < 0
        || merged.timeout < 0
        || merged.start_period < 0
        || merged.start_interval < 0
    {
        return Err(invalid(
            "healthcheck interval, timeout and start period must not be negative".into(),
        ));
    }
    for (what, ns) in [
        ("interval", merged.interval),
        ("timeout", merged.timeout),
        ("start period", merged.start_period),
        ("start interval", merged.start_interval),
    ] {
        if ns != 0 && ns < 1_000_000 {
            return Err(invalid(format!("healthcheck {what} must be at least 1ms")));
        }
    }
    if merged.test.is_empty() {
        return Ok(None);
    }
    Ok(Some(merged))
}

/// `--expose`'s `PORT[-PORT][/PROTO]` as docker's `PORT/PROTO` keys, a range expanded.
fn expose_spec(e: &str) -> Result<Vec<String>> {
    let (ports, proto) = e.split_once('/').unwrap_or((e, "tcp"));
    let bad = || EngineError::InvalidParameter(format!("invalid exposed port {e:?}"));
    let (lo, hi): (u16, u16) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let p = ports.parse().map_err(|_| bad())?;
            (p, p)
        }
    };
    if lo == 0 || lo > hi || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// The published ports: `ports`, and with `publish_all` every EXPOSEd port on a free host
/// port; none on the host's network.
fn publish(
    opts: &CreateOptions,
    exposed: &[String],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<PortBinding>> {
    let mut out = opts.ports.clone();
    if opts.publish_all {
        for e in exposed {
            let b = parse_publish(e)?;
            if !out
                .iter()
                .any(|o| o.container_port == b.container_port && o.protocol == b.protocol)
            {
                out.push(b);
            }
        }
    }
    if !out.is_empty() && opts.network == "host" {
        warnings.push(Warning::PortsDiscardedOnHostNetwork);
        out.clear();
    }
    Ok(out)
}

/// The seccomp filter and no-new-privileges the security options ask for.
fn security(opts: &CreateOptions, run: &mut RunOptions) -> Result<()> {
    let mut seccomp_file = None;
    let mut unconfined = false;
    for o in &opts.security_opt {
        match o.split_once(['=', ':']) {
            Some(("seccomp", "unconfined")) => unconfined = true,
            Some(("seccomp", file)) => seccomp_file = Some(PathBuf::from(file)),
            None if o == "no-new-privileges" => run.no_new_privileges = true,
            Some(("no-new-privileges", v)) => run.no_new_privileges = v != "false",
            _ => {
                return Err(invalid(format!(
                    "unsupported --security-opt {o:?} (seccomp=unconfined|FILE.json, no-new-privileges)"
                )));
            }
        }
    }
    if opts.privileged || unconfined {
        return Ok(());
    }
    // The profile's capability conditions use the container's final capability set.
    let probe = rbuild_runner::docker_spec(run)?;
    let caps = probe
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .unwrap_or_default();
    run.seccomp = Some(match seccomp_file {
        Some(f) => {
            let json = std::fs::read_to_string(&f)
                .with_context(|| format!("reading seccomp profile {}", f.display()))?;
            rbuild_runner::seccomp::profile(&json, &caps)
                .with_context(|| format!("seccomp profile {}", f.display()))?
        }
        None => rbuild_runner::seccomp::docker_default(&caps)?,
    });
    Ok(())
}
