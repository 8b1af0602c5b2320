//! Fetching blobs: HEAD for existence, GET streamed through digest and size verification into a
//! [`BlobWriter`], following redirects, retrying transient failures and resuming with `Range`
//! for as long as the retries get the blob further (the rule is in `retry`).

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::{Method, Response, StatusCode};

use rbuild_oci::{Digest, Hasher};

use crate::auth::Scope;
use crate::blobs::BlobWriter;
use crate::client::Registry;
use crate::error::{RegistryError, Result};
use crate::progress::Reporter;
use crate::retry::Attempts;
use crate::transport::{status_error, transport};

impl Registry {
    /// HEAD a blob: its size when present, `None` when absent.
    pub async fn blob_size(&self, repository: &str, digest: &Digest) -> Result<Option<u64>> {
        let url = self.url(&format!("{repository}/blobs/{digest}"));
        let resp = self
            .send(Method::HEAD, &url, &Scope::pull(repository), |r| r)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(0),
            )),
            _ => Err(status_error("HEAD", &url, resp).await),
        }
    }

    /// GET a blob, starting at `offset`: the response (200 or 206), redirects followed.
    pub(crate) async fn blob_response(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<Response> {
        let url = self.url(&format!("{repository}/blobs/{digest}"));
        let resp = self
            .send(Method::GET, &url, &Scope::pull(repository), |r| {
                if offset > 0 {
                    r.header(RANGE, format!("bytes={offset}-"))
                } else {
                    r
                }
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Err(self.not_found(repository, format!("blob {digest}"))),
            s if s.is_success() => Ok(resp),
            _ => Err(status_error("GET", &url, resp).await),
        }
    }

    /// A small blob (a config) in memory, verified; at most `max` bytes.
    pub async fn blob_bytes(&self, repository: &str, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        let mut sink = VecWriter(Vec::new());
        let what = format!("blob {digest} from {}/{repository}", self.host());
        let check = Check {
            size: None,
            max,
            hash: true,
        };
        self.stream_blob(repository, digest, check, &mut sink, &what, &crate::Silent)
            .await?;
        Ok(sink.0)
    }

    /// Fetch blob `digest` of `size` bytes into `writer`, verifying size and digest (the digest
    /// left to the writer when `writer_verifies`), and commit it. On any failure the writer is
    /// dropped uncommitted, so nothing of the blob stays.
    pub async fn fetch_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        mut writer: Box<dyn BlobWriter>,
        writer_verifies: bool,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        let what = format!("blob {digest} from {}/{repository}", self.host());
        let check = Check {
            size: Some(size),
            max: size,
            hash: !writer_verifies,
        };
        self.stream_blob(repository, digest, check, writer.as_mut(), &what, reporter)
            .await?;
        // Committing may fsync a large file: off the async workers, so other transfers go on.
        let committed = tokio::task::spawn_blocking(move || writer.commit())
            .await
            .map_err(|e| RegistryError::Local {
                what: format!("storing {what}"),
                source: std::io::Error::other(e.to_string()),
            })?;
        committed.map_err(|source| RegistryError::Local {
            what: format!("storing {what}"),
            source,
        })
    }

    async fn stream_blob(
        &self,
        repository: &str,
        digest: &Digest,
        check: Check,
        writer: &mut dyn BlobWriter,
        what: &str,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        let Check { size, max, hash } = check;
        let mut hasher = hash.then(|| Hasher::new(digest.algorithm()));
        let mut written: u64 = 0;
        let mut attempts = Attempts::new(self.options());
        loop {
            let resp = self.blob_response(repository, digest, written).await?;
            // A server that ignores Range sends everything again: skip what we have.
            let mut skip = if written > 0 && resp.status() == StatusCode::OK {
                written
            } else {
                0
            };
            if written > 0 && resp.status() == StatusCode::PARTIAL_CONTENT {
                let start = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(range_start);
                if start != Some(written) {
                    return Err(self.protocol(format!(
                        "{what}: asked to resume at byte {written}, got Content-Range {start:?}"
                    )));
                }
            }
            let mut resp = resp;
            let url = resp.url().to_string();
            let failure = loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        let mut data = &chunk[..];
                        if skip > 0 {
                            let n = (skip as usize).min(data.len());
                            data = &data[n..];
                            skip -= n as u64;
                        }
                        if data.is_empty() {
                            continue;
                        }
                        written += data.len() as u64;
                        if written > max {
                            return Err(RegistryError::SizeMismatch {
                                what: what.to_string(),
                                expected: max,
                                actual: written,
                            });
                        }
                        if let Some(h) = hasher.as_mut() {
                            h.update(data);
                        }
                        writer.write(data).map_err(|source| RegistryError::Local {
                            what: format!("storing {what}"),
                            source,
                        })?;
                        reporter.on_progress(digest, written);
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(transport("GET", &url, e)),
                }
            };
            match failure {
                None => break,
                Some(err) => {
                    let message = crate::error::one_line(&err);
                    let wait = attempts.failed(what, written, err)?;
                    reporter.on_retry(digest, &format!("{message}; resuming at byte {written}"));
                    tokio::time::sleep(wait).await;
                }
            }
        }
        if let Some(size) = size
            && written != size
        {
            return Err(RegistryError::SizeMismatch {
                what: what.to_string(),
                expected: size,
                actual: written,
            });
        }
        let Some(hasher) = hasher else {
            return Ok(());
        };
        let actual = hasher.finish();
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: what.to_string(),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// What to check while streaming a blob.
struct Check {
    /// The exact size expected, if known.
    size: Option<u64>,
    /// Refuse more than this many bytes.
    max: u64,
    /// Hash and compare with the digest (off when the writer does it).
    hash: bool,
}

/// The first byte of `bytes START-END/TOTAL`.
fn range_start(v: &str) -> Option<u64> {
    let v = v.trim().strip_prefix("bytes")?.trim_start();
    v.split('-').next()?.trim().parse().ok()
}

struct VecWriter(Vec<u8>);

impl BlobWriter for VecWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }
    fn commit(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes=5-"), None);
        assert_eq!(range_start("items 1-2"), None);
    }
}
