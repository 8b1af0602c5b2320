//! Images from a rootfs tarball (`docker import`), and the `--change` instructions that
//! `import` and `commit` apply to an image config.

use std::io::Read;

use rbuild_oci::{Platform, Reference};
use rbuild_store::Image;
use serde_json::{Map, Value, json};

use crate::Engine;
use crate::error::{EngineError, OptionExt, Result, ResultExt};
use crate::events::{Event, EventType};

/// What `import` makes of a tarball besides its layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOptions {
    /// The image config's process section, `--change`s applied (see [`apply_changes`]).
    pub config: Map<String, Value>,
    /// The history entry's comment [default: `Imported from SOURCE`].
    pub message: Option<String>,
    /// The image's platform [default: this machine's].
    pub platform: Option<Platform>,
    /// The new image's name.
    pub name: Option<Reference>,
}

/// A process config with the `--change` instructions applied in order (errors name the
/// change).
pub fn apply_changes(changes: &[String]) -> Result<Map<String, Value>> {
    let mut config = Map::new();
    for c in changes {
        apply_change(&mut config, c).with_context(|| format!("--change {c:?}"))?;
    }
    Ok(config)
}

impl Engine {
    /// A single-layer image from the tarball `reader` (plain, gzip or zstd), `source` naming
    /// it in errors and history. Sends an `import` event.
    pub fn import(
        &self,
        reader: Box<dyn Read>,
        source: &str,
        opts: ImportOptions,
    ) -> Result<Image> {
        let store = self.store()?;
        let _hold = store.hold()?;
        let platform = opts.platform.unwrap_or_else(Platform::host);
        let (_, tar) = rbuild_store::compress::decompress(reader)
            .with_context(|| format!("reading {source}"))?;
        let layer = store
            .add_layer_tar(tar, source)
            .with_context(|| format!("importing {source}"))?;
        check_tar(store, &layer.diff_id, source)?;
        let created = crate::engine::rfc3339_now();
        let mut cfg = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "created": created,
            "config": Value::Object(opts.config),
            "rootfs": { "type": "layers", "diff_ids": [layer.diff_id.to_string()] },
            "history": [{
                "created": created,
                "comment": opts.message.unwrap_or_else(|| format!("Imported from {source}")),
            }],
        });
        if let Some(v) = &platform.variant {
            cfg["variant"] = json!(v);
        }
        let image = store.commit_image(&serde_json::to_vec(&cfg)?, opts.name.as_slice())?;
        self.emit(Event::now(
            EventType::Image,
            "import",
            &image.id.to_string(),
            [("name", source.to_owned())],
        ));
        Ok(image)
    }
}

/// The layer must be a readable tar (a truncated or non-tar file is refused here, with its
/// name, before it becomes an image).
fn check_tar(
    store: &rbuild_store::Store,
    diff_id: &rbuild_oci::Digest,
    source: &str,
) -> Result<()> {
    let mut ar = tar::Archive::new(store.layer_reader(diff_id)?);
    let mut n = 0;
    for e in ar
        .entries()
        .with_context(|| format!("{source} is not a tar archive"))?
    {
        let mut e = e.with_context(|| format!("{source}: corrupt or truncated tar"))?;
        std::io::copy(&mut e, &mut std::io::sink())
            .with_context(|| format!("{source}: corrupt or truncated tar"))?;
        n += 1;
    }
    if n == 0 {
        return Err(EngineError::InvalidParameter(format!(
            "{source}: not a tar archive, or empty"
        )));
    }
    Ok(())
}

/// Apply one Dockerfile config instruction (`--change`) to a docker config object. The
/// instruction is parsed and its words expanded by the Dockerfile parser, against the
/// environment the config already has.
pub fn apply_change(config: &mut Map<String, Value>, change: &str) -> Result<()> {
    use rbuild_parser::instructions::{Instruction, MetaScope, Platforms, StageScope};

    let text = format!("FROM scratch\n{}\n", change.trim());
    let df = rbuild_parser::instructions::parse_dockerfile(&text)
        .map_err(|e| EngineError::InvalidParameter(e.kind.to_string()))?;
    let Some(located) = df.stages.first().and_then(|s| s.instructions.first()) else {
        return Err(EngineError::InvalidParameter("no instruction given".into()));
    };
    if change.split_whitespace().nth(1).is_none() {
        return Err(EngineError::InvalidParameter(format!(
            "{} needs an argument",
            located.instruction.keyword()
        )));
    }
    let env: Vec<(String, String)> = config
        .get("Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.as_str()?
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let no_args = Default::default();
    let meta = MetaScope::resolve(&df, &no_args, &Platforms::host())?;
    let mut scope = StageScope::new(&df, &meta, &no_args, env);
    let shell = ["/bin/sh".to_string(), "-c".to_string()];
    let argv = |c: &rbuild_parser::instructions::CommandLine| {
        json!(rbuild_builder::config::argv(c, &shell))
    };
    match scope.expand(located)? {
        Instruction::Cmd(c) => {
            config.insert("Cmd".into(), argv(&c.command));
        }
        Instruction::Entrypoint(e) => {
            config.insert("Entrypoint".into(), argv(&e.command));
        }
        Instruction::Env(e) => {
            let list = config.entry("Env").or_insert_with(|| json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            let list = list.as_array_mut().expect("Env is a list");
            for kv in e.vars {
                let entry = json!(format!("{}={}", kv.key, kv.value));
                let same = |v: &Value| {
                    v.as_str()
                        .and_then(|s| s.split_once('='))
                        .is_some_and(|(k, _)| k == kv.key)
                };
                match list.iter_mut().find(|v| same(v)) {
                    Some(slot) => *slot = entry,
                    None => list.push(entry),
                }
            }
        }
        Instruction::Label(l) => {
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            for kv in l.labels {
                labels[kv.key] = json!(kv.value);
            }
        }
        Instruction::Expose(e) => {
            let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
            for p in e.ports {
                let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let ok = port.split('-').all(|n| n.parse::<u16>().is_ok())
                    && matches!(proto, "tcp" | "udp" | "sctp");
                if !ok {
                    return Err(EngineError::InvalidParameter(format!("invalid port {p:?}")));
                }
                ports[format!("{port}/{proto}")] = json!({});
            }
        }
        Instruction::Volume(v) => {
            let vols = config.entry("Volumes").or_insert_with(|| json!({}));
            for path in v.paths {
                vols[path] = json!({});
            }
        }
        Instruction::User(u) => {
            config.insert("User".into(), json!(u.user));
        }
        Instruction::Workdir(w) => {
            let current = config
                .get("WorkingDir")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string();
            let dir = if w.path.starts_with('/') {
                w.path
            } else {
                format!("{}/{}", current.trim_end_matches('/'), w.path)
            };
            config.insert("WorkingDir".into(), json!(dir));
        }
        Instruction::Stopsignal(s) => {
            config.insert("StopSignal".into(), json!(s.signal));
        }
        Instruction::Onbuild(o) => {
            let list = config.entry("OnBuild").or_insert_with(|| json!([]));
            list.as_array_mut()
                .or_invalid(|| "OnBuild is not a list")?
                .push(json!(o.expression));
        }
        other => {
            return Err(EngineError::InvalidParameter(format!(
                "{} is not a valid change command (allowed: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL)",
                other.keyword()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(changes: &[&str]) -> Value {
        let mut m = Map::new();
        for c in changes {
            apply_change(&mut m, c).unwrap();
        }
        Value::Object(m)
    }

    #[test]
    fn applies_each_change_like_docker() {
        let c = cfg(&[
            r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /init",
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "LABEL org.x=y",
            "EXPOSE 80 53/udp",
            "VOLUME /data",
            "USER 1000:1000",
            "WORKDIR /srv",
            "WORKDIR app",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN make",
        ]);
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/init"]));
        assert_eq!(
            c["Env"],
            json!(["A=3", "B=two words"]),
            "replaced in place, as docker does"
        );
        assert_eq!(c["Labels"], json!({"org.x": "y"}));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["User"], json!("1000:1000"));
        assert_eq!(c["WorkingDir"], json!("/srv/app"));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
        assert_eq!(c["OnBuild"], json!(["RUN make"]));
        let c = cfg(&["ENV A=1", "ENV B=${A}2", "WORKDIR /x/$B"]);
        assert_eq!(
            c["WorkingDir"],
            json!("/x/12"),
            "words expand against the config's env"
        );
    }

    #[test]
    fn rejects_what_docker_rejects() {
        let mut m = Map::new();
        assert!(apply_change(&mut m, "RUN echo").is_err());
        assert!(apply_change(&mut m, "EXPOSE http").is_err());
        assert!(apply_change(&mut m, "ONBUILD FROM x").is_err());
        assert!(apply_change(&mut m, "CMD").is_err());
        assert!(apply_change(&mut m, "ENV A=\"x").is_err());
        assert!(apply_change(&mut m, "FORM x").is_err());
    }
}
