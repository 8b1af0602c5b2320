//! `rbuild manifest`: multi-platform lists assembled from separately built images, as
//! `docker manifest` and `buildah manifest` do (`create`, `add`, `annotate`, `inspect`, `push`,
//! `rm`), kept in the store as OCI image indexes under their list's name. `inspect` and `rm` of
//! a reference that is no local list work on the registry (its raw JSON; deleting it).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use rbuild_engine::{EngineError, EntryPlatform};
use rbuild_oci::{Digest, Reference};
use rbuild_registry::PullOptions;
use rbuild_store::Store;

use super::Globals;
use super::common::{engine, open_store};
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

impl PlatformFields {
    /// The engine's form of the fields (`--os-features` split at commas).
    fn entry(&self) -> EntryPlatform {
        EntryPlatform {
            os: self.os.clone(),
            arch: self.arch.clone(),
            variant: self.variant.clone(),
            os_version: self.os_version.clone(),
            os_features: self
                .os_features
                .as_ref()
                .map(|s| s.split(',').map(str::to_string).collect()),
        }
    }
}

/// The pull the engine calls for an image not in the store: quiet, with `registry`'s
/// settings, every platform of a list when asked.
fn puller<'a>(
    registry: &'a RegistryArgs,
    store: &'a Store,
) -> impl FnMut(&Reference, bool) -> rbuild_engine::Result<Digest> + 'a {
    move |r, all| {
        let opts = PullOptions {
            all_platforms: all,
            ..PullOptions::default()
        };
        pull_blocking(registry, store, r, &opts, true).map_err(|e| match e.downcast() {
            Ok(e) => e,
            Err(e) => EngineError::Failed(format!("{e:#}")),
        })
    }
}

/// Run `rbuild manifest`.
pub fn run(args: ManifestArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let engine = engine(globals);
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
            let digest = engine.create_manifest_list(
                &list,
                &images,
                amend,
                all,
                &mut puller(&registry, &store),
            )?;
            println!("Created manifest list {name}");
            eprintln!("{digest}");
        }
        ManifestCommand::Add {
            all,
            platform,
            registry,
            list,
            image,
        } => {
            let store = open_store(globals)?;
            let digest = engine.add_to_manifest_list(
                &list,
                &image,
                &platform.entry(),
                all,
                &mut puller(&registry, &store),
            )?;
            println!("{digest}");
        }
        ManifestCommand::Annotate {
            platform,
            list,
            image,
        } => {
            let digest = engine.annotate_manifest_list(&list, &image, &platform.entry())?;
            println!("{digest}");
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
            let (_, existing) = engine.manifest_list(&list)?;
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
