//! What happened, for front ends that stream it (`docker events`, the Engine API's
//! `/events`): one [`Event`] per action in docker's shape, recorded in the store's
//! [`Journal`](crate::journal::Journal) (so observers in other processes see it) and sent to
//! the engine's [`EventSink`]. The default sink, [`NoEvents`], drops them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kind of object an event is about (docker's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A container.
    Container,
    /// An image.
    Image,
    /// A volume.
    Volume,
    /// A network.
    Network,
}

/// The object an event is about (docker's `Actor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Its ID (a container ID, an image ID or reference, a volume name).
    #[serde(rename = "ID")]
    pub id: String,
    /// Docker's attributes: `name`, `image` for containers, `exitCode` for `die`, …
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event, as docker's `events.Message` (without its deprecated fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The kind of object.
    #[serde(rename = "Type")]
    pub kind: EventType,
    /// What happened: `create`, `start`, `die`, `stop`, `kill`, `destroy`, `pull`, `push`,
    /// `tag`, `untag`, `delete`, …
    #[serde(rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Docker's `scope`: always `local`.
    pub scope: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    /// An event happening now.
    pub fn now(
        kind: EventType,
        action: &str,
        id: &str,
        attributes: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Event {
        let time_nano = rbuild_runner::lifecycle::time::now_ns();
        Event {
            kind,
            action: action.to_owned(),
            actor: Actor {
                id: id.to_owned(),
                attributes: attributes
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            },
            scope: "local".into(),
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
        }
    }

    /// Whether the event passes docker's event filters (`type`, `event`/`action`,
    /// `container`, `image`, `volume`, `label`): values of one key ORed, keys ANDed. Shared
    /// by `rbuild events` and the API's `/events`.
    pub fn matches(&self, filters: &[(String, String)]) -> bool {
        let kind = serde_json::to_value(self.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let attr = |k: &str| {
            self.actor
                .attributes
                .get(k)
                .map(String::as_str)
                .unwrap_or("")
        };
        let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter().all(|key| {
            filters
                .iter()
                .filter(|(k, _)| k == key)
                .any(|(_, v)| match key {
                    "type" => kind == *v,
                    // docker's `event=health_status` also matches `health_status: healthy`.
                    "event" | "action" => {
                        self.action == *v
                            || self.action.split_once(':').is_some_and(|(a, _)| a == v)
                    }
                    "container" => {
                        kind == "container"
                            && (self.actor.id.starts_with(v.as_str()) || attr("name") == v)
                    }
                    "image" => {
                        (kind == "image" && (self.actor.id == *v || attr("name") == v))
                            || (kind == "container" && attr("image") == v)
                    }
                    "volume" => kind == "volume" && self.actor.id == *v,
                    "label" => match v.split_once('=') {
                        Some((k, val)) => attr(k) == val,
                        None => self.actor.attributes.contains_key(v),
                    },
                    _ => false,
                })
        })
    }
}

/// Where the engine sends its events. Called on the thread that acted; must not block long.
pub trait EventSink: Send + Sync {
    /// One event happened.
    fn event(&self, event: Event);
}

/// The sink that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&self, _event: Event) {}
}

/// A sink that keeps every event in memory, for tests and for front ends that batch.
#[derive(Debug, Default)]
pub struct Recorded(std::sync::Mutex<Vec<Event>>);

impl Recorded {
    /// The events so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl EventSink for Recorded {
    fn event(&self, event: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters() {
        let e = Event::now(
            EventType::Container,
            "start",
            "abcdef",
            [("name", "web".to_owned()), ("image", "busybox".to_owned())],
        );
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(e.matches(&[]));
        assert!(e.matches(&f(&[("type", "container")])));
        assert!(!e.matches(&f(&[("type", "image")])));
        assert!(e.matches(&f(&[("event", "die"), ("event", "start")])));
        assert!(e.matches(&f(&[("container", "web"), ("type", "container")])));
        assert!(e.matches(&f(&[("container", "abc")])));
        assert!(!e.matches(&f(&[("container", "db")])));
        assert!(e.matches(&f(&[("image", "busybox")])));
        let health = Event::now(EventType::Container, "health_status: healthy", "abc", []);
        assert!(health.matches(&f(&[("event", "health_status")])));
        assert!(health.matches(&f(&[("event", "health_status: healthy")])));
        assert!(!health.matches(&f(&[("event", "health")])));
    }

    #[test]
    fn events_serialize_in_dockers_shape() {
        let e = Event::now(
            EventType::Container,
            "die",
            "abc",
            [("exitCode", "3".to_owned())],
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "die");
        assert_eq!(v["Actor"]["ID"], "abc");
        assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["time"].as_i64().unwrap(), e.time_nano / 1_000_000_000);
    }
}
