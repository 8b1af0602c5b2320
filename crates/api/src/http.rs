//! The HTTP side of a call: the request taken apart (method, path segments with the API
//! version stripped, query), bounded bodies, and docker's responses (JSON, `{"message"}`
//! errors, streams fed from a channel).

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use rbuild_engine::EngineError;
use serde::Serialize;
use tokio::sync::mpsc;

/// The oldest API version served (docker's own minimum for its current clients' fallbacks).
pub const MIN_API_VERSION: &str = "1.24";
/// The API version served: dockerd 20.10's, which the docker 28 CLI, docker-py and
/// docker-compose 1.29 all speak.
pub const API_VERSION: &str = "1.41";

/// The largest JSON request body (a container's create options, a build's arguments).
pub const MAX_JSON_BODY: usize = 4 << 20;

/// A response body: whole or streamed.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// An answer to a call.
pub type Reply = Response<Body>;

/// What went wrong, as docker answers it: a status and `{"message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Docker's message.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: a bad parameter.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 501: a part of the API rbuild does not serve yet.
    pub fn not_supported(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not supported yet by rbuild's Engine API service"),
        )
    }

    /// The error as docker's JSON reply.
    pub fn reply(&self) -> Reply {
        json_status(self.status, &serde_json::json!({ "message": self.message }))
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let status = status_of(&e);
        ApiError::new(status, rbuild_engine::build::chain_text(&e))
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> ApiError {
        ApiError::bad(format!("invalid JSON: {e}"))
    }
}

/// Docker's status for an engine error: the kind of the outermost error that has one.
fn status_of(e: &EngineError) -> StatusCode {
    use rbuild_runner::lifecycle::ContainerError;
    if e.is_not_found() {
        return StatusCode::NOT_FOUND;
    }
    match e {
        EngineError::Conflict(_) => StatusCode::CONFLICT,
        EngineError::InvalidParameter(_)
        | EngineError::Reference(_)
        | EngineError::Platform(_)
        | EngineError::Digest(_)
        | EngineError::Parse(_) => StatusCode::BAD_REQUEST,
        EngineError::Context { source, .. } => status_of(source),
        EngineError::Hinted(h) => status_of(&h.error),
        EngineError::Runner(rbuild_runner::Error::Container(c)) => match c {
            ContainerError::Ambiguous(..) | ContainerError::InvalidName(_) => {
                StatusCode::BAD_REQUEST
            }
            ContainerError::NameInUse { .. }
            | ContainerError::NotRunning(_)
            | ContainerError::VolumeInUse { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<rbuild_runner::Error> for ApiError {
    fn from(e: rbuild_runner::Error) -> ApiError {
        EngineError::from(e).into()
    }
}

/// A call's result.
pub type ApiResult<T = Reply> = Result<T, ApiError>;

/// A request taken apart.
pub struct Call {
    /// The method.
    pub method: Method,
    /// The path's segments, percent-decoded, without the `/vX.Y` prefix.
    pub segments: Vec<String>,
    /// The API version the client asked for (`None`: unversioned path).
    pub version: Option<String>,
    /// The query's pairs, in order.
    pub query: Vec<(String, String)>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request body, until taken (shared with the dispatcher, which drains a body no
    /// handler read, so the client's write of it does not fail).
    pub body: UnreadBody,
    /// The request without its body (its extensions hold the connection's upgrade).
    pub request: hyper::Request<()>,
}

/// Split `path` into segments, the version prefix taken off. An error for a version this
/// service does not speak (too old).
pub fn split_path(path: &str) -> ApiResult<(Option<String>, Vec<String>)> {
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let mut version = None;
    if let Some(first) = segments.first()
        && let Some(v) = first.strip_prefix('v')
        && v.split_once('.')
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
    {
        if version_less(v, MIN_API_VERSION) {
            return Err(ApiError::bad(format!(
                "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            )));
        }
        version = Some(v.to_owned());
        segments.remove(0);
    }
    Ok((version, segments))
}

/// Whether API version `a` is older than `b` (`1.9` < `1.24`).
pub fn version_less(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> (u32, u32) {
        let (x, y) = v.split_once('.').unwrap_or((v, "0"));
        (x.parse().unwrap_or(0), y.parse().unwrap_or(0))
    };
    parse(a) < parse(b)
}

/// `%XX` decoded (bytes that are not UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(h) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Call {
    /// The first value of query parameter `key`.
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of query parameter `key`.
    pub fn q_all(&self, key: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean parameter as docker reads them (`1`, `true`, `True`; absent or empty: false).
    pub fn flag(&self, key: &str) -> bool {
        self.q(key)
            .is_some_and(|v| !matches!(v, "" | "0" | "false" | "False" | "FALSE"))
    }

    /// An integer parameter; a 400 naming it if it is not one.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.q(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }

    /// Docker's `filters` parameter (`{"key":["v"]}` or the old `{"key":{"v":true}}`) as
    /// `(key, value)` pairs.
    pub fn filters(&self) -> ApiResult<Vec<(String, String)>> {
        parse_filters(self.q("filters").unwrap_or(""))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The request body, once.
    pub fn take_body(&mut self) -> ApiResult<Incoming> {
        self.body
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| ApiError::bad("the request body was already read"))
    }
}

/// A request body until a handler takes it.
#[derive(Clone)]
pub struct UnreadBody(std::sync::Arc<std::sync::Mutex<Option<Incoming>>>);

impl UnreadBody {
    /// `body`, not read yet.
    pub fn new(body: Incoming) -> UnreadBody {
        UnreadBody(std::sync::Arc::new(std::sync::Mutex::new(Some(body))))
    }

    /// Read and drop what no handler read (at most 1 MiB, for at most a second): a client
    /// still sending its body then gets the answer instead of a broken pipe.
    pub async fn drain(&self) {
        let body = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(body) = body {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                Limited::new(body, 1 << 20).collect(),
            )
            .await;
        }
    }
}

/// Docker's `filters` JSON as `(key, value)` pairs.
pub fn parse_filters(text: &str) -> ApiResult<Vec<(String, String)>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad(format!("invalid filter {text:?}: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad(format!("invalid filter {text:?}: not an object")))?;
    let mut out = Vec::new();
    for (k, vals) in obj {
        match vals {
            serde_json::Value::Array(a) => {
                for x in a {
                    let s = x.as_str().ok_or_else(|| {
                        ApiError::bad(format!("invalid filter {k:?}: values must be strings"))
                    })?;
                    out.push((k.clone(), s.to_owned()));
                }
            }
            serde_json::Value::Object(m) => {
                for (x, on) in m {
                    if on.as_bool() == Some(true) {
                        out.push((k.clone(), x.clone()));
                    }
                }
            }
            _ => return Err(ApiError::bad(format!("invalid filter {k:?}"))),
        }
    }
    Ok(out)
}

/// Read `body` whole, at most `limit` bytes.
pub async fn read_body(body: Incoming, limit: usize) -> ApiResult<Bytes> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        )),
        Err(e) => Err(ApiError::bad(format!("reading the request body: {e}"))),
    }
}

/// Decode a JSON body (empty: `T::default()`), at most [`MAX_JSON_BODY`] bytes.
pub async fn json_body<T: serde::de::DeserializeOwned + Default>(body: Incoming) -> ApiResult<T> {
    let bytes = read_body(body, MAX_JSON_BODY).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

/// Stream `body` into a new temporary file (uploads: build contexts, image archives, `cp`
/// archives), at most `limit` bytes.
pub async fn body_to_file(mut body: Incoming, limit: u64) -> ApiResult<tempfile::NamedTempFile> {
    let mut file = tempfile::NamedTempFile::new()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body larger than {limit} bytes"),
                ));
            }
            file.write_all(&data)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        }
    }
    file.flush()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(file)
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// `value` as JSON with `status`.
pub fn json_status(status: StatusCode, value: &impl Serialize) -> Reply {
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `value` as JSON, 200.
pub fn json(value: &impl Serialize) -> Reply {
    json_status(StatusCode::OK, value)
}

/// An empty answer with `status` (204 for most actions).
pub fn empty(status: StatusCode) -> Reply {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A streamed body fed through a channel: what a sender sends goes out as it comes; the
/// body ends when every sender is dropped.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A streamed reply of `content_type` and the sender feeding it.
pub fn stream(content_type: &'static str) -> (mpsc::Sender<Bytes>, Reply) {
    let (tx, rx) = mpsc::channel(64);
    let mut r = Response::new(ChannelBody(rx).boxed_unsync());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    (tx, r)
}

/// One JSON message of a progress stream (`{"status":...}` lines), newline-terminated.
pub fn json_line(value: &impl Serialize) -> Bytes {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_and_unversioned_paths() {
        let (v, s) = split_path("/v1.41/containers/abc/json").unwrap();
        assert_eq!(v.as_deref(), Some("1.41"));
        assert_eq!(s, ["containers", "abc", "json"]);
        let (v, s) = split_path("/_ping").unwrap();
        assert_eq!(v, None);
        assert_eq!(s, ["_ping"]);
        let (_, s) = split_path("/images/localhost%3A5000%2Fa%2Fb:1/json").unwrap();
        assert_eq!(s, ["images", "localhost:5000/a/b:1", "json"]);
        assert!(split_path("/v1.12/info").is_err());
        assert!(version_less("1.9", "1.24"));
        assert!(!version_less("1.41", "1.24"));
    }

    #[test]
    fn filters_in_both_forms() {
        assert_eq!(
            parse_filters(r#"{"status":["running","exited"]}"#).unwrap(),
            [
                ("status".to_owned(), "running".to_owned()),
                ("status".to_owned(), "exited".to_owned())
            ]
        );
        assert_eq!(
            parse_filters(r#"{"label":{"a=b":true}}"#).unwrap(),
            [("label".to_owned(), "a=b".to_owned())]
        );
        assert!(parse_filters("[1]").is_err());
        assert!(parse_filters("{").is_err());
    }
}
