//! `/images/...` and `/build`: list, inspect, history, tag, remove, prune, pull
//! (`/images/create`, progress as JSON messages), push (`X-Registry-Auth`), save (`get`),
//! load, and the classic build endpoint (a tar context upload, `{"stream"}` and
//! `{"aux":{"ID"}}` messages).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use hyper::StatusCode;
use rbuild_builder::build::{BuildOptions, NetworkMode};
use rbuild_builder::reporter::{StepInfo, StepOutcome};
use rbuild_engine::build::BaseImages;
use rbuild_engine::{ImageDeleted, ImageSummary};
use rbuild_oci::{Digest, Platform, Reference};
use rbuild_registry::{Client, ClientOptions, Credential, CredentialProvider, PullOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::containers::stream_file;
use crate::http::{ApiError, ApiResult, Call, body_to_file, json, json_line, stream};
use crate::state::{Service, blocking};

/// The largest upload of a build context or image archive.
const MAX_UPLOAD: u64 = 64 << 30;

/// An image of `/images/json`, in docker's `ImageSummary` shape.
pub fn summary_json(s: &ImageSummary) -> Value {
    let tags: Vec<String> = s
        .names
        .iter()
        .filter(|n| n.tag().is_some())
        .map(|n| n.familiar())
        .collect();
    let mut digests: Vec<String> = s
        .image
        .names
        .iter()
        .map(|n| n.with_digest(s.image.manifest_digest.clone()).familiar())
        .collect();
    digests.dedup();
    let labels = s
        .image
        .config_json()
        .pointer("/config/Labels")
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "Id": s.image.id.to_string(),
        "ParentId": "",
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": s.created,
        "Size": s.size,
        "VirtualSize": s.size,
        "SharedSize": -1,
        "Labels": labels,
        "Containers": -1,
    })
}

/// `GET /images/json?all&filters`: docker's `reference`, `dangling`, `label` (all must
/// match), `before` and `since` (an image's name or ID) filters (the engine's).
pub async fn list(s: &Arc<Service>, c: &Call) -> ApiResult {
    let filters = c.filters()?;
    let engine = s.engine.clone();
    let rows = blocking(move || Ok(engine.list_images_filtered(&filters)?)).await?;
    Ok(json(&rows.iter().map(summary_json).collect::<Vec<_>>()))
}

/// `GET /images/{name}/json`.
pub async fn inspect(s: &Arc<Service>, name: &str) -> ApiResult {
    let (engine, name) = (s.engine.clone(), name.to_owned());
    let v = blocking(move || {
        let i = engine
            .image_inspect(&name)
            .map_err(|e| no_such_image(&name, e))?;
        serde_json::to_value(&i).map_err(ApiError::from)
    })
    .await?;
    Ok(json(&v))
}

/// Docker's wording for a missing image (clients match on it).
fn no_such_image(name: &str, e: rbuild_engine::EngineError) -> ApiError {
    let a = ApiError::from(e);
    if a.status == StatusCode::NOT_FOUND {
        ApiError::not_found(format!("No such image: {name}"))
    } else {
        a
    }
}

/// `GET /images/{name}/history`.
pub async fn history(s: &Arc<Service>, name: &str) -> ApiResult {
    let (engine, name) = (s.engine.clone(), name.to_owned());
    let v = blocking(move || {
        let (img, steps) = engine.history(&name).map_err(|e| no_such_image(&name, e))?;
        let tags: Vec<String> = img.names.iter().map(|n| n.familiar()).collect();
        let n = steps.len();
        Ok(steps
            .iter()
            .enumerate()
            .map(|(i, h)| {
                json!({
                    "Id": if i == 0 { img.id.to_string() } else { "<missing>".to_owned() },
                    "Created": h.created.unwrap_or(0),
                    "CreatedBy": h.created_by,
                    "Tags": if i == 0 { tags.clone() } else { Vec::new() },
                    "Size": h.size,
                    "Comment": h.comment,
                })
            })
            .take(n)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(json(&v))
}

/// `POST /images/{name}/tag?repo=&tag=`.
pub async fn tag(s: &Arc<Service>, c: &Call, name: &str) -> ApiResult {
    let repo = c
        .q("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad("tag needs a repo"))?;
    let target = match c.q("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_owned(),
    };
    let target: Reference = target
        .parse()
        .map_err(|e| ApiError::bad(format!("invalid reference format {target:?}: {e}")))?;
    let (engine, name) = (s.engine.clone(), name.to_owned());
    blocking(move || {
        engine
            .tag(&name, &target)
            .map_err(|e| no_such_image(&name, e))
    })
    .await?;
    Ok(crate::http::empty(StatusCode::CREATED))
}

/// `DELETE /images/{name}?force&noprune`.
pub async fn remove(s: &Arc<Service>, c: &Call, name: &str) -> ApiResult {
    let force = c.flag("force");
    let (engine, name) = (s.engine.clone(), name.to_owned());
    let done = blocking(move || {
        engine
            .remove_image(&name, force)
            .map_err(|e| no_such_image(&name, e))
    })
    .await?;
    let v: Vec<Value> = done
        .iter()
        .map(|d| match d {
            ImageDeleted::Untagged(r) => json!({"Untagged": r.familiar()}),
            ImageDeleted::Deleted(d) => json!({"Deleted": d.to_string()}),
        })
        .collect();
    Ok(json(&v))
}

/// `POST /images/prune`.
pub async fn prune(s: &Arc<Service>) -> ApiResult {
    let engine = s.engine.clone();
    let p = blocking(move || Ok(engine.prune_images()?)).await?;
    let deleted: Vec<Value> = p
        .deleted
        .iter()
        .map(|d| json!({"Deleted": d.to_string()}))
        .collect();
    Ok(json(
        &json!({"ImagesDeleted": deleted, "SpaceReclaimed": p.reclaimed}),
    ))
}

/// The credential of an `X-Registry-Auth` header, for every registry.
struct HeaderAuth(Credential);

impl CredentialProvider for HeaderAuth {
    fn credential(&self, _: &str) -> rbuild_registry::Result<Option<Credential>> {
        Ok(Some(self.0.clone()))
    }
}

/// A registry client: the engine's settings, with the credential of `X-Registry-Auth`
/// (base64url JSON `{username, password}` or `{identitytoken}`) when the client sent one.
fn client_for(s: &Service, c: &Call) -> ApiResult<Client> {
    let settings = s.engine.registry();
    let auth = c.header("X-Registry-Auth").and_then(|h| {
        let h = h.trim();
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(h)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
            .ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        let user = v["username"].as_str().unwrap_or("").to_owned();
        let secret = v["password"]
            .as_str()
            .filter(|p| !p.is_empty())
            .or(v["identitytoken"].as_str())
            .unwrap_or("")
            .to_owned();
        (!user.is_empty() || !secret.is_empty()).then_some(Credential {
            username: user,
            secret,
        })
    });
    match auth {
        None => Ok(settings.client()?),
        Some(cred) => Ok(Client::new(ClientOptions {
            insecure_registries: settings.insecure_registries.clone(),
            cert_dir: settings.cert_dir.clone(),
            credentials: Arc::new(HeaderAuth(cred)),
            concurrency: settings.max_concurrent.max(1),
            ..ClientOptions::default()
        })),
    }
}

/// Transfer progress as docker's JSON messages (`{"status","progressDetail","id"}`).
struct JsonProgress {
    tx: mpsc::Sender<Bytes>,
    verb: &'static str,
    sizes: Mutex<BTreeMap<String, u64>>,
}

fn short(d: &Digest) -> String {
    d.to_string()
        .split_once(':')
        .map(|(_, h)| h[..12.min(h.len())].to_owned())
        .unwrap_or_default()
}

impl JsonProgress {
    fn send(&self, v: Value) {
        let _ = self.tx.try_send(json_line(&v));
    }
}

impl rbuild_registry::Reporter for JsonProgress {
    fn on_start(&self, digest: &Digest, size: u64) {
        if let Ok(mut m) = self.sizes.lock() {
            m.insert(digest.to_string(), size);
        }
        self.send(json!({"status": "Waiting", "progressDetail": {}, "id": short(digest)}));
    }

    fn on_progress(&self, digest: &Digest, done: u64) {
        let total = self
            .sizes
            .lock()
            .ok()
            .and_then(|m| m.get(&digest.to_string()).copied())
            .unwrap_or(0);
        self.send(json!({
            "status": self.verb,
            "progressDetail": {"current": done, "total": total},
            "id": short(digest),
        }));
    }

    fn on_done(&self, digest: &Digest, outcome: rbuild_registry::Outcome) {
        let status = match (self.verb, format!("{outcome:?}").as_str()) {
            (_, o) if o.contains("Exist") || o.contains("Skip") || o.contains("Mount") => {
                if self.verb == "Pushing" {
                    "Layer already exists"
                } else {
                    "Already exists"
                }
            }
            ("Pushing", _) => "Pushed",
            _ => "Pull complete",
        };
        self.send(json!({"status": status, "progressDetail": {}, "id": short(digest)}));
    }
}

/// `POST /images/create?fromImage=&tag=&platform=`: pull, streaming progress messages; an
/// error after the reply started goes out as `{"errorDetail","error"}`.
pub async fn pull(s: &Arc<Service>, c: Call) -> ApiResult {
    if c.q("fromSrc").is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::not_supported(
            "importing an image through /images/create (fromSrc)",
        ));
    }
    let from = c
        .q("fromImage")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::bad("fromImage is required"))?;
    let text = match c.q("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.contains(':') => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.to_owned(),
    };
    let reference: Reference = text
        .parse()
        .map_err(|e| ApiError::bad(format!("invalid reference format {text:?}: {e}")))?;
    let mut opts = PullOptions::default();
    if let Some(p) = c.q("platform").filter(|p| !p.is_empty()) {
        opts.platform = p
            .parse::<Platform>()
            .map_err(|e| ApiError::bad(format!("invalid platform {p:?}: {e}")))?;
    }
    let client = client_for(s, &c)?;
    let (tx, reply) = stream("application/json");
    let engine = s.engine.clone();
    tokio::spawn(async move {
        let tag = reference.tag().unwrap_or("latest").to_owned();
        let _ = tx
            .send(json_line(&json!({"status": format!("Pulling from {}", reference.familiar_repository()), "id": tag})))
            .await;
        let progress = Arc::new(JsonProgress {
            tx: tx.clone(),
            verb: "Downloading",
            sizes: Mutex::new(BTreeMap::new()),
        });
        let r = engine.pull(&client, &reference, &opts, progress).await;
        let msg = match r {
            Ok(d) => vec![
                json!({"status": format!("Digest: {d}")}),
                json!({"status": format!("Status: Downloaded newer image for {}", reference.familiar())}),
            ],
            Err(e) => {
                let t = rbuild_engine::build::chain_text(&e);
                vec![json!({"errorDetail": {"message": t}, "error": t})]
            }
        };
        for m in msg {
            let _ = tx.send(json_line(&m)).await;
        }
    });
    Ok(reply)
}

/// `POST /images/{name}/push?tag=`: push, streaming progress messages.
pub async fn push(s: &Arc<Service>, c: Call, name: &str) -> ApiResult {
    let text = match c.q("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_owned(),
    };
    let dest: Reference = text
        .parse()
        .map_err(|e| ApiError::bad(format!("invalid reference format {text:?}: {e}")))?;
    let client = client_for(s, &c)?;
    let (engine, t2) = (s.engine.clone(), text.clone());
    let image = blocking(move || {
        let store = engine.store()?;
        store.resolve(&t2).map_err(|e| no_such_image(&t2, e.into()))
    })
    .await?;
    let (tx, reply) = stream("application/json");
    let engine = s.engine.clone();
    tokio::spawn(async move {
        let _ = tx
            .send(json_line(&json!({"status": format!("The push refers to repository [{}]", dest.repository())})))
            .await;
        let progress = Arc::new(JsonProgress {
            tx: tx.clone(),
            verb: "Pushing",
            sizes: Mutex::new(BTreeMap::new()),
        });
        let r = engine.push(&client, &image, &dest, progress).await;
        let tag = dest.tag().unwrap_or("latest").to_owned();
        let msgs = match r {
            Ok(d) => {
                let size = engine
                    .store()
                    .ok()
                    .and_then(|s| s.blobs().path(&d).metadata().ok())
                    .map_or(0, |m| m.len());
                vec![
                    json!({"status": format!("{tag}: digest: {d} size: {size}")}),
                    json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": d.to_string(), "Size": size}}),
                ]
            }
            Err(e) => {
                let t = rbuild_engine::build::chain_text(&e);
                vec![json!({"errorDetail": {"message": t}, "error": t})]
            }
        };
        for m in msgs {
            let _ = tx.send(json_line(&m)).await;
        }
    });
    Ok(reply)
}

/// `GET /images/get?names=` and `/images/{name}/get`: a docker-archive of the images.
pub async fn save(s: &Arc<Service>, _c: &Call, names: Vec<String>) -> ApiResult {
    if names.is_empty() {
        return Err(ApiError::bad("no images named"));
    }
    let engine = s.engine.clone();
    let file = blocking(move || {
        let list = engine.images_to_save(&names)?;
        let tmp = tempfile::NamedTempFile::new().map_err(rbuild_engine::EngineError::from)?;
        let f = tmp.reopen().map_err(rbuild_engine::EngineError::from)?;
        engine.save(
            &list,
            rbuild_store::archive::ArchiveFormat::Docker,
            std::io::BufWriter::new(f),
        )?;
        Ok(tmp)
    })
    .await?;
    Ok(stream_file(file, "application/x-tar"))
}

/// `POST /images/load?quiet`: load a docker-archive or OCI archive from the body.
pub async fn load(s: &Arc<Service>, mut c: Call) -> ApiResult {
    let upload = body_to_file(c.take_body()?, MAX_UPLOAD).await?;
    let engine = s.engine.clone();
    let loaded = blocking(move || {
        let f = upload.reopen().map_err(rbuild_engine::EngineError::from)?;
        Ok(engine.load(rbuild_store::archive::LoadSource::Stream {
            reader: Box::new(std::io::BufReader::new(f)),
            name: "the uploaded archive".into(),
        })?)
    })
    .await?;
    let mut out = Vec::new();
    for l in &loaded {
        if l.names.is_empty() {
            out.extend(json_line(
                &json!({"stream": format!("Loaded image ID: {}\n", l.id)}),
            ));
        }
        for n in &l.names {
            out.extend(json_line(
                &json!({"stream": format!("Loaded image: {}\n", n.familiar())}),
            ));
        }
    }
    let mut r = crate::http::empty(StatusCode::OK);
    *r.body_mut() = crate::http::full(out);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// Build progress as the classic builder's `{"stream": ...}` messages.
struct StreamProgress {
    tx: mpsc::Sender<Bytes>,
}

impl StreamProgress {
    fn say(&self, text: String) {
        let _ = self.tx.blocking_send(json_line(&json!({ "stream": text })));
    }
}

impl rbuild_builder::reporter::Reporter for StreamProgress {
    fn step_started(&self, step: &StepInfo) {
        self.say(format!(
            "Step {}/{} : {}\n",
            step.index, step.total, step.text
        ));
    }

    fn step_output(&self, _: &StepInfo, chunk: &[u8]) {
        self.say(String::from_utf8_lossy(chunk).into_owned());
    }

    fn step_finished(&self, _: &StepInfo, outcome: &StepOutcome) {
        if let StepOutcome::Cached = outcome {
            self.say(" ---> Using cache\n".into());
        }
    }

    fn warning(&self, message: &str) {
        self.say(format!("[Warning] {message}\n"));
    }
}

/// `POST /build?t=&dockerfile=&buildargs=&target=&nocache=&labels=&networkmode=&pull=`: the
/// classic builder's endpoint. The body is the context as a tar (plain or compressed).
pub async fn build(s: &Arc<Service>, mut c: Call) -> ApiResult {
    if c.q("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::not_supported("building from a remote context"));
    }
    if c.q("version") == Some("2") {
        return Err(ApiError::not_supported(
            "BuildKit sessions (use DOCKER_BUILDKIT=0)",
        ));
    }
    let tags: Vec<Reference> = c
        .q_all("t")
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse()
                .map_err(|e| ApiError::bad(format!("invalid tag {t:?}: {e}")))
        })
        .collect::<ApiResult<_>>()?;
    let json_map = |k: &str| -> ApiResult<BTreeMap<String, String>> {
        match c.q(k).filter(|v| !v.is_empty()) {
            None => Ok(BTreeMap::new()),
            Some(v) => {
                let m: BTreeMap<String, Option<String>> = serde_json::from_str(v)
                    .map_err(|e| ApiError::bad(format!("invalid {k}: {e}")))?;
                Ok(m.into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect())
            }
        }
    };
    let build_args = json_map("buildargs")?;
    let labels: Vec<(String, String)> = json_map("labels")?.into_iter().collect();
    let network = match c.q("networkmode").unwrap_or("") {
        "" | "default" | "host" | "bridge" => NetworkMode::Host,
        "none" => NetworkMode::None,
        m => {
            return Err(ApiError::bad(format!(
                "networkmode {m:?}: expected default, host or none"
            )));
        }
    };
    let dockerfile_name = c
        .q("dockerfile")
        .filter(|d| !d.is_empty())
        .unwrap_or("Dockerfile")
        .to_owned();
    let target = c.q("target").filter(|t| !t.is_empty()).map(str::to_owned);
    let (no_cache, always_pull, quiet) = (c.flag("nocache"), c.flag("pull"), c.flag("q"));
    let platform = c.q("platform").filter(|p| !p.is_empty()).map(str::to_owned);
    let upload = body_to_file(c.take_body()?, MAX_UPLOAD).await?;
    let (tx, reply) = stream("application/json");
    let engine = s.engine.clone();
    tokio::task::spawn_blocking(move || {
        let fail = |tx: &mpsc::Sender<Bytes>, msg: String| {
            let _ = tx.blocking_send(json_line(
                &json!({"errorDetail": {"message": msg}, "error": msg}),
            ));
        };
        let context = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => return fail(&tx, format!("making the context directory: {e}")),
        };
        let unpacked = upload.reopen().map_err(|e| e.to_string()).and_then(|f| {
            let (_, reader) = rbuild_store::compress::decompress(std::io::BufReader::new(f))
                .map_err(|e| e.to_string())?;
            let mut ar = tar::Archive::new(reader);
            ar.set_preserve_permissions(true);
            ar.set_preserve_mtime(true);
            ar.unpack(context.path()).map_err(|e| e.to_string())
        });
        if let Err(e) = unpacked {
            return fail(&tx, format!("reading the build context: {e}"));
        }
        let df_path = context.path().join(&dockerfile_name);
        let dockerfile = match std::fs::read_to_string(&df_path) {
            Ok(t) => t,
            Err(e) => {
                return fail(
                    &tx,
                    format!("Cannot locate specified Dockerfile: {dockerfile_name}: {e}"),
                );
            }
        };
        let opts = BuildOptions {
            context: context.path().to_owned(),
            dockerfile,
            dockerfile_path: Some(df_path),
            build_args,
            target,
            no_cache,
            network,
            labels,
            platform,
            tags,
            ..BuildOptions::default()
        };
        let store = match engine.store() {
            Ok(s) => s,
            Err(e) => return fail(&tx, rbuild_engine::build::chain_text(&e)),
        };
        let pull_engine = engine.clone();
        let pull = move |reference: &Reference, platform: &Platform| {
            let client = pull_engine
                .registry()
                .client()
                .map_err(|e| rbuild_engine::build::chain_text(&e))?;
            let opts = PullOptions {
                platform: platform.clone(),
                ..PullOptions::default()
            };
            let e2 = pull_engine.clone();
            let r = reference.clone();
            rbuild_engine::transfer::block_on(move || async move {
                // The image pulled (the name may be a multi-platform image's, several
                // platforms of which are stored).
                let digest = e2
                    .pull(&client, &r, &opts, Arc::new(rbuild_registry::Silent))
                    .await?;
                Ok(e2.store()?.image(&digest)?)
            })
            .map_err(|e| rbuild_engine::build::chain_text(&e))
        };
        let images = BaseImages::new(store, always_pull, &pull);
        let progress = StreamProgress { tx: tx.clone() };
        let silent = rbuild_builder::reporter::Silent;
        let reporter: &dyn rbuild_builder::reporter::Reporter =
            if quiet { &silent } else { &progress };
        match engine.build(&opts, &images, reporter) {
            Ok(outcome) => {
                let id = outcome.image.id.to_string();
                let _ = tx.blocking_send(json_line(&json!({"aux": {"ID": id}})));
                let short = id.trim_start_matches("sha256:");
                let _ = tx.blocking_send(json_line(
                    &json!({"stream": format!("Successfully built {}\n", &short[..12.min(short.len())])}),
                ));
                for t in &opts.tags {
                    let _ = tx.blocking_send(json_line(
                        &json!({"stream": format!("Successfully tagged {}\n", t.familiar())}),
                    ));
                }
            }
            Err(e) => fail(&tx, rbuild_engine::build::chain_text(&e)),
        }
    });
    Ok(reply)
}

/// The body of `POST /auth`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct AuthBody {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
    /// The registry (`https://index.docker.io/v1/` for Docker Hub).
    pub serveraddress: String,
    /// An identity token instead of a password.
    pub identitytoken: String,
}

/// `POST /auth`: check credentials against a registry (`docker login`). Nothing is stored
/// here: the client keeps them and sends them with each pull and push (`X-Registry-Auth`).
pub async fn auth(s: &Arc<Service>, mut c: Call) -> ApiResult {
    let b: AuthBody = crate::http::json_body(c.take_body()?).await?;
    let host = rbuild_engine::registry::normalize_host(if b.serveraddress.is_empty() {
        "docker.io"
    } else {
        &b.serveraddress
    });
    let secret = if b.password.is_empty() {
        b.identitytoken
    } else {
        b.password
    };
    let base = s.engine.registry().client()?;
    let client = Client::new(ClientOptions {
        credentials: Arc::new(HeaderAuth(Credential {
            username: b.username,
            secret,
        })),
        ..base.options().clone()
    });
    let checked = async {
        let reg = client.registry(&host).await?;
        reg.check_login(&rbuild_registry::Scope::none()).await
    }
    .await;
    match checked {
        Ok(()) => Ok(json(
            &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "login to {host} failed: {}",
                rbuild_engine::build::chain_text(&e)
            ),
        )),
    }
}

/// `GET /images/search?term&limit&filters`: the registry's search API (Docker Hub's v1 or
/// Harbor's), docker's `SearchResult` objects; a registry without one is a 500 naming it,
/// as dockerd answers.
pub async fn search(s: &Arc<Service>, c: &Call) -> ApiResult {
    let term = c
        .q("term")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad("term is required"))?
        .to_owned();
    let limit = match c.int("limit")? {
        None | Some(0) => rbuild_engine::registry::DEFAULT_SEARCH_LIMIT,
        Some(n) => usize::try_from(n).map_err(|_| ApiError::bad(format!("invalid limit {n}")))?,
    };
    let filters = c.filters()?;
    let client = client_for(s, c)?;
    let found = rbuild_engine::registry::search(&client, &term, limit, &filters).await?;
    Ok(json(&found))
}
