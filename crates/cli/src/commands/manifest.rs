//! `rbuild manifest`: multi-platform lists assembled from separately built images, as
//! `docker manifest` and `buildah manifest` do (`create`, `add`, `annotate`, `inspect`, `push`,
//! `rm`), kept in the store as OCI image indexes under their list's name. `inspect` and `rm` of
//! a reference that is no local list work on the registry (its raw JSON; deleting it).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use rbuild_oci::manifest::{descriptor_digest, descriptor_platform, with_platform};
use rbuild_oci::{Descriptor, Platform, Reference};
use rbuild_registry::PullOptions;
use rbuild_store::{Image, ImageList, Store};

use super::Globals;
use super::common::open_store;
use super::registry_opts::{RegistryArgs, runtime};
use crate::transfer::{pull_blocking, push_index_blocking};

/// Arguments of `rbuild manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[command(subcommand)]
    pub command: ManifestCommand,
}

/// Platform fields given on the command line (`add`, `annotate`).
#[derive(Debug, Args, Default)]
pub struct PlatformFields {
    /// Set the entry's operating system
    #[arg(long)]
    pub os: Option<String>,
    /// Set the entry's architecture
    #[arg(long)]
    pub arch: Option<String>,
    /// Set the entry's architecture variant
    #[arg(long)]
    pub variant: Option<String>,
    /// Set the entry's operating system version
    #[arg(long = "os-version")]
    pub os_version: Option<String>,
    /// Set the entry's operating system features (comma-separated)
    #[arg(long = "os-features")]
    pub os_features: Option<String>,
}

/// `rbuild manifest` subcommands.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Create a local manifest list LIST from images (from the store, else pulled)
    Create {
        /// Add to LIST if it exists instead of failing
        #[arg(long, short)]
        amend: bool,
        /// Of a registry image that is a list, add every platform (a stored list always adds
        /// all of its entries)
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        registry: RegistryArgs,
        /// The list's name, e.g. `localhost:5000/app:1`
        #[arg(value_name = "LIST")]
        list: String,
        /// Images to list
        #[arg(value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Add an image (from the store, else pulled) to the local list LIST
    Add {
        /// Of a registry image that is a list, add every platform (a stored list always adds
        /// all of its entries)
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        platform: PlatformFields,
        #[command(flatten)]
        registry: RegistryArgs,
        /// The list
        #[arg(value_name = "LIST")]
        list: String,
        /// The image to add
        #[arg(value_name = "IMAGE")]
        image: String,
    },
    /// Set the platform fields of IMAGE's entry in the local list LIST
    Annotate {
        #[command(flatten)]
        platform: PlatformFields,
        /// The list
        #[arg(value_name = "LIST")]
        list: String,
        /// The entry: an image name or manifest digest
        #[arg(value_name = "IMAGE")]
        image: String,
    },
    /// Print a local list, or a manifest or index exactly as the registry serves it
    Inspect {
        #[command(flatten)]
        registry: RegistryArgs,
        /// The list or image, e.g. `localhost:5000/app:1`
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Push the local list LIST (its images, then the index) to DEST [default: LIST]
    Push {
        /// Remove the local list after pushing it
        #[arg(long, short)]
        purge: bool,
        /// Push every image the list names (the default; buildah's flag)
        #[arg(long)]
        all: bool,
        /// Print only the pushed digest
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        registry: RegistryArgs,
        /// The list
        #[arg(value_name = "LIST")]
        list: String,
        /// Where to push
        #[arg(value_name = "DEST")]
        dest: Option<String>,
    },
    /// Remove local lists; a reference that is no local list is deleted from its registry
    Rm {
        #[command(flatten)]
        registry: RegistryArgs,
        /// Lists (or registry references)
        #[arg(value_name = "REF", required = true)]
        references: Vec<String>,
    },
}

fn parse(reference: &str) -> anyhow::Result<Reference> {
    reference
        .parse()
        .with_context(|| format!("image reference {reference:?}"))
}

/// Run `rbuild manifest`.
pub fn run(args: ManifestArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    match args.command {
        ManifestCommand::Create {
            amend,
            all,
            registry,
            list,
            images,
        } => {
            let name = parse(&list)?;
            let store = open_store(globals)?;
            let mut entries = match store.resolve_index(&list)? {
                Some(_) if !amend => anyhow::bail!(
                    "manifest list {list:?} already exists (use --amend to add to it, or `rbuild manifest rm` first)"
                ),
                Some(existing) => existing.index.manifests().clone(),
                None => Vec::new(),
            };
            for image in &images {
                for d in entries_of(&store, &registry, image, &PlatformFields::default(), all)? {
                    replace_entry(&mut entries, d);
                }
            }
            let made = store.commit_index_of(entries, std::slice::from_ref(&name))?;
            println!("Created manifest list {name}");
            eprintln!("{}", made.digest);
        }
        ManifestCommand::Add {
            all,
            platform,
            registry,
            list,
            image,
        } => {
            let store = open_store(globals)?;
            let (name, existing) = local_list(&store, &list)?;
            let mut entries = existing.index.manifests().clone();
            for d in entries_of(&store, &registry, &image, &platform, all)? {
                replace_entry(&mut entries, d);
            }
            let made = store.commit_index_of(entries, &[name])?;
            println!("{}", made.digest);
        }
        ManifestCommand::Annotate {
            platform,
            list,
            image,
        } => {
            let store = open_store(globals)?;
            let (name, existing) = local_list(&store, &list)?;
            let wanted = entry_digest(&store, &existing, &image)?;
            let mut entries = existing.index.manifests().clone();
            let entry = entries
                .iter_mut()
                .find(|d| descriptor_digest(d).ok().as_ref() == Some(&wanted))
                .with_context(|| format!("{image:?} is not in manifest list {list:?}"))?;
            *entry = annotated(entry.clone(), &platform)?;
            let made = store.commit_index_of(entries, &[name])?;
            println!("{}", made.digest);
        }
        ManifestCommand::Inspect {
            registry,
            reference,
        } => {
            let store = open_store(globals)?;
            let bytes = match store.resolve_index(&reference)? {
                // A local list, indented as docker manifest inspect prints it.
                Some(list) => {
                    let v: serde_json::Value = serde_json::from_slice(&list.bytes)?;
                    serde_json::to_vec_pretty(&v)?
                }
                None => {
                    let r = parse(&reference)?;
                    let client = registry.client()?;
                    runtime()?
                        .block_on(rbuild_engine::registry::manifest(&client, &r))?
                        .bytes
                }
            };
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            if !bytes.ends_with(b"\n") {
                writeln!(out)?;
            }
        }
        ManifestCommand::Push {
            purge,
            all: _,
            quiet,
            registry,
            list,
            dest,
        } => {
            let store = open_store(globals)?;
            let (_, existing) = local_list(&store, &list)?;
            let dest_text = dest.as_deref().unwrap_or(&list);
            let dest = parse(dest_text)?;
            let digest = push_index_blocking(&registry, &store, &existing, &dest, quiet)?;
            if purge {
                store.remove(&list, true)?;
            }
            println!("{digest}");
        }
        ManifestCommand::Rm {
            registry,
            references,
        } => {
            let store = open_store(globals)?;
            for reference in references {
                if store.resolve_index(&reference)?.is_some() {
                    store.remove(&reference, true)?;
                    println!("Deleted manifest list {reference}");
                    continue;
                }
                let r = parse(&reference)?;
                let client = registry.client()?;
                let digest =
                    runtime()?.block_on(rbuild_engine::registry::delete_manifest(&client, &r))?;
                println!("Deleted: {digest}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The local list `list` names, with its name.
fn local_list(store: &Store, list: &str) -> anyhow::Result<(Reference, ImageList)> {
    let name = parse(list)?;
    let existing = store.resolve_index(list)?.with_context(|| {
        format!("no manifest list {list:?} in the store (make it with `rbuild manifest create`)")
    })?;
    Ok((name, existing))
}

/// The entries `image` contributes: a stored list's entries, or one image with the platform its
/// config says (overridden by `fields`). Not in the store: pulled (this machine's platform's
/// image of a remote list, or with `all` every platform's).
fn entries_of(
    store: &Store,
    registry: &RegistryArgs,
    image: &str,
    fields: &PlatformFields,
    all: bool,
) -> anyhow::Result<Vec<Descriptor>> {
    if let Some(list) = store.resolve_index(image)? {
        return Ok(list.index.manifests().clone());
    }
    let img = match store.resolve(image) {
        Ok(img) => img,
        Err(rbuild_store::StoreError::ImageNotFound(_)) => {
            let r = parse(image)?;
            let opts = PullOptions {
                all_platforms: all,
                ..PullOptions::default()
            };
            let digest = pull_blocking(registry, store, &r, &opts, true)
                .with_context(|| format!("{image:?} is not in the store; pulling it failed"))?;
            if let Some(list) = store.resolve_index(&digest.to_string())? {
                return Ok(list.index.manifests().clone());
            }
            store.image(&digest)?
        }
        Err(e) => return Err(e).with_context(|| format!("image {image:?}")),
    };
    let d = with_platform(store.manifest_descriptor(&img)?, &config_platform(&img));
    Ok(vec![annotated(d, fields)?])
}

/// The platform an image's config declares (`linux/amd64` fields default to this machine's).
fn config_platform(img: &Image) -> Platform {
    rbuild_engine::build::image_platform(img).unwrap_or_else(Platform::host)
}

/// `d` with the platform fields given set.
fn annotated(mut d: Descriptor, f: &PlatformFields) -> anyhow::Result<Descriptor> {
    let mut p = descriptor_platform(&d).unwrap_or_else(Platform::host);
    if let Some(os) = &f.os {
        p.os = os.clone();
    }
    if let Some(arch) = &f.arch {
        p.architecture = arch.clone();
    }
    if let Some(v) = &f.variant {
        p.variant = Some(v.clone()).filter(|v| !v.is_empty());
    }
    // Architecture names are normalized (`aarch64` → `arm64`); a variant given is kept as
    // written (`docker manifest annotate --variant v8` records `v8`).
    let mut p = Platform::parse_normalized(&p.to_string())
        .map_err(|e| anyhow::anyhow!("--os/--arch/--variant: {e}"))?;
    if let Some(v) = f.variant.as_ref().filter(|v| !v.is_empty()) {
        p.variant = Some(v.clone());
    }
    let before = d.platform().clone();
    d = with_platform(d, &p);
    if let Some(mut plat) = d.platform().clone() {
        let old_version = before.as_ref().and_then(|b| b.os_version().clone());
        let old_features = before.as_ref().and_then(|b| b.os_features().clone());
        plat.set_os_version(f.os_version.clone().or(old_version));
        plat.set_os_features(
            f.os_features
                .as_ref()
                .map(|s| s.split(',').map(str::to_string).collect())
                .or(old_features),
        );
        d.set_platform(Some(plat));
    }
    Ok(d)
}

/// Put `d` in `entries`, replacing an entry for the same manifest.
fn replace_entry(entries: &mut Vec<Descriptor>, d: Descriptor) {
    let digest = descriptor_digest(&d).ok();
    match entries
        .iter_mut()
        .find(|e| descriptor_digest(e).ok() == digest)
    {
        Some(e) => *e = d,
        None => entries.push(d),
    }
}

/// The manifest digest `image` means in `list`: a digest, or a stored image's manifest.
fn entry_digest(
    store: &Store,
    list: &ImageList,
    image: &str,
) -> anyhow::Result<rbuild_oci::Digest> {
    if let Ok(d) = image.parse::<rbuild_oci::Digest>()
        && list.entries().iter().any(|(e, _)| *e == d)
    {
        return Ok(d);
    }
    if let Some(d) = image
        .parse::<Reference>()
        .ok()
        .and_then(|r| r.digest().cloned())
    {
        return Ok(d);
    }
    Ok(store
        .resolve(image)
        .with_context(|| format!("image {image:?}"))?
        .manifest_digest)
}
