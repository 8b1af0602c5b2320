//! One service of a project as the engine's [`CreateOptions`]: the keys rbuild runs checked
//! (any other key that changes what a container does is refused, naming it), the values
//! translated to `docker run`'s options, and the service's config hash.

use std::collections::BTreeMap;

use compose_spec::service::healthcheck::{Healthcheck, Test};
use compose_spec::service::network_config::NetworkMode;
use compose_spec::service::ports::{self, Port};
use compose_spec::service::volumes::{self, Mount};
use compose_spec::service::{Command, NetworkConfig};
use compose_spec::{ListOrMap, Resource, Service, ShortOrLong};
use rbuild_engine::CreateOptions;
use rbuild_engine::options::{parse_log_opts, parse_publish, parse_restart, parse_size};
use rbuild_runner::lifecycle::health::HealthConfig;
use serde_json::Value;

use super::labels;
use crate::error::ComposeError;
use crate::project::Project;

/// Service keys rbuild runs (besides `x-` extensions).
const SUPPORTED_KEYS: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "volumes",
    "networks",
    "network_mode",
    "depends_on",
    "restart",
    "user",
    "working_dir",
    "hostname",
    "labels",
    "stop_signal",
    "stop_grace_period",
    "init",
    "tty",
    "stdin_open",
    "read_only",
    "cap_add",
    "cap_drop",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_opt",
    "container_name",
    "deploy",
    "scale",
    "profiles",
    "privileged",
    "security_opt",
    "mem_limit",
    "cpus",
    "pids_limit",
    "tmpfs",
    "mac_address",
    "logging",
    "healthcheck",
    "secrets",
    "configs",
];

/// `build:` keys rbuild uses.
const BUILD_KEYS: &[&str] = &[
    "context",
    "dockerfile",
    "dockerfile_inline",
    "args",
    "target",
    "labels",
    "cache_from",
    "cache_to",
];

/// `deploy:` keys rbuild uses (`resources` only with `limits` of cpus, memory and pids).
const DEPLOY_KEYS: &[&str] = &["replicas", "resources"];

fn unsupported(service: &str, key: &str) -> ComposeError {
    ComposeError::NotSupported(format!(
        "service {service:?}: `{key}` is not supported yet by rbuild compose"
    ))
}

fn invalid(service: &str, message: String) -> ComposeError {
    ComposeError::Service {
        service: service.to_owned(),
        message,
    }
}

/// Refuse the keys of `service` that rbuild would otherwise ignore while they change what
/// its containers do.
pub(crate) fn check_supported(name: &str, service: &Service) -> Result<(), ComposeError> {
    let json = serde_json::to_value(service).expect("a service serializes");
    let Value::Object(map) = json else {
        return Ok(());
    };
    for (key, value) in &map {
        if key.starts_with("x-") {
            continue;
        }
        if !SUPPORTED_KEYS.contains(&key.as_str()) {
            return Err(unsupported(name, key));
        }
        let nested = |allowed: &[&str], prefix: &str| -> Result<(), ComposeError> {
            if let Value::Object(inner) = value {
                for k in inner.keys() {
                    if !k.starts_with("x-") && !allowed.contains(&k.as_str()) {
                        return Err(unsupported(name, &format!("{prefix}.{k}")));
                    }
                }
            }
            Ok(())
        };
        match key.as_str() {
            "build" => nested(BUILD_KEYS, "build")?,
            "deploy" => {
                nested(DEPLOY_KEYS, "deploy")?;
                if let Some(res) = value.get("resources").and_then(Value::as_object) {
                    for (k, v) in res {
                        if k != "limits" {
                            return Err(unsupported(name, &format!("deploy.resources.{k}")));
                        }
                        for lk in v.as_object().into_iter().flat_map(|o| o.keys()) {
                            if !["cpus", "memory", "pids"].contains(&lk.as_str()) {
                                return Err(unsupported(
                                    name,
                                    &format!("deploy.resources.limits.{lk}"),
                                ));
                            }
                        }
                    }
                }
            }
            "depends_on" => {
                if let Value::Object(deps) = value {
                    for (dep, d) in deps {
                        if d.get("restart").and_then(Value::as_bool) == Some(true) {
                            return Err(unsupported(name, &format!("depends_on.{dep}.restart")));
                        }
                    }
                }
            }
            "logging" => {
                let driver = value.get("driver").and_then(Value::as_str);
                if driver.is_some_and(|d| d != "json-file") {
                    return Err(unsupported(
                        name,
                        &format!("logging.driver: {}", driver.unwrap_or_default()),
                    ));
                }
                for k in value
                    .get("options")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|o| o.keys())
                {
                    if !["max-size", "max-file"].contains(&k.as_str()) {
                        return Err(unsupported(name, &format!("logging.options.{k}")));
                    }
                }
            }
            "networks" => {
                if let Value::Object(nets) = value {
                    for (net, cfg) in nets {
                        for k in cfg.as_object().into_iter().flat_map(|o| o.keys()) {
                            if !["aliases", "ipv4_address"].contains(&k.as_str()) {
                                return Err(unsupported(name, &format!("networks.{net}.{k}")));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A scalar of the model (an identifier, a host name, a number …) as text.
pub(crate) fn text<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v).expect("a value serializes") {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `KEY=VALUE` pairs of a list-or-map (`environment`, `labels`, `args`); a bare `KEY`
/// takes `fallback`'s value, or is dropped.
pub(crate) fn pairs(
    l: &ListOrMap,
    fallback: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match l {
        ListOrMap::List(items) => {
            for item in items {
                match item.split_once('=') {
                    Some((k, v)) => out.push((k.to_owned(), v.to_owned())),
                    None => {
                        if let Some(v) = fallback(item) {
                            out.push((item.clone(), v));
                        }
                    }
                }
            }
        }
        ListOrMap::Map(map) => {
            for (k, v) in map {
                let k = text(k);
                match v {
                    Some(v) => out.push((k, text(v))),
                    None => {
                        if let Some(v) = fallback(&k) {
                            out.push((k, v));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Split a command string as a POSIX shell would split words (quotes and backslashes; no
/// expansion), as docker compose does for `command: "a 'b c'"`.
pub(crate) fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn command_words(service: &str, key: &str, c: &Command) -> Result<Vec<String>, ComposeError> {
    match c {
        Command::List(l) => Ok(l.clone()),
        Command::String(s) => split_command(s).map_err(|e| invalid(service, format!("{key}: {e}"))),
    }
}

/// The number of containers a service runs (`scale`, else `deploy.replicas`, else 1).
pub(crate) fn replicas(service: &Service) -> u64 {
    service
        .scale
        .or_else(|| service.deploy.as_ref().and_then(|d| d.replicas))
        .unwrap_or(1)
}

/// The service's config hash (`com.docker.compose.config-hash`): the SHA-256 of its model
/// without what does not change a container (build, scale and replicas, depends_on,
/// profiles), as docker compose computes it.
pub(crate) fn config_hash(service: &Service) -> String {
    let mut s = service.clone();
    s.build = None;
    s.scale = None;
    if let Some(d) = &mut s.deploy {
        d.replicas = None;
    }
    s.depends_on = ShortOrLong::Short(Default::default());
    s.profiles = Default::default();
    let bytes = serde_json::to_vec(&s).expect("a service serializes");
    rbuild_oci::Digest::sha256_of(&bytes).hex().to_owned()
}

/// The networks a service is on and its settings there: (network key, aliases, IPv4).
pub(crate) type ServiceNetworks = Vec<(String, Vec<String>, Option<std::net::Ipv4Addr>)>;

/// The project networks `service` joins, `default` when it says nothing (none with a
/// `network_mode`).
pub(crate) fn service_networks(service: &Service) -> ServiceNetworks {
    match &service.network_config {
        None => vec![("default".into(), vec![], None)],
        Some(NetworkConfig::NetworkMode(_)) => vec![],
        Some(NetworkConfig::Networks(ShortOrLong::Short(names))) => {
            names.iter().map(|n| (text(n), vec![], None)).collect()
        }
        Some(NetworkConfig::Networks(ShortOrLong::Long(map))) => map
            .iter()
            .map(|(n, cfg)| {
                let aliases = cfg
                    .as_ref()
                    .map(|c| c.aliases.iter().map(text).collect())
                    .unwrap_or_default();
                (text(n), aliases, cfg.as_ref().and_then(|c| c.ipv4_address))
            })
            .collect(),
    }
}

/// The container name of replica `number` of `service`.
pub(crate) fn container_name(project: &str, name: &str, service: &Service, number: u64) -> String {
    match &service.container_name {
        Some(n) => text(n),
        None => format!("{project}-{name}-{number}"),
    }
}

/// The engine's options for replica `number` of service `name`, running `image`, on the
/// first of its networks (`network`: the engine's name for it) — the others are connected
/// after creation.
pub(crate) fn create_options(
    project: &Project,
    name: &str,
    service: &Service,
    number: u64,
    image: &str,
    network: Option<&str>,
    resolve_service_container: &dyn Fn(&str) -> Option<String>,
) -> Result<CreateOptions, ComposeError> {
    let dir = &project.directory;
    let env_lookup = |k: &str| project.environment.get(k).cloned();
    let mut o = CreateOptions::new(image, vec![]);
    o.name = Some(container_name(&project.name, name, service, number));
    let mut cmd = match &service.command {
        Some(c) => command_words(name, "command", c)?,
        None => vec![],
    };
    if let Some(ep) = &service.entrypoint {
        let words = command_words(name, "entrypoint", ep)?;
        match words.split_first() {
            Some((first, rest)) => {
                o.entrypoint = Some(first.clone());
                cmd = rest.iter().cloned().chain(cmd).collect();
            }
            None => o.entrypoint = Some(String::new()),
        }
    }
    o.cmd = cmd;

    // env_file first, environment over it.
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(files) = &service.env_file {
        for f in files.clone().into_list() {
            let (file, required) = match f {
                ShortOrLong::Short(p) => (p, true),
                ShortOrLong::Long(c) => (c.path, c.required),
            };
            let path = dir.join(&file);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
                Err(e) => {
                    return Err(invalid(name, format!("env_file {}: {e}", path.display())));
                }
            };
            let vars = crate::env::parse_env_file(&text, &env_lookup)
                .map_err(|e| invalid(name, format!("env_file {}: {e}", path.display())))?;
            env.extend(vars);
        }
    }
    env.extend(pairs(&service.environment, &env_lookup));
    o.env = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    o.labels = pairs(&service.labels, &|_| Some(String::new()))
        .into_iter()
        .collect();
    o.workdir = service.working_dir.as_ref().map(text);
    o.user = service.user.as_ref().map(text);
    o.hostname = service.hostname.as_ref().map(text);
    // `on-failure:N` waits in an extension key: the typed model knows only `on-failure`.
    let held = service
        .extensions
        .get(crate::project::RESTART_RETRIES_KEY)
        .and_then(|v| v.as_str().map(str::to_owned));
    if let Some(r) = held.or_else(|| service.restart.as_ref().map(text)) {
        o.restart = parse_restart(&r).map_err(|e| invalid(name, format!("restart: {e}")))?;
    }
    o.stop_signal = service.stop_signal.clone();
    o.stop_timeout = service.stop_grace_period.map(|d| d.as_secs() as u32);
    o.init = service.init;
    o.tty = service.tty;
    o.interactive = service.stdin_open;
    o.read_only = service.read_only;
    o.privileged = service.privileged;
    o.security_opt = service.security_opt.iter().cloned().collect();
    o.cap_add = service.cap_add.iter().cloned().collect();
    o.cap_drop = service.cap_drop.iter().cloned().collect();
    o.extra_hosts = service
        .extra_hosts
        .iter()
        .map(|(h, ip)| format!("{}:{}", text(h), ip))
        .collect();
    o.dns = service
        .dns
        .clone()
        .map(|d| d.into_list().iter().map(|ip| ip.to_string()).collect())
        .unwrap_or_default();
    o.dns_search = service
        .dns_search
        .clone()
        .map(|d| d.into_list().iter().map(text).collect())
        .unwrap_or_default();
    o.dns_options = service.dns_opt.iter().cloned().collect();
    o.mac_address = service.mac_address.as_ref().map(text);
    if let Some(t) = &service.tmpfs {
        o.tmpfs = t.clone().into_list().iter().map(text).collect();
    }

    o.healthcheck = service.healthcheck.as_ref().map(health_config);
    o.expose = service.expose.iter().map(text).collect();
    o.volumes
        .extend(super::files::service_files(project, name, service)?.binds);

    // The json-file log's limits.
    if let Some(l) = &service.logging {
        let opts: Vec<String> = l
            .options
            .iter()
            .map(|(k, v)| format!("{}={}", text(k), v.as_ref().map(text).unwrap_or_default()))
            .collect();
        o.log = parse_log_opts(&opts).map_err(|e| invalid(name, format!("logging: {e}")))?;
    }

    // Resources: `mem_limit`/`cpus`/`pids_limit`, or deploy.resources.limits.
    let limits = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let memory = limits
        .and_then(|l| l.memory.as_ref())
        .or(service.mem_limit.as_ref());
    if let Some(m) = memory {
        o.memory = Some(parse_size(&text(m)).map_err(|e| invalid(name, format!("memory: {e}")))?);
    }
    let cpus = limits
        .and_then(|l| l.cpus.as_ref())
        .map(text)
        .or(service.cpus.as_ref().map(text));
    if let Some(c) = cpus {
        o.cpus = Some(
            c.parse()
                .map_err(|_| invalid(name, format!("cpus: invalid number {c:?}")))?,
        );
    }
    let pids = limits
        .and_then(|l| l.pids.as_ref())
        .map(text)
        .or(service.pids_limit.as_ref().map(text));
    if let Some(p) = pids {
        o.pids_limit = Some(
            p.parse()
                .map_err(|_| invalid(name, format!("pids limit: invalid number {p:?}")))?,
        );
    }

    // Ports, short and long syntax, each one `-p` spec.
    for port in ports::into_long_iter(service.ports.clone()) {
        for spec in publish_specs(&port) {
            o.ports
                .push(parse_publish(&spec).map_err(|e| invalid(name, format!("ports: {e}")))?);
        }
    }

    // Volumes: named (the project's name for them), anonymous, bind (relative to the
    // project directory, made when missing), tmpfs.
    for mount in volumes::into_long_iter(service.volumes.clone()) {
        match mount {
            Mount::Volume(v) => {
                let target = v.common.target.as_path().display().to_string();
                let ro = if v.common.read_only { ":ro" } else { "" };
                match &v.source {
                    Some(src) => {
                        let src = text(src);
                        let full = volume_name(project, &src).ok_or_else(|| {
                            invalid(
                                name,
                                format!("volumes: service refers to undefined volume {src}"),
                            )
                        })?;
                        o.volumes.push(format!("{full}:{target}{ro}"));
                    }
                    None => o.volumes.push(target),
                }
            }
            Mount::Bind(b) => {
                let src = dir.join(b.source.as_path());
                let src = std::path::absolute(&src).unwrap_or(src);
                if b.bind.as_ref().is_none_or(|o| o.create_host_path) && !src.exists() {
                    std::fs::create_dir_all(&src).map_err(|e| {
                        invalid(name, format!("volumes: creating {}: {e}", src.display()))
                    })?;
                }
                let target = b.common.target.as_path().display().to_string();
                let ro = if b.common.read_only { ":ro" } else { "" };
                o.volumes.push(format!("{}:{target}{ro}", src.display()));
            }
            Mount::Tmpfs(t) => o
                .tmpfs
                .push(t.common.target.as_path().display().to_string()),
            other => {
                return Err(unsupported(name, &format!("volumes type {}", other.kind())));
            }
        }
    }

    // Networks.
    match &service.network_config {
        Some(NetworkConfig::NetworkMode(mode)) => {
            o.network = match mode {
                NetworkMode::None => "none".into(),
                NetworkMode::Host => "host".into(),
                NetworkMode::Container(c) => format!("container:{}", text(c)),
                NetworkMode::Service(s) => {
                    let s = text(s);
                    let c = resolve_service_container(&s).ok_or_else(|| {
                        invalid(
                            name,
                            format!("network_mode: service:{s}: the service has no container"),
                        )
                    })?;
                    format!("container:{c}")
                }
                NetworkMode::Other(other) => {
                    return Err(unsupported(name, &format!("network_mode: {other}")));
                }
            };
        }
        _ => {
            let nets = service_networks(service);
            if let (Some((_, aliases, ip)), Some(net)) = (nets.first(), network) {
                o.network = net.to_owned();
                o.network_aliases = std::iter::once(name.to_owned())
                    .chain(aliases.iter().cloned())
                    .collect();
                o.ip = *ip;
            }
        }
    }
    Ok(o)
}

/// A service's `healthcheck:` as docker's `HealthConfig` (fields not given are the image's;
/// `disable: true` or `test: [NONE]` is `NONE`).
fn health_config(h: &Healthcheck) -> HealthConfig {
    let ns = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_nanos() as i64);
    match h {
        Healthcheck::Disable => HealthConfig {
            test: vec!["NONE".into()],
            ..HealthConfig::default()
        },
        Healthcheck::Command(c) => HealthConfig {
            test: match &c.test {
                None => vec![],
                Some(Test::Command(args)) => std::iter::once("CMD".to_owned())
                    .chain(args.iter().cloned())
                    .collect(),
                Some(Test::ShellCommand(s)) => vec!["CMD-SHELL".into(), s.clone()],
            },
            interval: ns(c.interval),
            timeout: ns(c.timeout),
            start_period: ns(c.start_period),
            retries: c.retries.map_or(0, |r| r.min(u32::MAX as u64) as u32),
            start_interval: ns(c.start_interval),
        },
    }
}

/// `-p` specs for a port of the long syntax (one per port of a range).
fn publish_specs(p: &Port) -> Vec<String> {
    let proto = p
        .protocol
        .as_ref()
        .map(|p| format!("/{}", p.as_str()))
        .unwrap_or_default();
    let ip = p.host_ip.map(|ip| format!("{ip}:")).unwrap_or_default();
    match &p.published {
        None => vec![
            format!("{ip}{}{proto}", p.target)
                .trim_start_matches(':')
                .to_owned(),
        ],
        // A published range for one target: docker takes a free port of it; rbuild its
        // first (short ranges arrive here split, one host port per target).
        Some(range) => vec![format!("{ip}{}:{}{proto}", range.start(), p.target)],
    }
}

/// The engine's name of the project's volume `key`: `PROJECT_KEY`, its `name:`, or an
/// external volume's name; `None` when the project does not declare it.
pub(crate) fn volume_name(project: &Project, key: &str) -> Option<String> {
    let (k, v) = project
        .model
        .volumes
        .iter()
        .find(|(k, _)| k.as_str() == key)?;
    Some(match v {
        Some(Resource::External { name }) => name.clone().unwrap_or_else(|| text(k)),
        Some(Resource::Compose(vol)) => vol
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_{key}", project.name)),
        None => format!("{}_{key}", project.name),
    })
}

/// The labels compose puts on a service's container.
pub(crate) fn container_labels(
    project: &Project,
    name: &str,
    number: u64,
    hash: &str,
    image: &str,
    oneoff: bool,
) -> BTreeMap<String, String> {
    let files: Vec<String> = project
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    BTreeMap::from([
        (labels::PROJECT.into(), project.name.clone()),
        (labels::SERVICE.into(), name.to_owned()),
        (labels::NUMBER.into(), number.to_string()),
        (labels::HASH.into(), hash.to_owned()),
        (
            labels::ONEOFF.into(),
            if oneoff { "True" } else { "False" }.into(),
        ),
        (labels::IMAGE.into(), image.to_owned()),
        (
            labels::WORKING_DIR.into(),
            project.directory.display().to_string(),
        ),
        (labels::CONFIG_FILES.into(), files.join(",")),
        (labels::VERSION.into(), labels::COMPOSE_VERSION.into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell() {
        assert_eq!(
            split_command(r#"sh -c 'echo "a b"' "x y" z\ w"#).unwrap(),
            ["sh", "-c", "echo \"a b\"", "x y", "z w"]
        );
        assert_eq!(split_command("  ").unwrap(), Vec::<String>::new());
        assert!(split_command("'open").is_err());
    }

    #[test]
    fn unknown_behaviour_keys_are_refused_by_name() {
        let s: Service = serde_yaml::from_str(
            "image: a\nhealthcheck:\n  test: [CMD, 'true']\n  start_interval: 1s\n",
        )
        .unwrap();
        check_supported("web", &s).unwrap();
        let Some(h) = &s.healthcheck else {
            panic!("a healthcheck")
        };
        assert_eq!(health_config(h).start_interval, 1_000_000_000);
        // The runner writes /etc/hosts and resolv.conf with these off bridge networks too.
        let s: Service =
            serde_yaml::from_str("image: a\nnetwork_mode: none\nextra_hosts: ['h:10.0.0.1']\n")
                .unwrap();
        check_supported("web", &s).unwrap();
        let s: Service = serde_yaml::from_str("image: a\nlogging:\n  driver: syslog\n").unwrap();
        let e = check_supported("web", &s).unwrap_err().to_string();
        assert!(e.contains("logging.driver: syslog"), "{e}");
        let s: Service = serde_yaml::from_str("image: a\ndeploy:\n  mode: global\n").unwrap();
        let e = check_supported("web", &s).unwrap_err().to_string();
        assert!(e.contains("deploy.mode"), "{e}");
        let s: Service = serde_yaml::from_str(
            "image: a\nports: ['8080:80']\nvolumes: [data:/d]\nx-note: 1\ndeploy:\n  replicas: 2\nlogging:\n  driver: json-file\n  options: {max-size: 10m, max-file: '3'}\n",
        )
        .unwrap();
        check_supported("web", &s).unwrap();
    }

    #[test]
    fn healthchecks_become_dockers_health_config() {
        let s: Service = serde_yaml::from_str(
            "image: a\nhealthcheck:\n  test: [CMD-SHELL, 'wget -q localhost']\n  interval: 1m30s\n  timeout: 500ms\n  retries: 4\n  start_period: 2s\n",
        )
        .unwrap();
        check_supported("web", &s).unwrap();
        let h = health_config(s.healthcheck.as_ref().unwrap());
        assert_eq!(h.test, ["CMD-SHELL", "wget -q localhost"]);
        assert_eq!(h.interval, 90_000_000_000);
        assert_eq!(h.timeout, 500_000_000);
        assert_eq!(h.start_period, 2_000_000_000);
        assert_eq!(h.retries, 4);
        let s: Service =
            serde_yaml::from_str("image: a\nhealthcheck:\n  test: [CMD, pg_isready, -q]\n")
                .unwrap();
        assert_eq!(
            health_config(s.healthcheck.as_ref().unwrap()).test,
            ["CMD", "pg_isready", "-q"]
        );
        let s: Service = serde_yaml::from_str("image: a\nhealthcheck:\n  disable: true\n").unwrap();
        assert_eq!(
            health_config(s.healthcheck.as_ref().unwrap()).test,
            ["NONE"]
        );
    }

    #[test]
    fn config_hash_ignores_scale_and_follows_the_command() {
        let a: Service = serde_yaml::from_str("image: a\ncommand: x\n").unwrap();
        let b: Service = serde_yaml::from_str("image: a\ncommand: x\nscale: 3\n").unwrap();
        let c: Service = serde_yaml::from_str("image: a\ncommand: y\n").unwrap();
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(config_hash(&a), config_hash(&c));
    }

    #[test]
    fn ports_become_publish_specs() {
        let s: Service =
            serde_yaml::from_str("ports: ['8080:80', '127.0.0.1:9000-9001:7000-7001/udp', '53']\n")
                .unwrap();
        let specs: Vec<String> = ports::into_long_iter(s.ports)
            .flat_map(|p| publish_specs(&p))
            .collect();
        assert_eq!(
            specs,
            [
                "8080:80",
                "127.0.0.1:9000:7000/udp",
                "127.0.0.1:9001:7001/udp",
                "53"
            ]
        );
    }
}
