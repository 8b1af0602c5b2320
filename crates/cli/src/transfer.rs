//! Blocking registry transfers for the commands, over the engine's async ones
//! ([`rbuild_engine::Engine::pull`], [`rbuild_engine::Engine::push`]): progress bars on stderr,
//! SIGINT/SIGTERM discarding the unfinished transfer (exit status 130).
//!
//! [`pull_blocking`] and [`push_blocking`] are what `rbuild pull`/`rbuild push` run;
//! [`pull_image_blocking`] (`FROM`) and [`push_image_blocking`] (`build --push`) serve the
//! build command, with the build's registry options.

use std::sync::Arc;

use anyhow::Context;
use rbuild_engine::Engine;
use rbuild_engine::transfer::on_own_runtime;
use rbuild_oci::{Digest, Platform, Reference};
use rbuild_registry::PullOptions;
use rbuild_store::{Image, ImageList, Store};

use crate::commands::registry_opts::{RegistryArgs, run_interruptible, runtime};
use crate::progress::{Direction, Progress};

/// The engine over `store` (not opened again).
fn engine_of(store: &Store) -> Engine {
    Engine::for_store(store.clone())
}

/// Pull `reference` into `store` with `registry`'s settings, drawing progress on stderr (none
/// when `quiet`) and ending with docker's `Digest:` line; returns the digest now named. Blocks
/// until done; SIGINT/SIGTERM discard the unfinished transfer (exit status 130).
pub fn pull_blocking(
    registry: &RegistryArgs,
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    quiet: bool,
) -> anyhow::Result<Digest> {
    on_own_runtime(|| {
        let client = registry.client()?;
        let progress = Arc::new(Progress::new(Direction::Pull, quiet));
        let rt = runtime()?;
        let engine = engine_of(store);
        let digest = run_interruptible(&rt, async {
            Ok(engine
                .pull(&client, reference, opts, progress.clone())
                .await?)
        })?;
        progress.line(&format!("Digest: {digest}"));
        Ok(digest)
    })
}

/// Push the stored `image` to `dest` with `registry`'s settings (progress as for
/// [`pull_blocking`]); returns the pushed manifest digest. Blocks until done.
pub fn push_blocking(
    registry: &RegistryArgs,
    store: &Store,
    image: &Image,
    dest: &Reference,
    quiet: bool,
) -> anyhow::Result<Digest> {
    on_own_runtime(|| {
        let client = registry.client()?;
        let progress = Arc::new(Progress::new(Direction::Push, quiet));
        let rt = runtime()?;
        let engine = engine_of(store);
        run_interruptible(&rt, async {
            Ok(engine.push(&client, image, dest, progress.clone()).await?)
        })
    })
}

/// For the build command's `FROM`: pull `reference` for `platform` into `store` with the
/// user's registry settings (environment, `/etc/rbuild/registries.json`, docker credentials,
/// as a flagless `rbuild pull`) and return the stored image. Always contacts the registry;
/// whether to pull at all (absent base, `--pull`) is the caller's decision.
pub fn pull_image_blocking(
    registry: &RegistryArgs,
    store: &Store,
    reference: &Reference,
    platform: &Platform,
    quiet: bool,
) -> anyhow::Result<Image> {
    let opts = PullOptions {
        platform: platform.clone(),
        all_platforms: false,
    };
    let digest = pull_blocking(registry, store, reference, &opts, quiet)?;
    store
        .image(&digest)
        .with_context(|| format!("reading pulled image {reference} from the store"))
}

/// For `build --push`: push the stored image named `image_ref` to the registry that name
/// points at, with the user's registry settings (as [`pull_image_blocking`]); returns the
/// pushed manifest digest.
pub fn push_image_blocking(
    registry: &RegistryArgs,
    store: &Store,
    image_ref: &Reference,
    quiet: bool,
) -> anyhow::Result<Digest> {
    let name = image_ref.to_string();
    if let Some(list) = store
        .resolve_index(&name)
        .with_context(|| format!("finding image {name:?} in the store"))?
    {
        return push_index_blocking(registry, store, &list, image_ref, quiet);
    }
    let image = store
        .resolve(&name)
        .with_context(|| format!("finding image {name:?} in the store"))?;
    push_blocking(registry, store, &image, image_ref, quiet)
}

/// Push the stored multi-platform image `list` to `dest` (every image, then the index) with
/// `registry`'s settings (progress as for [`pull_blocking`]); returns the pushed index digest.
pub fn push_index_blocking(
    registry: &RegistryArgs,
    store: &Store,
    list: &ImageList,
    dest: &Reference,
    quiet: bool,
) -> anyhow::Result<Digest> {
    on_own_runtime(|| {
        let client = registry.client()?;
        let progress = Arc::new(Progress::new(Direction::Push, quiet));
        let rt = runtime()?;
        let engine = engine_of(store);
        run_interruptible(&rt, async {
            Ok(engine
                .push_index(&client, list, dest, progress.clone())
                .await?)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry_support::{Auth, RegistryProcess};
    use std::io::Read;

    /// A one-layer image made through the store API, named `name`; returns it and its layer tar.
    fn stored_image(store: &Store, name: &Reference) -> (Image, Vec<u8>) {
        let mut b = tar::Builder::new(Vec::new());
        let body = b"made for the blocking transfer helpers\n".repeat(1000);
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "etc/helpers.txt", &body[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let layer = store.add_layer_tar(&tar[..], "test layer").unwrap();
        let host = Platform::host();
        let config = serde_json::json!({
            "architecture": host.architecture,
            "os": host.os,
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
        });
        let image = store
            .commit_image(
                &serde_json::to_vec(&config).unwrap(),
                std::slice::from_ref(name),
            )
            .unwrap();
        (image, tar)
    }

    #[test]
    fn build_helpers_push_and_pull_through_a_real_registry() {
        let Some(reg) = RegistryProcess::start(Auth::Open, "transfer helpers") else {
            return;
        };
        let src = tempfile::tempdir().unwrap();
        let src = Store::open(src.path()).unwrap();
        let name: Reference = format!("{}/helpers/img:1", reg.addr).parse().unwrap();
        let (image, tar) = stored_image(&src, &name);

        // build --push: the stored name says where to.
        let pushed =
            push_image_blocking(&RegistryArgs::from_env().unwrap(), &src, &name, true).unwrap();
        // The uncompressed stored layer went out gzip'd: a new manifest, same image ID.
        assert_ne!(pushed, image.manifest_digest);
        assert_eq!(
            push_image_blocking(&RegistryArgs::from_env().unwrap(), &src, &name, true).unwrap(),
            pushed,
            "a second push reports the same manifest"
        );

        // FROM: a fresh store pulls it, named, with the same config and layer content.
        let dst = tempfile::tempdir().unwrap();
        let dst = Store::open(dst.path()).unwrap();
        let pulled = pull_image_blocking(
            &RegistryArgs::from_env().unwrap(),
            &dst,
            &name,
            &Platform::host(),
            true,
        )
        .unwrap();
        assert_eq!(pulled.manifest_digest, pushed);
        assert_eq!(pulled.id, image.id);
        assert_eq!(pulled.names, vec![name.clone()]);
        let diff_id = &pulled.diff_ids().unwrap()[0];
        let mut content = Vec::new();
        dst.layer_reader(diff_id)
            .unwrap()
            .read_to_end(&mut content)
            .unwrap();
        assert!(content == tar, "pulled layer differs from the one pushed");
        assert_eq!(
            dst.resolve(&name.to_string()).unwrap().manifest_digest,
            pushed
        );

        // Called from async code (a runtime already running on this thread): still works.
        let third = tempfile::tempdir().unwrap();
        let third = Store::open(third.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let again = rt
            .block_on(async {
                pull_image_blocking(
                    &RegistryArgs::from_env().unwrap(),
                    &third,
                    &name,
                    &Platform::host(),
                    true,
                )
            })
            .unwrap();
        assert_eq!(again.manifest_digest, pushed);

        // A tag the registry lacks: an error naming the reference, and nothing named.
        let missing: Reference = format!("{}/helpers/img:nope", reg.addr).parse().unwrap();
        let err = pull_image_blocking(
            &RegistryArgs::from_env().unwrap(),
            &dst,
            &missing,
            &Platform::host(),
            true,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("helpers/img:nope"), "{msg}");
        assert!(dst.resolve(&missing.to_string()).is_err());
        // Pushing a name the store does not have says so.
        let err = push_image_blocking(&RegistryArgs::from_env().unwrap(), &dst, &missing, true)
            .unwrap_err();
        assert!(format!("{err:#}").contains("in the store"), "{err:#}");
    }
}
