//! Uploading blobs: cross-repository mount, monolithic POST + PUT for small blobs, streamed or
//! chunked PATCHes for large ones, resumed from the offset the registry reports after a failure.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Body, Method, Response, StatusCode};

use rbuild_oci::Digest;

use crate::auth::Scope;
use crate::blobs::BlobSource;
use crate::client::Registry;
use crate::error::{RegistryError, Result};
use crate::progress::Reporter;
use crate::retry::Attempts;
use crate::transport::status_error;

/// Bytes read from a source per body chunk.
const READ_CHUNK: usize = 1 << 20;

impl Registry {
    /// Ask the registry to mount `digest` from repository `from` into `repository`.
    /// `true` when mounted; `false` when the registry started a normal upload instead.
    pub async fn mount_blob(&self, repository: &str, digest: &Digest, from: &str) -> Result<bool> {
        let url = self.url(&format!(
            "{repository}/blobs/uploads/?mount={digest}&from={from}"
        ));
        let scope = Scope::push(repository).and_pull(from);
        let resp = self
            .send(Method::POST, &url, &scope, |r| r.header(CONTENT_LENGTH, 0))
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // Not mountable: drop the upload session the registry opened instead.
                if let Some(loc) = location(&resp) {
                    let loc = self.absolute(&loc);
                    let _ = self
                        .send(Method::DELETE, &loc, &Scope::push(repository), |r| r)
                        .await;
                }
                Ok(false)
            }
            _ => Err(status_error("POST", &url, resp).await),
        }
    }

    /// Open an upload session; returns its absolute location.
    async fn start_upload(&self, repository: &str) -> Result<String> {
        let url = self.url(&format!("{repository}/blobs/uploads/"));
        let resp = self
            .send(Method::POST, &url, &Scope::push(repository), |r| {
                r.header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error("POST", &url, resp).await);
        }
        let loc = location(&resp)
            .ok_or_else(|| self.protocol(format!("POST {url}: 202 without Location")))?;
        Ok(self.absolute(&loc))
    }

    /// Upload `data` (a small blob) in one PUT after the POST.
    pub async fn upload_bytes(&self, repository: &str, digest: &Digest, data: Bytes) -> Result<()> {
        let loc = self.start_upload(repository).await?;
        let url = with_digest(&loc, digest);
        let resp = self
            .send(Method::PUT, &url, &Scope::push(repository), |r| {
                r.header(CONTENT_TYPE, "application/octet-stream")
                    .body(data.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error("PUT", &loc, resp).await);
        }
        Ok(())
    }

    /// Upload a blob of `size` bytes read from `source`: one request for small blobs, else
    /// PATCHes (one streamed, or `chunk_size` each) resumed from the registry's offset after
    /// a failure (or started over when the registry lost the session), then the closing PUT.
    /// Gives up after `retries` failures in a row that got the registry's offset no further
    /// than before.
    pub async fn upload_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        source: Arc<dyn BlobSource>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<()> {
        let what = format!("blob {digest}");
        if size <= self.options().monolithic_max {
            let src = Arc::clone(&source);
            let d = digest.clone();
            let data = tokio::task::spawn_blocking(move || src.read(&d))
                .await
                .map_err(|e| RegistryError::Config(format!("reader task failed: {e}")))?
                .map_err(|source| RegistryError::Local {
                    what: format!("reading {what}"),
                    source,
                })?;
            if data.len() as u64 != size {
                return Err(RegistryError::SizeMismatch {
                    what: format!("local {what}"),
                    expected: size,
                    actual: data.len() as u64,
                });
            }
            self.upload_bytes(repository, digest, Bytes::from(data))
                .await?;
            reporter.on_progress(digest, size);
            return Ok(());
        }
        let scope = Scope::push(repository);
        let mut loc = self.start_upload(repository).await?;
        let mut offset = 0u64;
        let mut attempts = Attempts::new(self.options());
        while offset < size {
            let end = match self.options().chunk_size {
                Some(c) => (offset + c.max(1)).min(size),
                None => size,
            };
            let body = reader_body(
                Arc::clone(&source),
                digest.clone(),
                offset,
                end - offset,
                Arc::clone(&reporter),
            );
            let req = self
                .http()
                .patch(&loc)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, end - offset)
                .header(CONTENT_RANGE, format!("{offset}-{}", end - 1))
                .body(body);
            let result = match self.send_once(&scope, req).await {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => Ok(resp),
                Ok(resp) => Err(status_error("PATCH", &loc, resp).await),
                Err(e) => Err(e),
            };
            match result {
                Ok(resp) => {
                    if let Some(l) = location(&resp) {
                        loc = self.absolute(&l);
                    }
                    offset = range_end(&resp).map_or(end, |e| e + 1);
                    attempts.advanced(offset);
                }
                Err(err) if err.is_transient() => {
                    let message = crate::error::one_line(&err);
                    let to = format!("blob {digest} to {}/{repository}", self.host());
                    tokio::time::sleep(attempts.failed(&to, offset, err)?).await;
                    match self.upload_status(repository, &loc).await {
                        Ok((l, Some(o))) => {
                            reporter.on_retry(digest, &format!("{message}; resuming at byte {o}"));
                            loc = l;
                            offset = o;
                        }
                        // `0-0`: nothing or one byte held; starting over costs no more.
                        Ok((_, None)) => {
                            reporter.on_retry(digest, &format!("{message}; restarting the blob"));
                            loc = self.start_upload(repository).await?;
                            offset = 0;
                        }
                        // Distribution invalidates a session whose PATCH broke off (its state
                        // token no longer matches what it stored): start a new one. Not
                        // progress: `attempts` waits for the blob to pass its furthest offset.
                        Err(status) if !status.is_transient() => {
                            reporter.on_retry(
                                digest,
                                &format!("{message}; upload session lost, restarting the blob"),
                            );
                            loc = self.start_upload(repository).await?;
                            offset = 0;
                        }
                        Err(status) => return Err(status),
                    }
                }
                Err(err) => return Err(err),
            }
        }
        let url = with_digest(&loc, digest);
        let resp = self
            .send(Method::PUT, &url, &scope, |r| r.header(CONTENT_LENGTH, 0))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error("PUT", &loc, resp).await);
        }
        Ok(())
    }

    /// Upload a blob whose bytes arrive as a stream (registry → registry copy): POST, then
    /// one PUT carrying the stream. Not resumable; the caller retries the whole blob.
    pub(crate) async fn upload_stream(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        body: Body,
    ) -> Result<()> {
        let loc = self.start_upload(repository).await?;
        let url = with_digest(&loc, digest);
        let req = self
            .http()
            .put(&url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(body);
        let resp = self.send_once(&Scope::push(repository), req).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error("PUT", &loc, resp).await);
        }
        Ok(())
    }

    /// `GET` an upload session: its current location and the next byte it expects (`None`
    /// when the registry's `Range` leaves that open).
    async fn upload_status(&self, repository: &str, loc: &str) -> Result<(String, Option<u64>)> {
        let resp = self
            .send(Method::GET, loc, &Scope::push(repository), |r| r)
            .await?;
        if resp.status() != StatusCode::NO_CONTENT {
            return Err(status_error("GET", loc, resp).await);
        }
        let next = next_offset(resp.headers().get(RANGE).and_then(|v| v.to_str().ok()));
        let loc = location(&resp).map_or_else(|| loc.to_string(), |l| self.absolute(&l));
        Ok((loc, next))
    }
}

fn location(resp: &Response) -> Option<String> {
    resp.headers()
        .get(LOCATION)?
        .to_str()
        .ok()
        .map(str::to_string)
}

/// The last byte the registry holds after a PATCH, from `Range: 0-N`.
fn range_end(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(RANGE)?.to_str().ok()?;
    let v = v.trim().trim_start_matches("bytes=");
    v.split_once('-')?.1.parse().ok()
}

/// The next byte an upload session expects, from its `Range: 0-N` (N the last byte held;
/// none or `0--1`: nothing held). `None` for `0-0`, which Distribution sends both when it holds
/// nothing and when it holds one byte.
fn next_offset(range: Option<&str>) -> Option<u64> {
    let Some(v) = range else { return Some(0) };
    let v = v.trim().trim_start_matches("bytes=");
    match v.split_once('-').map(|(_, end)| end.parse::<u64>()) {
        Some(Ok(0)) => None,
        Some(Ok(end)) => Some(end + 1),
        _ => Some(0),
    }
}

fn with_digest(loc: &str, digest: &Digest) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={digest}")
}

/// A request body reading `len` bytes at `offset` of a blob on a blocking thread.
fn reader_body(
    source: Arc<dyn BlobSource>,
    digest: Digest,
    offset: u64,
    len: u64,
    reporter: Arc<dyn Reporter>,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let mut reader = match source.open(&digest, offset) {
            Ok(r) => r.take(len),
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut done = offset;
        loop {
            let mut buf = vec![0u8; READ_CHUNK];
            match read_full(&mut reader, &mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    done += n as u64;
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                    reporter.on_progress(&digest, done);
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::wrap_stream(stream.boxed())
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_offsets_from_range() {
        assert_eq!(next_offset(Some("0-1048575")), Some(1 << 20));
        assert_eq!(next_offset(Some("bytes=0-9")), Some(10));
        assert_eq!(next_offset(Some("0-0")), None, "nothing or one byte");
        assert_eq!(next_offset(Some("0--1")), Some(0));
        assert_eq!(next_offset(None), Some(0));
    }

    #[test]
    fn digest_is_appended_to_the_location() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            with_digest("http://r/u?_state=x", &d),
            format!("http://r/u?_state=x&digest={d}")
        );
        assert_eq!(
            with_digest("http://r/u", &d),
            format!("http://r/u?digest={d}")
        );
    }
}
