//! `--cache-to` / `--cache-from` in BuildKit's syntax: `type=registry,ref=REF,mode=max`,
//! `type=local,dest=DIR` / `type=local,src=DIR`, or (for `--cache-from`) a bare reference.
//! Options rbuild does not implement yet are refused by name, never ignored.

use std::path::PathBuf;

use rbuild_oci::Reference;

use crate::error::{EngineError, Result};

/// Which steps an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The steps whose layers are in the final image (BuildKit's default).
    #[default]
    Min,
    /// Every step of every stage the build ran or reused.
    Max,
}

/// Where a cache goes to or comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// An artifact in a registry, under a tag or digest.
    Registry(Reference),
    /// An OCI image layout directory.
    Local(PathBuf),
    /// `--cache-to type=inline`: in the built image's config.
    Inline,
}

/// A parsed `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    /// Where it goes.
    pub location: CacheLocation,
    /// `mode=min|max`.
    pub mode: CacheMode,
    /// `ignore-error=true`: a failed export is a warning, not a failed build.
    pub ignore_error: bool,
    /// Whether the contents of `RUN --mount=type=cache` directories are exported
    /// (`cache-mounts=`, default with `mode=max`).
    pub cache_mounts: bool,
    /// `cache-mount-max-size=`: larger cache mounts are skipped with a warning.
    pub cache_mount_max_size: u64,
}

/// The default `cache-mount-max-size`: 1 GiB.
pub const CACHE_MOUNT_MAX_SIZE: u64 = 1 << 30;

/// A parsed `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSource {
    /// Where it comes from.
    pub location: CacheLocation,
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(r) => write!(f, "registry {r}"),
            CacheLocation::Local(d) => write!(f, "local {}", d.display()),
            CacheLocation::Inline => write!(f, "inline (the image config)"),
        }
    }
}

fn invalid(flag: &str, spec: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidParameter(format!("{flag} {spec:?}: {why}"))
}

fn not_yet(flag: &str, spec: &str, what: &str) -> EngineError {
    EngineError::InvalidParameter(format!("{flag} {spec:?}: {what} is not supported yet"))
}

/// The `key=value` fields of a spec, `type` first checked.
fn fields<'a>(flag: &str, spec: &'a str) -> Result<Vec<(&'a str, &'a str)>> {
    spec.split(',')
        .map(|f| {
            f.split_once('=')
                .ok_or_else(|| invalid(flag, spec, format!("field {f:?} is not KEY=VALUE")))
        })
        .collect()
}

fn reference(flag: &str, spec: &str, r: &str) -> Result<Reference> {
    r.parse()
        .map_err(|e| invalid(flag, spec, format!("ref {r:?}: {e}")))
}

fn boolean(flag: &str, spec: &str, k: &str, v: &str) -> Result<bool> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(
            flag,
            spec,
            format!("{k}={v:?}: expected true or false"),
        )),
    }
}

/// Parse a `--cache-to` value.
pub fn parse_cache_to(spec: &str) -> Result<CacheExport> {
    const FLAG: &str = "--cache-to";
    let mut kind = None;
    let mut reference_ = None;
    let mut dest = None;
    let mut mode = CacheMode::Min;
    let mut ignore_error = false;
    let mut cache_mounts = None;
    let mut max_size = CACHE_MOUNT_MAX_SIZE;
    for (k, v) in fields(FLAG, spec)? {
        match k {
            "type" => kind = Some(v),
            "ref" => reference_ = Some(reference(FLAG, spec, v)?),
            "dest" => dest = Some(PathBuf::from(v)),
            "mode" => {
                mode = match v {
                    "min" => CacheMode::Min,
                    "max" => CacheMode::Max,
                    _ => {
                        return Err(invalid(
                            FLAG,
                            spec,
                            format!("mode={v:?}: expected min or max"),
                        ));
                    }
                }
            }
            "ignore-error" => ignore_error = boolean(FLAG, spec, k, v)?,
            "compression" => match v {
                "gzip" => {}
                "zstd" | "estargz" | "uncompressed" => {
                    return Err(not_yet(FLAG, spec, &format!("compression={v}")));
                }
                _ => return Err(invalid(FLAG, spec, format!("unknown compression {v:?}"))),
            },
            // rbuild's artifact is always an OCI image manifest.
            "image-manifest" | "oci-mediatypes" => {
                if !boolean(FLAG, spec, k, v)? {
                    return Err(not_yet(FLAG, spec, &format!("{k}=false")));
                }
            }
            "cache-mounts" => cache_mounts = Some(boolean(FLAG, spec, k, v)?),
            "cache-mount-max-size" => {
                let size = crate::options::parse_size(v)
                    .map_err(|e| invalid(FLAG, spec, format!("{k}={v:?}: {e}")))?;
                max_size = u64::try_from(size)
                    .map_err(|_| invalid(FLAG, spec, format!("{k}={v:?}: negative")))?;
            }
            "compression-level" | "force-compression" | "tag" | "name" => {
                return Err(not_yet(FLAG, spec, k));
            }
            _ => return Err(invalid(FLAG, spec, format!("unknown field {k:?}"))),
        }
    }
    let location = match kind {
        Some("registry") => CacheLocation::Registry(
            reference_.ok_or_else(|| invalid(FLAG, spec, "type=registry needs ref=REF"))?,
        ),
        Some("local") => CacheLocation::Local(
            dest.ok_or_else(|| invalid(FLAG, spec, "type=local needs dest=DIR"))?,
        ),
        // BuildKit's inline cache holds the image's own layers only.
        Some("inline") if mode == CacheMode::Max => {
            return Err(invalid(FLAG, spec, "type=inline supports mode=min only"));
        }
        Some("inline") => CacheLocation::Inline,
        Some(t @ ("gha" | "s3" | "azblob")) => {
            return Err(not_yet(FLAG, spec, &format!("type={t}")));
        }
        Some(t) => return Err(invalid(FLAG, spec, format!("unknown type {t:?}"))),
        None => return Err(invalid(FLAG, spec, "missing type=")),
    };
    if cache_mounts == Some(true) && location == CacheLocation::Inline {
        return Err(invalid(FLAG, spec, "type=inline cannot hold cache mounts"));
    }
    Ok(CacheExport {
        cache_mounts: cache_mounts.unwrap_or(mode == CacheMode::Max),
        location,
        mode,
        ignore_error,
        cache_mount_max_size: max_size,
    })
}

/// Parse a `--cache-from` value (a bare `REF` is `type=registry,ref=REF`).
pub fn parse_cache_from(spec: &str) -> Result<CacheSource> {
    const FLAG: &str = "--cache-from";
    if !spec.contains('=') {
        return Ok(CacheSource {
            location: CacheLocation::Registry(reference(FLAG, spec, spec)?),
        });
    }
    let mut kind = None;
    let mut reference_ = None;
    let mut src = None;
    for (k, v) in fields(FLAG, spec)? {
        match k {
            "type" => kind = Some(v),
            "ref" => reference_ = Some(reference(FLAG, spec, v)?),
            "src" => src = Some(PathBuf::from(v)),
            "digest" | "tag" => return Err(not_yet(FLAG, spec, k)),
            _ => return Err(invalid(FLAG, spec, format!("unknown field {k:?}"))),
        }
    }
    let location = match kind {
        Some("registry") => CacheLocation::Registry(
            reference_.ok_or_else(|| invalid(FLAG, spec, "type=registry needs ref=REF"))?,
        ),
        Some("local") => CacheLocation::Local(
            src.ok_or_else(|| invalid(FLAG, spec, "type=local needs src=DIR"))?,
        ),
        Some("inline") => {
            return Err(invalid(
                FLAG,
                spec,
                "an inline cache is imported with type=registry,ref=IMAGE",
            ));
        }
        Some(t @ ("gha" | "s3" | "azblob")) => {
            return Err(not_yet(FLAG, spec, &format!("type={t}")));
        }
        Some(t) => return Err(invalid(FLAG, spec, format!("unknown type {t:?}"))),
        None => return Err(invalid(FLAG, spec, "missing type=")),
    };
    Ok(CacheSource { location })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_like_buildkit() {
        let e = parse_cache_to("type=registry,ref=localhost:5000/app:cache,mode=max").unwrap();
        assert_eq!(e.mode, CacheMode::Max);
        assert!(
            matches!(&e.location, CacheLocation::Registry(r) if r.to_string() == "localhost:5000/app:cache")
        );
        let e = parse_cache_to("type=local,dest=/tmp/c").unwrap();
        assert_eq!(e.mode, CacheMode::Min);
        assert_eq!(e.location, CacheLocation::Local("/tmp/c".into()));
        assert!(parse_cache_to("type=registry,ref=r/x,image-manifest=true,oci-mediatypes=true,compression=gzip,ignore-error=true").unwrap().ignore_error);
        assert!(
            !e.cache_mounts,
            "only mode=max exports cache mounts by default"
        );
        assert!(
            parse_cache_to("type=registry,ref=r/x,mode=max")
                .unwrap()
                .cache_mounts
        );
        let e =
            parse_cache_to("type=local,dest=d,cache-mounts=true,cache-mount-max-size=64m").unwrap();
        assert!(e.cache_mounts && e.mode == CacheMode::Min);
        assert_eq!(e.cache_mount_max_size, 64 << 20);
        let e = parse_cache_to("type=local,dest=d,mode=max,cache-mounts=false").unwrap();
        assert!(!e.cache_mounts);
        let f = parse_cache_from("localhost:5000/app:cache").unwrap();
        assert!(matches!(f.location, CacheLocation::Registry(_)));
        let f = parse_cache_from("type=local,src=/tmp/c").unwrap();
        assert_eq!(f.location, CacheLocation::Local("/tmp/c".into()));
    }

    #[test]
    fn what_is_not_done_is_refused_by_name() {
        for (spec, want) in [
            ("type=inline,mode=max", "type=inline supports mode=min only"),
            ("type=gha", "type=gha is not supported yet"),
            (
                "type=registry,ref=r/x,compression=zstd",
                "compression=zstd is not supported yet",
            ),
            (
                "type=registry,ref=r/x,cache-mount-max-size=lots",
                "cache-mount-max-size=\"lots\"",
            ),
            (
                "type=registry,ref=r/x,image-manifest=false",
                "image-manifest=false is not supported yet",
            ),
            ("type=registry,ref=r/x,mode=all", "expected min or max"),
            ("type=registry", "needs ref=REF"),
            ("type=local", "needs dest=DIR"),
            ("type=bogus,ref=x", "unknown type"),
            (
                "type=registry,ref=r/x,colour=blue",
                "unknown field \"colour\"",
            ),
        ] {
            let err = parse_cache_to(spec).unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
            assert!(err.contains(spec), "{spec}: the input is named: {err}");
        }
        assert!(
            parse_cache_from("type=inline")
                .unwrap_err()
                .to_string()
                .contains("type=registry,ref=IMAGE")
        );
        assert!(
            parse_cache_from("type=s3")
                .unwrap_err()
                .to_string()
                .contains("type=s3 is not supported yet")
        );
        assert_eq!(
            parse_cache_to("type=inline").unwrap().location,
            CacheLocation::Inline
        );
        assert!(parse_cache_from("type=local,dest=x").is_err());
        assert!(parse_cache_from("type=local").is_err());
    }
}
