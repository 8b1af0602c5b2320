//! Which handler answers a request: docker's routes matched on the method and the path's
//! segments (image names, which hold slashes, are the segments between `images` and the
//! action).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};

use crate::http::{API_VERSION, ApiError, ApiResult, Call, Reply, split_path};
use crate::state::Service;
use crate::{containers, exec, images, networks, streams, system, volumes};

/// Answer one request. Never fails: errors become docker's JSON error replies.
pub async fn handle(service: Arc<Service>, request: hyper::Request<Incoming>) -> Reply {
    let mut reply = match call(request) {
        Ok(c) => {
            let body = c.body.clone();
            let reply = route(service, c).await.unwrap_or_else(|e| e.reply());
            // A body the handler did not read (an error answered before it) is drained,
            // unless the reply hands the connection over (an upgrade).
            if reply.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
                body.drain().await;
            }
            reply
        }
        Err(e) => e.reply(),
    };
    let h = reply.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("rbuild/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    reply
}

/// Take the request apart.
pub fn call(request: hyper::Request<Incoming>) -> ApiResult<Call> {
    let (parts, body) = request.into_parts();
    let (version, segments) = split_path(parts.uri.path())?;
    let query = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let headers = parts.headers.clone();
    Ok(Call {
        method: parts.method.clone(),
        segments,
        version,
        query,
        headers,
        body: crate::http::UnreadBody::new(body),
        request: hyper::Request::from_parts(parts, ()),
    })
}

async fn route(s: Arc<Service>, c: Call) -> ApiResult<Reply> {
    let segs: Vec<String> = c.segments.clone();
    let p: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = c.method.clone();
    use Method as M;
    match (&m, p.as_slice()) {
        (&M::GET | &M::HEAD, ["_ping"]) => system::ping(&c),
        (&M::GET, ["version"]) => system::version(&s).await,
        (&M::GET, ["info"]) => system::info(&s).await,
        (&M::GET, ["events"]) => system::events(&s, &c).await,
        (&M::GET, ["system", "df"]) => system::df(&s).await,
        (&M::POST, ["auth"]) => images::auth(&s, c).await,

        (&M::GET, ["containers", "json"]) => containers::list(&s, &c).await,
        (&M::POST, ["containers", "create"]) => containers::create(&s, c).await,
        (&M::POST, ["containers", "prune"]) => containers::prune(&s).await,
        (&M::GET, ["containers", id, "json"]) => containers::inspect(&s, id).await,
        (&M::POST, ["containers", id, "start"]) => containers::start(&s, id).await,
        (&M::POST, ["containers", id, "stop"]) => containers::stop(&s, &c, id, false).await,
        (&M::POST, ["containers", id, "restart"]) => containers::stop(&s, &c, id, true).await,
        (&M::POST, ["containers", id, "kill"]) => containers::kill(&s, &c, id).await,
        (&M::POST, ["containers", id, "pause"]) => containers::pause(&s, id, true).await,
        (&M::POST, ["containers", id, "unpause"]) => containers::pause(&s, id, false).await,
        (&M::POST, ["containers", id, "wait"]) => containers::wait(&s, &c, id).await,
        (&M::GET, ["containers", id, "top"]) => containers::top(&s, &c, id).await,
        (&M::POST, ["containers", id, "rename"]) => containers::rename(&s, &c, id).await,
        (&M::POST, ["containers", _, "resize"]) => Ok(crate::http::empty(StatusCode::OK)),
        (&M::GET, ["containers", id, "archive"]) => containers::archive_get(&s, &c, id).await,
        (&M::HEAD, ["containers", id, "archive"]) => containers::archive_head(&s, &c, id).await,
        (&M::PUT, ["containers", id, "archive"]) => containers::archive_put(&s, c, id).await,
        (&M::GET, ["containers", id, "export"]) => containers::export(&s, id).await,
        (&M::DELETE, ["containers", id]) => containers::remove(&s, &c, id).await,
        (&M::GET, ["containers", id, "logs"]) => streams::logs(&s, &c, id).await,
        (&M::POST, ["containers", id, "attach"]) => streams::attach(&s, c, id).await,
        (&M::POST, ["containers", id, "exec"]) => exec::create(&s, c, id).await,
        (&M::POST, ["exec", id, "start"]) => exec::start(&s, c, id).await,
        (&M::POST, ["exec", _, "resize"]) => Ok(crate::http::empty(StatusCode::OK)),
        (&M::GET, ["exec", id, "json"]) => exec::inspect(&s, id),
        (&M::POST, ["commit"]) => containers::commit(&s, &c).await,

        (&M::GET, ["images", "json"]) => images::list(&s, &c).await,
        (&M::POST, ["images", "create"]) => images::pull(&s, c).await,
        (&M::POST, ["images", "load"]) => images::load(&s, c).await,
        (&M::GET, ["images", "get"]) => images::save(&s, &c, c.q_all("names")).await,
        (&M::POST, ["images", "prune"]) => images::prune(&s).await,
        (&M::GET, ["images", "search"]) => images::search(&s, &c).await,
        (&M::POST, ["build"]) => images::build(&s, c).await,
        (&M::POST, ["session"] | ["grpc"]) => Err(ApiError::not_supported(
            "BuildKit (the /session and /grpc endpoints; build with DOCKER_BUILDKIT=0, the classic builder)",
        )),
        (&M::POST, ["build", "prune"]) => system::build_prune(&s, &c).await,
        (_, ["images", name @ .., action]) if !name.is_empty() => {
            let name = name.join("/");
            match (&m, *action) {
                (&M::GET, "json") => images::inspect(&s, &name).await,
                (&M::GET, "history") => images::history(&s, &name).await,
                (&M::POST, "tag") => images::tag(&s, &c, &name).await,
                (&M::POST, "push") => images::push(&s, c, &name).await,
                (&M::GET, "get") => images::save(&s, &c, vec![name]).await,
                (&M::DELETE, _) => images::remove(&s, &c, &format!("{name}/{action}")).await,
                _ => Err(no_route(&m, &p)),
            }
        }
        (&M::DELETE, ["images", name]) => images::remove(&s, &c, name).await,

        (&M::GET, ["volumes"]) => volumes::list(&s, &c).await,
        (&M::POST, ["volumes", "create"]) => volumes::create(&s, c).await,
        (&M::POST, ["volumes", "prune"]) => volumes::prune(&s, &c).await,
        (&M::GET, ["volumes", name]) => volumes::inspect(&s, name).await,
        (&M::DELETE, ["volumes", name]) => volumes::remove(&s, &c, name).await,

        (_, ["networks", ..]) => networks::handle(&s, c).await,

        _ => Err(no_route(&m, &p)),
    }
}

fn no_route(m: &Method, p: &[&str]) -> ApiError {
    ApiError::not_found(format!("page not found: {m} /{}", p.join("/")))
}
