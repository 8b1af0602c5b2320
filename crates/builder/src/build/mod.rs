//! The build driver: a parsed Dockerfile, its build context and options in, an image in the
//! store out. Stages are built in dependency batches (independent stages at the same time),
//! each step keyed by [`crate::cache_key`] and looked up in the step cache before it runs; RUN
//! steps run through the runner and COPY/ADD steps write a layer tree, and every new layer goes
//! to the store, whose snapshots then serve as the next steps' lower directories.

mod cache;
mod cache_prune;
mod cache_usage;
mod history;
mod imported;
mod mounts;
mod platforms;
mod prefetch;
mod stage;
mod steps;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rbuild_oci::{Digest, Platform, Reference};
use rbuild_parser::instructions::{MetaScope, Platforms, parse_dockerfile, unused_build_args};
use rbuild_runner::{LoopbackNetwork, Network};
use rbuild_store::{Image, ImageList, Store};

pub(crate) use cache::write_atomic;
pub use cache::{KeyInputs, Record, Records};
pub use cache_prune::{CachePruneOptions, CachePruneReport, prune_build_cache};
pub use cache_usage::{CacheKind, CacheObject, CacheUsage};
pub use imported::{CacheEntry, CacheImport, ExplainedStep, LayerFetcher, MountEntry, UsedRecord};
use platforms::SharedStage;
pub use prefetch::ContextPrefetch;

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
    /// Fetches the layers the store holds only remotely (reused from a lazily imported cache
    /// by an earlier build): with it, the store's records of such steps are hits, their
    /// layers fetched when a later step needs the bytes; without it they are misses.
    pub remote_layers: Option<Arc<dyn LayerFetcher>>,
    /// The context's files being hashed ahead ([`ContextPrefetch::start`]): the build takes
    /// that digest cache when it first needs a digest. `None`: the build loads its digest
    /// cache and hashes as its steps ask.
    pub prefetch: Option<Arc<ContextPrefetch>>,
}

/// The image config field holding an inline cache: `{"format": …, "records": [CacheEntry]}`,
/// each record's `layer` its diffID (the registry's blob is found through the manifest).
pub const INLINE_CACHE_KEY: &str = "rbuild.buildcache.v1";

/// The version of the cache record format (exported artifacts and inline caches).
pub const CACHE_FORMAT: &str = "rbuild-cache/v1";

/// A RUN step's default network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// The host's network (docker build's default).
    #[default]
    Host,
    /// No network: only a loopback interface.
    None,
    /// The network namespace at `path`, which the front end attached to a network
    /// (`--network NAME`) and holds for the build; steps get `resolv_conf` (its DNS server).
    Joined {
        /// The namespace (`/proc/self/fd/N`).
        path: PathBuf,
        /// The steps' `/etc/resolv.conf`.
        resolv_conf: String,
    },
}

impl NetworkMode {
    fn runner(&self) -> Network {
        match self {
            NetworkMode::Host => Network::Host,
            NetworkMode::None | NetworkMode::Joined { .. } => Network::None,
        }
    }
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The image, committed to the store and named with every tag; with several platforms,
    /// the first platform's (unnamed: the index has the names).
    pub image: Image,
    /// Every platform's image, in `--platform` order (one for a single-platform build).
    pub images: Vec<(Platform, Image)>,
    /// With several platforms: the image index listing `images`, named with every tag.
    pub index: Option<ImageList>,
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
    /// `Some(reference)`: not a step's layer but one of base image `reference` (`FROM`,
    /// `COPY --from`) that the store holds only remotely; fetching it records no step.
    pub base: Option<String>,
}

impl LazyLayer {
    /// Fetch the layer into `store` (verified) and, for a step's layer, record the step
    /// locally.
    pub fn fetch(&self, store: &Store) -> Result<(), String> {
        self.layers.fetch(store, &self.entry)?;
        if self.base.is_some() {
            return Ok(());
        }
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
    /// Its SHELL and whether it set CMD (for a shared prefix of a stage, which goes on).
    shell: Vec<String>,
    cmd_set: bool,
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
    digests: &'a prefetch::Digests<'a>,
    records: Records,
    work: &'a Path,
    /// The target platform (`TARGETPLATFORM`).
    platform: String,
    /// Several platforms are built at once.
    multi: bool,
    step_ids: &'a AtomicUsize,
    steps: &'a AtomicUsize,
    cached: &'a AtomicUsize,
    memo: &'a Mutex<HashMap<String, Arc<SharedStage>>>,
    results: Mutex<Vec<Option<Arc<StageResult>>>>,
    /// The loopback-only network namespace every `--network none` RUN step of this build
    /// joins (made at the first one). Held by a descriptor only, so it is gone with the build,
    /// whether it succeeds or fails, and nothing is left on the host.
    loopback: Mutex<Option<LoopbackNetwork>>,
    /// `--cache-from` caches.
    imported: &'a imported::Imported,
    /// Why an imported layer could not be fetched, by key.
    fetch_failures: &'a Mutex<HashMap<Digest, String>>,
    /// Records used or made, for `--cache-to` (every platform's build).
    used: &'a Mutex<Vec<UsedRecord>>,
    /// Every step's verdict (every platform's build).
    explained: &'a Mutex<Vec<ExplainedStep>>,
    /// `--explain`: look steps up, run nothing.
    dry_run: bool,
    /// Cache mounts used, by id.
    cache_mounts: &'a Mutex<BTreeMap<String, PathBuf>>,
    /// Imported layers reused but not fetched yet, by diffID.
    lazy: &'a Mutex<HashMap<Digest, LazyLayer>>,
}

/// Dirty bytes from which a RUN step's end starts the writeback ([`Shared::start_writeback`]).
const EARLY_WRITEBACK_BYTES: u64 = 64 << 20;

impl Shared<'_> {
    /// Write everything dirty on the store's filesystem to disk (`syncfs`): RUN steps mount
    /// their overlays `volatile`, so their layers are made durable here, once for a batch,
    /// before their cache records say they exist.
    pub(crate) fn sync_store(&self) -> Result<(), BuildError> {
        let root = self.store.root();
        let dir = std::fs::File::open(root).map_err(|e| BuildError::io(root, e))?;
        nix::unistd::syncfs(&dir).map_err(|e| BuildError::io(root, std::io::Error::from(e)))
    }

    /// Why fetching the imported layer of the record for `key` failed earlier in this build,
    /// if it did (that record is then not used again).
    pub(crate) fn fetch_failure(&self, key: &Digest) -> Option<String> {
        self.fetch_failures
            .lock()
            .expect("fetch failures")
            .get(key)
            .cloned()
    }

    /// Start writing a large RUN layer to disk now, on a thread of its own, when the machine
    /// has at least [`EARLY_WRITEBACK_BYTES`] dirty: the writeback then overlaps the layer's
    /// hashing and the steps after it, and [`Shared::sync_store`] before the records only
    /// waits for what is left. Nothing depends on it finishing (the records still wait for
    /// `sync_store`); small layers are left to that one sync, as a `syncfs` costs a disk
    /// flush however little it writes.
    pub(crate) fn start_writeback(&self) {
        let dirty = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let line = m.lines().find(|l| l.starts_with("Dirty:"))?;
                let kb: u64 = line["Dirty:".len()..]
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(kb * 1024)
            })
            .unwrap_or(0);
        if dirty < EARLY_WRITEBACK_BYTES {
            return;
        }
        if let Ok(dir) = std::fs::File::open(self.store.root()) {
            let _ = std::thread::Builder::new()
                .name("rbuild-writeback".into())
                .spawn(move || nix::unistd::syncfs(&dir));
        }
    }

    /// Make sure layer `diff_id` is in the store: an imported layer reused lazily is fetched
    /// now. A failure ends the build with [`BuildError::ImportedLayer`] ([`build`] then
    /// builds again without that record).
    pub(crate) fn materialize(&self, diff_id: &Digest) -> Result<(), BuildError> {
        materialize(self.store, self.lazy, diff_id)
    }

    /// Note the layers of base image `reference` (`FROM`, `COPY --from`) that the store holds
    /// only remotely (an image built from a lazily imported cache): like an imported step's,
    /// they are fetched only when a step needs the base's files ([`Shared::materialize`]),
    /// so a build whose steps all hit downloads none of them. Without a fetcher
    /// ([`BuildOptions::remote_layers`]) reading them fails, naming where they are.
    pub(crate) fn defer_remote_layers(&self, reference: &str, layers: &[Digest]) {
        let Some(fetcher) = self.opts.remote_layers.as_ref() else {
            return;
        };
        if self.dry_run {
            return;
        }
        for diff_id in layers {
            let Some(remote) = self.store.remote_layer(diff_id).ok().flatten() else {
                continue;
            };
            let mut lazy = self.lazy.lock().expect("lazy layers");
            lazy.entry(diff_id.clone()).or_insert_with(|| LazyLayer {
                entry: CacheEntry {
                    key: diff_id.clone(),
                    diff_id: diff_id.clone(),
                    layer: remote.blob.clone(),
                    size: self.store.layer_size(diff_id),
                    created: String::new(),
                    inputs: None,
                },
                layers: fetcher.clone(),
                name: remote.location.to_string(),
                base: Some(reference.to_string()),
            });
        }
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
///
/// With several platforms (`--platform a,b`), the Dockerfile is parsed once and built once
/// per platform, the platforms at the same time; a stage whose platform does not depend on the
/// target (`FROM --platform=$BUILDPLATFORM`, declaring none of the `TARGET*` args, needing only
/// such stages) is built once and shared. The images are committed without names and an OCI
/// image index listing them gets the tags.
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
        images: f.images,
        index: f.index,
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
    images: Vec<(Platform, Image)>,
    index: Option<ImageList>,
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
    let host = Platforms::host();
    let targets: Vec<Platform> = match &opts.platform {
        Some(p) => Platform::parse_list([p.as_str()]).map_err(|e| BuildError::BadPlatform(e.0))?,
        None => Vec::new(),
    };
    let targets: Vec<String> = if targets.is_empty() {
        vec![host.target.clone()]
    } else {
        targets.iter().map(Platform::to_string).collect()
    };
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
    let digest_file = digest_cache_file(store.root(), context.root());
    if !dry_run {
        // The context's digest cache is used (`builder prune` goes by its last use).
        cache_usage::note_use(&digest_file);
    }
    let digests = prefetch::Digests::new(digest_file, opts.prefetch.as_deref());
    let common = Common {
        store,
        opts,
        images,
        reporter,
        dockerfile: &dockerfile,
        context: &context,
        digests: &digests,
        work: work.path(),
        multi: targets.len() > 1,
        step_ids: AtomicUsize::new(0),
        steps: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
        memo: Mutex::new(HashMap::new()),
        imported: imported::Imported::new(&opts.cache_from),
        fetch_failures: Mutex::new(failed.clone()),
        used: Mutex::new(Vec::new()),
        explained: Mutex::new(Vec::new()),
        dry_run,
        cache_mounts: Mutex::new(BTreeMap::new()),
        lazy: Mutex::new(HashMap::new()),
    };
    let built: Vec<Result<PlatformBuilt, BuildError>> = if targets.len() == 1 {
        vec![build_platform(&common, &host.build, &targets[0], target)]
    } else {
        // Platforms in waves of as many as there are cores (a shared stage is built by the
        // first build that needs it while the others of its wave wait for it).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut all = Vec::new();
        for wave in targets.chunks(cores.max(2)) {
            let results: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = wave
                    .iter()
                    .map(|t| {
                        let common = &common;
                        let build_platform_of = &host.build;
                        s.spawn(move || build_platform(common, build_platform_of, t, target))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(BuildError::Container(
                                "a platform's build thread panicked".into(),
                            ))
                        })
                    })
                    .collect()
            });
            all.extend(results);
        }
        all
    };
    // The error of the build that ran a shared stage says more than the others' "it failed".
    let mut results = Vec::new();
    let mut first_error: Option<BuildError> = None;
    for r in built {
        match r {
            Ok(r) => results.push(r),
            Err(e) => match &first_error {
                Some(BuildError::SharedStageFailed { .. }) | None => first_error = Some(e),
                Some(_) => {}
            },
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let unused = unused_build_args(&dockerfile, &opts.build_args);
    if !unused.is_empty() {
        reporter.warning(&format!(
            "One or more build-args [{}] were not consumed",
            unused.join(" ")
        ));
    }
    // The stages whose layers the images hold: each platform's target and the stages it is
    // based on (a stage shared by the platforms' builds has the same index in each).
    let in_image: Vec<usize> = results
        .iter()
        .flat_map(|r| r.in_image.iter().copied())
        .collect();
    let mut records = std::mem::take(&mut *common.used.lock().expect("used"));
    for r in &mut records {
        r.in_image = in_image.contains(&r.stage);
    }
    let single = targets.len() == 1;
    let mut committed = Vec::new();
    if !dry_run {
        for (platform, built) in targets.iter().zip(&results) {
            let last = &built.last;
            // The image's layers must all be in the store, or known there by where they
            // are (import is lazy: fetched when something needs their bytes).
            reuse_lazily(store, &common.lazy, &last.layers)?;
            let mut config = last.config.clone();
            for (k, v) in &opts.labels {
                config.set_label(k, v);
            }
            if opts.inline_cache {
                config.set_top(
                    INLINE_CACHE_KEY,
                    inline_cache(store, &records, &last.layers),
                );
            }
            let config_bytes = config.finish(&last.created);
            let names: &[Reference] = if single { &opts.tags } else { &[] };
            let image = store
                .commit_image(&config_bytes, names)
                .map_err(store_err)?;
            let platform: Platform = platform
                .parse()
                .map_err(|_| BuildError::BadPlatform(platform.clone()))?;
            committed.push((platform, image));
        }
    }
    let index = if single || dry_run {
        None
    } else {
        Some(
            store
                .commit_index(&committed, &opts.tags)
                .map_err(store_err)?,
        )
    };
    let files_hashed = digests.finish();
    let mut explained = std::mem::take(&mut *common.explained.lock().expect("explained"));
    explained.sort_by_key(|e| e.id);
    Ok(Finished {
        image: committed.first().map(|(_, i)| i.clone()),
        images: committed,
        index,
        steps: common.steps.load(Ordering::Relaxed),
        cached: common.cached.load(Ordering::Relaxed),
        files_hashed,
        records,
        explained,
        unfetched: common
            .lazy
            .lock()
            .expect("lazy layers")
            .values()
            .cloned()
            .collect(),
        cache_mounts: common
            .cache_mounts
            .lock()
            .expect("cache mounts")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// The inline cache of an image whose layers are `layers`: the records of its own layers
/// (`mode=min`), without the per-file lists (they would bloat every config; a miss then says
/// `COPY sources changed`).
fn inline_cache(store: &Store, records: &[UsedRecord], layers: &[Digest]) -> serde_json::Value {
    let entries: Vec<CacheEntry> = records
        .iter()
        .filter(|r| r.in_image && layers.contains(&r.diff_id))
        .map(|r| CacheEntry {
            key: r.key.clone(),
            diff_id: r.diff_id.clone(),
            layer: r.diff_id.clone(),
            // The layer's uncompressed size, as content-derived as its diffID (the length of
            // the tar it digests): a store importing the cache commits the image without the
            // layer's bytes with the same manifest (listing the layer by diffID and size)
            // as the store that built it. Every store that built or fetched the layer knows
            // it, and one that reused it lazily from an imported record knows it from that.
            size: store.layer_size(&r.diff_id),
            created: r.created.clone(),
            inputs: r.inputs.clone().map(|i| KeyInputs {
                files: BTreeMap::new(),
                ..i
            }),
        })
        .collect();
    serde_json::json!({ "format": CACHE_FORMAT, "records": entries })
}

/// Make sure layer `diff_id` is in `store`: an imported layer reused lazily (in `lazy`) is
/// fetched now. A failure is [`BuildError::ImportedLayer`] ([`build`] then builds again
/// without that record), for a base image's layer [`BuildError::ImageNotFound`].
fn materialize(
    store: &Store,
    lazy: &Mutex<HashMap<Digest, LazyLayer>>,
    diff_id: &Digest,
) -> Result<(), BuildError> {
    let layer = lazy.lock().expect("lazy layers").get(diff_id).cloned();
    let Some(layer) = layer else {
        return Ok(());
    };
    if !store.has_blob(diff_id) {
        layer.fetch(store).map_err(|reason| {
            let reason = format!("layer {} from {}: {reason}", layer.entry.layer, layer.name);
            match &layer.base {
                // A base image's layer is no cache record to build again without.
                Some(reference) => BuildError::ImageNotFound {
                    reference: reference.clone(),
                    reason,
                },
                None => BuildError::ImportedLayer {
                    key: layer.entry.key.clone(),
                    reason,
                },
            }
        })?;
    }
    lazy.lock().expect("lazy layers").remove(diff_id);
    Ok(())
}

/// Let the image hold layers `diff_ids` without their bytes when they are imported layers
/// reused lazily whose source stays fetchable ([`LayerFetcher::remote`]): the store records
/// where they are, all in one batch (one sync of the records' directory). Any other is
/// [`materialize`]d.
fn reuse_lazily(
    store: &Store,
    lazy: &Mutex<HashMap<Digest, LazyLayer>>,
    diff_ids: &[Digest],
) -> Result<(), BuildError> {
    let mut remote = Vec::new();
    let mut reused = Vec::new();
    for (i, diff_id) in diff_ids.iter().enumerate() {
        if diff_ids[..i].contains(diff_id) {
            continue;
        }
        let layer = lazy.lock().expect("lazy layers").get(diff_id).cloned();
        let found = layer
            .as_ref()
            .filter(|_| !store.has_blob(diff_id))
            .and_then(|l| {
                let remote = l.layers.remote(store, &l.entry)?;
                Some((remote, l.entry.size.or(store.layer_size(diff_id))))
            });
        match found {
            Some((at, size)) => remote.push((diff_id, at, size)),
            None => materialize(store, lazy, diff_id)?,
        }
        reused.extend(layer);
    }
    let batch: Vec<_> = remote.iter().map(|(d, at, size)| (*d, at, *size)).collect();
    store.record_remote_layers(&batch).map_err(store_err)?;
    // The store's own records of the steps from now on: the next build hits without the
    // import.
    let records = Records::new(store);
    for l in reused.iter().filter(|l| l.base.is_none()) {
        if records.find(&l.entry.key).is_none() {
            records.put(&l.entry.key, &l.entry.record())?;
        }
    }
    Ok(())
}

/// What every platform's build of one `build` call shares.
pub(crate) struct Common<'a> {
    store: &'a Store,
    opts: &'a BuildOptions,
    images: &'a dyn ImageSource,
    reporter: &'a dyn Reporter,
    dockerfile: &'a rbuild_parser::instructions::Dockerfile,
    context: &'a BuildContext,
    digests: &'a prefetch::Digests<'a>,
    work: &'a Path,
    /// Several platforms: stage names in progress carry the platform.
    multi: bool,
    step_ids: AtomicUsize,
    steps: AtomicUsize,
    cached: AtomicUsize,
    /// Stages shared by the platforms' builds, by [`Shared::memo_key`]: built by the first
    /// build to need them while the others wait.
    memo: Mutex<HashMap<String, Arc<SharedStage>>>,
    /// `--cache-from` caches.
    imported: imported::Imported,
    /// Why an imported layer could not be fetched, by key.
    fetch_failures: Mutex<HashMap<Digest, String>>,
    /// Records used or made (by every platform's build), for `--cache-to`.
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

/// One platform's build: its target stage's result and the stages whose layers its image
/// holds (the target and the stages it is based on).
struct PlatformBuilt {
    last: Arc<StageResult>,
    in_image: Vec<usize>,
}

/// One platform's build: every stage `target` needs, in dependency batches.
fn build_platform(
    common: &Common<'_>,
    build_platform: &str,
    target_platform: &str,
    target: usize,
) -> Result<PlatformBuilt, BuildError> {
    let opts = common.opts;
    let platforms = Platforms {
        build: build_platform.to_string(),
        target: target_platform.to_string(),
    };
    let meta = MetaScope::resolve(common.dockerfile, &opts.build_args, &platforms)?;
    let graph = StageGraph::new(common.dockerfile, &meta)?;
    let shared = Shared {
        store: common.store,
        opts,
        images: common.images,
        reporter: common.reporter,
        dockerfile: common.dockerfile,
        meta: &meta,
        graph: &graph,
        context: common.context,
        digests: common.digests,
        records: Records::new(common.store),
        work: common.work,
        platform: platforms.target.clone(),
        multi: common.multi,
        step_ids: &common.step_ids,
        steps: &common.steps,
        cached: &common.cached,
        memo: &common.memo,
        results: Mutex::new(vec![None; common.dockerfile.stages.len()]),
        loopback: Mutex::new(None),
        imported: &common.imported,
        fetch_failures: &common.fetch_failures,
        used: &common.used,
        explained: &common.explained,
        dry_run: common.dry_run,
        cache_mounts: &common.cache_mounts,
        lazy: &common.lazy,
    };
    for batch in graph.batches(target) {
        if batch.len() == 1 {
            let result = shared.stage(batch[0])?;
            shared.results.lock().expect("results")[batch[0]] = Some(result);
            continue;
        }
        let outcomes: Vec<(usize, Result<Arc<StageResult>, BuildError>)> =
            std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|&i| {
                        let shared = &shared;
                        (i, s.spawn(move || shared.stage(i)))
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
            shared.results.lock().expect("results")[i] = Some(r?);
        }
    }
    let last = shared.results.lock().expect("results")[target]
        .clone()
        .expect("the target stage was built");
    let mut in_image = vec![target];
    while let crate::graph::Source::Stage(j) = &graph.bases[*in_image.last().expect("target")] {
        in_image.push(*j);
    }
    Ok(PlatformBuilt { last, in_image })
}

/// The stat-keyed digest cache of one context directory, in the store at `store_root`.
fn digest_cache_file(store_root: &Path, context: &Path) -> PathBuf {
    let id = Digest::sha256_of(context.as_os_str().as_encoded_bytes());
    store_root
        .join("buildcache")
        .join("context")
        .join(format!("{}.digests", &id.hex()[..32]))
}

pub(crate) fn store_err(e: rbuild_store::StoreError) -> BuildError {
    BuildError::Store(e.to_string())
}
