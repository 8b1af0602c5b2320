//! Image references, parsed and normalized exactly as Docker's `distribution/reference` does:
//! `alpine` → `docker.io/library/alpine:latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry Docker assumes when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker's namespace for official images (`alpine` → `library/alpine`).
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag assumed when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository name (domain and path) Docker accepts.
pub const NAME_MAX: usize = 255;

/// Why a string is not an image reference; each variant names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Empty input.
    #[error("invalid reference {0:?}: reference is empty")]
    Empty(String),
    /// Uppercase letters in the repository path.
    #[error("invalid reference {0:?}: repository name must be lowercase")]
    Uppercase(String),
    /// The name (domain and path) is longer than 255 characters.
    #[error(
        "invalid reference {reference:?}: repository name must not be more than {NAME_MAX} characters (has {len})"
    )]
    NameTooLong {
        /// The input.
        reference: String,
        /// The name's length.
        len: usize,
    },
    /// A path component breaks `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
    #[error(
        "invalid reference {reference:?}: path component {component:?} must be lowercase letters and digits separated by `.`, `_`, `__` or dashes"
    )]
    BadPathComponent {
        /// The input.
        reference: String,
        /// The offending component.
        component: String,
    },
    /// The registry host part is malformed.
    #[error("invalid reference {reference:?}: registry {domain:?} is not a valid host[:port]")]
    BadDomain {
        /// The input.
        reference: String,
        /// The offending domain.
        domain: String,
    },
    /// The tag breaks `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error(
        "invalid reference {reference:?}: tag {tag:?} must be 1 to 128 of letters, digits, `_`, `.`, `-`, not starting with `.` or `-`"
    )]
    BadTag {
        /// The input.
        reference: String,
        /// The offending tag.
        tag: String,
    },
    /// The digest after `@` is invalid.
    #[error("invalid reference {reference:?}: {source}")]
    BadDigest {
        /// The input.
        reference: String,
        /// What is wrong with the digest.
        source: DigestError,
    },
    /// The name is 64 hex characters, which Docker reserves for image IDs.
    #[error(
        "invalid reference {0:?}: cannot specify 64-byte hexadecimal strings as a repository name"
    )]
    HexName(String),
}

/// A normalized image reference: `domain/path[:tag][@digest]`.
///
/// Only made by parsing, so it is always valid and always normalized: the domain defaults to
/// `docker.io`, single-component Docker Hub paths get `library/`, and `latest` is added when
/// neither tag nor digest is given.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// The registry host, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/alpine`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`, e.g. `docker.io/library/alpine`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        format!("{}:{tag}", self.repository()).parse()
    }

    /// The same repository pinned to `digest`, without tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The repository as Docker shows it: `alpine`, `user/app`, `localhost:5000/a/b`.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.repository()
        }
    }

    /// The whole reference as Docker shows it: `alpine:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl TryFrom<&str> for Reference {
    type Error = ReferenceError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn parse(input: &str) -> Result<Reference, ReferenceError> {
    let err_input = || input.to_string();
    if input.is_empty() {
        return Err(ReferenceError::Empty(err_input()));
    }
    let (rest, digest) = match input.split_once('@') {
        Some((r, d)) => {
            let digest = d.parse().map_err(|source| ReferenceError::BadDigest {
                reference: err_input(),
                source,
            })?;
            (r, Some(digest))
        }
        None => (input, None),
    };
    // A tag is after the last ':' only when that ':' follows the last '/'.
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if name.is_empty() {
        return Err(ReferenceError::Empty(err_input()));
    }
    if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ReferenceError::HexName(err_input()));
    }
    let (domain, path) = split_domain(name);
    if path.to_lowercase() != path {
        return Err(ReferenceError::Uppercase(err_input()));
    }
    if !valid_domain(&domain) {
        return Err(ReferenceError::BadDomain {
            reference: err_input(),
            domain,
        });
    }
    for component in path.split('/') {
        if !valid_path_component(component) {
            return Err(ReferenceError::BadPathComponent {
                reference: err_input(),
                component: component.to_string(),
            });
        }
    }
    let full_len = domain.len() + 1 + path.len();
    if full_len > NAME_MAX {
        return Err(ReferenceError::NameTooLong {
            reference: err_input(),
            len: full_len,
        });
    }
    if let Some(t) = tag
        && !valid_tag(t)
    {
        return Err(ReferenceError::BadTag {
            reference: err_input(),
            tag: t.to_string(),
        });
    }
    let tag = match (tag, &digest) {
        (Some(t), _) => Some(t.to_string()),
        (None, None) => Some(DEFAULT_TAG.to_string()),
        (None, Some(_)) => None,
    };
    Ok(Reference {
        domain,
        path,
        tag,
        digest,
    })
}

/// Docker's `splitDockerDomain`: the first component is a registry only if it looks like a host.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == "index.docker.io" {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_REPO_PREFIX}{path}");
    }
    (domain, path)
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // IPv6 literal: [hex:...]
        match rest.split_once(']') {
            Some((ip, after)) => {
                if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match after {
                    "" => return true,
                    p => match p.strip_prefix(':') {
                        Some(port) => ("", Some(port)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if domain.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("index.docker.io/alpine:3"),
            "docker.io/library/alpine:3"
        );
        assert_eq!(norm("localhost:5000/a/b:tag"), "localhost:5000/a/b:tag");
        assert_eq!(norm("localhost/a"), "localhost/a:latest");
        assert_eq!(
            norm(&format!("reg.example.com/x@{D}")),
            format!("reg.example.com/x@{D}")
        );
        assert_eq!(
            norm(&format!("name:tag@{D}")),
            format!("docker.io/library/name:tag@{D}")
        );
        assert_eq!(norm("[::1]:5000/a"), "[::1]:5000/a:latest");
        assert_eq!(
            norm("x/a__b.c-d---e/f_g:V1.0-x_y"),
            "docker.io/x/a__b.c-d---e/f_g:V1.0-x_y"
        );
    }

    #[test]
    fn familiar_forms_drop_defaults() {
        let r: Reference = "alpine".parse().unwrap();
        assert_eq!(r.familiar(), "alpine:latest");
        let r: Reference = "docker.io/user/app:1".parse().unwrap();
        assert_eq!(r.familiar_repository(), "user/app");
        let r: Reference = "localhost:5000/a".parse().unwrap();
        assert_eq!(r.familiar_repository(), "localhost:5000/a");
    }

    #[test]
    fn rejects_each_rule_with_its_variant() {
        use ReferenceError as E;
        let e = |s: &str| s.parse::<Reference>().unwrap_err();
        assert!(matches!(e(""), E::Empty(_)));
        assert!(matches!(e("Alpine"), E::Uppercase(_)));
        assert!(matches!(e("docker.io/User/app"), E::Uppercase(_)));
        assert!(matches!(e("alpine:-x"), E::BadTag { .. }));
        assert!(matches!(e("alpine:a+b"), E::BadTag { .. }));
        assert!(matches!(
            e(&format!("alpine:{}", "a".repeat(129))),
            E::BadTag { .. }
        ));
        assert!(matches!(e(&"a".repeat(256)), E::NameTooLong { .. }));
        assert!(matches!(e("alpine@sha256:123"), E::BadDigest { .. }));
        assert!(matches!(e("a/-b"), E::BadPathComponent { .. }));
        assert!(matches!(e("a//b"), E::BadPathComponent { .. }));
        assert!(matches!(e("a...b"), E::BadPathComponent { .. }));
        assert!(matches!(e("bad_host.com:x/a"), E::BadDomain { .. }));
        assert!(matches!(e(&"f".repeat(64)), E::HexName(_)));
        // The message names the rule.
        assert!(e("Alpine").to_string().contains("must be lowercase"));
    }

    #[test]
    fn accepts_the_longest_allowed_name_and_tag() {
        let name = format!("docker.io/u/{}", "a".repeat(NAME_MAX - 12));
        assert!(name.parse::<Reference>().is_ok());
        let name = format!("docker.io/u/{}", "a".repeat(NAME_MAX - 11));
        assert!(name.parse::<Reference>().is_err());
        let name = format!("docker.io/u/{}", "a".repeat(NAME_MAX - 12));
        assert!(name.parse::<Reference>().is_ok());
        assert!(
            format!("alpine:{}", "a".repeat(128))
                .parse::<Reference>()
                .is_ok()
        );
    }

    proptest::proptest! {
        /// Any string: an error or a reference, never a panic; a parsed reference re-parses to
        /// itself (normalization is idempotent), and so does its familiar form.
        #[test]
        fn parsing_never_panics_and_normalization_is_idempotent(s in "[a-zA-Z0-9._:/@-]{0,80}") {
            if let Ok(r) = s.parse::<Reference>() {
                let again: Reference = r.to_string().parse().unwrap();
                proptest::prop_assert_eq!(&again, &r);
                let familiar: Reference = r.familiar().parse().unwrap();
                proptest::prop_assert_eq!(&familiar, &r);
            }
        }
    }
}
