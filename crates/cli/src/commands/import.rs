//! `rbuild import FILE|- [REF]`: a rootfs tarball (plain, gzip or zstd) → a single-layer image,
//! with docker's `--change` and `--message`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Map, Value, json};

use super::Globals;
use super::common::{now, open_store, rfc3339};

/// Arguments of `rbuild import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
    /// ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL); repeatable
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message recorded in the image history
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set the platform (`os/arch[/variant]`)
    #[arg(long)]
    pub platform: Option<String>,
    /// The tarball (`-` for standard input)
    pub file: PathBuf,
    /// Name for the new image
    pub reference: Option<String>,
}

/// Run `rbuild import`.
pub fn run(args: ImportArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let name = args
        .reference
        .as_deref()
        .map(|r| {
            r.parse::<rbuild_oci::Reference>()
                .with_context(|| format!("image name {r:?}"))
        })
        .transpose()?;
    let platform = match &args.platform {
        Some(p) => p.parse::<rbuild_oci::Platform>()?,
        None => rbuild_oci::Platform::host(),
    };
    let mut config = Map::new();
    for c in &args.changes {
        apply_change(&mut config, c).with_context(|| format!("--change {c:?}"))?;
    }
    let store = open_store(globals)?;
    let _hold = store.hold()?;
    let (reader, source): (Box<dyn std::io::Read>, String) = if args.file.as_os_str() == "-" {
        if std::io::stdin().is_terminal() {
            bail!("import from standard input, but it is a terminal");
        }
        (Box::new(std::io::stdin().lock()), "-".into())
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        (Box::new(f), args.file.display().to_string())
    };
    let (_, tar) =
        rbuild_store::compress::decompress(reader).with_context(|| format!("reading {source}"))?;
    let layer = store
        .add_layer_tar(tar, &source)
        .with_context(|| format!("importing {source}"))?;
    check_tar(&store, &layer.diff_id, &source)?;
    let created = rfc3339(now());
    let mut cfg = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "config": Value::Object(config),
        "rootfs": { "type": "layers", "diff_ids": [layer.diff_id.to_string()] },
        "history": [{
            "created": created,
            "comment": args.message.clone().unwrap_or_else(|| format!("Imported from {source}")),
        }],
    });
    if let Some(v) = &platform.variant {
        cfg["variant"] = json!(v);
    }
    let image = store.commit_image(&serde_json::to_vec(&cfg)?, name.as_slice())?;
    println!("{}", image.id);
    Ok(ExitCode::SUCCESS)
}

/// The layer must be a readable tar (a truncated or non-tar file is refused here, with its
/// name, before it becomes an image).
fn check_tar(
    store: &rbuild_store::Store,
    diff_id: &rbuild_oci::Digest,
    source: &str,
) -> anyhow::Result<()> {
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
        bail!("{source}: not a tar archive, or empty");
    }
    Ok(())
}

// NOTE(parser): `--change` is parsed here by a small local function while the parser crate is
// written; switch to `rbuild_parser` instructions once it is merged.
/// Apply one Dockerfile config instruction to a docker config object.
pub fn apply_change(config: &mut Map<String, Value>, change: &str) -> anyhow::Result<()> {
    let change = change.trim();
    let (keyword, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    let rest = rest.trim();
    if rest.is_empty() {
        bail!("{keyword} needs an argument");
    }
    match keyword.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.insert("Cmd".into(), json!(command_form(rest)?));
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), json!(command_form(rest)?));
        }
        "ENV" => {
            let env = config.entry("Env").or_insert_with(|| json!([]));
            let list = env.as_array_mut().expect("Env is a list");
            for (k, v) in key_values(rest)? {
                list.retain(|e| {
                    e.as_str()
                        .and_then(|s| s.split_once('='))
                        .is_none_or(|(ek, _)| ek != k)
                });
                list.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            for (k, v) in key_values(rest)? {
                labels[k] = json!(v);
            }
        }
        "EXPOSE" => {
            let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
            for p in rest.split_whitespace() {
                let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let ok = port.split('-').all(|n| n.parse::<u16>().is_ok())
                    && matches!(proto, "tcp" | "udp" | "sctp");
                if !ok {
                    bail!("invalid port {p:?}");
                }
                ports[format!("{port}/{proto}")] = json!({});
            }
        }
        "VOLUME" => {
            let vols = config.entry("Volumes").or_insert_with(|| json!({}));
            let list: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest).context("VOLUME JSON array")?
            } else {
                rest.split_whitespace().map(String::from).collect()
            };
            for v in list {
                vols[v] = json!({});
            }
        }
        "USER" => {
            config.insert("User".into(), json!(rest));
        }
        "WORKDIR" => {
            let current = config
                .get("WorkingDir")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string();
            let dir = if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("{}/{rest}", current.trim_end_matches('/'))
            };
            config.insert("WorkingDir".into(), json!(dir));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), json!(rest));
        }
        "ONBUILD" => {
            let first = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(first.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                bail!("{first} isn't allowed as an ONBUILD trigger");
            }
            let list = config.entry("OnBuild").or_insert_with(|| json!([]));
            list.as_array_mut()
                .expect("OnBuild is a list")
                .push(json!(rest));
        }
        other => bail!(
            "{other} is not a valid change command (allowed: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL)"
        ),
    }
    Ok(())
}

/// JSON exec form `["a","b"]`, else shell form `/bin/sh -c …`.
fn command_form(rest: &str) -> anyhow::Result<Vec<String>> {
    if rest.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(rest)
    {
        return Ok(v);
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

/// `k=v k2="v 2"` pairs, or the legacy single `KEY value` form.
fn key_values(rest: &str) -> anyhow::Result<Vec<(String, String)>> {
    let words = split_words(rest)?;
    if !words.first().is_some_and(|w| w.contains('=')) {
        let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{w:?} is not KEY=VALUE"),
        })
        .collect()
}

/// Split on whitespace, honouring double and single quotes and backslash escapes.
fn split_words(s: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        bail!("unterminated quote");
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
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
        assert_eq!(c["Env"], json!(["B=two words", "A=3"]));
        assert_eq!(c["Labels"], json!({"org.x": "y"}));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["User"], json!("1000:1000"));
        assert_eq!(c["WorkingDir"], json!("/srv/app"));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
        assert_eq!(c["OnBuild"], json!(["RUN make"]));
    }

    #[test]
    fn rejects_what_docker_rejects() {
        let mut m = Map::new();
        assert!(apply_change(&mut m, "RUN echo").is_err());
        assert!(apply_change(&mut m, "EXPOSE http").is_err());
        assert!(apply_change(&mut m, "ONBUILD FROM x").is_err());
        assert!(apply_change(&mut m, "CMD").is_err());
        assert!(apply_change(&mut m, "ENV A=\"x").is_err());
    }
}
