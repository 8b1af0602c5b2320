//! Authentication: `WWW-Authenticate` challenges (Basic, Bearer with realm/service/scope),
//! token requests and a per-scope token cache reused until expiry.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

/// A username and secret for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name (empty with an identity token).
    pub username: String,
    /// Password or token.
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({:?}, <redacted>)", self.username)
    }
}

impl Credential {
    /// The `Authorization: Basic …` header value.
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic with the registry itself.
    Basic,
    /// A bearer token from `realm` for `service`.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// The `service` parameter to pass on.
        service: Option<String>,
        /// The scope the registry said it needs, if it said.
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header value (`Bearer realm="…",service="…",scope="…"`).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `key="value", key=value` pairs; quoted values may contain commas and `\"`.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if chars.next().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// The answer of a token endpoint.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
}

/// Tokens per scope string for one registry.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, Token>>,
}

impl TokenCache {
    /// A still-valid token for `scope`, or for a scope granting at least as much
    /// (a `pull,push` token serves a `pull` request).
    pub fn get(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tokens
            .get(scope)
            .filter(|t| t.expires > now)
            .or_else(|| {
                tokens
                    .iter()
                    .find(|(k, t)| t.expires > now && covers(k, scope))
                    .map(|(_, t)| t)
            })
            .map(|t| t.value.clone())
    }

    /// Remember a token for `scope`, valid `expires_in` seconds (less a margin).
    pub fn insert(&self, scope: &str, value: String, expires_in: u64) {
        // Docker treats a missing or tiny expiry as 60 s; leave 10 s for clock skew and latency.
        let secs = expires_in.max(60).saturating_sub(10);
        let token = Token {
            value,
            expires: Instant::now() + Duration::from_secs(secs),
        };
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.to_string(), token);
    }

    /// Forget the token for `scope` (after a 401 with it).
    pub fn remove(&self, scope: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(scope);
    }
}

/// Whether the scopes of key `have` grant everything in key `want`.
fn covers(have: &str, want: &str) -> bool {
    let split = |item: &str| -> Option<(String, Vec<String>)> {
        let (resource, actions) = item.rsplit_once(':')?;
        Some((
            resource.to_string(),
            actions.split(',').map(str::to_string).collect(),
        ))
    };
    let have: Vec<_> = have.split(' ').filter_map(split).collect();
    want.split(' ').filter(|w| !w.is_empty()).all(|w| {
        split(w).is_some_and(|(res, acts)| {
            have.iter()
                .any(|(r, a)| *r == res && acts.iter().all(|x| a.contains(x)))
        })
    })
}

/// The access a request needs, as token scopes: `repository:NAME:pull,push`,
/// `registry:catalog:*`. Several are space-separated in one [`Scope`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(Vec<String>);

impl Scope {
    /// Pull access to `repository`.
    pub fn pull(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull")])
    }

    /// Pull and push access to `repository`.
    pub fn push(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull,push")])
    }

    /// Delete access to `repository` (Distribution wants `delete`; others `*`).
    pub fn delete(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:delete")])
    }

    /// Access to the catalog.
    pub fn catalog() -> Scope {
        Scope(vec!["registry:catalog:*".to_string()])
    }

    /// No particular access (the `/v2/` ping).
    pub fn none() -> Scope {
        Scope(Vec::new())
    }

    /// This scope plus pull access to `repository` (for cross-repository mounts).
    pub fn and_pull(mut self, repository: &str) -> Scope {
        let extra = format!("repository:{repository}:pull");
        if !self.0.contains(&extra) {
            self.0.push(extra);
        }
        self
    }

    /// The individual scope strings.
    pub fn items(&self) -> &[String] {
        &self.0
    }

    /// The cache key.
    pub(crate) fn key(&self) -> String {
        self.0.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn parses_unquoted_and_escaped_params() {
        let p = parse_params(r#"realm=http://x/t , service="a\"b", Scope="c,d""#);
        assert_eq!(p["realm"], "http://x/t");
        assert_eq!(p["service"], "a\"b");
        assert_eq!(p["scope"], "c,d");
    }

    #[test]
    fn credential_debug_hides_the_secret() {
        let c = Credential {
            username: "u".into(),
            secret: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header(), "Basic dTpodW50ZXIy");
    }

    #[test]
    fn broader_tokens_serve_narrower_scopes() {
        assert!(covers("repository:a:pull,push", "repository:a:pull"));
        assert!(covers(
            "repository:a:pull,push repository:b:pull",
            "repository:b:pull"
        ));
        assert!(!covers("repository:a:pull", "repository:a:pull,push"));
        assert!(!covers("repository:a:pull,push", "repository:ab:pull"));
        let cache = TokenCache::default();
        cache.insert("repository:a:pull,push", "t".into(), 300);
        assert_eq!(cache.get("repository:a:pull").as_deref(), Some("t"));
        assert_eq!(cache.get("repository:b:pull"), None);
    }

    #[test]
    fn tokens_expire_and_can_be_dropped() {
        let cache = TokenCache::default();
        cache.insert("s", "t".into(), 300);
        assert_eq!(cache.get("s").as_deref(), Some("t"));
        cache.remove("s");
        assert_eq!(cache.get("s"), None);
    }
}
