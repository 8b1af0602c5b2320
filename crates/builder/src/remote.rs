//! `ADD` of an http(s) URL, with BuildKit's rules: the file is named after the last segment
//! of the URL's path (`__unnamed__` when there is none; `Content-Disposition` is not used by
//! the Dockerfile frontend), its mode is 0600 unless `--chmod`, its mtime is the response's
//! `Last-Modified` (the epoch when absent), `--checksum` is verified before anything is
//! written to the destination, and it is never extracted even when it is an archive.
//!
//! Downloads are blocking (reqwest's blocking client, which runs its own small runtime): call
//! [`fetch`] from a plain thread, never from inside an async runtime's worker.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use rbuild_oci::{Algorithm, Digest, Hasher};

use crate::config::days_from_civil;
use crate::error::BuildError;

/// The name BuildKit gives a downloaded file when the URL's path has no last segment.
pub const UNNAMED: &str = "__unnamed__";

/// How to download an `ADD` URL.
#[derive(Default)]
pub struct FetchOptions<'a> {
    /// `--checksum`: the download fails unless its content has this digest.
    pub checksum: Option<Digest>,
    /// `--chown` as numeric ids; otherwise the file belongs to the caller (root: 0:0).
    pub owner: Option<(u32, u32)>,
    /// `--chmod` bits; otherwise 0600, as docker writes downloads.
    pub chmod: Option<u32>,
    /// Called as the body arrives with (bytes so far, `Content-Length` if known).
    pub progress: Option<&'a (dyn Fn(u64, Option<u64>) + Sync)>,
}

impl std::fmt::Debug for FetchOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("checksum", &self.checksum)
            .field("owner", &self.owner)
            .field("chmod", &self.chmod)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// What was downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// sha256 of the content (what BuildKit keys the download's cache on).
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// The response's `Last-Modified`, in seconds since the epoch, when it parses.
    pub last_modified: Option<i64>,
    /// The response's `ETag`, for a later conditional request.
    pub etag: Option<String>,
    /// The file name docker gives it ([`file_name`]).
    pub filename: String,
}

/// Whether an `ADD` source is a URL to download (BuildKit: an `http://` or `https://` prefix;
/// any other string is a context path).
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The file name an `ADD` of `url` writes when its destination is a directory: the last
/// segment of the URL's path, percent-decoded (Go's `path.Base(url.Path)`, trailing slashes
/// ignored), or [`UNNAMED`] when the path has none or the URL does not parse.
pub fn file_name(url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return UNNAMED.to_string();
    };
    let path = percent_decode(parsed.path());
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return UNNAMED.to_string();
    }
    let base = trimmed.rsplit('/').next().unwrap_or(trimmed);
    if base.is_empty() || base == "." {
        UNNAMED.to_string()
    } else {
        base.to_string()
    }
}

/// Download `url` to `dest_file` (its parent directory is created when missing). The body is
/// written to a temporary file beside it and renamed into place only once complete and
/// verified against `--checksum`, so a failed download leaves nothing behind.
pub fn fetch(
    url: &str,
    opts: &FetchOptions<'_>,
    dest_file: &Path,
) -> Result<RemoteFile, BuildError> {
    let failed = |problem: String| BuildError::Download {
        url: url.to_string(),
        problem,
    };
    // rustls takes its cryptography from the process-wide provider (ring, as the registry
    // client installs it); whoever builds a client first installs it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder()
        .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // Per wait (the headers, then each read of the body): a stalled server, not a slow one.
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| failed(error_chain(&e)))?;
    let mut response = client
        .get(url)
        .send()
        .map_err(|e| failed(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(BuildError::HttpStatus {
            url: url.to_string(),
            status: status.to_string(),
        });
    }
    let header = |name: reqwest::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let last_modified = header(reqwest::header::LAST_MODIFIED).and_then(|v| parse_http_date(&v));
    let etag = header(reqwest::header::ETAG);
    let expected_len = response.content_length();

    let dir = dest_file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".rbuild-download-")
        .tempfile_in(dir)
        .map_err(|e| BuildError::io(dir, e))?;
    let mut sha256 = Hasher::new(Algorithm::Sha256);
    let mut verify = opts
        .checksum
        .as_ref()
        .filter(|c| c.algorithm() != Algorithm::Sha256)
        .map(|c| Hasher::new(c.algorithm()));
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(failed(format!(
                    "reading the response body: {}",
                    error_chain(&e)
                )));
            }
        };
        sha256.update(&buf[..n]);
        if let Some(h) = verify.as_mut() {
            h.update(&buf[..n]);
        }
        tmp.write_all(&buf[..n])
            .map_err(|e| BuildError::io(tmp.path(), e))?;
        size += n as u64;
        if let Some(progress) = opts.progress {
            progress(size, expected_len);
        }
    }
    if let Some(expected) = expected_len.filter(|&len| len != size) {
        return Err(failed(format!(
            "the response body has {size} bytes, Content-Length said {expected}"
        )));
    }
    let digest = sha256.finish();
    if let Some(expected) = &opts.checksum {
        let actual = verify.map_or_else(|| digest.clone(), Hasher::finish);
        if &actual != expected {
            return Err(BuildError::ChecksumMismatch {
                url: url.to_string(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| BuildError::io(tmp.path(), e))?;
    finish_metadata(tmp.path(), opts, last_modified.unwrap_or(0))?;
    tmp.persist(dest_file)
        .map_err(|e| BuildError::io(dest_file, e.error))?;
    Ok(RemoteFile {
        digest,
        size,
        last_modified,
        etag,
        filename: file_name(url),
    })
}

/// Mode, owner and mtime as docker leaves a downloaded file.
fn finish_metadata(path: &Path, opts: &FetchOptions<'_>, mtime: i64) -> Result<(), BuildError> {
    if let Some((uid, gid)) = opts.owner {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| BuildError::io(path, e))?;
    }
    let mode = opts.chmod.unwrap_or(0o600);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| BuildError::io(path, e))?;
    let t = TimeSpec::new(mtime, 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|errno| BuildError::io(path, std::io::Error::from(errno)))
}

/// An error and its causes on one line (reqwest's own Display hides the cause: "error
/// sending request" says nothing of a refused connection).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// `%XX` sequences decoded (invalid ones kept), as Go's `url.Path` holds the path.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Seconds since the epoch of an HTTP date in any of the three forms RFC 9110 §5.6.7 accepts
/// (as Go's `http.ParseTime`): IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850
/// `Sunday, 06-Nov-94 08:49:37 GMT`, asctime `Sun Nov  6 08:49:37 1994`.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let (_weekday, rest) = s.split_once([',', ' '])?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (day, month, year, time) = match fields.as_slice() {
        // IMF-fixdate: `, 06 Nov 1994 08:49:37 GMT`
        [d, m, y, t, "GMT"] if s.contains(',') => (*d, *m, *y, *t),
        // RFC 850: `, 06-Nov-94 08:49:37 GMT`
        [dmy, t, "GMT"] if s.contains(',') => {
            let mut it = dmy.split('-');
            let (d, m, y) = (it.next()?, it.next()?, it.next()?);
            let y: i64 = y.parse().ok()?;
            // RFC 9110: a two-digit year more than 50 years in the future is in the past
            // century; Go reads 69–99 as 19xx and 00–68 as 20xx. Follow Go.
            let y = if y < 69 {
                2000 + y
            } else if y < 100 {
                1900 + y
            } else {
                y
            };
            return finish(d, m, y, t);
        }
        // asctime: ` Nov  6 08:49:37 1994`
        [m, d, t, y] if !s.contains(',') => (*d, *m, *y, *t),
        _ => return None,
    };
    finish(day, month, year.parse().ok()?, time)
}

fn finish(day: &str, month: &str, year: i64, time: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some()
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..=60).contains(&sec)
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests;
