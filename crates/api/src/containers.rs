//! `/containers/...`: create (docker's `Config` + `HostConfig` → the engine's
//! `CreateOptions`), list, inspect, start/stop/restart/kill/pause, wait, top, archive
//! (`docker cp`), export, commit, prune, remove.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use rbuild_engine::{CommitOptions, ContainerSummary, CreateOptions, ListOptions};
use rbuild_runner::lifecycle::{PortBinding, Protocol, RestartPolicy, Status};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{
    ApiError, ApiResult, Call, Reply, body_to_file, empty, json, json_body, json_status, stream,
};
use crate::state::{Service, blocking};

/// A string or a list of strings (docker's `Cmd`, `Entrypoint`, `Shell`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Words {
    /// No value.
    #[default]
    None,
    /// One string (a shell form).
    One(String),
    /// A list.
    Many(Vec<String>),
}

impl Words {
    fn into_vec(self) -> Option<Vec<String>> {
        match self {
            Words::None => None,
            Words::One(s) => Some(vec![s]),
            Words::Many(v) => Some(v),
        }
    }
}

/// `{"HostIp": "", "HostPort": "8080"}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostPort {
    /// Host address.
    pub host_ip: Option<String>,
    /// Host port (text, may be empty).
    pub host_port: Option<String>,
}

/// Docker's `RestartPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Restart {
    /// `no`, `always`, `unless-stopped`, `on-failure`.
    pub name: Option<String>,
    /// For `on-failure`.
    pub maximum_retry_count: Option<u32>,
}

/// A `Mounts` entry of `HostConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountSpec {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// Target.
    pub target: Option<String>,
    /// Read-only.
    pub read_only: Option<bool>,
}

/// Docker's `LogConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    /// The driver (only `json-file` or empty).
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// Its options.
    pub config: Option<BTreeMap<String, String>>,
}

/// The `HostConfig` fields rbuild's engine supports.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `-v` specs.
    pub binds: Option<Vec<String>>,
    /// `--rm`.
    pub auto_remove: Option<bool>,
    /// `--restart`.
    pub restart_policy: Option<Restart>,
    /// `-p`.
    pub port_bindings: Option<BTreeMap<String, Option<Vec<HostPort>>>>,
    /// `-P`.
    pub publish_all_ports: Option<bool>,
    /// `--network`.
    pub network_mode: Option<String>,
    /// `-m` in bytes.
    pub memory: Option<i64>,
    /// `--cpus` × 1e9.
    pub nano_cpus: Option<i64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--privileged`.
    pub privileged: Option<bool>,
    /// `--cap-add`.
    pub cap_add: Option<Vec<String>>,
    /// `--cap-drop`.
    pub cap_drop: Option<Vec<String>>,
    /// `--security-opt`.
    pub security_opt: Option<Vec<String>>,
    /// `--read-only`.
    pub readonly_rootfs: Option<bool>,
    /// `--tmpfs PATH:OPTS`.
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// `--volumes-from`.
    pub volumes_from: Option<Vec<String>>,
    /// `--init`.
    pub init: Option<bool>,
    /// `--mount`.
    pub mounts: Option<Vec<MountSpec>>,
    /// `--log-driver`, `--log-opt`.
    pub log_config: Option<LogConfig>,
}

/// The body of `POST /containers/create`: docker's `Config` with `HostConfig` inside.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    /// Host name.
    pub hostname: Option<String>,
    /// User.
    pub user: Option<String>,
    /// `KEY=VALUE`s.
    pub env: Option<Vec<String>>,
    /// Command.
    pub cmd: Words,
    /// Entrypoint.
    pub entrypoint: Words,
    /// Image.
    pub image: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// `-i`.
    pub open_stdin: Option<bool>,
    /// Docker's `StdinOnce`.
    pub stdin_once: Option<bool>,
    /// `-t`.
    pub tty: Option<bool>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Stop timeout in seconds.
    pub stop_timeout: Option<i64>,
    /// The healthcheck (docker's `HealthConfig`), over the image's.
    pub healthcheck: Option<rbuild_runner::lifecycle::health::HealthConfig>,
    /// Anonymous volumes (`{"/data": {}}`).
    pub volumes: Option<BTreeMap<String, Value>>,
    /// Ports exposed (`{"80/tcp": {}}`): recorded by the image or `-p`.
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// Host options.
    pub host_config: Option<HostConfig>,
    /// Networks (only the mode's own is supported).
    pub networking_config: Option<Value>,
}

/// The engine's options for a create body.
pub fn create_options(name: Option<String>, b: CreateBody) -> ApiResult<CreateOptions> {
    let image = b
        .image
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad("config: no image given (Image)"))?;
    let hc = b.host_config.unwrap_or_default();
    let mut o = CreateOptions::new(image, Vec::new());
    o.name = name.filter(|n| !n.is_empty());
    let mut cmd = b.cmd.into_vec().unwrap_or_default();
    if let Some(ep) = b.entrypoint.into_vec() {
        let mut ep = ep.into_iter();
        match ep.next() {
            // An empty list resets the image's ENTRYPOINT, as `--entrypoint ""`.
            None => o.entrypoint = Some(String::new()),
            Some(first) => {
                o.entrypoint = Some(first);
                let rest: Vec<String> = ep.collect();
                cmd = rest.into_iter().chain(cmd).collect();
            }
        }
    }
    o.cmd = cmd;
    o.env = b.env.unwrap_or_default();
    o.labels = b.labels.unwrap_or_default();
    o.workdir = b.working_dir.filter(|w| !w.is_empty());
    o.user = b.user.filter(|u| !u.is_empty());
    o.hostname = b.hostname.filter(|h| !h.is_empty());
    o.interactive = b.open_stdin.unwrap_or(false);
    o.stdin_once = b.stdin_once.unwrap_or(false);
    o.tty = b.tty.unwrap_or(false);
    o.stop_signal = b.stop_signal.filter(|s| !s.is_empty());
    o.stop_timeout = b.stop_timeout.and_then(|t| u32::try_from(t).ok());
    o.healthcheck = b.healthcheck;
    o.expose = b.exposed_ports.unwrap_or_default().into_keys().collect();
    for (path, _) in b.volumes.unwrap_or_default() {
        o.volumes.push(path);
    }
    o.volumes.extend(hc.binds.unwrap_or_default());
    o.auto_remove = hc.auto_remove.unwrap_or(false);
    if let Some(r) = hc.restart_policy {
        o.restart = match r.name.as_deref().unwrap_or("") {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure {
                max: r.maximum_retry_count.unwrap_or(0),
            },
            other => {
                return Err(ApiError::bad(format!("invalid restart policy {other:?}")));
            }
        };
    }
    for (port, hosts) in hc.port_bindings.unwrap_or_default() {
        let (num, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
        let container_port: u16 = num
            .parse()
            .map_err(|_| ApiError::bad(format!("invalid port {port:?}")))?;
        let protocol = match proto {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            p => return Err(ApiError::bad(format!("invalid protocol {p:?} in {port:?}"))),
        };
        for h in hosts.unwrap_or_default() {
            let host_port = match h.host_port.as_deref().unwrap_or("") {
                "" => 0,
                p => p
                    .parse()
                    .map_err(|_| ApiError::bad(format!("invalid host port {p:?}")))?,
            };
            o.ports.push(PortBinding {
                host_ip: h.host_ip.unwrap_or_default(),
                host_port,
                container_port,
                protocol,
            });
        }
    }
    o.publish_all = hc.publish_all_ports.unwrap_or(false);
    // Docker's default network is its `bridge`; a user-defined network is named; `none`,
    // `host`, `container:NAME` as docker.
    o.network = match hc.network_mode.as_deref().unwrap_or("") {
        "" | "default" => "bridge".into(),
        m => m.into(),
    };
    // NetworkingConfig: the endpoint on that network (aliases, address, MAC).
    if let Some(endpoints) = b
        .networking_config
        .as_ref()
        .and_then(|n| n.get("EndpointsConfig"))
        .and_then(Value::as_object)
        && let Some((_, e)) = endpoints
            .iter()
            .find(|(name, _)| **name == o.network)
            .or_else(|| endpoints.iter().next())
    {
        let e: crate::networks::EndpointConfig = serde_json::from_value(e.clone())
            .map_err(|e| ApiError::bad(format!("invalid EndpointsConfig: {e}")))?;
        let req = crate::networks::endpoint_request(Some(e))?;
        o.network_aliases = req.aliases;
        o.ip = req.ip;
        o.mac_address = req.mac;
    }
    o.memory = hc.memory.filter(|m| *m > 0);
    o.cpus = hc.nano_cpus.filter(|n| *n > 0).map(|n| n as f64 / 1e9);
    o.pids_limit = hc.pids_limit.filter(|p| *p > 0);
    o.privileged = hc.privileged.unwrap_or(false);
    o.cap_add = hc.cap_add.unwrap_or_default();
    o.cap_drop = hc.cap_drop.unwrap_or_default();
    o.security_opt = hc.security_opt.unwrap_or_default();
    o.read_only = hc.readonly_rootfs.unwrap_or(false);
    o.tmpfs = hc
        .tmpfs
        .unwrap_or_default()
        .into_iter()
        .map(|(p, opts)| {
            if opts.is_empty() {
                p
            } else {
                format!("{p}:{opts}")
            }
        })
        .collect();
    o.volumes_from = hc.volumes_from.unwrap_or_default();
    o.init = hc.init.unwrap_or(false);
    for m in hc.mounts.unwrap_or_default() {
        let mut spec = format!("type={}", m.kind.as_deref().unwrap_or("volume"));
        if let Some(s) = m.source.filter(|s| !s.is_empty()) {
            spec.push_str(&format!(",source={s}"));
        }
        let target = m
            .target
            .ok_or_else(|| ApiError::bad("a mount needs a Target"))?;
        spec.push_str(&format!(",target={target}"));
        if m.read_only.unwrap_or(false) {
            spec.push_str(",readonly");
        }
        o.mounts.push(spec);
    }
    if let Some(l) = hc.log_config {
        match l.kind.as_deref().unwrap_or("") {
            "" | "json-file" => {}
            d => {
                return Err(ApiError::not_supported(&format!("log driver {d:?}")));
            }
        }
        let opts: Vec<String> = l
            .config
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        o.log = rbuild_engine::options::parse_log_opts(&opts)?;
    }
    Ok(o)
}

/// `POST /containers/create?name=`.
pub async fn create(s: &Arc<Service>, mut c: Call) -> ApiResult {
    let body: CreateBody = json_body(c.take_body()?).await?;
    let opts = create_options(c.q("name").map(str::to_owned), body)?;
    let engine = s.engine.clone();
    let created = blocking(move || {
        engine.create_container(&opts).map_err(|e| {
            let mut a = ApiError::from(e);
            // Docker's CLI pulls and retries on a 404 that names a missing image.
            if a.status == StatusCode::NOT_FOUND && !a.message.starts_with("No such image") {
                a.message = format!(
                    "No such image: {}: {}",
                    opts.image.clone().unwrap_or_default(),
                    a.message
                );
            }
            a
        })
    })
    .await?;
    let warnings: Vec<String> = created.warnings.iter().map(ToString::to_string).collect();
    Ok(json_status(
        StatusCode::CREATED,
        &json!({"Id": created.container.id(), "Warnings": warnings}),
    ))
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(d: i64) -> String {
    let d = d.max(0);
    let hours = (d as f64 / 3600.0).round() as i64;
    match d {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{d} seconds"),
        _ if d / 60 == 1 => "About a minute".into(),
        _ if d / 60 < 60 => format!("{} minutes", d / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

fn now_secs() -> i64 {
    rbuild_runner::lifecycle::time::now_ns() / 1_000_000_000
}

/// Docker's `Status` text: `Up 5 seconds`, `Exited (0) 3 minutes ago`.
pub fn status_text(st: &rbuild_runner::lifecycle::ContainerState) -> String {
    let ago = |ns: i64| human_duration(now_secs() - ns / 1_000_000_000);
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => match &st.health {
            Some(h) => format!("Up {} ({})", ago(st.started_at), h.summary()),
            None => format!("Up {}", ago(st.started_at)),
        },
        Status::Paused => format!("Up {} (Paused)", ago(st.started_at)),
        Status::Restarting => format!("Restarting ({}) {} ago", st.exit_code, ago(st.finished_at)),
        Status::Exited => format!("Exited ({}) {} ago", st.exit_code, ago(st.finished_at)),
        Status::Dead => "Dead".into(),
    }
}

/// A container of `/containers/json`, in docker's `ContainerSummary` shape.
pub fn summary_json(r: &ContainerSummary) -> Value {
    let (c, st) = (&r.container, &r.state);
    let bound = if st.status.is_active() && !st.ports.is_empty() {
        &st.ports
    } else {
        &c.record.ports
    };
    let ports: Vec<Value> = bound
        .iter()
        .map(|p| {
            let mut v = json!({"PrivatePort": p.container_port, "Type": p.protocol.as_str()});
            if st.status.is_active() && p.host_port != 0 {
                v["PublicPort"] = json!(p.host_port);
                v["IP"] = json!(if p.host_ip.is_empty() {
                    "0.0.0.0"
                } else {
                    &p.host_ip
                });
            }
            v
        })
        .collect();
    let mounts: Vec<Value> = c
        .record
        .mounts
        .iter()
        .map(|m| {
            json!({
                "Type": m.kind, "Name": m.name, "Source": m.source, "Destination": m.destination,
                "Driver": if m.kind == "volume" { "local" } else { "" }, "Mode": "",
                "RW": m.rw, "Propagation": "",
            })
        })
        .collect();
    let network = if c.record.network == "none" {
        "none".to_owned()
    } else {
        c.record.network.clone()
    };
    json!({
        "Id": c.id(),
        "Names": [format!("/{}", c.name())],
        "Image": if c.record.image.is_empty() { c.record.image_id.clone() } else { c.record.image.clone() },
        "ImageID": c.record.image_id,
        "Command": c.record.command.join(" "),
        "Created": c.record.created / 1_000_000_000,
        "Ports": ports,
        "Labels": c.record.labels,
        "State": st.status.as_str(),
        "Status": status_text(st),
        "HostConfig": {"NetworkMode": network},
        "NetworkSettings": {"Networks": {network.clone(): {"NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""}}},
        "Mounts": mounts,
    })
}

/// `GET /containers/json?all&limit&filters`.
pub async fn list(s: &Arc<Service>, c: &Call) -> ApiResult {
    let mut filters = c.filters()?;
    // `status=created` etc. are the engine's; docker's `name` filter is a regexp over
    // "/name", which the engine's substring match covers for plain names.
    for f in &mut filters {
        if f.0 == "name" {
            f.1 =
                f.1.trim_start_matches('^')
                    .trim_start_matches('/')
                    .trim_end_matches('$')
                    .to_owned();
        }
    }
    let opts = ListOptions {
        all: c.flag("all"),
        limit: c.int("limit")?.filter(|l| *l > 0).map(|l| l as usize),
        filters,
    };
    let engine = s.engine.clone();
    let rows = blocking(move || Ok(engine.list_containers(&opts)?)).await?;
    Ok(json(&rows.iter().map(summary_json).collect::<Vec<_>>()))
}

/// `GET /containers/{id}/json`.
pub async fn inspect(s: &Arc<Service>, id: &str) -> ApiResult {
    let (engine, id) = (s.engine.clone(), id.to_owned());
    let v = blocking(move || {
        let j = engine.container_inspect(&id)?;
        serde_json::to_value(&j).map_err(ApiError::from)
    })
    .await?;
    Ok(json(&v))
}

/// `POST /containers/{id}/start`: 204, or 304 if it runs already.
pub async fn start(s: &Arc<Service>, id: &str) -> ApiResult {
    let (engine, id) = (s.engine.clone(), id.to_owned());
    let started = blocking(move || {
        let c = engine.container(&id)?;
        Ok(engine.start(&c)?)
    })
    .await?;
    Ok(empty(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/stop?t=&signal=` and `/restart`.
pub async fn stop(s: &Arc<Service>, c: &Call, id: &str, restart: bool) -> ApiResult {
    let t = c.int("t")?.or(c.int("timeout")?);
    let signal = c.q("signal").filter(|s| !s.is_empty()).map(str::to_owned);
    let (engine, id) = (s.engine.clone(), id.to_owned());
    let changed = blocking(move || {
        let c = engine.container(&id)?;
        if restart {
            engine.restart(&c, t, signal.as_deref())?;
            return Ok(true);
        }
        if !c.state()?.status.is_active() {
            return Ok(false);
        }
        engine.stop(&c, t, signal.as_deref())?;
        Ok(true)
    })
    .await?;
    Ok(empty(if changed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/kill?signal=`.
pub async fn kill(s: &Arc<Service>, c: &Call, id: &str) -> ApiResult {
    let sig = match c.q("signal").filter(|s| !s.is_empty()) {
        Some(v) => rbuild_engine::options::parse_signal(v)?,
        None => 9,
    };
    let (engine, id) = (s.engine.clone(), id.to_owned());
    blocking(move || {
        let c = engine.container(&id)?;
        Ok(engine.kill(&c, sig)?)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause` and `/unpause`.
pub async fn pause(s: &Arc<Service>, id: &str, on: bool) -> ApiResult {
    let (engine, id) = (s.engine.clone(), id.to_owned());
    blocking(move || {
        let c = engine.container(&id)?;
        if on {
            engine.pause(&c)?
        } else {
            engine.unpause(&c)?
        }
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`. The status line
/// goes out at once (docker's CLI sends this before it starts the container and waits for
/// the answer's head); the body when the condition is met.
pub async fn wait(s: &Arc<Service>, c: &Call, id: &str) -> ApiResult {
    let condition = c.q("condition").unwrap_or("not-running").to_owned();
    if !matches!(
        condition.as_str(),
        "" | "not-running" | "next-exit" | "removed"
    ) {
        return Err(ApiError::bad(format!("invalid condition: {condition:?}")));
    }
    let (engine, id) = (s.engine.clone(), id.to_owned());
    let container = {
        let (engine, id) = (engine.clone(), id.clone());
        blocking(move || Ok(engine.container(&id)?)).await?
    };
    let (tx, reply) = stream("application/json");
    tokio::task::spawn_blocking(move || {
        let c = container;
        let begun = c.state().map(|st| (st.status, st.started_at)).ok();
        // `next-exit` and `removed` on a container not started yet wait for its start.
        if condition != "not-running" {
            while let Ok(st) = c.state() {
                let started = c.monitor_running()
                    || begun.is_some_and(|(s, at)| {
                        st.started_at != at || (s != Status::Created && st.status.is_active())
                    });
                if started || tx.is_closed() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let result = engine.wait(&c);
        if condition == "removed" {
            while c.dir().exists() && !tx.is_closed() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let body = match result {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(e) => {
                json!({"StatusCode": -1, "Error": {"Message": rbuild_engine::build::chain_text(&e)}})
            }
        };
        let _ = tx.blocking_send(crate::http::json_line(&body));
    });
    let _ = id;
    Ok(reply)
}

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(s: &Arc<Service>, c: &Call, id: &str) -> ApiResult {
    let args: Vec<String> = c
        .q("ps_args")
        .map(|a| a.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let (engine, id) = (s.engine.clone(), id.to_owned());
    let top = blocking(move || {
        let c = engine.container(&id)?;
        Ok(engine.top(&c, &args)?)
    })
    .await?;
    let titles: Vec<&str> = top.header.split_whitespace().collect();
    let n = titles.len().max(1);
    let procs: Vec<Vec<String>> = top
        .processes
        .iter()
        .map(|l| {
            let mut parts: Vec<String> = l
                .splitn(n, char::is_whitespace)
                .map(str::to_owned)
                .collect();
            // splitn keeps runs of spaces; split on whitespace runs for the first n-1.
            let words: Vec<&str> = l.split_whitespace().collect();
            if words.len() >= n {
                parts = words[..n - 1].iter().map(|w| (*w).to_owned()).collect();
                parts.push(words[n - 1..].join(" "));
            }
            parts
        })
        .collect();
    Ok(json(&json!({"Titles": titles, "Processes": procs})))
}

/// `POST /containers/{id}/rename?name=NEW`: 204; 409 if another container has the name.
pub async fn rename(s: &Arc<Service>, c: &Call, id: &str) -> ApiResult {
    let new = c.q("name").unwrap_or_default().to_owned();
    let (engine, id) = (s.engine.clone(), id.to_owned());
    blocking(move || {
        let mut c = engine.container(&id)?;
        Ok(engine.rename_container(&mut c, &new)?)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `DELETE /containers/{id}?force&v`.
pub async fn remove(s: &Arc<Service>, c: &Call, id: &str) -> ApiResult {
    let (force, volumes) = (c.flag("force"), c.flag("v"));
    let (engine, id) = (s.engine.clone(), id.to_owned());
    blocking(move || {
        let c = engine.container(&id)?;
        Ok(engine.remove_container(&c, force, volumes)?)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/prune`.
pub async fn prune(s: &Arc<Service>) -> ApiResult {
    let engine = s.engine.clone();
    let deleted = blocking(move || Ok(engine.prune_containers()?)).await?;
    Ok(json(
        &json!({"ContainersDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&changes=&pause=`.
pub async fn commit(s: &Arc<Service>, c: &Call) -> ApiResult {
    let container = c
        .q("container")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad("commit needs a container"))?
        .to_owned();
    let reference = match (c.q("repo").filter(|r| !r.is_empty()), c.q("tag")) {
        (Some(r), Some(t)) if !t.is_empty() => Some(format!("{r}:{t}")),
        (Some(r), _) => Some(r.to_owned()),
        _ => None,
    };
    let text = |k: &str| c.q(k).filter(|v| !v.is_empty()).map(str::to_owned);
    let opts = CommitOptions {
        name: reference
            .map(|r| {
                r.parse()
                    .map_err(|e| ApiError::bad(format!("invalid reference: {e}")))
            })
            .transpose()?,
        message: text("comment"),
        author: text("author"),
        changes: c
            .q_all("changes")
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect(),
        pause: c.q("pause").is_none_or(|p| p != "0" && p != "false"),
    };
    let engine = s.engine.clone();
    let img = blocking(move || {
        let c = engine.container(&container)?;
        Ok(engine.commit(&c, &opts)?)
    })
    .await?;
    Ok(json_status(
        StatusCode::CREATED,
        &json!({"Id": img.id.to_string()}),
    ))
}

/// `GET /containers/{id}/export`: the container's filesystem as a tar stream.
pub async fn export(s: &Arc<Service>, id: &str) -> ApiResult {
    let (engine, id) = (s.engine.clone(), id.to_owned());
    let file = blocking(move || {
        let c = engine.container(&id)?;
        let tmp = tempfile::NamedTempFile::new().map_err(rbuild_engine::EngineError::from)?;
        engine.export(&c, Some(tmp.path()))?;
        Ok(tmp)
    })
    .await?;
    Ok(stream_file(file, "application/x-tar"))
}

/// Stream a file's bytes as the reply (the file is removed when done).
pub fn stream_file(file: tempfile::NamedTempFile, content_type: &'static str) -> Reply {
    let (tx, reply) = stream(content_type);
    tokio::task::spawn_blocking(move || {
        let mut f = match file.reopen() {
            Ok(f) => f,
            Err(_) => return,
        };
        let mut buf = vec![0u8; 256 << 10];
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(bytes::Bytes::copy_from_slice(&buf[..n]))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        drop(file);
    });
    reply
}

/// Docker's `X-Docker-Container-Path-Stat`: base64 of `{name, size, mode, mtime, linkTarget}`
/// with Go's `os.FileMode` bits.
fn path_stat(name: &str, meta: &std::fs::Metadata, link: Option<&std::path::Path>) -> String {
    let ft = meta.file_type();
    let mut mode = meta.permissions().mode() & 0o777;
    if ft.is_dir() {
        mode |= 1 << 31;
    }
    if ft.is_symlink() {
        mode |= 1 << 27;
    }
    let perm = meta.mode();
    if perm & 0o4000 != 0 {
        mode |= 1 << 23;
    }
    if perm & 0o2000 != 0 {
        mode |= 1 << 22;
    }
    if perm & 0o1000 != 0 {
        mode |= 1 << 20;
    }
    let mtime = rbuild_builder::config::rfc3339(meta.mtime(), 0);
    let v = json!({
        "name": name,
        "size": meta.len(),
        "mode": mode,
        "mtime": mtime,
        "linkTarget": link.map(|l| l.display().to_string()).unwrap_or_default(),
    });
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

fn base_name(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_owned()
}

/// `HEAD /containers/{id}/archive?path=`: the path's stat in the header.
pub async fn archive_head(s: &Arc<Service>, c: &Call, id: &str) -> ApiResult {
    let path = c
        .q("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad("archive needs a path"))?
        .to_owned();
    let (engine, id) = (s.engine.clone(), id.to_owned());
    let stat = blocking(move || {
        let (meta, link) = engine.stat_in_container(&id, &path)?;
        Ok(path_stat(&base_name(&path), &meta, link.as_deref()))
    })
    .await?;
    let mut r = empty(StatusCode::OK);
    r.headers_mut().insert(
        "X-Docker-Container-Path-Stat",
        HeaderValue::from_str(&stat).map_err(|e| ApiError::bad(e.to_string()))?,
    );
    Ok(r)
}

/// `GET /containers/{id}/archive?path=`: a tar of the path (named by its base name).
pub async fn archive_get(s: &Arc<Service>, c: &Call, id: &str) -> ApiResult {
    let path = c
        .q("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad("archive needs a path"))?
        .to_owned();
    let (engine, id) = (s.engine.clone(), id.to_owned());
    let (file, stat) = blocking(move || {
        let (meta, link) = engine.stat_in_container(&id, &path)?;
        let name = base_name(&path);
        let stat = path_stat(&name, &meta, link.as_deref());
        let staging = tempfile::tempdir().map_err(rbuild_engine::EngineError::from)?;
        let name = if name == "/" { ".".to_owned() } else { name };
        let dest = staging.path().join(&name);
        engine.copy_from_container(&id, &path, &dest, false)?;
        let tmp = tempfile::NamedTempFile::new().map_err(rbuild_engine::EngineError::from)?;
        let mut b = tar::Builder::new(tmp.reopen().map_err(rbuild_engine::EngineError::from)?);
        b.follow_symlinks(false);
        let meta = dest
            .symlink_metadata()
            .map_err(rbuild_engine::EngineError::from)?;
        let r = if meta.is_dir() {
            b.append_dir_all(&name, &dest)
        } else {
            b.append_path_with_name(&dest, &name)
        };
        r.and_then(|_| b.finish())
            .map_err(rbuild_engine::EngineError::from)?;
        Ok((tmp, stat))
    })
    .await?;
    let mut r = stream_file(file, "application/x-tar");
    r.headers_mut().insert(
        "X-Docker-Container-Path-Stat",
        HeaderValue::from_str(&stat).map_err(|e| ApiError::bad(e.to_string()))?,
    );
    Ok(r)
}

/// `PUT /containers/{id}/archive?path=`: extract the uploaded tar into the directory `path`.
pub async fn archive_put(s: &Arc<Service>, mut c: Call, id: &str) -> ApiResult {
    let path = c
        .q("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad("archive needs a path"))?
        .to_owned();
    let upload = body_to_file(c.take_body()?, 64 << 30).await?;
    let (engine, id) = (s.engine.clone(), id.to_owned());
    blocking(move || {
        let (meta, _) = engine.stat_in_container(&id, &path)?;
        if !meta.is_dir() {
            return Err(ApiError::bad(format!(
                "extraction point is not a directory: {path}"
            )));
        }
        let staging = tempfile::tempdir().map_err(rbuild_engine::EngineError::from)?;
        let mut ar = tar::Archive::new(upload.reopen().map_err(rbuild_engine::EngineError::from)?);
        ar.set_preserve_permissions(true);
        ar.set_overwrite(true);
        ar.unpack(staging.path())
            .map_err(|e| ApiError::bad(format!("reading the uploaded archive: {e}")))?;
        let entries =
            std::fs::read_dir(staging.path()).map_err(rbuild_engine::EngineError::from)?;
        for e in entries.flatten() {
            engine.copy_to_container(&e.path(), &id, &path)?;
        }
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::OK))
}
