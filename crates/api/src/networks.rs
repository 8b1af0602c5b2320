//! `/networks`: until rbuild has bridge networks, the predefined `none` and `host` (and
//! `bridge`, which a container asking for docker's default gets as a loopback-only
//! namespace) are listed and inspected; creating, connecting and removing networks answer
//! 501 "not supported yet".

use std::sync::Arc;

use hyper::Method;
use serde_json::{Value, json};

use crate::http::{ApiError, ApiResult, Call, json};
use crate::state::Service;

fn network(name: &str) -> Value {
    let driver = match name {
        "none" => "null",
        "host" => "host",
        _ => "bridge",
    };
    json!({
        "Name": name,
        "Id": format!("{:0<64}", name.bytes().map(|b| format!("{b:02x}")).collect::<String>()),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": {},
        "Labels": {},
    })
}

const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// Every `/networks` route.
pub async fn handle(_s: &Arc<Service>, c: Call) -> ApiResult {
    let segs: Vec<&str> = c.segments.iter().map(String::as_str).collect();
    match (&c.method, segs.as_slice()) {
        (&Method::GET, ["networks"]) => {
            let filters = c.filters()?;
            let list: Vec<Value> = PREDEFINED
                .iter()
                .filter(|n| {
                    filters
                        .iter()
                        .all(|(k, v)| k != "name" || n.contains(v.as_str()))
                })
                .map(|n| network(n))
                .collect();
            Ok(json(&list))
        }
        (&Method::GET, ["networks", id]) => PREDEFINED
            .iter()
            .find(|n| *n == id || network(n)["Id"].as_str().is_some_and(|x| x.starts_with(id)))
            .map(|n| json(&network(n)))
            .ok_or_else(|| ApiError::not_found(format!("network {id} not found"))),
        (&Method::POST, ["networks", "prune"]) => Ok(json(&json!({"NetworksDeleted": []}))),
        _ => Err(ApiError::not_supported("user-defined networks")),
    }
}
