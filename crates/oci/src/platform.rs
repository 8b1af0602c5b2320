//! The platform an image runs on: `os/arch[/variant]`.

use std::fmt;
use std::str::FromStr;

/// An `os/architecture[/variant]` triple, Go names (`linux/amd64`, `linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in Go's naming, e.g. `amd64`.
    pub architecture: String,
    /// Architecture variant, e.g. `v8`.
    pub variant: Option<String>,
}

/// A string that is not `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64")]
pub struct PlatformError(pub String);

impl Platform {
    /// The platform of the running machine.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    /// The platform as containerd's `platforms.Normalize` writes it, which BuildKit's
    /// `TARGETPLATFORM` and an index's entries use: Go architecture names (`x86_64` → `amd64`,
    /// `aarch64` → `arm64`, `armhf` → `arm` `v7`), arm64's default variant `v8` dropped, a bare
    /// `arm` given its default `v7`, variants written `vN`.
    pub fn normalize(mut self) -> Platform {
        self.os = self.os.to_ascii_lowercase();
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.take().map(|v| v.to_ascii_lowercase());
        let (arch, variant) = match arch.as_str() {
            "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), variant.filter(|v| v != "v1")),
            "i386" | "i686" | "386" => ("386".to_string(), None),
            "aarch64" | "arm64" => (
                "arm64".to_string(),
                variant.filter(|v| !matches!(v.as_str(), "8" | "v8" | "v8.0")),
            ),
            "armhf" => ("arm".to_string(), Some("v7".to_string())),
            "armel" => ("arm".to_string(), Some("v6".to_string())),
            "arm" => {
                let v = match variant.as_deref() {
                    None | Some("") | Some("7") | Some("v7") => "v7".to_string(),
                    Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => format!("v{v}"),
                    Some(v) => v.to_string(),
                };
                ("arm".to_string(), Some(v))
            }
            _ => (arch, variant),
        };
        self.architecture = arch;
        self.variant = variant.filter(|v| !v.is_empty());
        self
    }

    /// Parse a user's `--platform` value, normalized: `os/arch[/variant]`, or a bare
    /// architecture (`arm64`) for this machine's OS.
    pub fn parse_normalized(s: &str) -> Result<Platform, PlatformError> {
        let s = s.trim();
        let full = if !s.contains('/') && !s.is_empty() {
            format!("{}/{s}", std::env::consts::OS)
        } else {
            s.to_string()
        };
        full.parse::<Platform>()
            .map(Platform::normalize)
            .map_err(|_| PlatformError(s.to_string()))
    }

    /// Parse a `--platform a,b` list (several flags' values may be given), normalized, in
    /// order, duplicates dropped.
    pub fn parse_list<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Platform>, PlatformError> {
        let mut out: Vec<Platform> = Vec::new();
        for v in values {
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let p = Platform::parse_normalized(part)?;
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    /// Whether an image for `other` runs here: same os and arch, and same variant when both say.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(PlatformError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.matches(&"linux/arm64".parse().unwrap()));
        assert!(!p.matches(&"linux/amd64".parse().unwrap()));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//x".parse::<Platform>().is_err());
    }

    #[test]
    fn normalizes_as_containerd_does() {
        let n = |s: &str| Platform::parse_normalized(s).unwrap().to_string();
        assert_eq!(n("linux/arm64/v8"), "linux/arm64");
        assert_eq!(n("linux/aarch64"), "linux/arm64");
        assert_eq!(n("linux/x86_64"), "linux/amd64");
        assert_eq!(n("linux/arm"), "linux/arm/v7");
        assert_eq!(n("linux/arm/6"), "linux/arm/v6");
        assert_eq!(n("linux/armhf"), "linux/arm/v7");
        assert_eq!(n("arm64"), "linux/arm64");
        assert_eq!(n("linux/ppc64le"), "linux/ppc64le");
        assert!(Platform::parse_normalized("linux/").is_err());
    }

    #[test]
    fn lists_split_on_commas_and_repeat() {
        let l = Platform::parse_list(["linux/amd64,linux/arm64", "linux/arm64/v8", "linux/arm"])
            .unwrap();
        let s: Vec<String> = l.iter().map(|p| p.to_string()).collect();
        assert_eq!(s, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
        assert!(Platform::parse_list(["linux/amd64,bad/"]).is_err());
    }
}
