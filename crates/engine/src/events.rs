//! What happened, for front ends that stream it (`docker events`, the Engine API's
//! `/events`): one [`Event`] per action in docker's shape, sent to the engine's
//! [`EventSink`]. The default sink, [`NoEvents`], drops them.

use std::collections::BTreeMap;

use serde::Serialize;

/// The kind of object an event is about (docker's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// Its ID (a container ID, an image ID or reference, a volume name).
    #[serde(rename = "ID")]
    pub id: String,
    /// Docker's attributes: `name`, `image` for containers, `exitCode` for `die`, …
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event, as docker's `events.Message` (without its deprecated fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    pub scope: &'static str,
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
            scope: "local",
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
        }
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
