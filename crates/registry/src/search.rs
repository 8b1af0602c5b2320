//! Searching a registry's repositories, where the registry has a search API: Docker Hub's
//! v1 search (`GET /v1/search?q=TERM&n=LIMIT`, which Docker Hub and registries modelled on
//! it serve) and Harbor's (`GET /api/v2.0/search?q=TERM`). The Distribution registry has
//! neither; searching it is an error that says so.

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::Scope;
use crate::client::Registry;
use crate::error::{RegistryError, Result};
use crate::transport::{status_error, transport};

/// One repository found (docker's `registry.SearchResult`, its JSON field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The repository's name.
    pub name: String,
    /// Its short description.
    #[serde(default)]
    pub description: String,
    /// Stars given by users.
    #[serde(default)]
    pub star_count: u64,
    /// An official image.
    #[serde(default)]
    pub is_official: bool,
    /// Built automatically (deprecated on Docker Hub; kept for docker's output).
    #[serde(default)]
    pub is_automated: bool,
}

/// Docker Hub's v1 search page.
#[derive(Debug, Deserialize)]
struct HubPage {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// Harbor's search answer: repositories (and projects, not listed here).
#[derive(Debug, Deserialize)]
struct HarborPage {
    #[serde(default)]
    repository: Vec<HarborRepository>,
}

#[derive(Debug, Deserialize)]
struct HarborRepository {
    repository_name: String,
}

impl Registry {
    /// Repositories matching `term`, at most `limit` (Docker Hub's `n`, 1 to 100), through
    /// Docker Hub's v1 search API, else Harbor's; an error naming the registry when it has
    /// neither.
    pub async fn search(&self, term: &str, limit: usize) -> Result<Vec<SearchResult>> {
        // Docker Hub answers searches on its index, not on its registry endpoint.
        let base = if self.host == "docker.io" {
            "https://index.docker.io"
        } else {
            self.base.as_str()
        };
        let limit = limit.clamp(1, 100);
        let hub = reqwest::Url::parse_with_params(
            &format!("{base}/v1/search"),
            &[("q", term), ("n", &limit.to_string())],
        )
        .map_err(|e| RegistryError::Config(format!("search {term:?}: {e}")))?;
        if let Some(bytes) = self.search_get(hub.as_str()).await? {
            let page: HubPage =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                    registry: self.host.clone(),
                    detail: format!("GET {hub}: not Docker Hub's search answer: {e}"),
                })?;
            let mut results = page.results;
            results.truncate(limit);
            return Ok(results);
        }
        let harbor =
            reqwest::Url::parse_with_params(&format!("{base}/api/v2.0/search"), &[("q", term)])
                .map_err(|e| RegistryError::Config(format!("search {term:?}: {e}")))?;
        if let Some(bytes) = self.search_get(harbor.as_str()).await? {
            let page: HarborPage =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                    registry: self.host.clone(),
                    detail: format!("GET {harbor}: not Harbor's search answer: {e}"),
                })?;
            return Ok(page
                .repository
                .into_iter()
                .take(limit)
                .map(|r| SearchResult {
                    name: r.repository_name,
                    description: String::new(),
                    star_count: 0,
                    is_official: false,
                    is_automated: false,
                })
                .collect());
        }
        Err(RegistryError::Protocol {
            registry: self.host.clone(),
            detail: "the registry has no search API (neither Docker Hub's /v1/search nor Harbor's /api/v2.0/search answered)".into(),
        })
    }

    /// The body of a successful GET; `None` when the API is not there (404, 405, 501).
    async fn search_get(&self, url: &str) -> Result<Option<Vec<u8>>> {
        let resp = self
            .send(Method::GET, url, &Scope::none(), |r| {
                r.header(reqwest::header::ACCEPT, "application/json")
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => Ok(None),
            s if s.is_success() => Ok(Some(
                resp.bytes()
                    .await
                    .map_err(|e| transport("GET", url, e))?
                    .to_vec(),
            )),
            _ => Err(status_error("GET", url, resp).await),
        }
    }
}
