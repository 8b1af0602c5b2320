//! The build driver: a parsed Dockerfile, its build context and options in, an image in the
//! store out. Stages are built in dependency batches (independent stages at the same time),
//! each step keyed by [`crate::cache_key`] and looked up in the step cache before it runs; RUN
//! steps run through the runner and COPY/ADD steps write a layer tree, and every new layer goes
//! to the store, whose snapshots then serve as the next steps' lower directories.

mod cache;
mod history;
mod imported;
mod mounts;
mod stage;
mod steps;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rbuild_oci::{Digest, Reference};
use rbuild_parser::instructions::{MetaScope, Platforms, parse_dockerfile, unused_build_args};
use rbuild_runner::{LoopbackNetwork, Network};
use rbuild_store::{Image, Store};

pub use cache::{KeyInputs, Record, Records};
pub use imported::{CacheEntry, CacheImport, ExplainedStep, LayerFetcher, MountEntry, UsedRecord};

use crate::checksum::DigestCache;
use crate::config::ConfigBuilder;
use crate::context::BuildContext;
use crate::error::BuildError;
use crate::graph::StageGraph;
use crate::reporter::Reporter;

/// Where a `--secret` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// A file on the host (`src=PATH`).
    File(PathBuf),
    /// A value (`env=VAR`, read by the CLI).
    Value(Vec<u8>),
}

/// Finds the images a build starts from (`FROM image`, `COPY --from=image`).
pub trait ImageSource: Sync {
    /// The image `reference` for `platform`, from the store or fetched into it.
    fn image(&self, reference: &str, platform: &str) -> Result<Image, BuildError>;
}

/// Images from the store only: a missing image is an error.
#[derive(Debug, Clone, Copy)]
pub struct StoreImages<'a>(pub &'a Store);

impl ImageSource for StoreImages<'_> {
    fn image(&self, reference: &str, _platform: &str) -> Result<Image, BuildError> {
        self.0
            .resolve(reference)
            .map_err(|e| BuildError::ImageNotFound {
                reference: reference.to_string(),
                reason: e.to_string(),
            })
    }
}

/// What to build and how.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// Where the Dockerfile is (for `<Dockerfile>.dockerignore`); `None` for stdin.
    pub dockerfile_path: Option<PathBuf>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build (default the last).
    pub target: Option<String>,
    /// `--no-cache`: run every step.
    pub no_cache: bool,
    /// The default network of RUN steps (`host` unless `--network none`).
    pub network: NetworkMode,
    /// `--label`s for the final image.
    pub labels: Vec<(String, String)>,
    /// `--platform` (default the host's).
    pub platform: Option<String>,
    /// `--secret`s by id.
    pub secrets: BTreeMap<String, Secret>,
    /// `SOURCE_DATE_EPOCH`: clamps every time written into new layers, config and history.
    pub source_date_epoch: Option<i64>,
    /// `-t` names for the image.
    pub tags: Vec<Reference>,
    /// `--cache-from`: caches imported (read by the front end), consulted after the store's
    /// own records.
    pub cache_from: Vec<CacheImport>,
    /// `--cache-to type=inline`: the records of the image's own layers go into its config
    /// (under [`INLINE_CACHE_KEY`]), so a push carries them.
    pub inline_cache: bool,
}

/// The image config field holding an inline cache: `{"format": …, "records": [CacheEntry]}`,
/// each record's `layer` its diffID (the registry's blob is found through the manifest).
pub const INLINE_CACHE_KEY: &str = "rbuild.buildcache.v1";

/// The version of the cache record format (exported artifacts and inline caches).
pub const CACHE_FORMAT: &str = "rbuild-cache/v1";

/// A RUN step's default network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// The host's network (docker build's default).
    #[default]
    Host,
    /// No network: only a loopback interface.
    None,
}

impl NetworkMode {
    fn runner(self) -> Network {
        match self {
            NetworkMode::Host => Network::Host,
            NetworkMode::None => Network::None,
        }
    }
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The image, committed to the store and named with every tag.
    pub image: Image,
    /// Steps that ran or were looked up (FROM, RUN, COPY, ADD, WORKDIR).
    pub steps: usize,
    /// Of those, how many came from the cache.
    pub cached: usize,
    /// Context files whose content was read and hashed (0 on a no-op rebuild: the stat-keyed
    /// digest cache answers for unchanged files).
    pub files_hashed: u64,
    /// The step records the build used or made, for `--cache-to`.
    pub records: Vec<UsedRecord>,
    /// Every step's cache verdict, in step order.
    pub explained: Vec<ExplainedStep>,
    /// The cache mounts the build's RUN steps used: id and directory, for `--cache-to`.
    pub cache_mounts: Vec<(String, PathBuf)>,
    /// Imported layers the build reused without needing their bytes (not in the store; an
    /// export fetches them with [`LazyLayer::fetch`]).
    pub unfetched: Vec<LazyLayer>,
}

/// An imported record's layer reused without its bytes (lazy import).
#[derive(Debug, Clone)]
pub struct LazyLayer {
    /// The record.
    pub entry: CacheEntry,
    /// Where its layer comes from.
    pub layers: Arc<dyn LayerFetcher>,
    /// The import's name, for messages.
    pub name: String,
}

impl LazyLayer {
    /// Fetch the layer into `store` (verified) and record the step locally.
    pub fn fetch(&self, store: &Store) -> Result<(), String> {
        self.layers.fetch(store, &self.entry)?;
        Records::new(store)
            .put(&self.entry.key, &self.entry.record())
            .map_err(|e| e.to_string())
    }
}

/// What a finished stage hands to stages that use it.
#[derive(Debug, Clone)]
pub(crate) struct StageResult {
    /// Its layers, bottom first.
    layers: Vec<Digest>,
    /// Their snapshot directories, when known.
    snapshots: Vec<PathBuf>,
    /// Its config.
    config: ConfigBuilder,
    /// The key of its last step.
    key: Digest,
    /// The time of its newest layer.
    created: String,
    /// Whether a step of it (or of the stages it is based on) was not cached.
    rebuilt: bool,
}

/// Everything stages share while a build runs.
pub(crate) struct Shared<'a> {
    store: &'a Store,
    opts: &'a BuildOptions,
    images: &'a dyn ImageSource,
    reporter: &'a dyn Reporter,
    dockerfile: &'a rbuild_parser::instructions::Dockerfile,
    meta: &'a MetaScope,
    graph: &'a StageGraph,
    context: &'a BuildContext,
    digests: &'a Mutex<DigestCache>,
    records: Records,
    work: &'a Path,
    platform: String,
    /// The platform string plus anything else every key must depend on.
    key_platform: String,
    step_ids: AtomicUsize,
    steps: AtomicUsize,
    cached: AtomicUsize,
    results: Mutex<Vec<Option<Arc<StageResult>>>>,
    /// The loopback-only network namespace every `--network none` RUN step of this build
    /// joins (made at the first one). Held by a descriptor only, so it is gone with the build,
    /// whether it succeeds or fails, and nothing is left on the host.
    loopback: Mutex<Option<LoopbackNetwork>>,
    /// `--cache-from` caches.
    imported: imported::Imported,
    /// Why an imported layer could not be fetched, by key.
    fetch_failures: Mutex<HashMap<Digest, String>>,
    /// Records used or made, for `--cache-to`.
    used: Mutex<Vec<UsedRecord>>,
    /// Every step's verdict.
    explained: Mutex<Vec<ExplainedStep>>,
    /// `--explain`: look steps up, run nothing.
    dry_run: bool,
    /// Cache mounts used, by id.
    cache_mounts: Mutex<BTreeMap<String, PathBuf>>,
    /// Imported layers reused but not fetched yet, by diffID.
    lazy: Mutex<HashMap<Digest, LazyLayer>>,
}

impl Shared<'_> {
    /// Make sure layer `diff_id` is in the store: an imported layer reused lazily is fetched
    /// now. A failure ends the build with [`BuildError::ImportedLayer`] ([`build`] then
    /// builds again without that record).
    pub(crate) fn materialize(&self, diff_id: &Digest) -> Result<(), BuildError> {
        let lazy = self.lazy.lock().expect("lazy layers").get(diff_id).cloned();
        let Some(lazy) = lazy else {
            return Ok(());
        };
        if !self.store.has_blob(diff_id) {
            lazy.fetch(self.store)
                .map_err(|reason| BuildError::ImportedLayer {
                    key: lazy.entry.key.clone(),
                    reason: format!("layer {} from {}: {reason}", lazy.entry.layer, lazy.name),
                })?;
        }
        self.lazy.lock().expect("lazy layers").remove(diff_id);
        Ok(())
    }

    /// Remember that stage `stage` used (or made) `record` for `key`, for `--cache-to`.
    pub(crate) fn record_used(&self, stage: usize, key: &Digest, record: &Record) {
        let Some(diff_id) = record.diff_id.as_deref().and_then(|d| d.parse().ok()) else {
            return;
        };
        let mut used = self.used.lock().expect("used");
        if used.iter().any(|u| &u.key == key) {
            return;
        }
        used.push(UsedRecord {
            key: key.clone(),
            diff_id,
            created: record.created.clone(),
            inputs: record.inputs.clone(),
            in_image: false,
            stage,
        });
    }

    /// Note a step's verdict (`None`: not looked up) and, for a miss, tell the reporter why.
    pub(crate) fn explained(
        &self,
        step: &crate::reporter::StepInfo,
        cached: Option<bool>,
        reason: Option<String>,
    ) {
        if let Some(r) = &reason {
            self.reporter.step_explained(step, r);
        }
        self.explained
            .lock()
            .expect("explained")
            .push(ExplainedStep {
                id: step.id,
                label: step.label(),
                cached,
                reason,
            });
    }

    /// The path of the build's loopback-only network namespace, made on first use.
    ///
    /// One namespace for the whole build instead of one per step: creating and tearing down
    /// a network namespace per RUN step is the kernel's slowest part of a container's start
    /// and exit. Steps of one stage run one after another; parallel stages' steps may share
    /// it at the same time, which isolates them from each other no less than BuildKit's
    /// `none` does (only `lo`, nothing reachable beyond the build's own steps).
    pub(crate) fn loopback_network(&self) -> Result<PathBuf, BuildError> {
        let mut net = self.loopback.lock().expect("loopback network");
        if net.is_none() {
            *net =
                Some(LoopbackNetwork::create().map_err(|e| BuildError::Container(e.to_string()))?);
        }
        Ok(net.as_ref().expect("just made").path())
    }
}

/// Build `opts` into `store`: every stage the target needs, then the final image, committed
/// and named. Progress goes to `reporter`; base images come from `images`.
pub fn build(
    store: &Store,
    opts: &BuildOptions,
    images: &dyn ImageSource,
    reporter: &dyn Reporter,
) -> Result<BuildOutcome, BuildError> {
    // A lazily reused imported layer that turns out bad ends an attempt; the build is made
    // again without that record (what the attempt did is in the store's own cache now).
    let mut failed: HashMap<Digest, String> = HashMap::new();
    let f = loop {
        let mut attempt_opts;
        let attempt = if failed.is_empty() {
            opts
        } else {
            attempt_opts = opts.clone();
            for import in &mut attempt_opts.cache_from {
                import.entries.retain(|e| !failed.contains_key(&e.key));
            }
            &attempt_opts
        };
        match build_or_explain(store, attempt, images, reporter, false, &failed) {
            Err(BuildError::ImportedLayer { key, reason }) if !failed.contains_key(&key) => {
                reporter.warning(&format!(
                    "cache import: ignoring {reason}; building again without it"
                ));
                failed.insert(key, reason);
            }
            other => break other?,
        }
    };
    Ok(BuildOutcome {
        image: f.image.expect("a build commits its image"),
        steps: f.steps,
        cached: f.cached,
        files_hashed: f.files_hashed,
        records: f.records,
        explained: f.explained,
        cache_mounts: f.cache_mounts,
        unfetched: f.unfetched,
    })
}

/// `rbuild build --explain`: every step's cache verdict against the store's records and
/// `opts.cache_from`, without running anything (a missed step is assumed to make a new
/// layer, so the steps after it miss too). Base images are resolved as a build would.
pub fn explain(
    store: &Store,
    opts: &BuildOptions,
    images: &dyn ImageSource,
) -> Result<Vec<ExplainedStep>, BuildError> {
    let none = HashMap::new();
    Ok(build_or_explain(store, opts, images, &crate::reporter::Silent, true, &none)?.explained)
}

/// What [`build_or_explain`] ends with: a [`BuildOutcome`] whose image a dry run lacks.
struct Finished {
    image: Option<Image>,
    steps: usize,
    cached: usize,
    files_hashed: u64,
    records: Vec<UsedRecord>,
    explained: Vec<ExplainedStep>,
    cache_mounts: Vec<(String, PathBuf)>,
    unfetched: Vec<LazyLayer>,
}

fn build_or_explain(
    store: &Store,
    opts: &BuildOptions,
    images: &dyn ImageSource,
    reporter: &dyn Reporter,
    dry_run: bool,
    failed: &HashMap<Digest, String>,
) -> Result<Finished, BuildError> {
    let dockerfile = parse_dockerfile(&opts.dockerfile)?;
    for w in &dockerfile.warnings {
        reporter.warning(&format!("Dockerfile:{}: {}", w.line, w.message));
    }
    let mut platforms = Platforms::host();
    if let Some(p) = &opts.platform {
        // Until multi-platform builds exist, a list is refused rather than taken as one
        // platform (TARGETARCH would become "amd64,linux").
        if p.contains(',') {
            return Err(BuildError::MultiPlatform(p.clone()));
        }
        platforms.target = p.clone();
    }
    let meta = MetaScope::resolve(&dockerfile, &opts.build_args, &platforms)?;
    let graph = StageGraph::new(&dockerfile, &meta)?;
    let target = match &opts.target {
        Some(t) => {
            dockerfile
                .stage(t)
                .ok_or_else(|| BuildError::UnknownTarget(t.clone()))?
                .0
        }
        None => dockerfile.stages.len().saturating_sub(1),
    };
    let context = BuildContext::open(&opts.context, opts.dockerfile_path.as_deref())?;
    let _hold = store.hold().map_err(store_err)?;
    let tmp = store.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(|e| BuildError::io(&tmp, e))?;
    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&tmp)
        .map_err(|e| BuildError::io(&tmp, e))?;
    let digest_file = digest_cache_file(store, context.root());
    let digests = Mutex::new(DigestCache::load(&digest_file));
    let mut key_platform = platforms.target.clone();
    if let Some(sde) = opts.source_date_epoch {
        key_platform.push_str(&format!(";source-date-epoch={sde}"));
    }
    let shared = Shared {
        store,
        opts,
        images,
        reporter,
        dockerfile: &dockerfile,
        meta: &meta,
        graph: &graph,
        context: &context,
        digests: &digests,
        records: Records::new(store),
        work: work.path(),
        platform: platforms.target.clone(),
        key_platform,
        step_ids: AtomicUsize::new(0),
        steps: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
        results: Mutex::new(vec![None; dockerfile.stages.len()]),
        loopback: Mutex::new(None),
        imported: imported::Imported::new(&opts.cache_from),
        fetch_failures: Mutex::new(failed.clone()),
        used: Mutex::new(Vec::new()),
        explained: Mutex::new(Vec::new()),
        dry_run,
        cache_mounts: Mutex::new(BTreeMap::new()),
        lazy: Mutex::new(HashMap::new()),
    };
    for batch in graph.batches(target) {
        if batch.len() == 1 {
            let result = stage::build_stage(&shared, batch[0])?;
            shared.results.lock().expect("results")[batch[0]] = Some(Arc::new(result));
            continue;
        }
        let outcomes: Vec<(usize, Result<StageResult, BuildError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|&i| {
                    let shared = &shared;
                    (i, s.spawn(move || stage::build_stage(shared, i)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(i, h)| {
                    let r = h.join().unwrap_or_else(|_| {
                        Err(BuildError::Container("a stage's thread panicked".into()))
                    });
                    (i, r)
                })
                .collect()
        });
        for (i, r) in outcomes {
            shared.results.lock().expect("results")[i] = Some(Arc::new(r?));
        }
    }
    let unused = unused_build_args(&dockerfile, &opts.build_args);
    if !unused.is_empty() {
        reporter.warning(&format!(
            "One or more build-args [{}] were not consumed",
            unused.join(" ")
        ));
    }
    let last = shared.results.lock().expect("results")[target]
        .clone()
        .expect("the target stage was built");
    // The stages whose layers the image holds: the target and the stages it is based on.
    let mut in_image = vec![target];
    while let crate::graph::Source::Stage(j) = &graph.bases[*in_image.last().expect("target")] {
        in_image.push(*j);
    }
    let mut records = std::mem::take(&mut *shared.used.lock().expect("used"));
    for r in &mut records {
        r.in_image = in_image.contains(&r.stage);
    }
    let image = if dry_run {
        None
    } else {
        // The image's layers must all be in the store.
        for d in &last.layers {
            shared.materialize(d)?;
        }
        let mut config = last.config.clone();
        for (k, v) in &opts.labels {
            config.set_label(k, v);
        }
        if opts.inline_cache {
            config.set_top(INLINE_CACHE_KEY, inline_cache(&records));
        }
        let config_bytes = config.finish(&last.created);
        Some(
            store
                .commit_image(&config_bytes, &opts.tags)
                .map_err(store_err)?,
        )
    };
    let mut files_hashed = 0;
    if let Ok(mut d) = digests.lock() {
        files_hashed = d.files_hashed();
        let _ = d.save();
    }
    let mut explained = std::mem::take(&mut *shared.explained.lock().expect("explained"));
    explained.sort_by_key(|e| e.id);
    Ok(Finished {
        image,
        steps: shared.steps.load(Ordering::Relaxed),
        cached: shared.cached.load(Ordering::Relaxed),
        files_hashed,
        records,
        explained,
        unfetched: shared
            .lazy
            .lock()
            .expect("lazy layers")
            .values()
            .cloned()
            .collect(),
        cache_mounts: shared
            .cache_mounts
            .lock()
            .expect("cache mounts")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// The inline cache of an image: the records of its own layers (`mode=min`), without the
/// per-file lists (they would bloat every config; a miss then says `COPY sources changed`).
fn inline_cache(records: &[UsedRecord]) -> serde_json::Value {
    let entries: Vec<CacheEntry> = records
        .iter()
        .filter(|r| r.in_image)
        .map(|r| CacheEntry {
            key: r.key.clone(),
            diff_id: r.diff_id.clone(),
            layer: r.diff_id.clone(),
            created: r.created.clone(),
            inputs: r.inputs.clone().map(|i| KeyInputs {
                files: BTreeMap::new(),
                ..i
            }),
        })
        .collect();
    serde_json::json!({ "format": CACHE_FORMAT, "records": entries })
}

/// The stat-keyed digest cache of one context directory.
fn digest_cache_file(store: &Store, context: &Path) -> PathBuf {
    let id = Digest::sha256_of(context.as_os_str().as_encoded_bytes());
    store
        .root()
        .join("buildcache")
        .join("context")
        .join(format!("{}.json", &id.hex()[..32]))
}

pub(crate) fn store_err(e: rbuild_store::StoreError) -> BuildError {
    BuildError::Store(e.to_string())
}
