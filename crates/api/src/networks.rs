//! `/networks`: list, inspect, create, connect, disconnect, remove, prune, over the engine's
//! networks (the predefined `bridge`, `host`, `none` and user-defined bridges).

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use rbuild_engine::{EndpointRequest, NetworkCreate, NetworkJson};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{ApiError, ApiResult, Call, empty, json, json_body, json_status};
use crate::state::{Service, blocking};

/// One `IPAM.Config` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    /// `--subnet`.
    pub subnet: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
}

/// Docker's `IPAM`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    /// Its configs (the first one is used).
    pub config: Option<Vec<IpamConfig>>,
}

/// The body of `POST /networks/create`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    /// Its name.
    pub name: String,
    /// `bridge` (the default).
    pub driver: Option<String>,
    /// `--internal`.
    pub internal: Option<bool>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Driver options.
    pub options: Option<BTreeMap<String, String>>,
    /// Addresses.
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
}

/// The `IPAMConfig` of an endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointIpam {
    /// `--ip`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: Option<String>,
}

/// Docker's `EndpointSettings` (the fields rbuild supports).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointConfig {
    /// `--alias`.
    pub aliases: Option<Vec<String>>,
    /// `--ip`.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpam>,
    /// `--mac-address`.
    pub mac_address: Option<String>,
}

/// The body of `POST /networks/{id}/connect` and `/disconnect`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConnectBody {
    /// The container.
    pub container: String,
    /// How it is attached.
    pub endpoint_config: Option<EndpointConfig>,
    /// Disconnect even if it is not running.
    pub force: Option<bool>,
}

/// The engine's endpoint request for docker's `EndpointConfig`.
pub fn endpoint_request(e: Option<EndpointConfig>) -> ApiResult<EndpointRequest> {
    let e = e.unwrap_or_default();
    let ip = match e
        .ipam_config
        .and_then(|i| i.ipv4_address)
        .filter(|a| !a.is_empty())
    {
        Some(a) => Some(
            a.parse()
                .map_err(|_| ApiError::bad(format!("invalid IPv4 address {a:?}")))?,
        ),
        None => None,
    };
    Ok(EndpointRequest {
        aliases: e.aliases.unwrap_or_default(),
        ip,
        mac: e.mac_address.filter(|m| !m.is_empty()),
    })
}

fn to_json(n: &NetworkJson) -> ApiResult<Value> {
    serde_json::to_value(n).map_err(ApiError::from)
}

/// Every `/networks` route.
pub async fn handle(s: &Arc<Service>, mut c: Call) -> ApiResult {
    let segs: Vec<String> = c.segments.clone();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let engine = s.engine.clone();
    match (&c.method.clone(), segs.as_slice()) {
        (&Method::GET, ["networks"]) => {
            let filters = c.filters()?;
            let list = blocking(move || {
                let (records, st) = engine.list_networks_matching(&filters)?;
                records
                    .iter()
                    .map(|r| to_json(&NetworkJson::new(r, &st)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
            Ok(json(&list))
        }
        (&Method::POST, ["networks", "create"]) => {
            let b: CreateBody = json_body(c.take_body()?).await?;
            let cfg = b
                .ipam
                .and_then(|i| i.config)
                .and_then(|c| c.into_iter().next())
                .unwrap_or_default();
            let opts = NetworkCreate {
                name: b.name,
                driver: b.driver.filter(|d| !d.is_empty()),
                subnet: cfg.subnet.filter(|x| !x.is_empty()),
                gateway: cfg.gateway.filter(|x| !x.is_empty()),
                internal: b.internal.unwrap_or(false),
                labels: b.labels.unwrap_or_default(),
                options: b.options.unwrap_or_default(),
            };
            let rec = blocking(move || Ok(engine.create_network(&opts)?)).await?;
            Ok(json_status(
                StatusCode::CREATED,
                &json!({"Id": rec.id, "Warning": ""}),
            ))
        }
        (&Method::POST, ["networks", "prune"]) => {
            let deleted = blocking(move || Ok(engine.prune_networks()?)).await?;
            Ok(json(&json!({ "NetworksDeleted": deleted })))
        }
        (&Method::GET, ["networks", id]) => {
            let id = (*id).to_owned();
            let v = blocking(move || to_json(&engine.network_inspect(&id)?)).await?;
            Ok(json(&v))
        }
        (&Method::DELETE, ["networks", id]) => {
            let id = (*id).to_owned();
            blocking(move || Ok(engine.remove_network(&id)?)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["networks", id, "connect"]) => {
            let b: ConnectBody = json_body(c.take_body()?).await?;
            let req = endpoint_request(b.endpoint_config)?;
            let id = (*id).to_owned();
            blocking(move || Ok(engine.network_connect(&id, &b.container, &req)?)).await?;
            Ok(empty(StatusCode::OK))
        }
        (&Method::POST, ["networks", id, "disconnect"]) => {
            let b: ConnectBody = json_body(c.take_body()?).await?;
            let id = (*id).to_owned();
            let force = b.force.unwrap_or(false);
            blocking(move || Ok(engine.network_disconnect(&id, &b.container, force)?)).await?;
            Ok(empty(StatusCode::OK))
        }
        _ => Err(ApiError::not_found(format!(
            "page not found: {} /{}",
            c.method,
            segs.join("/")
        ))),
    }
}
