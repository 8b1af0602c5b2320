//! The build driver: a parsed Dockerfile, its build context and options in, an image in the
//! store out. Stages are built in dependency batches (independent stages at the same time),
//! each step keyed by [`crate::cache_key`] and looked up in the step cache before it runs; RUN
//! steps run through the runner and COPY/ADD steps write a layer tree, and every new layer goes
//! to the store, whose snapshots then serve as the next steps' lower directories.

mod cache;
mod history;
mod mounts;
mod platforms;
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

pub use cache::{Record, Records};
use platforms::SharedStage;

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
}

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
}

impl Shared<'_> {
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
    let digest_file = digest_cache_file(store, context.root());
    let digests = Mutex::new(DigestCache::load(&digest_file));
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
    };
    let built: Vec<Result<Arc<StageResult>, BuildError>> = if targets.len() == 1 {
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
    let single = targets.len() == 1;
    let mut committed = Vec::new();
    for (platform, last) in targets.iter().zip(&results) {
        let mut config = last.config.clone();
        for (k, v) in &opts.labels {
            config.set_label(k, v);
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
    let index = if single {
        None
    } else {
        Some(
            store
                .commit_index(&committed, &opts.tags)
                .map_err(store_err)?,
        )
    };
    let mut files_hashed = 0;
    if let Ok(mut d) = digests.lock() {
        files_hashed = d.files_hashed();
        let _ = d.save();
    }
    Ok(BuildOutcome {
        image: committed[0].1.clone(),
        images: committed,
        index,
        steps: common.steps.load(Ordering::Relaxed),
        cached: common.cached.load(Ordering::Relaxed),
        files_hashed,
    })
}

/// What every platform's build of one `build` call shares.
pub(crate) struct Common<'a> {
    store: &'a Store,
    opts: &'a BuildOptions,
    images: &'a dyn ImageSource,
    reporter: &'a dyn Reporter,
    dockerfile: &'a rbuild_parser::instructions::Dockerfile,
    context: &'a BuildContext,
    digests: &'a Mutex<DigestCache>,
    work: &'a Path,
    /// Several platforms: stage names in progress carry the platform.
    multi: bool,
    step_ids: AtomicUsize,
    steps: AtomicUsize,
    cached: AtomicUsize,
    /// Stages shared by the platforms' builds, by [`Shared::memo_key`]: built by the first
    /// build to need them while the others wait.
    memo: Mutex<HashMap<String, Arc<SharedStage>>>,
}

/// One platform's build: every stage `target` needs, in dependency batches.
fn build_platform(
    common: &Common<'_>,
    build_platform: &str,
    target_platform: &str,
    target: usize,
) -> Result<Arc<StageResult>, BuildError> {
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
    Ok(last)
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
