//! The image config being built, as docker-compatible JSON (`config`, `rootfs`, `history`,
//! and the docker fields oci-spec does not model are all kept from the base image).

use rbuild_oci::Digest;
use rbuild_parser::instructions::{CommandLine, Healthcheck};
use serde_json::{Map, Value, json};

/// Docker's default `PATH`, added when the base image has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image config under construction.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigBuilder {
    doc: Map<String, Value>,
}

impl ConfigBuilder {
    /// Start from a base image's config bytes; `None` is `scratch` for `platform` (`os/arch[/variant]`).
    pub fn new(base: Option<&[u8]>, platform: &str) -> Self {
        let mut doc = base
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        if base.is_none() {
            let mut parts = platform.split('/');
            doc.insert("os".into(), json!(parts.next().unwrap_or("linux")));
            doc.insert(
                "architecture".into(),
                json!(parts.next().unwrap_or("amd64")),
            );
            if let Some(v) = parts.next() {
                doc.insert("variant".into(), json!(v));
            }
        }
        // BuildKit's empty image (FROM scratch) has WorkingDir "/".
        doc.entry("config").or_insert_with(|| {
            if base.is_none() {
                json!({"WorkingDir": "/"})
            } else {
                json!({})
            }
        });
        doc.entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        doc.entry("history").or_insert_with(|| json!([]));
        // A derived image does not inherit its base's build-time identity.
        for k in [
            "container",
            "container_config",
            "docker_version",
            "id",
            "parent",
        ] {
            doc.remove(k);
        }
        let mut b = ConfigBuilder { doc };
        if !b.env().iter().any(|e| e.starts_with("PATH=")) {
            let mut env = b.env();
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
            b.set_env(env);
        }
        b
    }

    fn config(&mut self) -> &mut Map<String, Value> {
        let c = self.doc.entry("config").or_insert_with(|| json!({}));
        if !c.is_object() {
            *c = json!({});
        }
        c.as_object_mut().expect("object")
    }

    fn config_ref(&self) -> Option<&Map<String, Value>> {
        self.doc.get("config").and_then(Value::as_object)
    }

    fn strings(&self, key: &str) -> Vec<String> {
        self.config_ref()
            .and_then(|c| c.get(key))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn string(&self, key: &str) -> String {
        self.config_ref()
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// Make the config one for `platform` (`os/arch[/variant]`): a step shared by several
    /// platforms' builds was recorded in another platform's config.
    pub fn set_platform(&mut self, platform: &str) {
        let mut parts = platform.split('/');
        let os = parts.next().unwrap_or("linux");
        let arch = parts.next().unwrap_or("amd64");
        self.doc.insert("os".into(), json!(os));
        self.doc.insert("architecture".into(), json!(arch));
        match parts.next() {
            Some(v) => self.doc.insert("variant".into(), json!(v)),
            None => self.doc.remove("variant"),
        };
    }

    /// `config.Env` as `KEY=VALUE` strings.
    pub fn env(&self) -> Vec<String> {
        self.strings("Env")
    }

    /// `config.Env` as pairs.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env()
            .into_iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e, String::new()),
            })
            .collect()
    }

    /// Replace `config.Env`.
    pub fn set_env(&mut self, env: Vec<String>) {
        self.config().insert("Env".into(), json!(env));
    }

    /// Set one variable, in place when it exists.
    pub fn set_var(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
        self.set_env(env);
    }

    /// `config.User`.
    pub fn user(&self) -> String {
        self.string("User")
    }

    /// `config.WorkingDir` (`/` when unset).
    pub fn workdir(&self) -> String {
        let w = self.string("WorkingDir");
        if w.is_empty() { "/".into() } else { w }
    }

    /// Set a string field of `config` (`User`, `WorkingDir`, `StopSignal`).
    pub fn set_string(&mut self, key: &str, value: &str) {
        self.config().insert(key.into(), json!(value));
    }

    /// `config.Shell`, when the image sets one.
    pub fn shell(&self) -> Option<Vec<String>> {
        self.config_ref()
            .and_then(|c| c.get("Shell"))
            .and_then(Value::as_array)
            .map(|_| self.strings("Shell"))
    }

    /// Set `config.Shell` (`SHELL` instruction).
    pub fn set_shell(&mut self, shell: &[String]) {
        self.config().insert("Shell".into(), json!(shell));
    }

    /// Set `Cmd` or `Entrypoint` from a command line, wrapping shell form in `shell`.
    pub fn set_command(&mut self, key: &str, command: &CommandLine, shell: &[String]) {
        let argv = argv(command, shell);
        self.config().insert(key.into(), json!(argv));
    }

    /// Set `config.ArgsEscaped` (BuildKit sets it with every CMD).
    pub fn set_args_escaped(&mut self) {
        self.config().insert("ArgsEscaped".into(), json!(true));
    }

    /// Remove a field of `config`.
    pub fn clear(&mut self, key: &str) {
        self.config().remove(key);
    }

    /// Add to a map-of-empty-objects field (`ExposedPorts`, `Volumes`).
    pub fn add_set_member(&mut self, key: &str, member: &str) {
        let c = self.config();
        let set = c.entry(key).or_insert_with(|| json!({}));
        if !set.is_object() {
            *set = json!({});
        }
        set.as_object_mut()
            .expect("object")
            .insert(member.into(), json!({}));
    }

    /// Set a label.
    pub fn set_label(&mut self, key: &str, value: &str) {
        let c = self.config();
        let labels = c.entry("Labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        labels
            .as_object_mut()
            .expect("object")
            .insert(key.into(), json!(value));
    }

    /// `config.OnBuild` triggers.
    pub fn onbuild(&self) -> Vec<String> {
        self.strings("OnBuild")
    }

    /// Append an ONBUILD trigger.
    pub fn add_onbuild(&mut self, expression: &str) {
        let mut list = self.onbuild();
        list.push(expression.to_string());
        self.config().insert("OnBuild".into(), json!(list));
    }

    /// Set `config.Healthcheck`.
    pub fn set_healthcheck(&mut self, h: &Healthcheck, shell: &[String]) {
        let value = match h {
            Healthcheck::None => json!({"Test": ["NONE"]}),
            Healthcheck::Cmd {
                test,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            } => {
                let test = match test {
                    CommandLine::Shell(s) => json!(["CMD-SHELL", s]),
                    CommandLine::Exec(v) => {
                        let mut t = vec!["CMD".to_string()];
                        t.extend(v.iter().cloned());
                        json!(t)
                    }
                };
                let _ = shell;
                let mut m = Map::new();
                m.insert("Test".into(), test);
                let ns = |d: &Option<std::time::Duration>| d.map(|d| d.as_nanos() as u64);
                for (k, v) in [
                    ("Interval", ns(interval)),
                    ("Timeout", ns(timeout)),
                    ("StartPeriod", ns(start_period)),
                    ("StartInterval", ns(start_interval)),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), json!(v));
                    }
                }
                if let Some(r) = retries {
                    m.insert("Retries".into(), json!(r));
                }
                Value::Object(m)
            }
        };
        self.config().insert("Healthcheck".into(), value);
    }

    /// Set a top-level field (`author`).
    pub fn set_top(&mut self, key: &str, value: Value) {
        self.doc.insert(key.into(), value);
    }

    /// Put layer `to` in `rootfs.diff_ids` where `from` stands (a layer recorded before its
    /// digest was known).
    pub fn replace_diff_id(&mut self, from: &Digest, to: &Digest) {
        let (from, to) = (from.to_string(), to.to_string());
        if let Some(ids) = self
            .doc
            .get_mut("rootfs")
            .and_then(|r| r.get_mut("diff_ids"))
            .and_then(Value::as_array_mut)
        {
            for id in ids.iter_mut().filter(|id| id.as_str() == Some(&from)) {
                *id = json!(to);
            }
        }
    }

    /// The layers so far.
    pub fn diff_ids(&self) -> Vec<String> {
        self.doc
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Record a step in `history`, and its layer in `rootfs.diff_ids` when it made one.
    pub fn record(&mut self, created_by: &str, layer: Option<&Digest>, created: &str) {
        if let Some(d) = layer {
            let mut ids = self.diff_ids();
            ids.push(d.to_string());
            self.doc
                .insert("rootfs".into(), json!({"type": "layers", "diff_ids": ids}));
        }
        let mut entry = Map::new();
        entry.insert("created".into(), json!(created));
        entry.insert("created_by".into(), json!(created_by));
        entry.insert("comment".into(), json!("buildkit.dockerfile.v0"));
        if layer.is_none() {
            entry.insert("empty_layer".into(), json!(true));
        }
        let history = self.doc.entry("history").or_insert_with(|| json!([]));
        if let Some(h) = history.as_array_mut() {
            h.push(Value::Object(entry));
        }
    }

    /// The finished config bytes, with `created` set.
    pub fn finish(mut self, created: &str) -> Vec<u8> {
        self.doc.insert("created".into(), json!(created));
        serde_json::to_vec(&Value::Object(self.doc)).expect("json")
    }
}

/// The argv of a command line: exec form as is, shell form as `shell + [command]`.
pub fn argv(command: &CommandLine, shell: &[String]) -> Vec<String> {
    match command {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(s) => {
            let mut v = shell.to_vec();
            v.push(s.clone());
            v
        }
    }
}

pub use rbuild_oci::time::{civil_from_days, days_from_civil, rfc3339};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_config_gets_default_path() {
        let b = ConfigBuilder::new(None, "linux/arm64/v8");
        assert_eq!(b.env(), [format!("PATH={DEFAULT_PATH}")]);
        let bytes = b.finish("1970-01-01T00:00:00Z");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (
                v["os"].as_str(),
                v["architecture"].as_str(),
                v["variant"].as_str()
            ),
            (Some("linux"), Some("arm64"), Some("v8"))
        );
        assert_eq!(v["rootfs"]["type"], "layers");
    }

    #[test]
    fn base_fields_kept_and_env_replaced_in_place() {
        let base = br#"{"architecture":"amd64","os":"linux","container":"abc","config":{"Env":["PATH=/x","A=1","B=2"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created_by":"x"}]}"#;
        let mut b = ConfigBuilder::new(Some(base), "linux/amd64");
        b.set_var("A", "9");
        b.set_var("C", "3");
        assert_eq!(b.env(), ["PATH=/x", "A=9", "B=2", "C=3"]);
        b.set_command(
            "Entrypoint",
            &CommandLine::Shell("run".into()),
            &["/bin/sh".into(), "-c".into()],
        );
        let d = Digest::sha256_of(b"layer");
        b.record("RUN x", Some(&d), "t");
        b.record("ENV A=9", None, "t");
        let v: Value = serde_json::from_slice(&b.finish("t")).unwrap();
        assert!(v.get("container").is_none());
        assert_eq!(v["config"]["Entrypoint"], json!(["/bin/sh", "-c", "run"]));
        assert_eq!(v["rootfs"]["diff_ids"], json!(["sha256:aa", d.to_string()]));
        assert_eq!(v["history"][2]["empty_layer"], json!(true));
        assert!(v["history"][1].get("empty_layer").is_none());
    }

    #[test]
    fn times_format_like_docker() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59Z");
    }
}
