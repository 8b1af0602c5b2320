//! Sending requests: authorization from the registry's challenge (Basic, or Bearer tokens
//! fetched per scope and cached), retries with backoff on connection errors, 5xx and 429
//! (`Retry-After`), one token refresh on 401, and distribution-spec error bodies.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::auth::{Challenge, Credential, Scope, TokenResponse, parse_challenge};
use crate::client::Registry;
use crate::error::{RegistryError, Result};

impl Registry {
    pub(crate) fn current_challenge(&self) -> Option<Challenge> {
        self.challenge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The `Authorization` value for `scope`, fetching a token when needed.
    pub(crate) async fn authorization(&self, scope: &Scope, fresh: bool) -> Result<Option<String>> {
        match self.current_challenge() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credential.as_ref().map(Credential::basic_header)),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scope.key();
                if !fresh && let Some(t) = self.tokens.get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let _fetching = self.token_fetch.lock().await;
                if !fresh && let Some(t) = self.tokens.get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self.fetch_token(&realm, service.as_deref(), scope).await?;
                self.tokens.insert(&key, token.0.clone(), token.1);
                Ok(Some(format!("Bearer {}", token.0)))
            }
        }
    }

    /// Ask the token endpoint for a token; returns the token and its lifetime in seconds.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<(String, u64)> {
        let mut url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            registry: self.host.clone(),
            detail: format!("token realm {realm:?} is not a URL: {e}"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scope.items() {
                q.append_pair("scope", s);
            }
            // Docker names the account it authenticates as; some token services want it.
            if let Some(c) = self.credential.as_ref().filter(|c| !c.username.is_empty()) {
                q.append_pair("account", &c.username);
            }
        }
        let shown = realm.to_string();
        let mut last = None;
        for attempt in 0..=self.opts.retries {
            let mut req = self.http.get(url.clone());
            if let Some(c) = &self.credential {
                req = req.header(AUTHORIZATION, c.basic_header());
            }
            match req.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    return Err(RegistryError::Unauthorized {
                        registry: self.host.clone(),
                        detail: if self.credential.is_some() {
                            ": the token service rejected the username or password".into()
                        } else {
                            ": the token service requires credentials (none configured)".into()
                        },
                    });
                }
                Ok(resp) if resp.status().is_success() => {
                    let body: TokenResponse =
                        resp.json().await.map_err(|e| transport("GET", &shown, e))?;
                    let token = body.token.or(body.access_token).ok_or_else(|| {
                        RegistryError::Protocol {
                            registry: self.host.clone(),
                            detail: "token response has neither token nor access_token".into(),
                        }
                    })?;
                    return Ok((token, body.expires_in.unwrap_or(60)));
                }
                Ok(resp) => {
                    let err = status_error("GET", &shown, resp).await;
                    if !err.is_transient() || attempt == self.opts.retries {
                        return Err(err);
                    }
                    last = Some(err);
                }
                Err(e) => {
                    let err = transport("GET", &shown, e);
                    if !err.is_transient() || attempt == self.opts.retries {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
            tokio::time::sleep(self.backoff(attempt, None)).await;
        }
        Err(last.unwrap_or_else(|| RegistryError::Config("no attempts made".into())))
    }

    pub(crate) fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = exponential_backoff(self.opts.backoff, attempt);
        retry_after.map_or(exp, |r| r.min(Duration::from_secs(60)))
    }

    /// Send a request built by `build` (called again for each attempt), authorized for `scope`.
    /// Retries transport failures, 5xx and 429; on 401 refreshes the challenge and token once.
    /// Any other status is returned for the caller to judge.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        scope: &Scope,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let mut refreshed = false;
        let mut fresh = false;
        let mut attempt = 0;
        loop {
            let auth = self
                .authorization(scope, std::mem::take(&mut fresh))
                .await?;
            let mut req = build(self.http.request(method.clone(), url));
            if let Some(a) = auth {
                req = req.header(AUTHORIZATION, a);
            }
            let (err, retry_after) = match req.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    if !refreshed && let Some(c) = challenge_of(resp.headers()) {
                        refreshed = true;
                        fresh = true;
                        self.tokens.remove(&scope.key());
                        *self.challenge.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
                        if self.credential.is_some()
                            || matches!(self.current_challenge(), Some(Challenge::Bearer { .. }))
                        {
                            continue;
                        }
                    }
                    return Err(self.unauthorized(resp).await);
                }
                Ok(resp) if is_transient_status(resp.status()) => {
                    let ra = retry_after(resp.headers());
                    (status_error(method.as_str(), url, resp).await, ra)
                }
                Ok(resp) => return Ok(resp),
                Err(e) => (transport(method.as_str(), url, e), None),
            };
            if !err.is_transient() || attempt >= self.opts.retries {
                return Err(err);
            }
            tokio::time::sleep(self.backoff(attempt, retry_after)).await;
            attempt += 1;
        }
    }

    /// Send once, without retries (streamed bodies that cannot be rebuilt); still authorized.
    pub(crate) async fn send_once(&self, scope: &Scope, req: RequestBuilder) -> Result<Response> {
        let auth = self.authorization(scope, false).await?;
        let req = match auth {
            Some(a) => req.header(AUTHORIZATION, a),
            None => req,
        };
        let built = req.build().map_err(|e| transport("?", "?", e))?;
        let (method, url) = (built.method().to_string(), built.url().to_string());
        let resp = self
            .http
            .execute(built)
            .await
            .map_err(|e| transport(&method, &url, e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.tokens.remove(&scope.key());
            return Err(self.unauthorized(resp).await);
        }
        Ok(resp)
    }

    pub(crate) async fn unauthorized(&self, resp: Response) -> RegistryError {
        let detail = spec_error_detail(resp).await;
        let why = if self.credential.is_some() {
            "credentials rejected"
        } else {
            "authentication required and no credentials configured (try `rbuild login`)"
        };
        RegistryError::Unauthorized {
            registry: self.host.clone(),
            detail: format!(": {why}{detail}"),
        }
    }
}

/// The wait before retry number `attempt` (from 0): `base` doubled each time, at most 10 s.
pub(crate) fn exponential_backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.min(16))
        .min(Duration::from_secs(10))
}

pub(crate) fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        .max_by_key(|c| matches!(c, Challenge::Bearer { .. }))
}

pub(crate) fn is_transient_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS
        || matches!(
            s,
            StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        )
}

pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A transport error, its URL shown without query (which may carry upload state).
pub(crate) fn transport(method: &str, url: &str, source: reqwest::Error) -> RegistryError {
    RegistryError::Transport {
        method: method.to_string(),
        url: url.split('?').next().unwrap_or(url).to_string(),
        source: source.without_url(),
    }
}

/// A status error with the distribution-spec error body, if any.
pub(crate) async fn status_error(method: &str, url: &str, resp: Response) -> RegistryError {
    let status = resp.status();
    let detail = spec_error_detail(resp).await;
    RegistryError::Status {
        method: method.to_string(),
        url: url.split('?').next().unwrap_or(url).to_string(),
        status,
        detail,
    }
}

/// `: CODE: message; CODE: message` from a `{"errors":[…]}` body, or empty.
async fn spec_error_detail(resp: Response) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let Ok(bytes) = resp.bytes().await else {
        return String::new();
    };
    match serde_json::from_slice::<Body>(&bytes) {
        Ok(b) if !b.errors.is_empty() => {
            let parts: Vec<String> = b
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect();
            format!(": {}", parts.join("; "))
        }
        _ => String::new(),
    }
}
