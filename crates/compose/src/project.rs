//! Loading a project: the files found or given, the environment (`.env` / `--env-file`, the
//! process environment winning), interpolation, merging, `extends`, profiles, the project
//! name, and validation against the Compose Specification (through the `compose_spec` crate)
//! and of `depends_on`.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_yaml::{Mapping, Value};

use crate::error::ComposeError;
use crate::interpolate::interpolate_value;
use crate::merge::{merge_documents, merge_service};

/// The file names looked for, in docker compose's order of preference.
pub const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// What `-f`, `--project-directory`, `-p`, `--env-file` and `--profile` said, and where the
/// command runs.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f` files in order (later merge over earlier); none: search `working_dir` and its
    /// parents (with the override file beside the one found).
    pub files: Vec<PathBuf>,
    /// `--project-directory` (default: the first file's directory).
    pub project_directory: Option<PathBuf>,
    /// `-p` (default: `COMPOSE_PROJECT_NAME`, then the files' `name:`, then the directory).
    pub project_name: Option<String>,
    /// `--env-file` files (default: `.env` in the project directory, if present).
    pub env_files: Vec<PathBuf>,
    /// `--profile`s enabled (with `COMPOSE_PROFILES`).
    pub profiles: Vec<String>,
    /// The directory the command runs in.
    pub working_dir: PathBuf,
    /// The process environment.
    pub environment: IndexMap<String, String>,
}

/// A loaded, merged, interpolated and validated compose project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The normalized project name (`PROJECT-SERVICE-N` containers, `PROJECT_default`).
    pub name: String,
    /// The project directory (relative paths in the files resolve against it).
    pub directory: PathBuf,
    /// The files read, in merge order.
    pub files: Vec<PathBuf>,
    /// The variables interpolation used: the env files', overridden by the process's.
    pub environment: IndexMap<String, String>,
    /// The typed model.
    pub model: compose_spec::Compose,
    document: Value,
}

impl Project {
    /// Find, read and check the project `opts` describe.
    pub fn load(opts: &LoadOptions) -> Result<Project, ComposeError> {
        let files = if opts.files.is_empty() {
            find_files(&opts.working_dir)?
        } else {
            opts.files
                .iter()
                .map(|f| opts.working_dir.join(f))
                .collect()
        };
        let directory = match &opts.project_directory {
            Some(d) => opts.working_dir.join(d),
            None => files[0]
                .parent()
                .map_or_else(|| opts.working_dir.clone(), Path::to_path_buf),
        };
        let environment = load_environment(opts, &directory)?;
        let lookup = |name: &str| environment.get(name).cloned();

        let mut merged = Value::Mapping(Mapping::new());
        for file in &files {
            let mut doc = read_yaml(file)?;
            interpolate_value(&mut doc, "", &lookup).map_err(|source| {
                ComposeError::Interpolate {
                    file: file.clone(),
                    source,
                }
            })?;
            resolve_extends(&mut doc, file, &lookup)?;
            normalize_byte_values(&mut doc);
            expand_home(&mut doc, environment.get("HOME").map(String::as_str));
            // Each file must follow the specification on its own, so an error names the file
            // it is in (an override file may still be partial: no full validation here).
            deserialize(&doc, file)?;
            merge_documents(&mut merged, doc);
        }
        let mut profiles = opts.profiles.clone();
        if let Some(p) = environment.get("COMPOSE_PROFILES") {
            profiles.extend(p.split(',').filter(|s| !s.is_empty()).map(str::to_string));
        }
        apply_profiles(&mut merged, &profiles);
        check_dependencies(&merged)?;

        // A name given (-p, COMPOSE_PROJECT_NAME, `name:`) must be valid as it is; one taken
        // from the directory is normalized, as docker compose does.
        let given = opts
            .project_name
            .clone()
            .or_else(|| environment.get("COMPOSE_PROJECT_NAME").cloned())
            .or_else(|| {
                merged
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        let name = match given {
            Some(n) if normalize_project_name(&n).ok().as_deref() == Some(n.as_str()) => n,
            Some(n) => return Err(ComposeError::ProjectName(n)),
            None => normalize_project_name(
                &directory
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            )?,
        };
        if let Value::Mapping(m) = &mut merged {
            m.insert("name".into(), name.clone().into());
        }
        declare_default_network(&mut merged, &name);
        let model = typed(&merged, &files[0])?;
        Ok(Project {
            name,
            directory,
            files,
            environment,
            model,
            document: merged,
        })
    }

    /// The services, each after the ones it depends on (then by name).
    pub fn service_order(&self) -> Vec<String> {
        let deps = dependencies(&self.document);
        let mut order: Vec<String> = Vec::new();
        let mut names: Vec<&String> = deps.keys().collect();
        names.sort();
        fn visit(name: &str, deps: &IndexMap<String, Vec<String>>, order: &mut Vec<String>) {
            if order.iter().any(|o| o == name) {
                return;
            }
            let mut mine = deps.get(name).cloned().unwrap_or_default();
            mine.sort();
            for d in &mine {
                visit(d, deps, order);
            }
            order.push(name.to_string());
        }
        for n in names {
            visit(n, &deps, &mut order);
        }
        order
    }

    /// The service names, sorted (`config --services`).
    pub fn service_names(&self) -> Vec<String> {
        let mut names: Vec<String> = dependencies(&self.document).into_keys().collect();
        names.sort();
        names
    }

    /// The top-level volume names, sorted (`config --volumes`).
    pub fn volume_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .document
            .get("volumes")
            .and_then(Value::as_mapping)
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The normalized model as YAML (`config`).
    pub fn config_yaml(&self) -> String {
        let mut doc = serde_yaml::to_value(&self.model).expect("a compose model serializes");
        // `restart: on-failure:N` as it was written.
        if let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) {
            for (_, service) in services.iter_mut() {
                if let Some(map) = service.as_mapping_mut()
                    && let Some(policy) = map.remove(RESTART_RETRIES_KEY)
                {
                    map.insert("restart".into(), policy);
                }
            }
        }
        serde_yaml::to_string(&doc).expect("a compose model serializes")
    }
}

/// The compose file in `dir` or the nearest parent, and its override file beside it.
pub fn find_files(dir: &Path) -> Result<Vec<PathBuf>, ComposeError> {
    for d in dir.ancestors() {
        if let Some(found) = FILE_NAMES.iter().map(|n| d.join(n)).find(|p| p.is_file()) {
            let stem = if found
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("docker-"))
            {
                "docker-compose"
            } else {
                "compose"
            };
            let ext = found
                .extension()
                .map_or("yaml".into(), |e| e.to_string_lossy().into_owned());
            let mut files = vec![found];
            let over = d.join(format!("{stem}.override.{ext}"));
            if over.is_file() {
                files.push(over);
            }
            return Ok(files);
        }
    }
    Err(ComposeError::NoFile {
        dir: dir.to_path_buf(),
    })
}

/// docker compose's normalization: lowercase, only `[a-z0-9_-]` kept, starting with a letter
/// or digit.
pub fn normalize_project_name(raw: &str) -> Result<String, ComposeError> {
    let name: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect();
    let name = name.trim_start_matches(['-', '_']).to_string();
    if name.is_empty() {
        return Err(ComposeError::ProjectName(raw.to_string()));
    }
    Ok(name)
}

fn load_environment(
    opts: &LoadOptions,
    directory: &Path,
) -> Result<IndexMap<String, String>, ComposeError> {
    let env_files = if opts.env_files.is_empty() {
        let dot = directory.join(".env");
        if dot.is_file() { vec![dot] } else { Vec::new() }
    } else {
        opts.env_files
            .iter()
            .map(|f| opts.working_dir.join(f))
            .collect()
    };
    let mut env: IndexMap<String, String> = IndexMap::new();
    for file in env_files {
        let text = std::fs::read_to_string(&file).map_err(|source| ComposeError::Io {
            path: file.clone(),
            source,
        })?;
        let process = |n: &str| opts.environment.get(n).cloned();
        let vars = crate::env::parse_env_file(&text, &process)
            .map_err(|source| ComposeError::EnvFile { file, source })?;
        env.extend(vars);
    }
    // The shell's variables win over the env files'.
    for (k, v) in &opts.environment {
        env.insert(k.clone(), v.clone());
    }
    Ok(env)
}

fn read_yaml(file: &Path) -> Result<Value, ComposeError> {
    let text = std::fs::read_to_string(file).map_err(|source| ComposeError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let doc: Value = serde_yaml::from_str(&text).map_err(|e| ComposeError::Yaml {
        file: file.to_path_buf(),
        message: e.to_string(),
    })?;
    if !doc.is_mapping() {
        return Err(ComposeError::Yaml {
            file: file.to_path_buf(),
            message: "the top level must be a mapping".into(),
        });
    }
    Ok(doc)
}

/// `doc` as the typed model; an error says where in the document it failed
/// (`services.web.ports[0]: …`).
fn deserialize(doc: &Value, file: &Path) -> Result<compose_spec::Compose, ComposeError> {
    let mut doc = doc.clone();
    hold_restart_retries(&mut doc);
    octal_modes(&mut doc);
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        ComposeError::Invalid {
            file: file.to_path_buf(),
            message: format!("{path}: {}", e.into_inner()),
        }
    })
}

/// The extension key holding a service's `restart: on-failure:N` while the typed model,
/// whose `restart` knows only the bare policies, reads `on-failure`.
pub const RESTART_RETRIES_KEY: &str = "x-rbuild-restart";

/// Move each service's `restart: on-failure:N` (the Compose Specification's form with a
/// retry count) into [`RESTART_RETRIES_KEY`], leaving `on-failure` for the typed model.
fn hold_restart_retries(doc: &mut Value) {
    let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) else {
        return;
    };
    for (_, service) in services.iter_mut() {
        let Some(map) = service.as_mapping_mut() else {
            continue;
        };
        let Some(policy) = map.get("restart").and_then(Value::as_str) else {
            continue;
        };
        if policy.starts_with("on-failure:") {
            let policy = policy.to_owned();
            map.insert("restart".into(), "on-failure".into());
            map.insert(RESTART_RETRIES_KEY.into(), policy.into());
        }
    }
}

/// A `secrets`/`configs` entry's `mode: 0440` is octal, as docker compose reads it (YAML 1.1
/// octal); the YAML 1.2 reader here sees the string `"0440"` (or `0o440`): made the number.
fn octal_modes(doc: &mut Value) {
    let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) else {
        return;
    };
    for (_, service) in services.iter_mut() {
        for key in ["secrets", "configs"] {
            let Some(list) = service.get_mut(key).and_then(Value::as_sequence_mut) else {
                continue;
            };
            for entry in list.iter_mut().filter_map(Value::as_mapping_mut) {
                let Some(text) = entry.get("mode").and_then(Value::as_str) else {
                    continue;
                };
                let digits = text.strip_prefix("0o").unwrap_or(text);
                if let Ok(mode) = u32::from_str_radix(digits, 8) {
                    entry.insert("mode".into(), mode.into());
                }
            }
        }
    }
}

/// `doc` checked against the Compose Specification.
/// The implicit `default` network declared (`name: PROJECT_default`) when a service names
/// it in its `networks:` and the files do not, as docker compose does.
fn declare_default_network(doc: &mut Value, project: &str) {
    let named = doc
        .get("services")
        .and_then(Value::as_mapping)
        .is_some_and(|services| {
            services.values().any(|s| match s.get("networks") {
                Some(Value::Sequence(l)) => l.iter().any(|n| n.as_str() == Some("default")),
                Some(Value::Mapping(m)) => m.contains_key("default"),
                _ => false,
            })
        });
    let declared = doc
        .get("networks")
        .and_then(Value::as_mapping)
        .is_some_and(|m| m.contains_key("default"));
    if !named || declared {
        return;
    }
    let Value::Mapping(top) = doc else {
        return;
    };
    let networks = top
        .entry("networks".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if let Value::Mapping(n) = networks {
        let mut default = Mapping::new();
        default.insert("name".into(), format!("{project}_default").into());
        n.insert("default".into(), Value::Mapping(default));
    }
}

fn typed(doc: &Value, file: &Path) -> Result<compose_spec::Compose, ComposeError> {
    let compose = deserialize(doc, file)?;
    compose.validate_all().map_err(|e| ComposeError::Invalid {
        file: file.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(compose)
}

/// Replace each service's `extends: {service, file?}` by the service it names with the
/// extending definition merged over it (chains followed; a loop is an error).
fn resolve_extends(
    doc: &mut Value,
    file: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ComposeError> {
    let Some(services) = doc.get("services").and_then(Value::as_mapping).cloned() else {
        return Ok(());
    };
    let mut resolved = Mapping::new();
    for (name, _) in &services {
        let n = name.as_str().unwrap_or_default();
        let service = extended(&services, n, file, lookup, &mut Vec::new())?;
        resolved.insert(name.clone(), service);
    }
    if let Value::Mapping(m) = doc {
        m.insert("services".into(), Value::Mapping(resolved));
    }
    Ok(())
}

fn extended(
    services: &Mapping,
    name: &str,
    file: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    seen: &mut Vec<String>,
) -> Result<Value, ComposeError> {
    let err = |message: String| ComposeError::Extends {
        service: name.to_string(),
        message,
    };
    let key = format!("{}#{name}", file.display());
    if seen.contains(&key) {
        return Err(err(format!("circular reference: {}", seen.join(" -> "))));
    }
    seen.push(key);
    let mut service = services
        .get(name)
        .cloned()
        .ok_or_else(|| err(format!("service {name:?} not found in {}", file.display())))?;
    let Some(ext) = service.as_mapping_mut().and_then(|m| m.remove("extends")) else {
        return Ok(service);
    };
    let (base_name, base_file) = match &ext {
        Value::String(s) => (s.clone(), None),
        Value::Mapping(m) => (
            m.get("service")
                .and_then(Value::as_str)
                .ok_or_else(|| err("no service named".into()))?
                .to_string(),
            m.get("file").and_then(Value::as_str).map(str::to_string),
        ),
        _ => return Err(err("expected a service name or {service, file}".into())),
    };
    let mut base = match base_file {
        None => extended(services, &base_name, file, lookup, seen)?,
        Some(other) => {
            let path = file.parent().unwrap_or(Path::new(".")).join(other);
            let mut other_doc = read_yaml(&path)?;
            interpolate_value(&mut other_doc, "", lookup).map_err(|source| {
                ComposeError::Interpolate {
                    file: path.clone(),
                    source,
                }
            })?;
            let others = other_doc
                .get("services")
                .and_then(Value::as_mapping)
                .cloned()
                .unwrap_or_default();
            extended(&others, &base_name, &path, lookup, seen)?
        }
    };
    merge_service(&mut base, service);
    Ok(base)
}

/// Drop services whose `profiles` are all off (a service without profiles is always on).
fn apply_profiles(doc: &mut Value, enabled: &[String]) {
    let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) else {
        return;
    };
    let all = enabled.iter().any(|p| p == "*");
    services.retain(
        |_, s| match s.get("profiles").and_then(Value::as_sequence) {
            None => true,
            Some(ps) => {
                all || ps
                    .iter()
                    .any(|p| p.as_str().is_some_and(|p| enabled.iter().any(|e| e == p)))
            }
        },
    );
}

/// Each service's `depends_on` names (list or mapping form).
fn dependencies(doc: &Value) -> IndexMap<String, Vec<String>> {
    let mut out = IndexMap::new();
    let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
        return out;
    };
    for (name, s) in services {
        let deps = match s.get("depends_on") {
            Some(Value::Sequence(list)) => list
                .iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect(),
            Some(Value::Mapping(m)) => m
                .keys()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        out.insert(name.as_str().unwrap_or_default().to_string(), deps);
    }
    out
}

/// Every `depends_on` names a defined service, and none goes round in a circle.
fn check_dependencies(doc: &Value) -> Result<(), ComposeError> {
    let deps = dependencies(doc);
    for (service, ds) in &deps {
        if let Some(d) = ds.iter().find(|d| !deps.contains_key(*d)) {
            return Err(ComposeError::UndefinedDependency {
                service: service.clone(),
                dependency: d.clone(),
            });
        }
    }
    // Depth-first search with a path stack: a node met again on the path closes a cycle.
    fn walk(
        n: &str,
        deps: &IndexMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Result<(), ComposeError> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Err(ComposeError::Cycle(cycle));
        }
        if done.iter().any(|d| d == n) {
            return Ok(());
        }
        path.push(n.to_string());
        for d in deps.get(n).into_iter().flatten() {
            walk(d, deps, path, done)?;
        }
        path.pop();
        done.push(n.to_string());
        Ok(())
    }
    let mut done = Vec::new();
    for n in deps.keys() {
        walk(n, &deps, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

/// A bind source starting with `~` (`~/data:/data`) is under the user's home directory, as
/// docker compose expands it (left as written when HOME is unknown).
fn expand_home(doc: &mut Value, home: Option<&str>) {
    let Some(home) = home else { return };
    let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) else {
        return;
    };
    let expand = |s: &str| -> Option<String> {
        (s == "~" || s.starts_with("~/") || s.starts_with("~:"))
            .then(|| format!("{}{}", home.trim_end_matches('/'), &s[1..]))
    };
    for (_, service) in services.iter_mut() {
        let Some(volumes) = service.get_mut("volumes").and_then(Value::as_sequence_mut) else {
            continue;
        };
        for v in volumes {
            match v {
                Value::String(s) => {
                    if let Some(e) = expand(s) {
                        *s = e;
                    }
                }
                Value::Mapping(m) => {
                    if let Some(Value::String(src)) = m.get_mut("source")
                        && let Some(e) = expand(src)
                    {
                        *src = e;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Byte sizes written with a fraction (`memory: 1.5G`, which docker compose reads through
/// go-units' `RAMInBytes`) as whole bytes, for the typed model, which takes integers only.
fn normalize_byte_values(doc: &mut Value) {
    const FIELDS: [&str; 4] = ["mem_limit", "mem_reservation", "memswap_limit", "shm_size"];
    let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) else {
        return;
    };
    for (_, service) in services.iter_mut() {
        for f in FIELDS {
            if let Some(v) = service.get_mut(f) {
                fractional_bytes(v);
            }
        }
        for part in ["limits", "reservations"] {
            if let Some(v) = service
                .get_mut("deploy")
                .and_then(|d| d.get_mut("resources"))
                .and_then(|r| r.get_mut(part))
                .and_then(|l| l.get_mut("memory"))
            {
                fractional_bytes(v);
            }
        }
    }
}

/// `1.5G` → 1610612736 (binary units, as go-units' `RAMInBytes`); other values unchanged.
fn fractional_bytes(v: &mut Value) {
    let Some(text) = v.as_str() else { return };
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    if !number.contains('.') {
        return;
    }
    let Ok(n) = number.parse::<f64>() else { return };
    let shift = match unit.trim().trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return,
    };
    *v = Value::Number(((n * (1u64 << shift) as f64) as u64).into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tilde_bind_source_is_the_home_directory() {
        let mut doc: Value = serde_yaml::from_str(
            "services:\n  a:\n    volumes: ['~/data:/data', {type: bind, source: ~/x, target: /x}, 'v:/v', '~user:/u']\n",
        )
        .unwrap();
        expand_home(&mut doc, Some("/home/me"));
        assert_eq!(
            doc["services"]["a"]["volumes"],
            serde_yaml::from_str::<Value>(
                "['/home/me/data:/data', {type: bind, source: /home/me/x, target: /x}, 'v:/v', '~user:/u']"
            )
            .unwrap()
        );
    }

    #[test]
    fn fractional_sizes_become_bytes() {
        let mut doc: Value = serde_yaml::from_str(
            "services:\n  a:\n    shm_size: 0.5g\n    mem_limit: 512m\n    deploy: {resources: {limits: {memory: 1.5G}}}\n",
        )
        .unwrap();
        normalize_byte_values(&mut doc);
        let a = &doc["services"]["a"];
        assert_eq!(a["shm_size"], Value::Number(536870912u64.into()));
        assert_eq!(a["mem_limit"], "512m", "whole numbers stay as written");
        assert_eq!(
            a["deploy"]["resources"]["limits"]["memory"],
            Value::Number(1610612736u64.into())
        );
    }
}
