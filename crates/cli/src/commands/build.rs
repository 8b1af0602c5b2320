//! `rbuild build [OPTIONS] CONTEXT`: build an image from a Dockerfile, with docker build's
//! and buildx's flags.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_builder::BuildError;
use rbuild_builder::build::{BuildOptions, ContextPrefetch, NetworkMode, Secret};
use rbuild_builder::reporter::Reporter;
use rbuild_engine::EngineError;
use rbuild_engine::build::BaseImages;
use rbuild_oci::{Platform, Reference};
use rbuild_store::archive::ArchiveFormat;

use super::Globals;
use super::registry_opts::RegistryArgs;
use crate::build_progress::{BuildProgress, ProgressMode};
use crate::transfer::{pull_image_blocking, push_image_blocking};

/// Arguments of `rbuild build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (name:tag); repeatable
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile [default: CONTEXT/Dockerfile]; `-` reads it from stdin
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// Build this stage and what it needs, not the last one
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Do not use the cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always look for a newer version of base images in their registry
    #[arg(long)]
    pub pull: bool,
    /// Networking for RUN steps: host (default), none, or a network (bridge or a user
    /// network's name)
    #[arg(long, value_name = "MODE", default_value = "host")]
    pub network: String,
    /// How RUN steps are isolated: oci (a container: namespaces, overlayfs, cgroups) or
    /// chroot (no namespaces, for builds inside unprivileged containers); default oci when
    /// namespaces can be created, else chroot
    #[arg(long, value_name = "ISOLATION", value_parser = ["oci", "chroot"])]
    pub isolation: Option<String>,
    /// Set metadata on the image (KEY=VALUE); repeatable
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Target platform(s): os/arch[/variant], comma-separated or repeated for a
    /// multi-platform image (an OCI index); foreign RUN steps need qemu-user-static
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Vec<String>,
    /// Progress output: auto, tty, plain or quiet
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Suppress the build output and print the image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Output: type=image (default), type=docker|oci,dest=FILE, type=local,dest=DIR, or DIR
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub output: Option<String>,
    /// Push the image to its registry after building (needs a -t name)
    #[arg(long)]
    pub push: bool,
    /// Secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// Export the build cache: type=registry,ref=REF[,mode=min|max] or type=local,dest=DIR;
    /// repeatable
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Import a build cache: type=registry,ref=REF, type=local,src=DIR, or REF; repeatable
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Print each step's cache verdict (cached, or why not) without building
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The build context directory
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}

/// Where the result goes besides the store.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Output {
    Image,
    Archive(ArchiveFormat, PathBuf),
    Local(PathBuf),
}

fn parse_output(spec: &str) -> anyhow::Result<Output> {
    if !spec.contains('=') {
        return Ok(Output::Local(PathBuf::from(spec)));
    }
    let mut kind = None;
    let mut dest = None;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            Some((k, _)) if ["name", "push", "compression", "oci-mediatypes"].contains(&k) => {}
            _ => anyhow::bail!("--output {spec:?}: unexpected field {field:?}"),
        }
    }
    let need_dest = |what: &str| {
        dest.clone()
            .with_context(|| format!("--output {spec:?}: type={what} needs dest=PATH"))
    };
    match kind.as_deref() {
        Some("image") | Some("registry") => Ok(Output::Image),
        Some("docker") => Ok(Output::Archive(ArchiveFormat::Docker, need_dest("docker")?)),
        Some("oci") => Ok(Output::Archive(ArchiveFormat::Oci, need_dest("oci")?)),
        Some("local") => Ok(Output::Local(need_dest("local")?)),
        Some(other) => anyhow::bail!(
            "--output {spec:?}: unknown type {other:?} (expected image, docker, oci or local)"
        ),
        None => anyhow::bail!("--output {spec:?}: missing type="),
    }
}

fn parse_secret(spec: &str) -> anyhow::Result<(String, Secret)> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => anyhow::bail!("--secret {spec:?}: unexpected field {field:?}"),
        }
    }
    let id = id
        .or_else(|| env.clone())
        .with_context(|| format!("--secret {spec:?}: missing id="))?;
    let secret = match (src, env) {
        (Some(path), _) => {
            if !path.is_file() {
                anyhow::bail!(
                    "--secret {spec:?}: {} is not a readable file",
                    path.display()
                );
            }
            Secret::File(path)
        }
        (None, Some(var)) => Secret::Value(
            std::env::var(&var)
                .with_context(|| format!("--secret {spec:?}: ${var} is not set"))?
                .into_bytes(),
        ),
        (None, None) => {
            let var = id.clone();
            Secret::Value(
                std::env::var(&var)
                    .with_context(|| format!("--secret {spec:?}: needs src=FILE or env=VAR"))?
                    .into_bytes(),
            )
        }
    };
    Ok((id, secret))
}

fn parse_build_args(args: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            // docker: `--build-arg KEY` takes the value from the environment, or is dropped.
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    out
}

/// Read the Dockerfile: `-` is stdin, else the file (default CONTEXT/Dockerfile).
fn read_dockerfile(args: &BuildArgs) -> anyhow::Result<(String, Option<PathBuf>)> {
    match &args.file {
        Some(p) if p == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            Ok((text, None))
        }
        other => {
            let path = other
                .clone()
                .unwrap_or_else(|| args.context.join("Dockerfile"));
            let bytes = std::fs::read(&path)
                .with_context(|| format!("reading Dockerfile {}", path.display()))?;
            Ok((String::from_utf8_lossy(&bytes).into_owned(), Some(path)))
        }
    }
}

/// Run `rbuild build`.
pub fn run(args: BuildArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    if !args.context.is_dir() {
        anyhow::bail!("build context {}: not a directory", args.context.display());
    }
    let tags: Vec<Reference> = args
        .tags
        .iter()
        .map(|t| {
            t.parse()
                .with_context(|| format!("-t {t:?}: invalid image reference"))
        })
        .collect::<anyhow::Result<_>>()?;
    if args.push && tags.is_empty() {
        anyhow::bail!("--push needs an image name: add -t REGISTRY/NAME:TAG");
    }
    let output = args
        .output
        .as_deref()
        .map(parse_output)
        .transpose()?
        .unwrap_or(Output::Image);
    // The build's registry settings for everything it fetches: base images, caches, and the
    // layers an output needs that the store holds only remotely.
    let engine = super::common::engine(globals).with_registry(args.registry.settings());
    let mut attached = None;
    isolation(args.isolation.as_deref(), &args.network)?;
    let network = match args.network.as_str() {
        "host" | "default" => NetworkMode::Host,
        "none" => NetworkMode::None,
        name => {
            let net = engine
                .attach_build_network(name)
                .with_context(|| format!("--network {name}"))?;
            let mode = net.mode();
            attached = Some(net);
            mode
        }
    };
    let labels = args
        .labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .unwrap_or_else(|| (l.clone(), String::new()))
        })
        .collect();
    let secrets = args
        .secrets
        .iter()
        .map(|s| parse_secret(s))
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => Some(
            v.trim()
                .parse::<i64>()
                .with_context(|| format!("SOURCE_DATE_EPOCH={v:?}: not a number of seconds"))?,
        ),
        _ => None,
    };
    if args.explain && (args.push || !args.cache_to.is_empty() || args.output.is_some()) {
        anyhow::bail!(
            "--explain builds nothing: it cannot be combined with --push, --cache-to or --output"
        );
    }
    let cache_to = args
        .cache_to
        .iter()
        .map(|s| rbuild_engine::cache::parse_cache_to(s))
        .collect::<Result<Vec<_>, _>>()?;
    let cache_from = args
        .cache_from
        .iter()
        .map(|s| rbuild_engine::cache::parse_cache_from(s))
        .collect::<Result<Vec<_>, _>>()?;
    let platforms = Platform::parse_list(args.platform.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!("--platform: {e}"))?;
    if platforms.len() > 1
        && let Output::Archive(ArchiveFormat::Docker, _) = &output
    {
        let list: Vec<String> = platforms.iter().map(Platform::to_string).collect();
        anyhow::bail!(
            "--output type=docker: a docker archive holds one platform, and this build is for {}; \
             use type=oci (an OCI archive with the image index), or one --platform",
            list.join(", ")
        );
    }
    if platforms.len() > 1
        && cache_to
            .iter()
            .any(|c| c.location == rbuild_engine::cache::CacheLocation::Inline)
    {
        anyhow::bail!(
            "--cache-to type=inline: an inline cache of a multi-platform build is not supported \
             yet (its import reads one image's config, not an index's); use type=registry or \
             type=local, or one --platform"
        );
    }
    let (dockerfile, dockerfile_path) = read_dockerfile(&args)?;
    let mut opts = BuildOptions {
        context: args.context.clone(),
        dockerfile,
        dockerfile_path,
        build_args: parse_build_args(&args.build_args),
        target: args.target.clone(),
        no_cache: args.no_cache,
        network,
        labels,
        platform: (!platforms.is_empty()).then(|| {
            platforms
                .iter()
                .map(Platform::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }),
        secrets,
        source_date_epoch,
        tags: tags.clone(),
        cache_from: Vec::new(),
        inline_cache: cache_to
            .iter()
            .any(|c| c.location == rbuild_engine::cache::CacheLocation::Inline),
        remote_layers: Some(std::sync::Arc::new(
            rbuild_engine::cache::StoreRemoteLayers {
                settings: engine.registry().clone(),
            },
        )),
        prefetch: None,
    };
    let store = engine.store()?;
    // The context's files are hashed on a thread of their own from now on, while the caches
    // are imported and the build runs its first steps (a fresh machine's first COPY then
    // finds its digests ready).
    opts.prefetch = Some(std::sync::Arc::new(ContextPrefetch::start(store, &opts)));
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        args.progress
    };
    let progress = BuildProgress::new(mode);
    let quiet = mode == ProgressMode::Quiet;
    let pull = |reference: &Reference, platform: &Platform| {
        pull_image_blocking(&args.registry, store, reference, platform, quiet)
            .map_err(|e| format!("{e:#}"))
    };
    let images = BaseImages::new(store, args.pull, &pull);
    let client = if cache_to.is_empty() && cache_from.is_empty() {
        None
    } else {
        Some(args.registry.client()?)
    };
    for from in &cache_from {
        let client = client.as_ref().expect("made for caches");
        // As BuildKit: a cache that cannot be imported is a warning; the build goes on cold.
        match rbuild_engine::cache::import(client, from) {
            Ok(import) => {
                progress.line(&format!(
                    "importing cache from {} done ({} steps)",
                    from.location,
                    import.entries.len()
                ));
                opts.cache_from.push(import);
            }
            Err(e) => progress.warning(&format!(
                "cache import from {} failed, building without it: {}",
                from.location,
                rbuild_engine::build::chain_text(&e)
            )),
        }
    }
    if args.explain {
        let rows = engine.explain_build(&opts, &images)?;
        print_explanation(&rows);
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = match engine.build(&opts, &images, &progress) {
        Ok(o) => o,
        Err(EngineError::Build(BuildError::StepFailed {
            step,
            line,
            code,
            output,
        })) => {
            let mut msg = format!(
                "{step} did not complete successfully: exit code: {code}\n  at Dockerfile:{line}"
            );
            if !output.is_empty() {
                msg.push_str("\n  last output:");
                for l in output {
                    msg.push_str(&format!("\n    > {l}"));
                }
            }
            anyhow::bail!(msg);
        }
        Err(e) => return Err(anyhow::Error::new(e).context("build failed")),
    };
    // The RUN steps are done: the build's network endpoint goes.
    drop(attached);
    // A multi-platform build's ID is its index's digest (as buildx's --iidfile writes).
    let id = match &outcome.index {
        Some(list) => list.digest.to_string(),
        None => outcome.image.id.to_string(),
    };
    if let Some(list) = &outcome.index {
        for (platform, image) in &outcome.images {
            progress.line(&format!(
                "writing image {} for {platform} done",
                image.manifest_digest
            ));
        }
        progress.line(&format!(
            "writing image index {} done ({} steps, {} cached, {} files hashed)",
            list.digest, outcome.steps, outcome.cached, outcome.files_hashed
        ));
    } else {
        progress.line(&format!(
            "writing image {id} done ({} steps, {} cached, {} files hashed)",
            outcome.steps, outcome.cached, outcome.files_hashed
        ));
    }
    for t in &tags {
        progress.line(&format!("naming to {t} done"));
    }
    match (&output, &outcome.index) {
        (Output::Image, _) => {}
        (Output::Archive(_, dest), Some(list)) => {
            rbuild_engine::transfer::copy::write_index_archive(
                store,
                engine.registry(),
                list,
                &tags,
                dest,
            )?;
            progress.line(&format!("exported to {}", dest.display()));
        }
        (Output::Archive(format, dest), None) => {
            rbuild_engine::transfer::copy::write_archive(
                store,
                engine.registry(),
                &outcome.image,
                tags.clone(),
                *format,
                dest,
            )?;
            progress.line(&format!("exported to {}", dest.display()));
        }
        (Output::Local(dir), Some(_)) => {
            // buildx: one directory per platform, `linux_amd64`, `linux_arm_v7`.
            for (platform, image) in &outcome.images {
                let sub = dir.join(platform.to_string().replace('/', "_"));
                engine.write_filesystem(image, &sub)?;
                progress.line(&format!("exported {platform} to {}", sub.display()));
            }
        }
        (Output::Local(dir), None) => {
            engine.write_filesystem(&outcome.image, dir)?;
            progress.line(&format!("exported to {}", dir.display()));
        }
    }
    for to in &cache_to {
        let client = client.as_ref().expect("made for caches");
        match rbuild_engine::cache::export(client, store, to, &outcome) {
            Ok(done) if to.location == rbuild_engine::cache::CacheLocation::Inline => progress
                .line(&format!(
                    "writing inline cache into the image config done ({} steps)",
                    done.records
                )),
            Ok(done) => {
                for w in &done.warnings {
                    progress.warning(w);
                }
                progress.line(&format!(
                    "exporting cache to {} done ({} steps, {} cache mounts, {} layers, {})",
                    to.location, done.records, done.mounts, done.layers, done.digest
                ));
            }
            Err(e) if to.ignore_error => progress.warning(&format!(
                "cache export to {} failed: {}",
                to.location,
                rbuild_engine::build::chain_text(&e)
            )),
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("exporting the build cache to {}", to.location)));
            }
        }
    }
    if args.push {
        for t in &tags {
            let digest = push_image_blocking(&args.registry, store, t, args.quiet)?;
            progress.line(&format!("pushed {t}@{digest}"));
        }
    }
    if let Some(file) = &args.iidfile {
        std::fs::write(file, &id)
            .with_context(|| format!("writing the image ID to {}", file.display()))?;
    }
    if args.quiet {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--explain`'s table on stdout: each step, whether it is cached, and why not.
fn print_explanation(rows: &[rbuild_builder::build::ExplainedStep]) {
    let width = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    println!("{:<width$}  {:<6}  REASON", "STEP", "CACHED");
    for r in rows {
        let label: String = if r.label.chars().count() > width {
            let mut s: String = r.label.chars().take(width - 1).collect();
            s.push('…');
            s
        } else {
            r.label.clone()
        };
        let cached = match r.cached {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        println!(
            "{label:<width$}  {cached:<6}  {}",
            r.reason.as_deref().unwrap_or("")
        );
    }
}

/// Choose the RUN steps' isolation (`--isolation`, or chroot when namespaces cannot be
/// created) and say what chroot isolation does not isolate.
fn isolation(asked: Option<&str>, network: &str) -> anyhow::Result<()> {
    use rbuild_builder::run::{Isolation, isolation, set_isolation};
    match asked {
        Some("chroot") => set_isolation(Isolation::Chroot),
        Some(_) => set_isolation(Isolation::Oci),
        None => {}
    }
    if isolation() == Isolation::Chroot {
        if !matches!(network, "host" | "default") {
            anyhow::bail!(
                "--network: not supported yet with --isolation chroot: RUN steps share the host's network (other networks need a network namespace)"
            );
        }
        let why = if asked.is_some() {
            "as asked"
        } else {
            "namespaces cannot be created here"
        };
        eprintln!(
            "note: RUN steps use chroot isolation ({why}): {}",
            rbuild_runner::chroot::LIMITS
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_like_buildx() {
        assert_eq!(parse_output("out").unwrap(), Output::Local("out".into()));
        assert_eq!(
            parse_output("type=local,dest=d").unwrap(),
            Output::Local("d".into())
        );
        assert_eq!(
            parse_output("type=oci,dest=x.tar").unwrap(),
            Output::Archive(ArchiveFormat::Oci, "x.tar".into())
        );
        assert_eq!(parse_output("type=image").unwrap(), Output::Image);
        assert!(parse_output("type=docker").is_err());
        assert!(parse_output("type=bogus,dest=x").is_err());
    }

    #[test]
    fn build_args_without_value_come_from_the_environment() {
        let args = parse_build_args(&["A=1".into(), "PATH".into(), "NOPE_NOT_SET_X".into()]);
        assert_eq!(args.get("A").map(String::as_str), Some("1"));
        assert!(args.contains_key("PATH"));
        assert!(!args.contains_key("NOPE_NOT_SET_X"));
    }

    #[test]
    fn secrets_need_a_source() {
        assert!(parse_secret("id=x,src=/definitely/not/here").is_err());
        let (id, s) = parse_secret("id=x,src=/etc/hostname").unwrap();
        assert_eq!(id, "x");
        assert_eq!(s, Secret::File("/etc/hostname".into()));
    }
}
