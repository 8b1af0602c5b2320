//! `/volumes`: list, inspect, create, remove, prune.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{ApiError, ApiResult, Call, empty, json, json_body, json_status};
use crate::state::{Service, blocking};

/// The body of `POST /volumes/create`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    /// Its name [default: generated].
    pub name: Option<String>,
    /// Its driver (only `local`).
    pub driver: Option<String>,
    /// Driver options (none are supported).
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
}

fn volume_json(v: &rbuild_runner::lifecycle::Volume) -> Value {
    serde_json::to_value(rbuild_engine::VolumeJson::from(v)).unwrap_or(Value::Null)
}

/// `GET /volumes?filters`.
pub async fn list(s: &Arc<Service>, c: &Call) -> ApiResult {
    let filters = c.filters()?;
    let engine = s.engine.clone();
    let vols = blocking(move || {
        Ok(engine
            .list_volumes_matching(&filters)?
            .iter()
            .map(volume_json)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(json(&json!({"Volumes": vols, "Warnings": []})))
}

/// `GET /volumes/{name}`.
pub async fn inspect(s: &Arc<Service>, name: &str) -> ApiResult {
    let (engine, name) = (s.engine.clone(), name.to_owned());
    let v = blocking(move || {
        serde_json::to_value(engine.volume_inspect(&name)?).map_err(ApiError::from)
    })
    .await?;
    Ok(json(&v))
}

/// `POST /volumes/create`.
pub async fn create(s: &Arc<Service>, mut c: Call) -> ApiResult {
    let b: CreateBody = json_body(c.take_body()?).await?;
    if b.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::not_supported("volume driver options"));
    }
    let engine = s.engine.clone();
    let v = blocking(move || {
        let v = engine.create_volume(
            b.name.as_deref().filter(|n| !n.is_empty()),
            b.driver
                .as_deref()
                .filter(|d| !d.is_empty())
                .unwrap_or("local"),
            b.labels.unwrap_or_default(),
        )?;
        Ok(volume_json(&v))
    })
    .await?;
    Ok(json_status(StatusCode::CREATED, &v))
}

/// `DELETE /volumes/{name}?force`.
pub async fn remove(s: &Arc<Service>, _c: &Call, name: &str) -> ApiResult {
    let (engine, name) = (s.engine.clone(), name.to_owned());
    blocking(move || Ok(engine.remove_volume(&name)?)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune?filters`: anonymous unused volumes, or every unused one with the
/// `all=true` filter (API 1.42's rule).
pub async fn prune(s: &Arc<Service>, c: &Call) -> ApiResult {
    let all = c
        .filters()?
        .iter()
        .any(|(k, v)| k == "all" && (v == "true" || v == "1"));
    let engine = s.engine.clone();
    let deleted = blocking(move || Ok(engine.prune_volumes(all)?)).await?;
    Ok(json(
        &json!({"VolumesDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}
