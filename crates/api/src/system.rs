//! `/_ping`, `/version`, `/info`, `/events` (the store's journal, followed), `/system/df`,
//! `/build/prune`.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::{CACHE_CONTROL, HeaderValue};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::http::{
    API_VERSION, ApiError, ApiResult, Call, MIN_API_VERSION, Reply, full, json, json_line, stream,
};
use crate::state::{Service, blocking};

/// `GET|HEAD /_ping`: `OK` with the API version headers (added to every reply).
pub fn ping(c: &Call) -> ApiResult {
    let mut r = Reply::new(full(if c.method == Method::HEAD { "" } else { "OK" }));
    let h = r.headers_mut();
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    h.insert(
        "Content-Type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}

/// The version document (`docker version`'s server part).
pub fn version_json() -> Value {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let version = env!("CARGO_PKG_VERSION");
    json!({
        "Platform": {"Name": "rbuild"},
        "Components": [{
            "Name": "Engine",
            "Version": version,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": arch,
                "KernelVersion": kernel,
                "Experimental": "false",
            },
        }],
        "Version": version,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": kernel,
        "BuildTime": "",
    })
}

/// `GET /version`.
pub async fn version(_s: &Arc<Service>) -> ApiResult {
    Ok(json(&version_json()))
}

/// `GET /info`: the engine's `SystemInfo` plus the fields docker's clients read.
pub async fn info(s: &Arc<Service>) -> ApiResult {
    let engine = s.engine.clone();
    let info = blocking(move || Ok(engine.info()?)).await?;
    let mut v = serde_json::to_value(&info).map_err(ApiError::from)?;
    if let Some(m) = v.as_object_mut() {
        let id = m
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for (k, x) in [
            ("ID", json!(id)),
            ("DriverStatus", json!([])),
            (
                "Plugins",
                json!({"Volume": ["local"], "Network": ["host", "null"], "Log": ["json-file"]}),
            ),
            ("MemoryLimit", json!(true)),
            ("SwapLimit", json!(false)),
            ("CpuCfsPeriod", json!(true)),
            ("CpuCfsQuota", json!(true)),
            ("PidsLimit", json!(true)),
            ("IPv4Forwarding", json!(false)),
            ("Debug", json!(false)),
            ("LoggingDriver", json!("json-file")),
            ("IndexServerAddress", json!("https://index.docker.io/v1/")),
            (
                "RegistryConfig",
                json!({"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"]}),
            ),
            ("SecurityOptions", json!(["name=seccomp,profile=builtin"])),
            ("Runtimes", json!({"rbuild": {"path": "rbuild"}})),
            ("DefaultRuntime", json!("rbuild")),
            (
                "Swarm",
                json!({"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null}),
            ),
            ("LiveRestoreEnabled", json!(true)),
            ("Isolation", json!("")),
            ("InitBinary", json!("")),
            ("ExperimentalBuild", json!(false)),
            ("Labels", json!([])),
            ("Warnings", json!(null)),
        ] {
            m.entry(k).or_insert(x);
        }
    }
    Ok(json(&v))
}

/// `GET /events?since&until&filters`: the journal's past events in the range, then (unless
/// `until` is past) new ones as they are appended, one JSON document each.
pub async fn events(s: &Arc<Service>, c: &Call) -> ApiResult {
    let when = |k: &str| -> ApiResult<Option<i64>> {
        c.q(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                rbuild_engine::options::parse_when(v)
                    .map_err(|e| ApiError::bad(format!("invalid {k}: {e}")))
            })
            .transpose()
    };
    let since = when("since")?;
    let until = when("until")?;
    let filters = c.filters()?;
    for (k, _) in &filters {
        if !matches!(
            k.as_str(),
            "type" | "event" | "action" | "container" | "image" | "volume" | "label"
        ) {
            return Err(ApiError::bad(format!("invalid filter '{k}'")));
        }
    }
    let journal = s.engine.journal();
    let (tx, reply) = stream("application/json");
    tokio::task::spawn_blocking(move || {
        let now = rbuild_runner::lifecycle::time::now_ns();
        let start = journal.end();
        if since.is_some() || until.is_some() {
            for e in journal.read(since, until) {
                if e.time_nano > now {
                    break;
                }
                if e.matches(&filters) && tx.blocking_send(json_line(&e)).is_err() {
                    return;
                }
            }
        }
        if until.is_some_and(|u| u <= now) {
            return;
        }
        // Followed until `until`, or until the client is gone. HTTP/1 only notices a gone
        // client when writing to it, so a quiet stream sends a newline each second (JSON
        // decoders skip whitespace between documents).
        let mut pos = start;
        let mut sent = std::time::Instant::now();
        loop {
            for e in journal.poll(&mut pos) {
                if until.is_some_and(|u| e.time_nano >= u) {
                    return;
                }
                if e.matches(&filters) {
                    if tx.blocking_send(json_line(&e)).is_err() {
                        return;
                    }
                    sent = std::time::Instant::now();
                }
            }
            if sent.elapsed() >= Duration::from_secs(1) {
                if tx.blocking_send(bytes::Bytes::from_static(b"\n")).is_err() {
                    return;
                }
                sent = std::time::Instant::now();
            }
            if tx.is_closed()
                || until.is_some_and(|u| rbuild_runner::lifecycle::time::now_ns() >= u)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let _ = StatusCode::OK;
    Ok(reply)
}

/// A build cache object as the API's `BuildCache` list shows it.
fn cache_json(o: &rbuild_builder::build::CacheObject) -> Value {
    let time = |ns: i64| rbuild_oci::time::rfc3339_nano(ns);
    json!({
        "ID": o.id,
        "Parent": "",
        "Parents": [],
        "Type": o.kind.as_str(),
        "Description": o.description,
        "InUse": false,
        "Shared": o.shared,
        "Size": o.size,
        "CreatedAt": time(o.created),
        "LastUsedAt": time(o.last_used),
        "UsageCount": o.usage_count,
    })
}

/// `POST /build/prune?all&keep-storage&filters`: remove build cache as `docker builder
/// prune` asks (`reserved-space`/`max-used-space`, newer names of the budget, too).
pub async fn build_prune(s: &Arc<Service>, c: &Call) -> ApiResult {
    let all = matches!(c.q("all"), Some("1" | "true" | "True"));
    let filters = c.filters()?;
    if c.q("min-free-space")
        .is_some_and(|v| !v.is_empty() && v != "0")
    {
        return Err(ApiError::not_supported("build prune with min-free-space"));
    }
    let budget = ["keep-storage", "reserved-space", "max-used-space"]
        .into_iter()
        .filter_map(|k| c.q(k))
        .find(|v| !v.is_empty() && *v != "0")
        .map(str::to_owned);
    let engine = s.engine.clone();
    let report = blocking(move || {
        let opts = rbuild_engine::build_prune_options(all, &filters, budget.as_deref())?;
        Ok(engine.prune_build_cache(&opts)?)
    })
    .await?;
    Ok(json(&json!({
        "CachesDeleted": report.deleted,
        "SpaceReclaimed": report.reclaimed,
    })))
}

/// `GET /system/df`: images, containers, volumes and build cache with their sizes.
pub async fn df(s: &Arc<Service>) -> ApiResult {
    let engine = s.engine.clone();
    let v = blocking(move || {
        let usage = engine.disk_usage()?;
        let images: Vec<Value> = usage
            .images
            .iter()
            .map(|i| {
                let mut j = crate::images::summary_json(&i.summary);
                j["Containers"] = json!(i.containers);
                j
            })
            .collect();
        let (layers, _) = usage.images_size();
        let containers: Vec<Value> = usage
            .containers
            .iter()
            .map(|c| {
                let mut j = crate::containers::summary_json(&c.summary);
                j["SizeRw"] = json!(c.size);
                j
            })
            .collect();
        let volumes: Vec<Value> = usage
            .volumes
            .iter()
            .map(|v| {
                let mut j = serde_json::to_value(rbuild_engine::VolumeJson::from(&v.volume))
                    .unwrap_or(Value::Null);
                j["UsageData"] = json!({"Size": v.size, "RefCount": v.links});
                j
            })
            .collect();
        Ok(json!({
            "LayersSize": layers,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": usage.build_cache.objects.iter().map(cache_json).collect::<Vec<_>>(),
        }))
    })
    .await?;
    Ok(json(&v))
}
