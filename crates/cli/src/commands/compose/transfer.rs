//! `pull` and `push` of the services' images through the registry client.

#[allow(clippy::wildcard_imports)]
use super::*;

/// `pull`: the `image:` of every selected service without `build:`.
pub(super) fn pull(
    rt: &Runtime<'_>,
    engine: &rbuild_engine::Engine,
    a: &TransferArgs,
) -> anyhow::Result<ExitCode> {
    let store = engine.store()?;
    for name in rt.selected(&a.services, true)? {
        let (build, image) = rt.image_source(&name);
        if !image || build {
            eprintln!("{name} Skipped - No image to be pulled");
            continue;
        }
        let tag = rt.image_name(&name);
        let reference: Reference = tag
            .parse()
            .with_context(|| format!("service {name:?}: invalid image {tag:?}"))?;
        eprintln!("{name} Pulling");
        match pull_image_blocking(&a.registry, store, &reference, &Platform::host(), true) {
            Ok(_) => eprintln!("{name} Pulled"),
            Err(e) if a.ignore_pull_failures => eprintln!("{name} Warning: {e:#}"),
            Err(e) => return Err(e.context(format!("pulling {tag} for service {name:?}"))),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `push`: the images of the selected services that have both `build:` and `image:`.
pub(super) fn push(
    rt: &Runtime<'_>,
    engine: &rbuild_engine::Engine,
    a: &TransferArgs,
) -> anyhow::Result<ExitCode> {
    let store = engine.store()?;
    for name in rt.selected(&a.services, true)? {
        let (build, image) = rt.image_source(&name);
        if !(build && image) {
            continue;
        }
        let tag = rt.image_name(&name);
        let reference: Reference = tag
            .parse()
            .with_context(|| format!("service {name:?}: invalid image {tag:?}"))?;
        eprintln!("Pushing {name}: {tag}");
        match crate::transfer::push_image_blocking(&a.registry, store, &reference, true) {
            Ok(digest) => eprintln!("{name} Pushed {tag}@{digest}"),
            Err(e) if a.ignore_pull_failures => eprintln!("{name} Warning: {e:#}"),
            Err(e) => return Err(e.context(format!("pushing {tag} for service {name:?}"))),
        }
    }
    Ok(ExitCode::SUCCESS)
}
