//! `RUN --mount=type=…,…` values, parsed as BuildKit does (CSV fields, `key=value` or bare
//! boolean keys, defaults per mount type).

use serde::Serialize;

/// What a `RUN --mount` provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A directory from the context or another stage (read-only unless `rw`).
    Bind,
    /// A persistent cache directory shared across builds, never in the image.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file (or env var), never in the image or its history.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    /// Everyone uses the same directory at once.
    #[default]
    Shared,
    /// Each concurrent user gets its own copy.
    Private,
    /// Users take turns.
    Locked,
}

/// One `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Kind of mount (default `bind`).
    #[serde(rename = "type")]
    pub kind: MountType,
    /// Where it appears in the container.
    pub target: Option<String>,
    /// Path inside `from` (bind, cache) or the secret's source.
    pub source: Option<String>,
    /// Stage or image providing a bind/cache source (the context when absent).
    pub from: Option<String>,
    /// Read-only mount.
    pub read_only: bool,
    /// Cache or secret/ssh id.
    pub id: Option<String>,
    /// Cache sharing mode.
    pub sharing: CacheSharing,
    /// File mode for cache dirs and secrets (octal in the Dockerfile).
    pub mode: Option<u32>,
    /// Owner uid of the cache dir or secret.
    pub uid: Option<u32>,
    /// Owner gid of the cache dir or secret.
    pub gid: Option<u32>,
    /// Fail when the secret or ssh socket is not provided.
    pub required: bool,
    /// Size limit of a tmpfs, in bytes.
    pub size: Option<u64>,
    /// Expose a secret as this environment variable instead of (or as well as) a file.
    pub env: Option<String>,
}

/// Parse the value of one `--mount` flag.
pub fn parse_mount(value: &str) -> Result<Mount, String> {
    let mut m = Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        read_only: false,
        id: None,
        sharing: CacheSharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    let mut read_only: Option<bool> = None;
    for field in csv_fields(value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let boolean = |v: &Option<String>| -> Result<bool, String> {
            match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("true") | Some("1") => Ok(true),
                Some("false") | Some("0") => Ok(false),
                Some(o) => Err(format!("invalid boolean value {o:?} for {key}")),
            }
        };
        let need =
            |v: Option<String>| v.ok_or_else(|| format!("unexpected key '{field}' in '{value}'"));
        match key.as_str() {
            "readonly" | "ro" => read_only = Some(boolean(&val)?),
            "readwrite" | "rw" => read_only = Some(!boolean(&val)?),
            "required" => m.required = boolean(&val)?,
            "type" => {
                m.kind = match need(val)?.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    other => return Err(format!("unsupported mount type {other:?}")),
                }
            }
            "from" => m.from = Some(need(val)?),
            "source" | "src" => m.source = Some(need(val)?),
            "target" | "dst" | "destination" => m.target = Some(need(val)?),
            "id" => m.id = Some(need(val)?),
            "env" => m.env = Some(need(val)?),
            "sharing" => {
                m.sharing = match need(val)?.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    other => return Err(format!("unsupported sharing value {other:?}")),
                }
            }
            "mode" => {
                let v = need(val)?;
                m.mode = Some(
                    u32::from_str_radix(&v, 8)
                        .map_err(|_| format!("invalid value {v} for mode"))?,
                );
            }
            "uid" | "gid" => {
                let v = need(val)?;
                let n: u32 = v
                    .parse()
                    .map_err(|_| format!("invalid value {v} for {key}"))?;
                if key == "uid" {
                    m.uid = Some(n)
                } else {
                    m.gid = Some(n)
                }
            }
            "size" => {
                let v = need(val)?;
                m.size = Some(parse_size(&v).ok_or_else(|| format!("invalid value {v} for size"))?);
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    m.read_only = read_only.unwrap_or(m.kind == MountType::Bind);
    // A bind, cache or tmpfs mount without a target is mounted at the working directory, as
    // BuildKit does (`RUN --mount=from=build` in docker/buildx's and moby/buildkit's own
    // Dockerfiles); the builder resolves it.
    match m.kind {
        MountType::Secret if m.id.is_none() => {
            let from_target = m
                .target
                .as_deref()
                .and_then(|t| t.rsplit('/').next())
                .filter(|s| !s.is_empty());
            let from_env = m.env.clone();
            m.id = Some(
                from_target
                    .map(str::to_string)
                    .or(from_env)
                    .ok_or("secret mount requires an id or a target")?,
            );
        }
        MountType::Ssh if m.id.is_none() => m.id = Some("default".into()),
        _ => {}
    }
    if m.kind == MountType::Secret && m.target.is_none() && m.env.is_none() {
        m.target = Some(format!(
            "/run/secrets/{}",
            m.id.as_deref().unwrap_or_default()
        ));
    }
    Ok(m)
}

/// `64m`, `1g`, `512k`, `100` (bytes), `1.5GiB`.
fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1u64,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

/// Split a CSV record (Go's encoding/csv rules for one line: `"` quoting, `""` escapes).
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = s.chars().peekable();
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_start => loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => {
                        at_start = false;
                        break;
                    }
                    Some(c) => field.push(c),
                    None => return Err(format!("unterminated quote in mount value {s:?}")),
                }
            },
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    fields.push(field);
    Ok(fields.into_iter().filter(|f| !f.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_mount() {
        let m =
            parse_mount("type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000")
                .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(
            (m.sharing, m.mode, m.uid, m.read_only),
            (CacheSharing::Locked, Some(0o755), Some(1000), false)
        );
    }

    #[test]
    fn defaults_per_type() {
        let b = parse_mount("target=/src,from=build,source=/out").unwrap();
        assert!(b.kind == MountType::Bind && b.read_only);
        assert!(!parse_mount("type=bind,target=/x,rw").unwrap().read_only);
        let s = parse_mount("type=secret,id=tok").unwrap();
        assert_eq!(s.target.as_deref(), Some("/run/secrets/tok"));
        let s = parse_mount("type=secret,target=/etc/key,required").unwrap();
        assert_eq!((s.id.as_deref(), s.required), (Some("key"), true));
        let t = parse_mount("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(t.size, Some(64 << 20));
        assert_eq!(
            parse_mount("type=ssh").unwrap().id.as_deref(),
            Some("default")
        );
    }

    #[test]
    fn mounts_without_a_target_are_accepted_as_buildkit_does() {
        // regression: docker/buildx's Dockerfile has `RUN --mount=from=binaries` and
        // `--mount=ro`; both were rejected as "requires a target".
        let from = parse_mount("from=binaries").unwrap();
        assert_eq!(
            (from.kind, from.target, from.read_only),
            (MountType::Bind, None, true)
        );
        assert_eq!(parse_mount("ro").unwrap().target, None);
        let cache = parse_mount("type=cache").unwrap();
        assert_eq!((cache.target, cache.read_only), (None, false));
        assert_eq!(parse_mount("type=tmpfs").unwrap().target, None);
    }

    #[test]
    fn bad_mounts() {
        assert!(
            parse_mount("type=nfs,target=/x")
                .unwrap_err()
                .contains("unsupported mount type")
        );
        assert!(parse_mount("type=cache,target=/x,mode=abc").is_err());
        assert!(parse_mount("type=cache,target=/x,sharing=weird").is_err());
        assert!(
            parse_mount("type=cache,target=/x,bogus=1")
                .unwrap_err()
                .contains("unexpected key")
        );
        assert!(parse_mount("type=cache,target=/x,mode=9").is_err());
        assert!(parse_mount("\"type=cache").is_err());
    }
}
