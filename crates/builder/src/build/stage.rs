//! One stage: its base, then its instructions in order (ONBUILD triggers of the base first).
//! Config instructions change the config; RUN, COPY, ADD and WORKDIR are steps with a cache
//! key, looked up before they run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rbuild_oci::Digest;
use rbuild_parser::instructions::{
    Instruction, Located, PROXY_ARGS, StageScope, Workdir, parse_dockerfile,
};

use super::cache::KeyInputs;
use super::{Shared, StageResult, store_err};
use crate::cache_key::{BaseIdentity, StepInputs, base_key, key_of_document, step_document};
use crate::config::ConfigBuilder;
use crate::error::BuildError;
use crate::graph::Source;
use crate::reporter::{StepInfo, StepOutcome};

/// The state of a stage while its instructions run.
pub(crate) struct State {
    /// Layers so far, bottom first.
    pub layers: Vec<Digest>,
    /// Snapshot directories of a prefix of `layers` (filled on demand).
    pub snapshots: Vec<std::path::PathBuf>,
    pub config: ConfigBuilder,
    /// The key of the last step (or of the base).
    pub key: Digest,
    /// The time of the newest layer (history entries of config steps use it).
    pub created: String,
    pub shell: Vec<String>,
    /// Whether this stage set CMD (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// Layers whose tars are still being hashed, oldest first (see [`PendingLayer`]).
    pub pending: Vec<PendingLayer>,
    /// The platform the stage is built for (`FROM --platform`, else the target).
    pub platform: String,
    /// The stage's index in the Dockerfile.
    pub stage: usize,
    /// The stage's base key and what it stands for (`image sha256:…`, `stage NAME`).
    pub base: (Digest, String),
    /// Whether a step of this stage (or of its base stage) was not cached.
    pub rebuilt: bool,
    /// The current step's key inputs (set by [`key_of`], kept in its record).
    pub step: Option<KeyInputs>,
    /// The current COPY/ADD's files by context path, for its key inputs.
    pub step_files: BTreeMap<String, String>,
}

/// A step's layer whose tar is hashed on another thread while the stage's next steps run: its
/// directory is already the stage's top snapshot (an overlay lower of the next RUN), and
/// `State::layers` and the config hold `placeholder` until [`State::resolve_pending`] stores
/// the layer (the directory becomes the store's snapshot) and records its cache entry. On two
/// cores this takes a big COPY's hashing off the build's path.
pub(crate) struct PendingLayer {
    /// Where the layer is in `State::layers` and `State::snapshots`.
    pub slot: usize,
    /// Stands for the digest until it is known.
    pub placeholder: Digest,
    /// The step's directory.
    pub source: rbuild_store::LayerSource,
    /// The step's cache key, time and key inputs, recorded once the digest is known.
    pub key: Digest,
    pub created: String,
    pub inputs: Option<KeyInputs>,
    /// The hashing while it runs, then its result.
    pub hashing: Option<std::thread::JoinHandle<rbuild_store::Result<rbuild_store::LayerInfo>>>,
    pub hashed: Option<rbuild_store::Result<rbuild_store::LayerInfo>>,
}

impl PendingLayer {
    fn running(&self) -> bool {
        self.hashing.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Wait for the hashing to end (once).
    fn wait(&mut self) {
        if let Some(h) = self.hashing.take() {
            self.hashed = Some(h.join().expect("layer hashing does not panic"));
        }
    }
}

impl State {
    /// A stage `stage` for `platform` starting from the base key `key` (standing for
    /// `base`), empty.
    pub fn new(stage: usize, key: Digest, base: String, rebuilt: bool, platform: &str) -> State {
        State {
            layers: Vec::new(),
            snapshots: Vec::new(),
            config: ConfigBuilder::new(None, platform),
            key: key.clone(),
            created: String::new(),
            shell: Vec::new(),
            cmd_set: false,
            pending: Vec::new(),
            platform: platform.to_string(),
            stage,
            base: (key, base),
            rebuilt,
            step: None,
            step_files: BTreeMap::new(),
        }
    }

    /// What the stage hands on (no layer pending any more).
    pub fn result(&self) -> StageResult {
        StageResult {
            layers: self.layers.clone(),
            snapshots: self.snapshots.clone(),
            config: self.config.clone(),
            key: self.key.clone(),
            created: self.created.clone(),
            shell: self.shell.clone(),
            cmd_set: self.cmd_set,
            rebuilt: self.rebuilt,
        }
    }

    /// Go on from `r`, a shared prefix of this stage built by another platform's build.
    pub fn restore(&mut self, r: &StageResult) {
        self.layers = r.layers.clone();
        self.snapshots = r.snapshots.clone();
        self.config = r.config.clone();
        self.key = r.key.clone();
        self.created = r.created.clone();
        self.shell = r.shell.clone();
        self.cmd_set = r.cmd_set;
        self.rebuilt = r.rebuilt;
        self.pending.clear();
    }

    /// Snapshot directories of every layer, bottom first, unpacking the missing ones.
    pub fn lowers(&mut self, shared: &Shared<'_>) -> Result<Vec<std::path::PathBuf>, BuildError> {
        self.snapshots = super::steps::snapshots(shared, &self.layers, &self.snapshots)?;
        Ok(self.snapshots.clone())
    }

    /// Store the pending layers (oldest first) and record their cache entries; the stage's
    /// layers and config then name their digests. Call it when no mount uses their
    /// directories any more (the end of the stage), also when the stage failed, so steps that
    /// worked stay cached.
    pub fn resolve_pending(&mut self, shared: &Shared<'_>) -> Result<(), BuildError> {
        let mut first_error = None;
        // RUN steps' overlays are volatile: their files reach the disk here, once, before
        // any of their layers is recorded as a cache hit.
        if self
            .pending
            .iter()
            .any(|p| matches!(p.source, rbuild_store::LayerSource::OverlayUpper(_)))
            && let Err(e) = shared.sync_store()
        {
            first_error = Some(e);
            self.pending.iter_mut().for_each(|p| p.wait());
            self.pending.clear();
        }
        for mut p in std::mem::take(&mut self.pending) {
            p.wait();
            let stored = p
                .hashed
                .take()
                .expect("waited for")
                .and_then(|info| {
                    let snapshot = shared.store.adopt_layer_dir(&p.source, &info)?;
                    Ok((info, snapshot))
                })
                .map_err(store_err);
            let (info, snapshot) = match stored {
                Ok(s) => s,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            self.layers[p.slot] = info.diff_id.clone();
            self.snapshots[p.slot] = snapshot;
            self.config.replace_diff_id(&p.placeholder, &info.diff_id);
            let record = super::cache::Record {
                diff_id: Some(info.diff_id.to_string()),
                created: p.created,
                inputs: p.inputs,
            };
            if let Err(e) = shared.records.put(&p.key, &record) {
                first_error.get_or_insert(e);
            }
            shared.record_used(self.stage, &p.key, &record);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Make room for one more layer hashing: with `max` running already, wait for the
    /// oldest (more than a hash per core only queues for the cores and holds buffers).
    pub fn limit_hashing(&mut self, max: usize) {
        let running = self.pending.iter().filter(|p| p.running()).count();
        let mut excess = (running + 1).saturating_sub(max.max(1));
        for p in self.pending.iter_mut().filter(|p| p.running()) {
            if excess == 0 {
                break;
            }
            p.wait();
            excess -= 1;
        }
    }

    /// Record the layer a step with `key` made at `created` (every step makes one).
    pub fn push_layer(
        &mut self,
        created_by: &str,
        layer: Digest,
        snapshot: Option<std::path::PathBuf>,
        key: Digest,
        created: String,
    ) {
        self.config.record(created_by, Some(&layer), &created);
        if self.snapshots.len() == self.layers.len()
            && let Some(s) = snapshot
        {
            self.snapshots.push(s);
        }
        self.layers.push(layer);
        self.key = key;
        self.created = created;
    }
}

/// Build stage `index` of the Dockerfile.
pub(crate) fn build_stage(shared: &Shared<'_>, index: usize) -> Result<StageResult, BuildError> {
    let df = shared.dockerfile;
    let stage = &df.stages[index];
    // BuildKit's labels: the stage's name, `stage-N` when unnamed, nothing for an unnamed last stage.
    let stage_name = match &stage.name {
        Some(n) => n.clone(),
        None if index + 1 == df.stages.len() => String::new(),
        None => format!("stage-{index}"),
    };
    let from = shared.meta.expand_from(&stage.from)?;
    let platform = shared.stage_platform(index)?;
    // With several platforms, BuildKit's labels carry the platform: `[linux/arm64 build 2/3]`.
    let stage_name = if shared.multi {
        format!("{platform} {stage_name}").trim_end().to_string()
    } else {
        stage_name
    };

    // The base image's ONBUILD triggers run first, as if written after FROM.
    let started = Instant::now();
    let mut state = base_state(shared, index, &from.image, &platform)?;
    let triggers = state.config.onbuild();
    let mut instructions: Vec<Located<Instruction>> = Vec::new();
    if !triggers.is_empty() {
        let text = format!("FROM scratch\n{}\n", triggers.join("\n"));
        let parsed = parse_dockerfile(&text)?;
        for mut ins in parsed.stages.into_iter().flat_map(|s| s.instructions) {
            ins.start_line = stage.from.start_line;
            ins.end_line = stage.from.end_line;
            instructions.push(ins);
        }
        state.config.clear("OnBuild");
    }
    instructions.extend(stage.instructions.iter().cloned());

    let total = 1 + instructions
        .iter()
        .filter(|i| is_step(&i.instruction))
        .count();
    let mut position = 1;
    let from_step = StepInfo {
        id: shared.step_ids.fetch_add(1, Ordering::Relaxed) + 1,
        stage: stage_name.clone(),
        index: 1,
        total,
        text: format!("FROM {}", from.image),
        line: stage.from.start_line,
    };
    shared.reporter.step_started(&from_step);
    shared.steps.fetch_add(1, Ordering::Relaxed);
    shared.explained(&from_step, None, None);
    shared
        .reporter
        .step_finished(&from_step, &StepOutcome::Done(started.elapsed()));

    let image_env = state.config.env_pairs();
    let mut scope = StageScope::new(df, shared.meta, &shared.opts.build_args, image_env);
    // The steps before a `TARGET*` arg of a fixed-platform stage are the same for every
    // platform: the first build to get here runs them, the others take its result.
    // Likewise the leading COPY steps of a `FROM scratch` stage built for the target, which
    // make the same layers for every platform: they key on no platform (`neutral`), and
    // the steps after them on the stage's platform again.
    let (prefix, neutral) = match triggers.is_empty() {
        false => (None, false),
        true => match shared.prefix_key(index)? {
            Some(p) => (Some(p), false),
            None => (shared.scratch_prefix_key(index)?, true),
        },
    };
    if neutral && prefix.is_some() {
        let key = base_key(&BaseIdentity::Scratch, &shared.key_platform("any platform"));
        state.key = key.clone();
        state.base = (key, "scratch".into());
    }
    let run = |state: &mut State,
               scope: &mut StageScope<'_>,
               range: std::ops::Range<usize>,
               position: &mut usize|
     -> Result<(), BuildError> {
        for located in &instructions[range] {
            let ins = scope.expand(located)?;
            scope.apply(&ins);
            if is_step(&ins) {
                *position += 1;
                let info = StepInfo {
                    id: shared.step_ids.fetch_add(1, Ordering::Relaxed) + 1,
                    stage: stage_name.clone(),
                    index: *position,
                    total,
                    text: located.original.trim().to_string(),
                    line: located.start_line,
                };
                super::steps::run_step(shared, state, scope, &ins, &info)?;
            } else {
                apply_config(state, scope, &ins, located.start_line)?;
            }
        }
        Ok(())
    };
    let mut start = 0;
    if let Some((key, n)) = prefix {
        let cell = shared.memo_cell(key);
        let mut own_error = None;
        let mut ran_here = false;
        let result = cell.get_or_init(|| {
            ran_here = true;
            let ran = run(&mut state, &mut scope, 0..n, &mut position);
            let resolved = state.resolve_pending(shared);
            match ran.and(resolved) {
                Ok(()) => Ok(Arc::new(state.result())),
                Err(e) => {
                    let text = e.to_string();
                    own_error = Some(e);
                    Err(text)
                }
            }
        });
        if let Some(e) = own_error {
            return Err(e);
        }
        let done = result
            .clone()
            .map_err(|reason| BuildError::SharedStageFailed {
                stage: stage_name.clone(),
                reason,
            })?;
        if !ran_here {
            // The scope (ARG/ENV) and the step positions as if the prefix had run here.
            for located in &instructions[..n] {
                let ins = scope.expand(located)?;
                scope.apply(&ins);
                if is_step(&ins) {
                    position += 1;
                }
            }
            state.restore(&done);
        }
        if neutral {
            let key = base_key(
                &BaseIdentity::Stage(done.key.clone()),
                &shared.key_platform(&platform),
            );
            state.key = key.clone();
            state.base = (key, "the steps shared by every platform".into());
            state.config.set_platform(&platform);
        }
        start = n;
    }
    let ran = run(
        &mut state,
        &mut scope,
        start..instructions.len(),
        &mut position,
    );
    let resolved = state.resolve_pending(shared);
    ran.and(resolved)?;
    Ok(state.result())
}

/// Instructions shown and cached as steps.
fn is_step(ins: &Instruction) -> bool {
    matches!(
        ins,
        Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_) | Instruction::Workdir(_)
    )
}

/// The state a stage starts from: scratch, an earlier stage, or an image.
fn base_state(
    shared: &Shared<'_>,
    index: usize,
    image: &str,
    platform: &str,
) -> Result<State, BuildError> {
    let default_shell = vec!["/bin/sh".to_string(), "-c".to_string()];
    let key_platform = shared.key_platform(platform);
    match &shared.graph.bases[index] {
        Source::Scratch => {
            let key = base_key(&BaseIdentity::Scratch, &key_platform);
            Ok(State {
                created: shared_time(shared, None),
                shell: default_shell,
                ..State::new(index, key, "scratch".into(), false, platform)
            })
        }
        Source::Stage(j) => {
            let r: Arc<StageResult> = shared.results.lock().expect("results")[*j]
                .clone()
                .expect("a stage's dependencies are built first");
            let shell = shell_of(&r.config).unwrap_or(default_shell);
            let key = base_key(&BaseIdentity::Stage(r.key.clone()), &key_platform);
            let name = shared.dockerfile.stages[*j]
                .name
                .clone()
                .unwrap_or_else(|| j.to_string());
            Ok(State {
                layers: r.layers.clone(),
                snapshots: r.snapshots.clone(),
                config: r.config.clone(),
                created: r.created.clone(),
                shell,
                ..State::new(index, key, format!("stage {name}"), r.rebuilt, platform)
            })
        }
        Source::Image(_) => {
            let img = shared.images.image(image, platform)?;
            let layers = img.diff_ids().map_err(store_err)?;
            // Fetched when a step needs the base's files, not now.
            shared.defer_remote_layers(image, &layers);
            let config = ConfigBuilder::new(Some(&img.config_bytes), platform);
            let created = img
                .config
                .created()
                .clone()
                .unwrap_or_else(|| shared_time(shared, None));
            let shell = shell_of(&config).unwrap_or(default_shell);
            let key = base_key(&BaseIdentity::Image(img.id.clone()), &key_platform);
            Ok(State {
                layers,
                config,
                created: shared_time(shared, Some(created)),
                shell,
                ..State::new(index, key, format!("image {}", img.id), false, platform)
            })
        }
    }
}

/// The stage's SHELL from its config, when set.
fn shell_of(config: &ConfigBuilder) -> Option<Vec<String>> {
    config.shell().filter(|s| !s.is_empty())
}

/// A time for the build's records: `SOURCE_DATE_EPOCH` when set, else `known` or now.
pub(crate) fn shared_time(shared: &Shared<'_>, known: Option<String>) -> String {
    if let Some(sde) = shared.opts.source_date_epoch {
        return crate::config::rfc3339(sde, 0);
    }
    known.unwrap_or_else(now)
}

/// The current time, RFC 3339 with nanoseconds.
pub(crate) fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    crate::config::rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// The variables a step's key depends on: ENV and declared ARGs, without the proxy
/// variables (which, as in BuildKit, never invalidate the cache).
pub(crate) fn key_env(scope: &StageScope<'_>) -> Vec<(String, String)> {
    scope
        .run_env()
        .into_iter()
        .filter(|(k, _)| !PROXY_ARGS.contains(&k.as_str()))
        .collect()
}

/// The key of a step of `state`, with the step's own extra inputs; what it was made of goes
/// to `state.step` (with the files of `state.step_files`), for the step's record.
pub(crate) fn key_of(
    state: &mut State,
    scope: &StageScope<'_>,
    ins: &Instruction,
    content: Option<&Digest>,
    inputs: &[Digest],
) -> Digest {
    let env = key_env(scope);
    let user = state.config.user();
    let workdir = state.config.workdir();
    let step = StepInputs {
        parent: &state.key,
        instruction: ins,
        env: &env,
        shell: &state.shell,
        user: &user,
        workdir: &workdir,
        content,
        inputs,
    };
    let doc = step_document(&step);
    let key = key_of_document(&state.key, doc.clone());
    let declared = scope.declared_args();
    let args = env
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| declared.iter().any(|(a, _)| a == k))
        .collect();
    state.step = Some(KeyInputs {
        parent: state.key.to_string(),
        step: doc,
        files: std::mem::take(&mut state.step_files),
        base: (state.key == state.base.0).then(|| state.base.1.clone()),
        args,
    });
    key
}

/// Keys of a `COPY --link` or `ADD --link` step: the cache record's key, which leaves out the parent, the
/// stage's env, shell and user (a linked layer depends only on its instruction, the WORKDIR
/// its destination is resolved against, the selected content and the `--chown` ids), and the
/// key the stage's chain continues with (parent and record key together).
pub(crate) fn link_key_of(
    state: &mut State,
    ins: &Instruction,
    content: Option<&Digest>,
    inputs: &[Digest],
    owner: Option<(u32, u32)>,
) -> (Digest, Digest) {
    let unlinked = Digest::sha256_of(b"copy --link");
    let owner = owner.map(|(u, g)| format!("{u}:{g}")).unwrap_or_default();
    let workdir = state.config.workdir();
    let doc = step_document(&StepInputs {
        parent: &unlinked,
        instruction: ins,
        env: &[],
        shell: &[],
        user: &owner,
        workdir: &workdir,
        content,
        inputs,
    });
    let record = key_of_document(&unlinked, doc.clone());
    state.step = Some(KeyInputs {
        parent: unlinked.to_string(),
        step: doc,
        files: std::mem::take(&mut state.step_files),
        base: None,
        args: Vec::new(),
    });
    let chain = Digest::sha256_of(format!("{}\n{record}", state.key).as_bytes());
    (record, chain)
}

/// Apply an instruction that only changes the config, and record it in the history.
fn apply_config(
    state: &mut State,
    scope: &StageScope<'_>,
    ins: &Instruction,
    line: usize,
) -> Result<(), BuildError> {
    let mut exposed = Vec::new();
    let c = &mut state.config;
    match ins {
        Instruction::Env(_) => {
            c.set_env(
                scope
                    .env()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            );
        }
        Instruction::Label(l) => {
            for kv in &l.labels {
                c.set_label(&kv.key, &kv.value);
            }
        }
        Instruction::Maintainer(m) => c.set_top("author", serde_json::json!(m.name)),
        Instruction::Expose(e) => {
            exposed = e.port_protos().map_err(|message| BuildError::Invalid {
                line,
                message: format!("EXPOSE: {message}"),
            })?;
            for p in &exposed {
                c.add_set_member("ExposedPorts", p);
            }
        }
        Instruction::Volume(v) => {
            for p in &v.paths {
                c.add_set_member("Volumes", p);
            }
        }
        Instruction::User(u) => c.set_string("User", &u.user),
        Instruction::Stopsignal(s) => c.set_string("StopSignal", &s.signal),
        Instruction::Healthcheck(h) => c.set_healthcheck(h, &state.shell),
        Instruction::Shell(s) => {
            state.shell = s.shell.clone();
            c.set_shell(&s.shell);
        }
        Instruction::Cmd(cmd) => {
            c.set_command("Cmd", &cmd.command, &state.shell);
            // As BuildKit (and docker's builder) do for CMD, not for ENTRYPOINT.
            c.set_args_escaped();
            state.cmd_set = true;
        }
        Instruction::Entrypoint(e) => {
            c.set_command("Entrypoint", &e.command, &state.shell);
            if !state.cmd_set {
                c.clear("Cmd");
            }
        }
        Instruction::Onbuild(o) => c.add_onbuild(&o.expression),
        Instruction::Arg(_) => {}
        Instruction::Run(_)
        | Instruction::Copy(_)
        | Instruction::Add(_)
        | Instruction::Workdir(Workdir { .. })
        | Instruction::From(_) => {}
    }
    if let Some(text) = super::history::config_step(ins, &state.shell, &exposed) {
        let created = state.created.clone();
        state.config.record(&text, None, &created);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// A pending layer whose "hashing" ends when `release` is sent to.
    fn pending(n: usize) -> (PendingLayer, mpsc::Sender<()>) {
        let (release, wait) = mpsc::channel::<()>();
        let hashing = std::thread::spawn(move || {
            let _ = wait.recv();
            Ok(rbuild_store::LayerInfo {
                diff_id: Digest::sha256_of(format!("layer {n}").as_bytes()),
                size: n as u64,
            })
        });
        let layer = PendingLayer {
            slot: n,
            placeholder: Digest::sha256_of(b"placeholder"),
            source: rbuild_store::LayerSource::Tree(format!("/nowhere/{n}").into()),
            key: Digest::sha256_of(b"key"),
            created: String::new(),
            inputs: None,
            hashing: Some(hashing),
            hashed: None,
        };
        (layer, release)
    }

    fn state() -> State {
        State::new(
            0,
            Digest::sha256_of(b"base"),
            "scratch".into(),
            false,
            "linux/amd64",
        )
    }

    #[test]
    fn no_more_hashes_run_at_once_than_allowed() {
        let mut s = state();
        let (a, release_a) = pending(0);
        let (b, release_b) = pending(1);
        s.pending.extend([a, b]);
        // Room for a third with three allowed: nothing to wait for.
        s.limit_hashing(3);
        assert!(s.pending.iter().all(PendingLayer::running));
        // Two allowed: the oldest must end first (released a moment later).
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            release_a.send(()).unwrap();
        });
        let started = std::time::Instant::now();
        s.limit_hashing(2);
        assert!(
            started.elapsed() >= Duration::from_millis(90),
            "waited for the oldest"
        );
        assert!(!s.pending[0].running() && s.pending[0].hashed.is_some());
        assert!(s.pending[1].running(), "the newer one still hashes");
        releaser.join().unwrap();
        release_b.send(()).unwrap();
        s.pending[1].wait();
        let got = s.pending[1].hashed.take().unwrap().unwrap();
        assert_eq!(got.size, 1);
    }
}
