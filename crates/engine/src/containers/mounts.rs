//! The mounts `rbuild run`/`create` give a container: `-v HOST:CTR[:ro]` (bind),
//! `-v NAME:CTR[:ro]` (named volume, made on first use and filled from the image),
//! `-v CTR` and the image's `VOLUME`s (anonymous volumes), `--mount type=bind|volume|tmpfs,…`,
//! `--tmpfs PATH[:OPTS]` and `--volumes-from CONTAINER[:ro|rw]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder};
use rbuild_runner::lifecycle::{Containers, MountRecord, Volumes};
use rbuild_runner::spec;

use crate::error::{EngineError, OptionExt, Result, ResultExt};

/// A mount: the spec entry and what `inspect` shows.
pub(crate) type Planned = (Mount, MountRecord);

/// Where volumes come from and what they are filled with.
pub(crate) struct Sources<'a> {
    /// The store root.
    pub root: &'a Path,
    /// The image's layer directories, bottom first (empty for `--rootfs`).
    pub layers: &'a [PathBuf],
}

fn bind(source: &Path, target: &str, ro: bool, kind: &str, name: &str, anonymous: bool) -> Planned {
    (
        spec::bind_mount(source, target, ro),
        MountRecord {
            kind: kind.to_owned(),
            name: name.to_owned(),
            source: source.to_owned(),
            destination: target.to_owned(),
            rw: !ro,
            anonymous,
        },
    )
}

fn volume(cx: &Sources<'_>, name: Option<&str>, target: &str, ro: bool) -> Result<Planned> {
    let vols = Volumes::new(cx.root);
    let (v, new) = vols
        .create(name, BTreeMap::new())
        .with_context(|| format!("volume for {target}"))?;
    if new {
        vols.populate(&v, cx.layers, target)
            .with_context(|| format!("filling volume {} from the image's {target}", v.name))?;
    }
    Ok(bind(
        &v.mountpoint,
        target,
        ro,
        "volume",
        &v.name,
        v.anonymous,
    ))
}

fn absolute(target: &str, spec_text: &str) -> Result<()> {
    if !target.starts_with('/') {
        return Err(EngineError::InvalidParameter(format!(
            "invalid mount {spec_text:?}: the container path must be absolute"
        )));
    }
    Ok(())
}

/// `-v` / `--volume`.
pub(crate) fn parse_volume(cx: &Sources<'_>, v: &str) -> Result<Planned> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, ctr, ro) = match parts.as_slice() {
        [c] => (None, *c, false),
        [h, c] => (Some(*h), *c, false),
        [h, c, mode] => {
            let modes: Vec<&str> = mode.split(',').collect();
            if modes
                .iter()
                .any(|m| !matches!(*m, "ro" | "rw" | "z" | "Z" | "rprivate" | "private"))
            {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid volume {v:?}: unknown mode {mode:?} (ro, rw)"
                )));
            }
            (Some(*h), *c, modes.contains(&"ro"))
        }
        _ => {
            return Err(EngineError::InvalidParameter(format!(
                "invalid volume {v:?}: expected [HOST_PATH|NAME:]CONTAINER_PATH[:ro]"
            )));
        }
    };
    absolute(ctr, v)?;
    match src {
        None => volume(cx, None, ctr, ro),
        Some(h) if h.starts_with('/') => {
            if !Path::new(h).exists() {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid volume {v:?}: bind mount source {h} does not exist"
                )));
            }
            Ok(bind(Path::new(h), ctr, ro, "bind", "", false))
        }
        Some(name) => volume(cx, Some(name), ctr, ro),
    }
}

/// `--mount type=…,source=…,target=…[,readonly]`.
pub(crate) fn parse_mount(cx: &Sources<'_>, m: &str) -> Result<Planned> {
    let mut kind = "volume";
    let (mut source, mut target, mut ro) = (None, None, false);
    let mut tmpfs_opts = Vec::new();
    for field in m.split(',') {
        let (k, val) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => kind = val,
            "source" | "src" => source = Some(val),
            "target" | "destination" | "dst" => target = Some(val),
            "readonly" | "ro" => ro = val.is_empty() || val == "true" || val == "1",
            "tmpfs-size" => tmpfs_opts.push(format!("size={val}")),
            "tmpfs-mode" => tmpfs_opts.push(format!("mode={val}")),
            "volume-nocopy" | "bind-propagation" | "consistency" => {}
            _ => {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid --mount {m:?}: unknown field {k:?}"
                )));
            }
        }
    }
    let target = target.or_invalid(|| format!("invalid --mount {m:?}: no target"))?;
    absolute(target, m)?;
    match kind {
        "bind" => {
            let src =
                source.or_invalid(|| format!("invalid --mount {m:?}: a bind needs a source"))?;
            if !Path::new(src).exists() {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid --mount {m:?}: bind source path does not exist: {src}"
                )));
            }
            Ok(bind(Path::new(src), target, ro, "bind", "", false))
        }
        "volume" => volume(cx, source.filter(|s| !s.is_empty()), target, ro),
        "tmpfs" => Ok(tmpfs(target, &tmpfs_opts)),
        _ => Err(EngineError::InvalidParameter(format!(
            "invalid --mount {m:?}: type must be bind, volume or tmpfs"
        ))),
    }
}

fn tmpfs(target: &str, opts: &[String]) -> Planned {
    let mut options = vec!["nosuid".to_owned(), "nodev".to_owned(), "noexec".to_owned()];
    options.extend(opts.iter().cloned());
    let mount = MountBuilder::default()
        .destination(target)
        .typ("tmpfs")
        .source("tmpfs")
        .options(options)
        .build()
        .expect("tmpfs mount");
    (
        mount,
        MountRecord {
            kind: "tmpfs".into(),
            name: String::new(),
            source: PathBuf::new(),
            destination: target.to_owned(),
            rw: true,
            anonymous: false,
        },
    )
}

/// `--tmpfs PATH[:OPTS]` (OPTS like `size=64m,mode=1777`).
pub(crate) fn parse_tmpfs(t: &str) -> Result<Planned> {
    let (path, opts) = t.split_once(':').unwrap_or((t, ""));
    absolute(path, t)?;
    let opts: Vec<String> = opts
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(tmpfs(path, &opts))
}

/// `--volumes-from CONTAINER[:ro|rw]`: that container's volumes and binds.
pub(crate) fn volumes_from(root: &Path, spec_text: &str) -> Result<Vec<Planned>> {
    let (name, mode) = match spec_text.rsplit_once(':') {
        Some((n, m @ ("ro" | "rw"))) => (n, Some(m)),
        _ => (spec_text, None),
    };
    let c = Containers::new(root).get(name)?;
    Ok(c.record
        .mounts
        .iter()
        .filter(|m| m.kind == "volume" || m.kind == "bind")
        .map(|m| {
            let ro = mode.map_or(!m.rw, |x| x == "ro");
            let mut p = bind(&m.source, &m.destination, ro, &m.kind, &m.name, false);
            // Borrowed: `rm -v` of this container leaves it to its owner.
            p.1.anonymous = false;
            p
        })
        .collect())
}

/// Anonymous volumes for the image's `VOLUME` paths not mounted otherwise.
pub(crate) fn image_volumes(
    cx: &Sources<'_>,
    paths: &[String],
    taken: &[Planned],
) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.trim_end_matches('/');
        let p = if p.is_empty() { "/" } else { p };
        if taken
            .iter()
            .any(|(_, r)| r.destination.trim_end_matches('/') == p)
        {
            continue;
        }
        out.push(volume(cx, None, p, false)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs_are_binds_named_or_anonymous() {
        let root = tempfile::tempdir().unwrap();
        let cx = Sources {
            root: root.path(),
            layers: &[],
        };
        let (m, r) = parse_volume(&cx, "/tmp:/data:ro").unwrap();
        assert_eq!((r.kind.as_str(), r.rw), ("bind", false));
        assert!(m.options().as_ref().unwrap().contains(&"ro".to_owned()));
        let (_, r) = parse_volume(&cx, "cache:/cache").unwrap();
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.anonymous),
            ("volume", "cache", false)
        );
        assert!(r.source.ends_with("volumes/cache/_data") && r.source.is_dir());
        let (_, r) = parse_volume(&cx, "/scratch").unwrap();
        assert!(r.anonymous && r.name.len() == 64);
        let e = parse_volume(&cx, "/no/such/dir:/data")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/no/such/dir"), "{e}");
        assert!(parse_volume(&cx, "/tmp:/data:rx").is_err());
        assert!(
            parse_volume(&cx, "/tmp:data")
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
        let (_, r) = parse_mount(&cx, "type=tmpfs,target=/t,tmpfs-size=1m").unwrap();
        assert_eq!(r.kind, "tmpfs");
        let (_, r) = parse_mount(&cx, "type=volume,source=cache,target=/c,readonly").unwrap();
        assert_eq!((r.name.as_str(), r.rw), ("cache", false));
        assert!(parse_mount(&cx, "type=bind,target=/x").is_err());
    }
}
