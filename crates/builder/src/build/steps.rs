//! The steps that change the filesystem: RUN, COPY, ADD and WORKDIR. Each computes its cache
//! key, reuses the cached layer on a hit, and otherwise runs and commits its layer.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use rbuild_oci::Digest;
use rbuild_parser::instructions::{Add, CommandLine, Copy, Instruction, Run, StageScope};
use rbuild_store::LayerSource;
use rbuild_store::layer::{CreateOptions, ReadFiles};

use super::cache::Record;
use super::stage::{PendingLayer, State, key_of, shared_time};
use super::view::View;
use super::{Shared, history, mounts, store_err};
use crate::context::{BuildContext, EntryKind, Selection, SourceEntry};
use crate::context::{glob_match, has_wildcard};
use crate::copy::{
    CopyOptions, Deferred, Donor, ensure_dir, materialize, materialize_deferring, write_file_list,
};
use crate::error::BuildError;
use crate::lower;
use crate::reporter::{StepInfo, StepOutcome};
use crate::{archive, remote};

/// Run one filesystem step, reporting it.
pub(crate) fn run_step(
    shared: &Shared<'_>,
    state: &mut State,
    scope: &StageScope<'_>,
    ins: &Instruction,
    info: &StepInfo,
) -> Result<(), BuildError> {
    shared.reporter.step_started(info);
    shared.steps.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let result = match ins {
        Instruction::Run(r) => run(shared, state, scope, r, ins, info),
        Instruction::Copy(c) => copy_like(shared, state, scope, ins, info, c),
        Instruction::Add(a) => add(shared, state, scope, a, ins, info),
        Instruction::Workdir(w) => workdir(shared, state, scope, &w.path, ins, info),
        _ => Ok(false),
    };
    match result {
        Ok(true) => {
            shared.cached.fetch_add(1, Ordering::Relaxed);
            shared.reporter.step_finished(info, &StepOutcome::Cached);
            Ok(())
        }
        Ok(false) => {
            let outcome = StepOutcome::Done(started.elapsed());
            shared.reporter.step_finished(info, &outcome);
            Ok(())
        }
        Err(e) => {
            shared
                .reporter
                .step_finished(info, &StepOutcome::Failed(e.to_string()));
            Err(e)
        }
    }
}

/// The cached result of `key`, unless `--no-cache`: the store's record, else an imported
/// one (its layer fetched now, verified, unless the store has it). On a hit the state takes
/// the layer; on a miss the reporter hears why.
fn cache_hit(
    shared: &Shared<'_>,
    state: &mut State,
    key: &Digest,
    created_by: &str,
    info: &StepInfo,
) -> bool {
    let found = if shared.opts.no_cache {
        None
    } else {
        let local = shared
            .records
            .get(shared.store, key)
            .or_else(|| remote_record_hit(shared, key));
        if local.is_some() && !shared.dry_run {
            shared.records.note_use(key);
        }
        local.or_else(|| imported_hit(shared, key))
    };
    match found {
        Some((record, diff_id)) => {
            shared.record_used(state.stage, key, &record);
            state.push_layer(created_by, diff_id, None, key.clone(), record.created);
            state.step = None;
            shared.explained(info, Some(true), None);
            true
        }
        None => {
            let reason = if shared.opts.no_cache {
                "--no-cache".to_string()
            } else {
                let failure = shared.fetch_failure(key);
                let first = (state.key == state.base.0).then_some(state.base.1.as_str());
                let miss = super::imported::Miss {
                    key,
                    parent: &state.key,
                    inputs: state.step.as_ref(),
                    after_rebuilt: state.rebuilt,
                    first,
                };
                super::imported::explain(
                    &shared.records,
                    shared.imported,
                    &miss,
                    failure.as_deref(),
                )
            };
            state.rebuilt = true;
            shared.explained(info, Some(false), Some(reason));
            false
        }
    }
}

/// The store's record for `key` whose layer the store holds only remotely (an earlier build
/// reused it from a lazily imported cache): a hit when the build can fetch such layers
/// ([`super::BuildOptions::remote_layers`]); the layer is fetched when something needs it.
fn remote_record_hit(shared: &Shared<'_>, key: &Digest) -> Option<(Record, Digest)> {
    let fetcher = shared.opts.remote_layers.as_ref()?;
    if shared.fetch_failure(key).is_some() {
        return None;
    }
    let (record, diff_id) = shared.records.find(key)?;
    let remote = shared.store.remote_layer(&diff_id).ok()??;
    if !shared.dry_run {
        let entry = super::CacheEntry {
            key: key.clone(),
            diff_id: diff_id.clone(),
            layer: remote.blob.clone(),
            size: shared.store.layer_size(&diff_id),
            created: record.created.clone(),
            inputs: record.inputs.clone(),
        };
        shared.lazy.lock().expect("lazy layers").insert(
            diff_id.clone(),
            super::LazyLayer {
                entry,
                layers: fetcher.clone(),
                name: remote.location.to_string(),
                base: None,
            },
        );
    }
    Some((record, diff_id))
}

/// An imported record for `key`. Its layer is not fetched now (import is lazy): it is when a
/// later step or the image needs the bytes ([`Shared::materialize`]).
fn imported_hit(shared: &Shared<'_>, key: &Digest) -> Option<(Record, Digest)> {
    if shared.fetch_failure(key).is_some() {
        return None;
    }
    let (import, entry) = shared.imported.get(key)?;
    let record = entry.record();
    if shared.dry_run {
        return Some((record, entry.diff_id.clone()));
    }
    if shared.store.has_blob(&entry.diff_id) {
        // Remembered locally: the next build hits without the import.
        let _ = shared.records.put(key, &record);
    } else {
        shared.lazy.lock().expect("lazy layers").insert(
            entry.diff_id.clone(),
            super::LazyLayer {
                entry: entry.clone(),
                layers: import.layers.clone(),
                name: import.name.clone(),
                base: None,
            },
        );
    }
    Some((record, entry.diff_id.clone()))
}

/// `--explain` after a miss: nothing runs; the step stands for a new layer (a placeholder
/// digest), so the steps after it are looked up under its key.
fn dry_run_miss(state: &mut State, created_by: &str, key: Digest) {
    let placeholder = Digest::sha256_of(format!("not built {key}").as_bytes());
    let created = state.created.clone();
    state.push_layer(created_by, placeholder, None, key, created);
    state.step = None;
}

/// Store the layer a step made in directory `source` (an empty one too), remember it in
/// the cache, and add it to the stage. The directory becomes the layer's snapshot when it can.
/// `fill` holds a COPY's large files, still empty, filled while the tar is hashed.
fn commit_layer(
    shared: &Shared<'_>,
    state: &mut State,
    created_by: &str,
    source: LayerSource,
    key: Digest,
    fill: Option<&mut Deferred>,
) -> Result<(), BuildError> {
    let (LayerSource::Tree(dir) | LayerSource::OverlayUpper(dir)) = &source else {
        unreachable!("steps commit directories")
    };
    let created = shared_time(shared, None);
    let sde = shared.opts.source_date_epoch;
    let fill = fill.filter(|d| !d.is_empty());
    if matches!(source, LayerSource::OverlayUpper(_)) {
        shared.start_writeback();
    }
    // With every lower known, a complete directory can serve the next steps before its
    // digest is known: hash it on another thread.
    if sde.is_none() && fill.is_none() && state.snapshots.len() == state.layers.len() {
        let placeholder = Digest::sha256_of(format!("pending layer {}", dir.display()).as_bytes());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        state.limit_hashing(cores);
        let hashed = source.clone();
        let hashing = std::thread::Builder::new()
            .name("rbuild-layer-hash".into())
            .spawn(move || rbuild_store::hash_layer_dir(&hashed, &mut ReadFiles))
            .map_err(|e| BuildError::io(dir, e))?;
        let snapshot = dir.clone();
        state.push_layer(
            created_by,
            placeholder.clone(),
            Some(snapshot),
            key.clone(),
            created.clone(),
        );
        let inputs = state.step.take();
        state.pending.push(PendingLayer {
            slot: state.layers.len() - 1,
            placeholder,
            source,
            key,
            created,
            inputs,
            hashing: Some(hashing),
            hashed: None,
        });
        return Ok(());
    }
    // A step that changed nothing still makes a layer (an empty tar), as BuildKit's do.
    let (diff_id, snapshot) = match sde {
        // The directory becomes the layer; its tar is only hashed now and made again
        // from the snapshot when an export or push needs the bytes.
        None => {
            // With nothing deferred, every file is read from the directory.
            let mut nothing = Deferred::default();
            let fill = fill.unwrap_or(&mut nothing);
            let info = rbuild_store::hash_layer_dir(&source, fill).map_err(store_err)?;
            fill.finish()?;
            let snapshot = shared
                .store
                .adopt_layer_dir(&source, &info)
                .map_err(store_err)?;
            (info.diff_id, Some(snapshot))
        }
        // Clamped layers differ from the directory in their times: stored as a tar, and
        // unpacked when a later step needs them.
        Some(epoch) => {
            let opts = CreateOptions {
                source_date_epoch: Some(epoch.max(0) as u64),
            };
            let info = shared.store.add_layer(&source, &opts).map_err(store_err)?;
            (info.diff_id, None)
        }
    };
    let record = Record {
        diff_id: Some(diff_id.to_string()),
        created: created.clone(),
        inputs: state.step.take(),
    };
    // A RUN step's overlay was volatile: its files reach the disk before the record.
    if matches!(source, LayerSource::OverlayUpper(_)) {
        shared.sync_store()?;
    }
    shared.records.put(&key, &record)?;
    shared.record_used(state.stage, &key, &record);
    state.push_layer(created_by, diff_id, snapshot, key, created);
    Ok(())
}

/// Commit a staging tree (COPY, ADD, WORKDIR) as the step's layer; it becomes the snapshot.
fn commit_tree(
    shared: &Shared<'_>,
    state: &mut State,
    created_by: &str,
    staging: &Path,
    key: Digest,
    fill: Option<&mut Deferred>,
) -> Result<(), BuildError> {
    let source = LayerSource::Tree(staging.to_path_buf());
    commit_layer(shared, state, created_by, source, key, fill)
}

fn step_dir(shared: &Shared<'_>, what: &str, info: &StepInfo) -> PathBuf {
    shared.work.join(format!("{what}-{}", info.id))
}

fn run(
    shared: &Shared<'_>,
    state: &mut State,
    scope: &StageScope<'_>,
    r: &Run,
    ins: &Instruction,
    info: &StepInfo,
) -> Result<bool, BuildError> {
    let dir = step_dir(shared, "run", info);
    let (args, script) = run_argv(r, &state.shell);
    let created_by = history::run(&args, &scope.declared_args());
    let inputs = mounts::inputs(shared, r)?;
    let key = key_of(state, scope, ins, None, &inputs);
    if cache_hit(shared, state, &key, &created_by, info) {
        return Ok(true);
    }
    if shared.dry_run {
        dry_run_miss(state, &created_by, key);
        return Ok(false);
    }
    let lowers = state.lowers(shared)?;
    let mut prepared = mounts::prepare(shared, r, &dir, &state.config.workdir(), info.line)?;
    if let Some((name, body)) = script {
        let pipes = dir.join("pipes");
        std::fs::create_dir_all(&pipes).map_err(|e| BuildError::io(&pipes, e))?;
        let file = pipes.join(&name);
        std::fs::write(&file, body).map_err(|e| BuildError::io(&file, e))?;
        set_mode(&file, 0o755)?;
        prepared
            .mounts
            .push(rbuild_runner::spec::bind_mount(&pipes, "/dev/pipes", true));
    }
    let user = state.config.user();
    let user = if user.is_empty() {
        None
    } else {
        Some(identity(&lowers, &user).map_err(|e| BuildError::Invalid {
            line: info.line,
            message: e.to_string(),
        })?)
    };
    let joined = match (&shared.opts.network, r.network.as_deref()) {
        (super::NetworkMode::Joined { path, resolv_conf }, None | Some("default")) => {
            Some((path.clone(), resolv_conf.clone()))
        }
        _ => None,
    };
    let resolv_conf = joined.as_ref().map(|(_, r)| r.clone());
    let network = match r.network.as_deref() {
        None | Some("default") => shared.opts.network.runner(),
        Some("host") => rbuild_runner::Network::Host,
        Some("none") => rbuild_runner::Network::None,
        Some(other) => {
            return Err(BuildError::Invalid {
                line: info.line,
                message: format!("RUN --network={other}: expected default, none or host"),
            });
        }
    };
    let mut env: Vec<String> = scope
        .run_env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.extend(prepared.env.iter().map(|(k, v)| format!("{k}={v}")));
    let step = crate::run::RunStep {
        id: format!("rbuild-build-{}-{}", std::process::id(), info.id),
        lower: lowers,
        args,
        env,
        cwd: state.config.workdir(),
        user,
        network_namespace: match (network, joined) {
            (_, Some((path, _))) => Some(path),
            (rbuild_runner::Network::None, None)
                if crate::run::isolation() == crate::run::Isolation::Chroot =>
            {
                return Err(BuildError::Invalid {
                    line: info.line,
                    message: "not supported yet with --isolation chroot: RUN without network (--network none needs a network namespace)".into(),
                });
            }
            (rbuild_runner::Network::None, None) => Some(shared.loopback_network()?),
            (rbuild_runner::Network::Host, None) => None,
        },
        network,
        mounts: prepared.mounts.clone(),
        platform: state.platform.clone(),
        resolv_conf,
    };
    let mut tail = Tail::default();
    let outcome = crate::run::run_step(&step, &dir, |chunk| {
        shared.reporter.step_output(info, chunk);
        tail.push(chunk);
    })?;
    drop(prepared);
    match outcome {
        Ok(upper) => {
            commit_layer(
                shared,
                state,
                &created_by,
                LayerSource::OverlayUpper(upper),
                key,
                None,
            )?;
            Ok(false)
        }
        Err(code) => Err(BuildError::StepFailed {
            step: info.label(),
            line: info.line,
            code,
            output: tail.lines(),
        }),
    }
}

/// The argv of a RUN, and for a lone heredoc starting with `#!` the script file to provide at
/// `/dev/pipes/NAME` (BuildKit's rules for heredocs).
fn run_argv(r: &Run, shell: &[String]) -> (Vec<String>, Option<(String, String)>) {
    let with_shell = |cmd: String| {
        let mut v = shell.to_vec();
        v.push(cmd);
        v
    };
    match &r.command {
        CommandLine::Exec(v) => (v.clone(), None),
        CommandLine::Shell(s) if r.heredocs.is_empty() => (with_shell(s.clone()), None),
        CommandLine::Shell(s) => {
            let first = &r.heredocs[0];
            if r.heredocs.len() == 1 && is_lone_heredoc(s, &first.name) {
                let body = first.body();
                if body.starts_with("#!") {
                    let path = format!("/dev/pipes/{}", first.name);
                    return (vec![path], Some((first.name.clone(), body)));
                }
                return (with_shell(body), None);
            }
            let mut full = s.clone();
            for h in &r.heredocs {
                full.push('\n');
                full.push_str(&h.content);
                full.push_str(&h.name);
            }
            (with_shell(full), None)
        }
    }
}

/// Whether a RUN's command line is nothing but its heredoc (`<<EOF`, `<<-"EOF"`).
fn is_lone_heredoc(line: &str, name: &str) -> bool {
    let Some(rest) = line.trim().strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let unquoted: String = rest.chars().filter(|c| *c != '"' && *c != '\'').collect();
    unquoted == name
}

/// The last lines of a step's output, for the error message of a failed RUN.
#[derive(Debug, Default)]
struct Tail {
    buf: Vec<u8>,
}

impl Tail {
    const KEEP: usize = 64 * 1024;

    fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > 2 * Self::KEEP {
            self.buf.drain(..self.buf.len() - Self::KEEP);
        }
    }

    fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.buf);
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(10);
        lines[start..].iter().map(|l| l.to_string()).collect()
    }
}

/// A COPY/ADD destination made absolute against the working directory (a trailing `/` kept).
fn absolute_dest(dest: &str, workdir: &str) -> String {
    if dest.starts_with('/') {
        return dest.to_string();
    }
    let base = workdir.trim_end_matches('/');
    let rel = dest.strip_prefix("./").unwrap_or(dest);
    if rel == "." || rel.is_empty() {
        return format!("{base}/");
    }
    format!("{base}/{rel}")
}

/// The sources of a COPY/ADD from the build context, heredocs included.
fn select_sources(
    context: &BuildContext,
    keyword: &str,
    c: &Copy,
    dest: &str,
    dir: &Path,
) -> Result<Selection, BuildError> {
    let (sources, heredocs) = (&c.sources, &c.heredocs);
    let (docs, files): (Vec<&String>, Vec<&String>) = sources
        .iter()
        .partition(|s| s.starts_with("<<") && heredocs.iter().any(|h| is_lone_heredoc(s, &h.name)));
    let files: Vec<String> = files.into_iter().cloned().collect();
    let mut selection = if files.is_empty() {
        Selection {
            entries: Vec::new(),
            dest_is_dir: dest.ends_with('/') || sources.len() > 1,
        }
    } else {
        context.select(keyword, &files, dest, &c.exclude, c.parents)?
    };
    if !docs.is_empty() {
        let hd = dir.join("heredocs");
        std::fs::create_dir_all(&hd).map_err(|e| BuildError::io(&hd, e))?;
        for s in docs {
            let h = heredocs
                .iter()
                .find(|h| is_lone_heredoc(s, &h.name))
                .expect("partitioned on this");
            let path = hd.join(&h.name);
            std::fs::write(&path, h.body()).map_err(|e| BuildError::io(&path, e))?;
            set_mode(&path, 0o644)?;
            selection.entries.push(SourceEntry {
                path,
                context_path: h.name.clone(),
                dest_path: h.name.clone(),
                kind: EntryKind::File,
                meta: None,
            });
        }
        selection.dest_is_dir |= sources.len() > 1;
        selection
            .entries
            .sort_by(|a, b| a.dest_path.cmp(&b.dest_path));
    }
    Ok(selection)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| BuildError::io(path, e))
}

/// Resolve a user spec (`name`, `uid`, `name:group`, …) against the stage's `/etc/passwd` and
/// `/etc/group`, as the runner resolves USER.
fn identity(
    lowers: &[PathBuf],
    spec: &str,
) -> Result<rbuild_runner::Identity, rbuild_runner::Error> {
    let passwd = lower::read_file(lowers, "/etc/passwd");
    let group = lower::read_file(lowers, "/etc/group");
    rbuild_runner::resolve_user(spec, passwd.as_deref(), group.as_deref())
}

/// `--chown=user[:group]` as ids, names looked up in the stage's `/etc/passwd` and
/// `/etc/group`; without a group the gid is the uid (docker's rule).
fn owner(
    spec: Option<&str>,
    lowers: &[PathBuf],
    line: usize,
) -> Result<Option<(u32, u32)>, BuildError> {
    let Some(spec) = spec.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let id = identity(lowers, spec).map_err(|e| BuildError::Invalid {
        line,
        message: format!("--chown={spec}: {e}"),
    })?;
    let gid = if spec.contains(':') { id.gid } else { id.uid };
    Ok(Some((id.uid, gid)))
}

fn chmod(spec: Option<&str>, line: usize) -> Result<Option<u32>, BuildError> {
    spec.map(|s| {
        u32::from_str_radix(s, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| BuildError::Invalid {
                line,
                message: format!("--chmod={s}: expected an octal mode such as 0755"),
            })
    })
    .transpose()
}

/// Where `--from=NAME` reads: a stage's result or an image, as layers plus an identity.
fn from_source(
    shared: &Shared<'_>,
    name: &str,
) -> Result<(Vec<Digest>, Vec<PathBuf>, Digest), BuildError> {
    let df = shared.dockerfile;
    if let Some((i, _)) = df.stage(name) {
        let r = shared.results.lock().expect("results")[i]
            .clone()
            .ok_or_else(|| BuildError::BadStageReference {
                reference: name.to_string(),
                reason: "the stage is not built before this one".into(),
            })?;
        return Ok((r.layers.clone(), r.snapshots.clone(), r.key.clone()));
    }
    if name.eq_ignore_ascii_case("scratch") {
        return Ok((Vec::new(), Vec::new(), Digest::sha256_of(b"scratch")));
    }
    let img = shared.images.image(name, &shared.platform)?;
    let layers = img.diff_ids().map_err(store_err)?;
    shared.defer_remote_layers(name, &layers);
    Ok((layers, Vec::new(), img.id.clone()))
}

/// The identity of `--from=NAME` for cache keys: a stage's key or an image's ID.
pub(crate) fn from_identity(shared: &Shared<'_>, name: &str) -> Result<Digest, BuildError> {
    Ok(from_source(shared, name)?.2)
}

/// Snapshot directories for `layers`, reusing the known prefix.
pub(crate) fn snapshots(
    shared: &Shared<'_>,
    layers: &[Digest],
    known: &[PathBuf],
) -> Result<Vec<PathBuf>, BuildError> {
    let mut out = known.to_vec();
    for d in &layers[out.len().min(layers.len())..] {
        shared.materialize(d)?;
        out.push(shared.store.snapshot(d).map_err(store_err)?);
    }
    Ok(out)
}

/// A read-only view of `--from=NAME`'s filesystem at `at`.
pub(crate) fn mount_from(
    shared: &Shared<'_>,
    name: &str,
    at: &Path,
) -> Result<(View, Digest), BuildError> {
    let (layers, known, id) = from_source(shared, name)?;
    let dirs = snapshots(shared, &layers, &known)?;
    Ok((View::mount(&dirs, at)?, id))
}

fn copy_like(
    shared: &Shared<'_>,
    state: &mut State,
    scope: &StageScope<'_>,
    ins: &Instruction,
    info: &StepInfo,
    c: &Copy,
) -> Result<bool, BuildError> {
    // Made by whatever first writes under it (heredocs, a --from view, the staging tree),
    // so a cache hit makes no directory.
    let dir = step_dir(shared, "copy", info);
    let dest = absolute_dest(&c.dest, &state.config.workdir());
    let created_by = history::copy(
        ins.keyword(),
        c.parents,
        c.chown.as_deref(),
        c.chmod.as_deref(),
        &c.sources,
        &c.dest,
    );
    let keyword = ins.keyword();
    // From the context: the key holds the selected files' content. From a stage or image: its
    // identity (the stage's key or the image ID) stands for the content.
    let (selection, content, inputs) = match &c.from {
        None => {
            let sel = select_sources(shared.context, keyword, c, &dest, &dir)?;
            let (digest, files) = {
                let mut cache = shared.digests.lock();
                crate::cache_key::selection_files(&sel, &mut cache)?
            };
            state.step_files = files;
            (Some(sel), Some(digest), Vec::new())
        }
        // The second input marks records made since COPY --from keeps the sources' owners
        // (earlier ones hold layers whose files were made 0:0).
        Some(from) => (
            None,
            None,
            vec![
                from_identity(shared, from)?,
                Digest::sha256_of(b"rbuild: COPY --from keeps owners"),
            ],
        ),
    };
    let keys = CopyKeys::of(
        shared,
        state,
        scope,
        ins,
        content.as_ref(),
        &inputs,
        c.link,
        c.chown.as_deref(),
        info.line,
    )?;
    if keys.cached(shared, state, &created_by, info) {
        return Ok(true);
    }
    if shared.dry_run {
        dry_run_miss(state, &created_by, keys.record.clone());
        keys.continue_chain(state);
        return Ok(false);
    }
    let (lowers, owner) = keys.base(shared, state, c.chown.as_deref(), info.line)?;
    // Symlinks on the destination's way are followed, as BuildKit does: `COPY f /linkdir/`
    // writes into the link's target and leaves the link.
    // (Selections depend only on the destination's trailing `/`, which is kept.)
    let dest = lower::resolve(&lowers, &dest);
    let (selection, _view) = match (selection, &c.from) {
        (Some(s), _) => (s, None),
        (None, Some(from)) => {
            let (view, _) = mount_from(shared, from, &dir.join("from"))?;
            let ctx = BuildContext::plain(view.path())?;
            let sel = ctx.select(keyword, &c.sources, &dest, &c.exclude, c.parents)?;
            (sel, Some(view))
        }
        (None, None) => unreachable!("a selection exists without --from"),
    };
    let mode = chmod(c.chmod.as_deref(), info.line)?;
    let staging = dir.join("layer");
    std::fs::create_dir_all(&staging).map_err(|e| BuildError::io(&staging, e))?;
    // A COPY from the context whose layer becomes its snapshot lists its files' digests, so
    // a later COPY under the same parent can link the unchanged ones from it ([`Donor`]).
    let snapshotted = shared.opts.source_date_epoch.is_none();
    let digests = match (&c.from, snapshotted) {
        (None, true) => {
            let mut cache = shared.digests.lock();
            Some(crate::cache_key::selection_digests(&selection, &mut cache)?)
        }
        _ => None,
    };
    let donor = digests.as_ref().and_then(|_| donor(shared, state));
    let opts = CopyOptions {
        dest: &dest,
        owner,
        keep_owner: c.from.is_some(),
        chmod: mode,
        lower: &lowers,
        digests: digests.as_deref(),
        donor: donor.as_ref(),
    };
    // Large files are filled as the layer is hashed, unless SOURCE_DATE_EPOCH asks for a
    // stored (clamped) tar.
    let mut fill = if snapshotted {
        let copied = materialize_deferring(&selection, &opts, &staging)?;
        if digests.is_some() {
            write_file_list(&shared.records.file_list(&keys.record), &copied.files)?;
        }
        Some(copied.deferred)
    } else {
        materialize(&selection, &opts, &staging)?;
        None
    };
    commit_tree(
        shared,
        state,
        &created_by,
        &staging,
        keys.record.clone(),
        fill.as_mut(),
    )?;
    drop(_view);
    keys.continue_chain(state);
    Ok(false)
}

/// The layer of the latest COPY under this step's parent that listed its files, to link
/// unchanged files from (never with `--no-cache`, which reuses nothing of earlier builds).
fn donor(shared: &Shared<'_>, state: &State) -> Option<Donor> {
    if shared.opts.no_cache {
        return None;
    }
    let parent: Digest = state.step.as_ref()?.parent.parse().ok()?;
    let mut siblings = shared.records.by_parent(&parent);
    siblings.sort_by(|a, b| b.1.created.cmp(&a.1.created));
    siblings.into_iter().find_map(|(key, record)| {
        let list = shared.records.file_list(&key);
        if !list.exists() {
            return None;
        }
        let diff_id: Digest = record.diff_id?.parse().ok()?;
        let dir = shared.store.existing_snapshot(&diff_id)?;
        Donor::load(dir, &list)
    })
}

/// The keys of a COPY or ADD. With `--link` (BuildKit's rule) the layer is made apart from
/// the stage below it: its cache record is keyed without the parent, so it is reused whatever
/// the earlier steps were, while the stage's chain key still follows the parent; it gets new
/// parents and no existing-directory rule. Its `--chown` ids are part of that key, so they are
/// resolved first (once).
struct CopyKeys {
    /// The step's cache record.
    record: Digest,
    /// `--link`: the key the stage continues with, and the resolved `--chown` ids.
    linked: Option<(Digest, Owner)>,
}

/// `--chown` as resolved ids (`None`: root).
type Owner = Option<(u32, u32)>;

impl CopyKeys {
    #[allow(clippy::too_many_arguments)]
    fn of(
        shared: &Shared<'_>,
        state: &mut State,
        scope: &StageScope<'_>,
        ins: &Instruction,
        content: Option<&Digest>,
        inputs: &[Digest],
        link: bool,
        chown: Option<&str>,
        line: usize,
    ) -> Result<CopyKeys, BuildError> {
        if !link {
            let record = key_of(state, scope, ins, content, inputs);
            return Ok(CopyKeys {
                record,
                linked: None,
            });
        }
        // Only `--chown` names are resolved against the stage's files: without one, a cached
        // step needs no layer's bytes (nor are lazily held ones fetched for it). A dry run has
        // no layers for the steps it did not run: names resolve against none.
        let lowers = match chown
            .filter(|c| !c.is_empty())
            .map(|_| state.lowers(shared))
        {
            None => Vec::new(),
            Some(Err(_)) if shared.dry_run => Vec::new(),
            Some(other) => other?,
        };
        let ids = owner(chown, &lowers, line)?;
        let (record, chain) = super::stage::link_key_of(state, ins, content, inputs, ids);
        Ok(CopyKeys {
            record,
            linked: Some((chain, ids)),
        })
    }

    /// The stage's directories the step sees (none when linked) and the owner of what it
    /// writes.
    fn base(
        &self,
        shared: &Shared<'_>,
        state: &mut State,
        chown: Option<&str>,
        line: usize,
    ) -> Result<(Vec<PathBuf>, Owner), BuildError> {
        match &self.linked {
            Some((_, ids)) => Ok((Vec::new(), *ids)),
            None => {
                let lowers = state.lowers(shared)?;
                let ids = owner(chown, &lowers, line)?;
                Ok((lowers, ids))
            }
        }
    }

    /// Whether the step is cached: the state then has its layer (and, linked, its chain key).
    fn cached(
        &self,
        shared: &Shared<'_>,
        state: &mut State,
        created_by: &str,
        info: &StepInfo,
    ) -> bool {
        let hit = cache_hit(shared, state, &self.record, created_by, info);
        if hit {
            self.continue_chain(state);
        }
        hit
    }

    /// After the step (run or cached): a linked step's chain key.
    fn continue_chain(&self, state: &mut State) {
        if let Some((chain, _)) = &self.linked {
            state.key = chain.clone();
        }
    }
}

fn add(
    shared: &Shared<'_>,
    state: &mut State,
    scope: &StageScope<'_>,
    a: &Add,
    ins: &Instruction,
    info: &StepInfo,
) -> Result<bool, BuildError> {
    let dir = step_dir(shared, "add", info);
    std::fs::create_dir_all(&dir).map_err(|e| BuildError::io(&dir, e))?;
    let dest = absolute_dest(&a.dest, &state.config.workdir());
    let created_by = history::copy(
        "ADD",
        false,
        a.chown.as_deref(),
        a.chmod.as_deref(),
        &a.sources,
        &a.dest,
    );
    let (urls, locals): (Vec<String>, Vec<String>) =
        a.sources.iter().cloned().partition(|s| remote::is_url(s));
    let checksum = match &a.checksum {
        None => None,
        Some(_) if urls.is_empty() => {
            return Err(BuildError::Invalid {
                line: info.line,
                message: "ADD --checksum needs an http(s) source".into(),
            });
        }
        Some(c) => Some(c.parse::<Digest>().map_err(|e| BuildError::Invalid {
            line: info.line,
            message: format!("ADD --checksum={c}: {e}"),
        })?),
    };
    let as_copy = Copy {
        sources: locals.clone(),
        dest: a.dest.clone(),
        from: None,
        chown: a.chown.clone(),
        chmod: a.chmod.clone(),
        link: a.link,
        parents: false,
        exclude: a.exclude.clone(),
        heredocs: a.heredocs.clone(),
    };
    let mut selection = if locals.is_empty() {
        Selection {
            entries: Vec::new(),
            dest_is_dir: dest.ends_with('/'),
        }
    } else {
        select_sources(shared.context, "ADD", &as_copy, &dest, &dir)?
    };
    if a.sources.len() > 1 {
        if !dest.ends_with('/') {
            return Err(BuildError::DestinationNotDirectory {
                keyword: "ADD".into(),
            });
        }
        selection.dest_is_dir = true;
    }
    // A URL with --checksum is keyed without downloading; otherwise by what it served.
    let mut remote_keys = Vec::new();
    let mut downloads: Vec<(String, String, Option<PathBuf>)> = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let name = remote::file_name(url);
        match &checksum {
            Some(c) => {
                remote_keys.push(Digest::sha256_of(format!("{url}\n{c}").as_bytes()));
                downloads.push((url.clone(), name, None));
            }
            None => {
                let path = dir.join(format!("remote-{i}")).join(&name);
                let got = remote::fetch(url, &remote::FetchOptions::default(), &path)?;
                remote_keys.push(Digest::sha256_of(
                    format!("{url}\n{}\n{:?}", got.digest, got.last_modified).as_bytes(),
                ));
                downloads.push((url.clone(), name, Some(path)));
            }
        }
    }
    let (content, files) = {
        let mut cache = shared.digests.lock();
        crate::cache_key::selection_files(&selection, &mut cache)?
    };
    state.step_files = files;
    let keys = CopyKeys::of(
        shared,
        state,
        scope,
        ins,
        Some(&content),
        &remote_keys,
        a.link,
        a.chown.as_deref(),
        info.line,
    )?;
    if keys.cached(shared, state, &created_by, info) {
        return Ok(true);
    }
    if shared.dry_run {
        dry_run_miss(state, &created_by, keys.record.clone());
        keys.continue_chain(state);
        return Ok(false);
    }
    for (i, (url, name, path)) in downloads.into_iter().enumerate() {
        let path = match path {
            Some(p) => p,
            None => {
                let p = dir.join(format!("remote-{i}")).join(&name);
                let opts = remote::FetchOptions {
                    checksum: checksum.clone(),
                    ..Default::default()
                };
                remote::fetch(&url, &opts, &p)?;
                p
            }
        };
        selection.entries.push(SourceEntry {
            path,
            context_path: url,
            dest_path: name,
            kind: EntryKind::File,
            meta: None,
        });
    }
    // Local archives named at the top level are unpacked into the destination (unless
    // --unpack=false); everything else is copied as COPY would.
    let unpack = a.unpack.unwrap_or(true);
    let top_level = |e: &SourceEntry| {
        locals.iter().any(|s| {
            let s = s.trim_start_matches("./").trim_start_matches('/');
            e.context_path == s || (has_wildcard(s) && glob_match(s, &e.context_path))
        })
    };
    let (archives, plain): (Vec<SourceEntry>, Vec<SourceEntry>) =
        selection.entries.into_iter().partition(|e| {
            unpack
                && e.kind == EntryKind::File
                && !remote::is_url(&e.context_path)
                && top_level(e)
                && archive::is_archive(&e.path)
        });
    let plain = Selection {
        entries: plain,
        dest_is_dir: selection.dest_is_dir,
    };
    let (lowers, owner) = keys.base(shared, state, a.chown.as_deref(), info.line)?;
    // Symlinks on the destination's way are followed, as for COPY.
    let dest = lower::resolve(&lowers, &dest);
    let mode = chmod(a.chmod.as_deref(), info.line)?;
    let staging = dir.join("layer");
    std::fs::create_dir_all(&staging).map_err(|e| BuildError::io(&staging, e))?;
    let opts = CopyOptions {
        dest: &dest,
        owner,
        keep_owner: false,
        chmod: mode,
        lower: &lowers,
        digests: None,
        donor: None,
    };
    materialize(&plain, &opts, &staging)?;
    if !archives.is_empty() {
        let target = dest.trim_end_matches('/');
        ensure_dir(&staging, target, &opts)?;
        let into = staging.join(target.trim_start_matches('/'));
        for e in &archives {
            archive::extract(
                &e.path,
                &into,
                &archive::ExtractOptions {
                    owner,
                    ..Default::default()
                },
            )?;
        }
    }
    commit_tree(
        shared,
        state,
        &created_by,
        &staging,
        keys.record.clone(),
        None,
    )?;
    keys.continue_chain(state);
    Ok(false)
}

fn workdir(
    shared: &Shared<'_>,
    state: &mut State,
    scope: &StageScope<'_>,
    path: &str,
    ins: &Instruction,
    info: &StepInfo,
) -> Result<bool, BuildError> {
    let current = state.config.workdir();
    let path = clean_path(&if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", current.trim_end_matches('/'))
    });
    let key = key_of(state, scope, ins, None, &[]);
    state.config.set_string("WorkingDir", &path);
    let created_by = format!("WORKDIR {path}");
    if path == "/" {
        // Nothing to create: BuildKit records the step without a layer.
        let created = state.created.clone();
        state.config.record(&created_by, None, &created);
        state.step = None;
        shared.explained(info, None, None);
        return Ok(false);
    }
    if cache_hit(shared, state, &key, &created_by, info) {
        return Ok(true);
    }
    if shared.dry_run {
        dry_run_miss(state, &created_by, key);
        return Ok(false);
    }
    let lowers = state.lowers(shared)?;
    let staging = step_dir(shared, "workdir", info);
    std::fs::create_dir_all(&staging).map_err(|e| BuildError::io(&staging, e))?;
    // A WORKDIR through a symlink creates (or finds) the link's target; the link stays.
    let path = lower::resolve(&lowers, &path);
    if !lower::is_dir(&lowers, &path) {
        // New directories belong to the stage's USER, as BuildKit makes them.
        let user = state.config.user();
        let ids = (!user.is_empty())
            .then(|| identity(&lowers, &user).ok())
            .flatten()
            .map(|i| (i.uid, i.gid));
        let opts = CopyOptions {
            dest: &path,
            owner: ids,
            keep_owner: false,
            chmod: None,
            lower: &lowers,
            digests: None,
            donor: None,
        };
        ensure_dir(&staging, &path, &opts)?;
    }
    commit_tree(shared, state, &created_by, &staging, key, None)?;
    Ok(false)
}

/// `path` with `.` and `..` components resolved (never above `/`).
pub(crate) fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_resolve_against_workdir() {
        assert_eq!(absolute_dest("/abs", "/w"), "/abs");
        assert_eq!(absolute_dest("rel", "/w"), "/w/rel");
        assert_eq!(absolute_dest("rel/", "/w/"), "/w/rel/");
        assert_eq!(absolute_dest(".", "/w"), "/w/");
        assert_eq!(absolute_dest("./x", "/"), "/x");
    }

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(clean_path("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_path("/../.."), "/");
    }

    #[test]
    fn lone_heredocs_are_recognised() {
        assert!(is_lone_heredoc("<<EOF", "EOF"));
        assert!(is_lone_heredoc("<<-\"EOF\"", "EOF"));
        assert!(!is_lone_heredoc("cat <<EOF", "EOF"));
        assert!(!is_lone_heredoc("<<EOF > file", "EOF"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let mut t = Tail::default();
        for i in 0..30 {
            t.push(format!("line {i}\n").as_bytes());
        }
        let lines = t.lines();
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[9], "line 29");
        assert_eq!(lines[0], "line 20");
    }

    #[test]
    fn chmod_must_be_octal() {
        assert_eq!(chmod(Some("755"), 1).unwrap(), Some(0o755));
        assert!(chmod(Some("9z"), 1).is_err());
        assert!(chmod(Some("77777"), 1).is_err());
        assert_eq!(chmod(None, 1).unwrap(), None);
    }
}
