//! Merging compose files (`-f a.yaml -f b.yaml`, override files, `extends`) by the Compose
//! Specification's rules, on the YAML documents before they are typed: mappings merge key by
//! key (later wins); `command`, `entrypoint` and a healthcheck's `test` are replaced; a
//! service's `volumes`, `secrets` and `configs` merge by their target; `environment`, `labels`,
//! `extra_hosts`, `sysctls` and `annotations` (list or mapping) merge as mappings; other
//! sequences are appended without duplicates.

use serde_yaml::{Mapping, Value};

/// Merge `over` into `base` (a whole compose document each).
pub fn merge_documents(base: &mut Value, over: Value) {
    let Value::Mapping(over) = over else {
        return;
    };
    let Value::Mapping(base_map) = base else {
        *base = Value::Mapping(over);
        return;
    };
    for (key, value) in over {
        if key.as_str() == Some("services") {
            let services = base_map
                .entry(key)
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            merge_services(services, value);
        } else {
            match base_map.get_mut(&key) {
                Some(existing) => merge_plain(existing, value),
                None => {
                    base_map.insert(key, value);
                }
            }
        }
    }
}

fn merge_services(base: &mut Value, over: Value) {
    let (Value::Mapping(base), Value::Mapping(over)) = (&mut *base, over.clone()) else {
        *base = over;
        return;
    };
    for (name, service) in over {
        match base.get_mut(&name) {
            Some(existing) => merge_service(existing, service),
            None => {
                base.insert(name, service);
            }
        }
    }
}

/// Merge one service definition over another.
pub fn merge_service(base: &mut Value, over: Value) {
    let (Value::Mapping(base), Value::Mapping(over)) = (&mut *base, over.clone()) else {
        *base = over;
        return;
    };
    for (key, value) in over {
        let name = key.as_str().unwrap_or_default().to_string();
        let Some(existing) = base.get_mut(&key) else {
            base.insert(key, value);
            continue;
        };
        match name.as_str() {
            "command" | "entrypoint" => *existing = value,
            "healthcheck" => merge_healthcheck(existing, value),
            "volumes" | "secrets" | "configs" => merge_by_target(existing, value),
            "environment" | "labels" | "extra_hosts" | "sysctls" | "annotations" => {
                let mut merged = as_mapping(existing);
                for (k, v) in as_mapping(&value) {
                    merged.insert(k, v);
                }
                *existing = Value::Mapping(merged);
            }
            _ => merge_plain(existing, value),
        }
    }
}

fn merge_healthcheck(base: &mut Value, over: Value) {
    let (Value::Mapping(base), Value::Mapping(over)) = (&mut *base, over.clone()) else {
        *base = over;
        return;
    };
    for (k, v) in over {
        base.insert(k, v);
    }
}

/// Mappings merge recursively, sequences append without duplicates, scalars are replaced.
fn merge_plain(base: &mut Value, over: Value) {
    match (&mut *base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge_plain(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Sequence(b), Value::Sequence(o)) => {
            for item in o {
                if !b.contains(&item) {
                    b.push(item);
                }
            }
        }
        (slot, over) => *slot = over,
    }
}

/// `volumes`, `secrets`, `configs` of a service: a later entry with the same target replaces.
fn merge_by_target(base: &mut Value, over: Value) {
    let (Value::Sequence(base), Value::Sequence(over)) = (&mut *base, over.clone()) else {
        *base = over;
        return;
    };
    for item in over {
        let target = target_of(&item);
        match base
            .iter_mut()
            .find(|b| target.is_some() && target_of(b) == target)
        {
            Some(slot) => *slot = item,
            None => base.push(item),
        }
    }
}

/// The target of a volume/secret/config entry, short or long syntax.
fn target_of(item: &Value) -> Option<String> {
    match item {
        Value::String(s) => {
            // `src:dst[:mode]`, or `dst` alone; a secret/config by name targets its name.
            let parts: Vec<&str> = s.split(':').collect();
            Some(match parts.len() {
                1 => parts[0].to_string(),
                _ => parts[1].to_string(),
            })
        }
        Value::Mapping(m) => m
            .get("target")
            .or_else(|| m.get("source"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

/// A list-or-mapping field (`environment`, `labels` …) as a mapping (`KEY=VALUE` items
/// split; a bare `KEY` maps to null).
fn as_mapping(v: &Value) -> Mapping {
    match v {
        Value::Mapping(m) => m.clone(),
        Value::Sequence(items) => {
            let mut m = Mapping::new();
            for item in items {
                let Some(s) = item.as_str() else { continue };
                match s.split_once('=') {
                    Some((k, v)) => m.insert(k.into(), v.into()),
                    None => m.insert(s.into(), Value::Null),
                };
            }
            m
        }
        _ => Mapping::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn later_files_win_by_the_specs_rules() {
        let mut base = yaml(
            "services:\n  web:\n    image: a\n    command: [x, y]\n    ports: ['80:80']\n    environment: [A=1, B=2]\n    volumes: ['data:/data', './conf:/etc/conf:ro']\n    healthcheck: {test: [CMD, a], interval: 5s}\n  db:\n    image: db\nvolumes:\n  data: {}\n",
        );
        let over = yaml(
            "services:\n  web:\n    image: b\n    command: [z]\n    ports: ['80:80', '443:443']\n    environment: {B: '3', C: '4'}\n    volumes: ['other:/data']\n    healthcheck: {test: [CMD, b]}\n  cache:\n    image: c\n",
        );
        merge_documents(&mut base, over);
        let web = &base["services"]["web"];
        assert_eq!(web["image"], "b");
        assert_eq!(web["command"], yaml("[z]"));
        assert_eq!(web["ports"], yaml("['80:80', '443:443']"));
        assert_eq!(web["environment"], yaml("{A: '1', B: '3', C: '4'}"));
        assert_eq!(
            web["volumes"],
            yaml("['other:/data', './conf:/etc/conf:ro']")
        );
        assert_eq!(web["healthcheck"], yaml("{test: [CMD, b], interval: 5s}"));
        assert_eq!(base["services"]["db"]["image"], "db");
        assert_eq!(base["services"]["cache"]["image"], "c");
        assert_eq!(base["volumes"]["data"], yaml("{}"));
    }
}
