//! A container's changes: `commit` (a new image from its image plus a layer of its overlay
//! upper dir, the container frozen meanwhile if it runs, `--change`s applied as `import`
//! does) and `export` (its whole root filesystem as one tar).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rbuild_oci::Reference;
use rbuild_runner::Rootfs;
use rbuild_runner::lifecycle::{Container, Status};
use rbuild_store::{Image, LayerSource};
use serde_json::{Value, json};

use crate::Engine;
use crate::error::{EngineError, OptionExt, Result, ResultExt};
use crate::events::{Event, EventType};
use crate::images::apply_change;

/// `docker commit`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOptions {
    /// The image config's and history entry's author.
    pub author: Option<String>,
    /// Dockerfile config instructions to apply (CMD, ENV, …).
    pub changes: Vec<String>,
    /// The history entry's comment.
    pub message: Option<String>,
    /// Freeze a running container while its changes are copied.
    pub pause: bool,
    /// The new image's name.
    pub name: Option<Reference>,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            author: None,
            changes: Vec::new(),
            message: None,
            pause: true,
            name: None,
        }
    }
}

/// A copy of `c`'s overlay upper dir (its changes) without the runtime's mount stubs, in a
/// staging directory under the store root; a running container is frozen while copied.
pub(crate) fn changes_copy(
    c: &Container,
    layers: &[PathBuf],
    pause: bool,
) -> Result<tempfile::TempDir> {
    let upper = c.dir().join("upper");
    if !upper.is_dir() {
        return Err(EngineError::Conflict(format!(
            "container {} has no overlay upper dir (its root filesystem was copied or given with --rootfs)",
            c.name()
        )));
    }
    let st = c.state()?;
    let frozen = pause
        && st.status == Status::Running
        && rbuild_runner::cgroup::freeze(&st.cgroups, true).is_ok();
    let tmp = tempfile::Builder::new()
        .prefix(".commit-")
        .tempdir_in(c.store_root())
        .context("creating a staging directory")?;
    let copied = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", upper.display()))
        .arg(tmp.path())
        .status();
    if frozen {
        let _ = rbuild_runner::cgroup::freeze(&st.cgroups, false);
    }
    if !copied.context("running cp")?.success() {
        return Err(EngineError::Failed(format!(
            "copying {} failed",
            upper.display()
        )));
    }
    let spec = c.spec()?;
    let mut points: Vec<String> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect();
    points.extend(["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"].map(String::from));
    rbuild_builder::run::remove_mount_stubs(tmp.path(), layers, &points);
    Ok(tmp)
}

impl Engine {
    /// A new image from container `c`: its image's layers plus one of its changes, its
    /// process config, `opts.changes` applied. Sends a `commit` event.
    pub fn commit(&self, c: &Container, opts: &CommitOptions) -> Result<Image> {
        let Rootfs::Layers(layers) = &c.record.rootfs else {
            return Err(EngineError::Conflict(format!(
                "container {} does not run an image (--rootfs): nothing to commit onto",
                c.name()
            )));
        };
        let store = self.store()?;
        let _hold = store.hold()?;
        let base = store.resolve(&c.record.image_id).with_context(|| {
            format!(
                "the image of container {} ({})",
                c.name(),
                c.record.image_id
            )
        })?;
        let changes = changes_copy(c, layers, opts.pause)?;
        let layer = store
            .add_layer(
                &LayerSource::OverlayUpper(changes.path().to_owned()),
                &Default::default(),
            )
            .context("creating the layer of the container's changes")?;
        let mut cfg = base.config_json();
        let r = &c.record;
        let mut config = cfg
            .get("config")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        config.insert("Env".into(), json!(r.env));
        config.insert("Cmd".into(), json!(r.cmd));
        config.insert(
            "Entrypoint".into(),
            if r.entrypoint.is_empty() {
                Value::Null
            } else {
                json!(r.entrypoint)
            },
        );
        if !r.working_dir.is_empty() {
            config.insert("WorkingDir".into(), json!(r.working_dir));
        }
        if !r.user.is_empty() {
            config.insert("User".into(), json!(r.user));
        }
        for ch in &opts.changes {
            apply_change(&mut config, ch).with_context(|| format!("--change {ch:?}"))?;
        }
        let created = crate::engine::rfc3339_now();
        cfg["config"] = Value::Object(config);
        cfg["created"] = json!(created);
        if let Some(a) = &opts.author {
            cfg["author"] = json!(a);
        }
        cfg["container"] = json!(r.id);
        let diff_ids = cfg["rootfs"]["diff_ids"]
            .as_array_mut()
            .or_invalid(|| "the base image has no diff_ids")?;
        diff_ids.push(json!(layer.diff_id.to_string()));
        let mut entry = json!({"created": created, "created_by": format!("rbuild commit {}", r.command.join(" "))});
        if let Some(m) = &opts.message {
            entry["comment"] = json!(m);
        }
        if let Some(a) = &opts.author {
            entry["author"] = json!(a);
        }
        match cfg.get_mut("history").and_then(Value::as_array_mut) {
            Some(h) => h.push(entry),
            None => cfg["history"] = json!([entry]),
        }
        let image = store.commit_image(&serde_json::to_vec(&cfg)?, opts.name.as_slice())?;
        self.emit(Event::now(
            EventType::Container,
            "commit",
            c.id(),
            [("imageID", image.id.to_string())],
        ));
        Ok(image)
    }

    /// Write `c`'s whole root filesystem (its image's layers with its changes on top) as
    /// one tar to `output`, or with `None` to this process's standard output.
    pub fn export(&self, c: &Container, output: Option<&Path>) -> Result<()> {
        let staging = tempfile::Builder::new()
            .prefix(".export-")
            .tempdir_in(c.store_root())
            .context("creating a staging directory")?;
        let tree: PathBuf = match &c.record.rootfs {
            Rootfs::Directory(d) => d.clone(),
            Rootfs::Layers(layers) | Rootfs::Copy(layers) => {
                let changes = changes_copy(c, layers, true)?;
                let mut all = layers.clone();
                all.push(changes.path().to_owned());
                let tree = staging.path().join("rootfs");
                rbuild_runner::copy::copy_layers(&all, &tree)?;
                tree
            }
        };
        let mut tar = Command::new("tar");
        tar.arg("-C")
            .arg(&tree)
            .args(["--numeric-owner", "--xattrs", "-cf"])
            .arg(output.unwrap_or("-".as_ref()))
            .arg(".")
            .stdout(Stdio::inherit());
        let status = tar.status().context("running tar")?;
        if !status.success() {
            return Err(EngineError::Failed(format!(
                "tar of {} failed: {status}",
                tree.display()
            )));
        }
        Ok(())
    }
}
