//! `rbuild commit [-a AUTHOR] [-c CHANGE] [-m MSG] CONTAINER [REPO[:TAG]]`: a new image
//! from a container: its image's layers plus one layer made from the container's overlay
//! upper dir (the container is frozen meanwhile if it runs), its process config, and
//! `--change` instructions applied as `rbuild import` does.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::Args;
use rbuild_runner::Rootfs;
use rbuild_runner::lifecycle::{Container, Status};
use rbuild_store::LayerSource;
use serde_json::{Value, json};

use super::Globals;
use super::common::{now, open_store, rfc3339, store_root};
use super::containers::find;

/// Arguments of `rbuild commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g. "Jane Doe <jane@example.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply a Dockerfile instruction to the image config (as `rbuild import --change`)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Freeze a running container while committing (the default)
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    /// The container (name, ID or ID prefix)
    pub container: String,
    /// Name for the new image
    pub reference: Option<String>,
}

/// A copy of the container's upper dir without runtime mount stubs, frozen while copied.
pub fn changes_copy(
    c: &Container,
    layers: &[PathBuf],
    pause: bool,
) -> anyhow::Result<tempfile::TempDir> {
    let upper = c.dir().join("upper");
    if !upper.is_dir() {
        bail!(
            "container {} has no overlay upper dir (its root filesystem was copied or given with --rootfs)",
            c.name()
        );
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
        bail!("copying {} failed", upper.display());
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

/// Run `rbuild commit`: prints the new image's ID.
pub fn run(args: CommitArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let c = find(&store_root(globals), &args.container)?;
    let Rootfs::Layers(layers) = &c.record.rootfs else {
        bail!(
            "container {} does not run an image (--rootfs): nothing to commit onto",
            c.name()
        );
    };
    let name = args
        .reference
        .as_deref()
        .map(|r| {
            r.parse::<rbuild_oci::Reference>()
                .with_context(|| format!("image name {r:?}"))
        })
        .transpose()?;
    let store = open_store(globals)?;
    let _hold = store.hold()?;
    let base = store.resolve(&c.record.image_id).with_context(|| {
        format!(
            "the image of container {} ({})",
            c.name(),
            c.record.image_id
        )
    })?;
    let changes = changes_copy(&c, layers, args.pause)?;
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
    for ch in &args.changes {
        super::import::apply_change(&mut config, ch).with_context(|| format!("--change {ch:?}"))?;
    }
    let created = rfc3339(now());
    cfg["config"] = Value::Object(config);
    cfg["created"] = json!(created);
    if let Some(a) = &args.author {
        cfg["author"] = json!(a);
    }
    cfg["container"] = json!(r.id);
    let diff_ids = cfg["rootfs"]["diff_ids"]
        .as_array_mut()
        .context("the base image has no diff_ids")?;
    diff_ids.push(json!(layer.diff_id.to_string()));
    let mut entry =
        json!({"created": created, "created_by": format!("rbuild commit {}", r.command.join(" "))});
    if let Some(m) = &args.message {
        entry["comment"] = json!(m);
    }
    if let Some(a) = &args.author {
        entry["author"] = json!(a);
    }
    match cfg.get_mut("history").and_then(Value::as_array_mut) {
        Some(h) => h.push(entry),
        None => cfg["history"] = json!([entry]),
    }
    let image = store.commit_image(&serde_json::to_vec(&cfg)?, name.as_slice())?;
    println!("{}", image.id);
    Ok(ExitCode::SUCCESS)
}
