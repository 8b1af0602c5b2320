//! Listings: repository tags and the registry catalog (paginated with `Link` headers), and the
//! referrers of a manifest where the registry implements that API.

use reqwest::header::{ACCEPT, LINK};
use reqwest::{Method, StatusCode};

use rbuild_oci::Digest;

use crate::auth::Scope;
use crate::client::Registry;
use crate::error::Result;
use crate::transport::{status_error, transport};

/// Entries asked for per page.
const PAGE: usize = 1000;

impl Registry {
    /// Every tag of `repository`, in the registry's order, following pagination.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>> {
        self.tags_paged(repository, PAGE).await
    }

    /// Every tag of `repository`, asking for `page` per request.
    pub async fn tags_paged(&self, repository: &str, page: usize) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            tags: Option<Vec<String>>,
        }
        let first = self.url(&format!("{repository}/tags/list?n={page}"));
        let mut out = Vec::new();
        self.paginate(&first, &Scope::pull(repository), repository, |bytes| {
            let p: Page = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            out.extend(p.tags.unwrap_or_default());
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Every repository of the registry, following pagination.
    pub async fn catalog(&self) -> Result<Vec<String>> {
        self.catalog_paged(PAGE).await
    }

    /// Every repository of the registry, asking for `page` per request.
    pub async fn catalog_paged(&self, page: usize) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            repositories: Option<Vec<String>>,
        }
        let first = self.url(&format!("_catalog?n={page}"));
        let mut out = Vec::new();
        self.paginate(&first, &Scope::catalog(), "_catalog", |bytes| {
            let p: Page = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            out.extend(p.repositories.unwrap_or_default());
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// The referrers index of `digest` (OCI 1.1), or `None` when the registry lacks the API.
    pub async fn referrers(&self, repository: &str, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let url = self.url(&format!("{repository}/referrers/{digest}"));
        let resp = self
            .send(Method::GET, &url, &Scope::pull(repository), |r| {
                r.header(ACCEPT, "application/vnd.oci.image.index.v1+json")
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Ok(None),
            s if s.is_success() => Ok(Some(
                resp.bytes()
                    .await
                    .map_err(|e| transport("GET", &url, e))?
                    .to_vec(),
            )),
            _ => Err(status_error("GET", &url, resp).await),
        }
    }

    async fn paginate(
        &self,
        first: &str,
        scope: &Scope,
        repository: &str,
        mut page: impl FnMut(&[u8]) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let mut next = Some(first.to_string());
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 100_000 {
                return Err(self.protocol(format!("{url}: pagination does not end")));
            }
            let resp = self.send(Method::GET, &url, scope, |r| r).await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(self.not_found(repository, "repository".into()));
            }
            if !resp.status().is_success() {
                return Err(status_error("GET", &url, resp).await);
            }
            next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .map(|l| self.absolute(&l));
            let bytes = resp.bytes().await.map_err(|e| transport("GET", &url, e))?;
            page(&bytes).map_err(|e| self.protocol(format!("{url}: bad listing: {e}")))?;
        }
        Ok(())
    }
}

/// The target of `<URL>; rel="next"` in a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| url.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<http://x/prev>; rel="prev", <http://x/next>; rel="next""#).as_deref(),
            Some("http://x/next")
        );
        assert_eq!(next_link(r#"<http://x/prev>; rel="prev""#), None);
    }
}
