//! The connection side: one [`Client`] with its options, one [`Registry`] per host holding the
//! connection pool, scheme (HTTPS, or HTTP where allowed), extra CA certificates, auth
//! challenge and tokens. Sending (authorization, retries, token refresh) is in `transport`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::auth::{Challenge, Credential, Scope, TokenCache};
use crate::error::{RegistryError, Result};
use crate::transport::{challenge_of, is_transient_status, retry_after, status_error, transport};

/// Where credentials come from (docker's `config.json`, a helper, a test).
pub trait CredentialProvider: Send + Sync {
    /// The credential for `registry` (a host as in references, e.g. `docker.io`), if any.
    fn credential(&self, registry: &str) -> Result<Option<Credential>>;
}

/// No credentials at all: anonymous access only.
#[derive(Debug, Default, Clone, Copy)]
pub struct Anonymous;

impl CredentialProvider for Anonymous {
    fn credential(&self, _: &str) -> Result<Option<Credential>> {
        Ok(None)
    }
}

/// Fixed credentials for one registry (tests, `rbuild login` checking a password).
#[derive(Debug, Clone)]
pub struct StaticCredential {
    /// Registry host the credential is for.
    pub registry: String,
    /// The credential.
    pub credential: Credential,
}

impl CredentialProvider for StaticCredential {
    fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        Ok((registry == self.registry).then(|| self.credential.clone()))
    }
}

/// How a [`Client`] behaves.
#[derive(Clone)]
pub struct ClientOptions {
    /// Hosts (`host[:port]`) that may be reached over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Directories holding `HOST/*.crt` extra CA certificates (default `/etc/rbuild/certs.d`).
    pub cert_dirs: Vec<PathBuf>,
    /// A directory whose `*.crt` CA certificates are trusted for every host (`--cert-dir`).
    pub cert_dir: Option<PathBuf>,
    /// Where credentials come from.
    pub credentials: Arc<dyn CredentialProvider>,
    /// Retries of a transient failure before giving up. A blob download or chunked upload
    /// counts only retries without progress: an attempt that got the blob further than any
    /// before it (more bytes received, a higher offset held by the registry) resets the count,
    /// so a line that drops every few megabytes still finishes. Starting an upload over is not
    /// progress.
    pub retries: u32,
    /// First backoff delay; doubled on each retry without progress, capped at 10 s.
    pub backoff: Duration,
    /// No blob transfer retries once it has run this long (measured from its start, checked
    /// at each failure; a transfer that does not fail is never cut off). `None`, the default:
    /// no time bound, as each retry either got the blob further or counts towards `retries`,
    /// and a stalled read ends at the read timeout; a long pull on a slow link that drops
    /// now and then should not fail only because it is long.
    pub retry_deadline: Option<Duration>,
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Blobs up to this size are uploaded in one request after the POST.
    pub monolithic_max: u64,
    /// Size of each PATCH of a chunked upload; `None` streams the whole blob in one PATCH.
    pub chunk_size: Option<u64>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("insecure_registries", &self.insecure_registries)
            .field("cert_dirs", &self.cert_dirs)
            .field("cert_dir", &self.cert_dir)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("retry_deadline", &self.retry_deadline)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            cert_dirs: vec![PathBuf::from("/etc/rbuild/certs.d")],
            cert_dir: None,
            credentials: Arc::new(Anonymous),
            retries: 5,
            backoff: Duration::from_millis(200),
            retry_deadline: None,
            concurrency: 4,
            monolithic_max: 4 << 20,
            chunk_size: None,
        }
    }
}

/// A registry client: hands out one [`Registry`] per host, pinged and authenticated once.
pub struct Client {
    opts: Arc<ClientOptions>,
    registries: Mutex<HashMap<String, Arc<Registry>>>,
    http: SharedHttp,
}

/// The HTTP client for hosts without extra certificates, made on first use.
#[derive(Default)]
struct SharedHttp(std::sync::OnceLock<reqwest::Client>);

impl SharedHttp {
    fn get(&self) -> Result<reqwest::Client> {
        if let Some(c) = self.0.get() {
            return Ok(c.clone());
        }
        let c = http_client(&[])?;
        Ok(self.0.get_or_init(|| c).clone())
    }
}

impl Client {
    /// A client with `opts`.
    pub fn new(opts: ClientOptions) -> Client {
        Client {
            opts: Arc::new(opts),
            registries: Mutex::new(HashMap::new()),
            http: SharedHttp::default(),
        }
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The registry `host` (as in references: `docker.io`, `localhost:5000`), connected.
    pub async fn registry(&self, host: &str) -> Result<Arc<Registry>> {
        if let Some(r) = self.lock().get(host) {
            return Ok(Arc::clone(r));
        }
        let reg = Arc::new(Registry::connect(host, Arc::clone(&self.opts), &self.http).await?);
        self.lock().insert(host.to_string(), Arc::clone(&reg));
        Ok(reg)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Registry>>> {
        self.registries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether `host[:port]` is loopback (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback(host: &str) -> bool {
    let name = strip_port(host);
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The HTTP endpoint of a registry named in a reference (`docker.io` is served elsewhere).
fn endpoint(host: &str) -> &str {
    if host == "docker.io" {
        "registry-1.docker.io"
    } else {
        host
    }
}

/// One registry host: connection pool, base URL, credential, challenge and tokens.
pub struct Registry {
    pub(crate) host: String,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) opts: Arc<ClientOptions>,
    pub(crate) credential: Option<Credential>,
    pub(crate) challenge: Mutex<Option<Challenge>>,
    pub(crate) tokens: TokenCache,
    /// Held while fetching a token, so concurrent transfers share one request.
    pub(crate) token_fetch: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Registry {
    async fn connect(
        host: &str,
        opts: Arc<ClientOptions>,
        shared: &SharedHttp,
    ) -> Result<Registry> {
        // One client (one connection pool) serves every host without extra certificates.
        let certs = extra_certs(host, &opts);
        let http = if certs.is_empty() {
            shared.get()?
        } else {
            http_client(&certs)?
        };
        let credential = opts.credentials.credential(host)?;
        let plain_ok = is_loopback(host) || opts.insecure_registries.iter().any(|h| h == host);
        let mut reg = Registry {
            host: host.to_string(),
            base: format!("https://{}", endpoint(host)),
            http,
            opts,
            credential,
            challenge: Mutex::new(None),
            tokens: TokenCache::default(),
            token_fetch: tokio::sync::Mutex::new(()),
        };
        match reg.ping().await {
            Err(https_error @ RegistryError::Transport { .. }) if plain_ok => {
                reg.base = format!("http://{}", endpoint(host));
                if reg.ping().await.is_err() {
                    // Neither spoke: the HTTPS failure (often a certificate) is the useful one.
                    return Err(https_error);
                }
            }
            other => other?,
        }
        Ok(reg)
    }

    /// `GET /v2/`: learn whether and how the registry wants authentication. A 5xx or 429 is
    /// retried; a connection failure is not (the caller may try plain HTTP next).
    async fn ping(&self) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let mut attempt = 0;
        let resp = loop {
            let resp = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| transport("GET", &url, e))?;
            if !is_transient_status(resp.status()) || attempt >= self.opts.retries {
                break resp;
            }
            let wait = self.backoff(attempt, retry_after(resp.headers()));
            tokio::time::sleep(wait).await;
            attempt += 1;
        };
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                let challenge =
                    challenge_of(resp.headers()).ok_or_else(|| RegistryError::Protocol {
                        registry: self.host.clone(),
                        detail: "401 without a usable WWW-Authenticate challenge".into(),
                    })?;
                *self.challenge.lock().unwrap_or_else(|e| e.into_inner()) = Some(challenge);
                Ok(())
            }
            _ => Err(status_error("GET", &url, resp).await),
        }
    }

    /// The host as named in references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `scheme://endpoint`, e.g. `http://127.0.0.1:5000`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The client options.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// Whether a credential is configured for this registry.
    pub fn has_credential(&self) -> bool {
        self.credential.is_some()
    }

    /// The underlying HTTP client (for requests outside the API, e.g. following redirects).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `base/v2/<path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}", self.base, path)
    }

    /// A `Location` header made absolute against the registry.
    pub(crate) fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{}", self.base, location)
        } else {
            format!("{}/{}", self.base, location)
        }
    }

    /// Check that the configured credential is accepted for `scope` (used by `login`).
    pub async fn check_login(&self, scope: &Scope) -> Result<()> {
        let challenge = self.current_challenge();
        if challenge.is_none() {
            return Ok(());
        }
        if self.credential.is_none() {
            return Err(RegistryError::Unauthorized {
                registry: self.host.clone(),
                detail: ": no credentials given".into(),
            });
        }
        let resp = self.send(Method::GET, &self.url(""), scope, |r| r).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(status_error("GET", &self.url(""), resp).await)
        }
    }
}

/// The extra CA certificates (PEM files) that apply to `host`.
fn extra_certs(host: &str, opts: &ClientOptions) -> Vec<PathBuf> {
    let dirs = opts
        .cert_dirs
        .iter()
        .map(|d| d.join(host))
        .chain(opts.cert_dir.clone());
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "crt"))
            .collect();
        found.sort();
        out.extend(found);
    }
    out
}

/// An HTTP client trusting the system roots plus `certs` (read on the first HTTPS handshake:
/// see [`crate::tls`]).
fn http_client(certs: &[PathBuf]) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(32)
        .use_preconfigured_tls(crate::tls::client_config(certs)?)
        .build()
        .map_err(|e| RegistryError::Config(format!("cannot set up HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:80",
            "127.3.4.5",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn docker_hub_endpoint() {
        assert_eq!(endpoint("docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint("ghcr.io"), "ghcr.io");
    }
}
