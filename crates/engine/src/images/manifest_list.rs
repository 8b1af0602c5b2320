//! Manifest lists assembled from separately built images (`docker manifest create|add|annotate`,
//! `buildah manifest`): kept in the store as OCI image indexes under the list's name. An image
//! named for a list that is not in the store is fetched through the caller's pull (the front
//! end owns the registry options and the progress display).

use rbuild_oci::manifest::{descriptor_digest, descriptor_platform, with_platform};
use rbuild_oci::{Descriptor, Digest, Platform, Reference};
use rbuild_store::{Image, ImageList, StoreError};

use crate::error::{EngineError, Result, ResultExt};
use crate::{Engine, build};

/// Platform fields to set on a list entry (`manifest add`/`annotate` `--os`, `--arch`,
/// `--variant`, `--os-version`, `--os-features`); `None` keeps what the entry has.
#[derive(Debug, Clone, Default)]
pub struct EntryPlatform {
    /// The operating system.
    pub os: Option<String>,
    /// The architecture (normalized: `aarch64` becomes `arm64`).
    pub arch: Option<String>,
    /// The architecture variant, kept as written; empty clears it.
    pub variant: Option<String>,
    /// The operating system version.
    pub os_version: Option<String>,
    /// The operating system features.
    pub os_features: Option<Vec<String>>,
}

/// Pulls an image that is not in the store: the reference, and whether every platform of a
/// remote list is wanted; answers the digest now stored.
pub type PullFn<'a> = dyn FnMut(&Reference, bool) -> Result<Digest> + 'a;

impl Engine {
    /// Make the list `list` of `images` (each a stored image or list, or pulled through
    /// `pull`); with `amend` an existing list is added to, otherwise it is a conflict.
    /// Answers the new list's digest.
    pub fn create_manifest_list(
        &self,
        list: &str,
        images: &[String],
        amend: bool,
        all: bool,
        pull: &mut PullFn<'_>,
    ) -> Result<Digest> {
        let name = parse(list)?;
        let store = self.store()?;
        let mut entries = match store.resolve_index(list)? {
            Some(_) if !amend => {
                return Err(EngineError::Conflict(format!(
                    "manifest list {list:?} already exists (use --amend to add to it, or `rbuild manifest rm` first)"
                )));
            }
            Some(existing) => existing.index.manifests().clone(),
            None => Vec::new(),
        };
        for image in images {
            for d in self.list_entries(image, &EntryPlatform::default(), all, pull)? {
                replace_entry(&mut entries, d);
            }
        }
        Ok(store
            .commit_index_of(entries, std::slice::from_ref(&name))?
            .digest)
    }

    /// Add `image` (a stored image or list, or pulled through `pull`) to the stored list
    /// `list`, with the platform fields given; an entry for the same manifest is replaced.
    /// Answers the list's new digest.
    pub fn add_to_manifest_list(
        &self,
        list: &str,
        image: &str,
        fields: &EntryPlatform,
        all: bool,
        pull: &mut PullFn<'_>,
    ) -> Result<Digest> {
        let (name, existing) = self.manifest_list(list)?;
        let mut entries = existing.index.manifests().clone();
        for d in self.list_entries(image, fields, all, pull)? {
            replace_entry(&mut entries, d);
        }
        Ok(self.store()?.commit_index_of(entries, &[name])?.digest)
    }

    /// Set the platform fields of `image`'s entry in the stored list `list` (`image` is a
    /// manifest digest in the list, a digest reference, or a stored image). Answers the list's
    /// new digest.
    pub fn annotate_manifest_list(
        &self,
        list: &str,
        image: &str,
        fields: &EntryPlatform,
    ) -> Result<Digest> {
        let (name, existing) = self.manifest_list(list)?;
        let wanted = self.entry_digest(&existing, image)?;
        let mut entries = existing.index.manifests().clone();
        let entry = entries
            .iter_mut()
            .find(|d| descriptor_digest(d).ok().as_ref() == Some(&wanted))
            .ok_or_else(|| {
                EngineError::NotFound(format!("{image:?} is not in manifest list {list:?}"))
            })?;
        *entry = annotated(entry.clone(), fields)?;
        Ok(self.store()?.commit_index_of(entries, &[name])?.digest)
    }

    /// The stored list `list` names, with its name; a clear error when there is none.
    pub fn manifest_list(&self, list: &str) -> Result<(Reference, ImageList)> {
        let name = parse(list)?;
        let existing = self.store()?.resolve_index(list)?.ok_or_else(|| {
            EngineError::NotFound(format!(
                "no manifest list {list:?} in the store (make it with `rbuild manifest create`)"
            ))
        })?;
        Ok((name, existing))
    }

    /// The entries `image` contributes: a stored list's entries, or one image with the
    /// platform its config says (overridden by `fields`). Not in the store: pulled.
    fn list_entries(
        &self,
        image: &str,
        fields: &EntryPlatform,
        all: bool,
        pull: &mut PullFn<'_>,
    ) -> Result<Vec<Descriptor>> {
        let store = self.store()?;
        if let Some(list) = store.resolve_index(image)? {
            return Ok(list.index.manifests().clone());
        }
        let img = match store.resolve(image) {
            Ok(img) => img,
            Err(StoreError::ImageNotFound(_)) => {
                let r = parse(image)?;
                let digest = pull(&r, all)
                    .context(format!("{image:?} is not in the store; pulling it failed"))?;
                if let Some(list) = store.resolve_index(&digest.to_string())? {
                    return Ok(list.index.manifests().clone());
                }
                store.image(&digest)?
            }
            Err(e) => return Err(e).context(format!("image {image:?}")),
        };
        let d = with_platform(store.manifest_descriptor(&img)?, &config_platform(&img));
        Ok(vec![annotated(d, fields)?])
    }

    /// The manifest digest `image` means in `list`: a digest, or a stored image's manifest.
    fn entry_digest(&self, list: &ImageList, image: &str) -> Result<Digest> {
        if let Ok(d) = image.parse::<Digest>()
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
        Ok(self
            .store()?
            .resolve(image)
            .context(format!("image {image:?}"))?
            .manifest_digest)
    }
}

/// `reference` parsed, or an error naming it.
fn parse(reference: &str) -> Result<Reference> {
    reference
        .parse()
        .map_err(|e| EngineError::InvalidParameter(format!("image reference {reference:?}: {e}")))
}

/// The platform an image's config declares (`linux/amd64` fields default to this machine's).
fn config_platform(img: &Image) -> Platform {
    build::image_platform(img).unwrap_or_else(Platform::host)
}

/// `d` with the platform fields given set.
fn annotated(mut d: Descriptor, f: &EntryPlatform) -> Result<Descriptor> {
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
        .map_err(|e| EngineError::InvalidParameter(format!("--os/--arch/--variant: {e}")))?;
    if let Some(v) = f.variant.as_ref().filter(|v| !v.is_empty()) {
        p.variant = Some(v.clone());
    }
    let before = d.platform().clone();
    d = with_platform(d, &p);
    if let Some(mut plat) = d.platform().clone() {
        let old_version = before.as_ref().and_then(|b| b.os_version().clone());
        let old_features = before.as_ref().and_then(|b| b.os_features().clone());
        plat.set_os_version(f.os_version.clone().or(old_version));
        plat.set_os_features(f.os_features.clone().or(old_features));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest: &str, platform: &str) -> Descriptor {
        let d = Descriptor::new(
            oci_spec::image::MediaType::ImageManifest,
            10,
            digest.parse::<oci_spec::image::Digest>().unwrap(),
        );
        with_platform(d, &Platform::parse_normalized(platform).unwrap())
    }

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn an_entry_for_the_same_manifest_is_replaced_not_repeated() {
        let mut entries = vec![entry(A, "linux/amd64")];
        replace_entry(&mut entries, entry(B, "linux/arm64"));
        replace_entry(&mut entries, entry(A, "linux/arm/v7"));
        assert_eq!(entries.len(), 2);
        assert_eq!(
            descriptor_platform(&entries[0]).unwrap().to_string(),
            "linux/arm/v7"
        );
    }

    #[test]
    fn annotation_normalizes_the_architecture_and_keeps_the_variant_given() {
        let fields = EntryPlatform {
            arch: Some("aarch64".into()),
            variant: Some("v8".into()),
            os_features: Some(vec!["a".into(), "b".into()]),
            ..EntryPlatform::default()
        };
        let d = annotated(entry(A, "linux/amd64"), &fields).unwrap();
        let p = d.platform().clone().unwrap();
        assert_eq!(p.architecture().to_string(), "arm64");
        assert_eq!(p.variant().as_deref(), Some("v8"));
        assert_eq!(
            p.os_features().clone().unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        let bad = EntryPlatform {
            arch: Some("x86-64!".into()),
            ..EntryPlatform::default()
        };
        assert!(annotated(entry(A, "linux/amd64"), &bad).is_err());
    }
}
