//! Copying an image between `docker://` registries, `oci:` layout directories, `oci-archive:`
//! and `docker-archive:` files and the local store (`rbuild:`): [`parse_location`], then
//! [`fetch`] the source into a store and [`send`] it to the destination (registry to registry
//! is `rbuild_registry::copy`, with no store). Layers are never unpacked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbuild_oci::{Digest, Reference};
use rbuild_registry::{Client, PullOptions, Reporter};
use rbuild_store::archive::{self, ArchiveFormat, LoadSource, Loaded};
use rbuild_store::{Image, Store};

use super::{pull_to_store, push_from_store};
use crate::Engine;
use crate::error::{EngineError, OptionExt, Result, ResultExt};
use crate::files::write_atomic;

fn invalid(message: String) -> EngineError {
    EngineError::InvalidParameter(message)
}

impl Engine {
    /// Copy the image at `src` to `dst`; returns its manifest digest there. Registry to
    /// registry streams (or mounts) blobs with no local copy (progress to `pushing`);
    /// everything else goes through a store — the engine's when `rbuild:` is an end, else a
    /// temporary one removed afterwards — fetching with progress to `pulling` and sending
    /// with progress to `pushing`. With `opts.all_platforms` a multi-platform image is
    /// copied whole between any two ends but docker-archive (which holds no index).
    pub async fn copy(
        &self,
        client: &Client,
        src: &Location,
        dst: &Location,
        opts: &PullOptions,
        pulling: Arc<dyn Reporter>,
        pushing: Arc<dyn Reporter>,
    ) -> Result<Digest> {
        if let (Location::Docker(s), Location::Docker(d)) = (src, dst) {
            return rbuild_registry::copy(client, s, d, opts, pushing)
                .await
                .with_context(|| format!("copying {s} to {d}"));
        }
        if opts.all_platforms {
            return self
                .copy_all_platforms(client, src, dst, opts, pulling, pushing)
                .await;
        }
        let (store, _tmp) = self.copy_store(src, dst)?;
        let image = fetch(client, &store, src, opts, pulling).await?;
        send(client, &store, &image, dst, pushing).await
    }
}

impl Engine {
    /// The store a copy goes through: the engine's when `rbuild:` is one end, else a temporary
    /// one that goes with the returned directory.
    fn copy_store(
        &self,
        src: &Location,
        dst: &Location,
    ) -> Result<(Store, Option<tempfile::TempDir>)> {
        if matches!(src, Location::Store(_)) || matches!(dst, Location::Store(_)) {
            return Ok((self.store()?.clone(), None));
        }
        let base = std::env::temp_dir();
        let tmp = tempfile::Builder::new()
            .prefix("rbuild-copy-")
            .tempdir_in(&base)
            .with_context(|| format!("creating a temporary store in {}", base.display()))?;
        Ok((Store::open(tmp.path())?, Some(tmp)))
    }

    /// `copy --all-platforms` through a store (the engine's when `rbuild:` is an end, else a
    /// temporary one): the source's multi-platform image — a registry's index, a stored one,
    /// an OCI layout's or archive's — fetched whole, then sent whole: pushed, named, written
    /// as an OCI layout or archive. A single image is copied as it is. docker-archive holds
    /// no index: a multi-platform image to it is refused (as skopeo refuses it).
    async fn copy_all_platforms(
        &self,
        client: &Client,
        src: &Location,
        dst: &Location,
        opts: &PullOptions,
        pulling: Arc<dyn Reporter>,
        pushing: Arc<dyn Reporter>,
    ) -> Result<Digest> {
        let (store, _tmp) = self.copy_store(src, dst)?;
        // Refused before anything is fetched: a stored multi-platform image to docker-archive.
        if let (Location::Store(name), Location::DockerArchive(file, _)) = (src, dst)
            && store.resolve_index(name)?.is_some()
        {
            return Err(no_index_in_docker_archive(file));
        }
        match fetch_all(client, &store, src, opts, pulling).await? {
            Fetched::Image(image) => send(client, &store, &image, dst, pushing).await,
            Fetched::List(list) => send_list(client, &store, &list, dst, pushing).await,
        }
    }
}

/// What `copy --all-platforms` fetched: a multi-platform image, or a single image.
enum Fetched {
    List(Box<rbuild_store::ImageList>),
    Image(Box<Image>),
}

fn no_index_in_docker_archive(file: &Path) -> EngineError {
    invalid(format!(
        "docker-archive:{}: copying multiple images: destination transport \"docker-archive\" \
         does not support copying multiple images as a group (it holds no image index)",
        file.display()
    ))
    .with_hint("copy one platform (--platform P, without --all-platforms), or to oci-archive:FILE")
}

/// Get the whole source (every platform of a multi-platform one) into `store`.
async fn fetch_all(
    client: &Client,
    store: &Store,
    src: &Location,
    opts: &PullOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Fetched> {
    let loaded = match src {
        Location::Docker(r) => {
            let opts = PullOptions {
                all_platforms: true,
                ..opts.clone()
            };
            let digest = pull_to_store(client, store, r, &opts, reporter).await?;
            return fetched(store, &digest);
        }
        Location::Store(name) => {
            return match store.resolve_index(name)? {
                Some(list) => {
                    crate::images::archive::require_every_platform(store, &list, name)?;
                    Ok(Fetched::List(Box::new(list)))
                }
                None => {
                    let image = store
                        .resolve(name)
                        .with_context(|| format!("finding image {name:?} in the store"))?;
                    Ok(Fetched::Image(Box::new(image)))
                }
            };
        }
        Location::DockerArchive(..) => {
            return Ok(Fetched::Image(Box::new(
                fetch(client, store, src, opts, reporter).await?,
            )));
        }
        Location::Oci(dir, tag) => {
            let loaded = archive::load_with(store, LoadSource::Dir(dir.clone()), true)
                .with_context(|| format!("reading OCI layout {}", dir.display()))?;
            if let Some(t) = tag {
                return fetched(store, &oci_dir_tag(dir, t)?);
            }
            (loaded, dir.display().to_string(), None)
        }
        Location::OciArchive(file, tag) => {
            let f =
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            let loaded = archive::load_with(
                store,
                LoadSource::Stream {
                    reader: Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
                    name: file.display().to_string(),
                },
                true,
            )
            .with_context(|| format!("reading archive {}", file.display()))?;
            (loaded, file.display().to_string(), tag.clone())
        }
    };
    let (loaded, what, tag) = loaded;
    // The archive's top-level images: its indexes, and the images none of them lists.
    let lists: Vec<rbuild_store::ImageList> = loaded
        .iter()
        .filter_map(|l| store.index(&l.manifest_digest).ok())
        .collect();
    let listed: std::collections::HashSet<Digest> = lists
        .iter()
        .flat_map(|l| l.entries().into_iter().map(|(d, _)| d))
        .collect();
    let top: Vec<Loaded> = loaded
        .into_iter()
        .filter(|l| !listed.contains(&l.manifest_digest))
        .collect();
    let digest = pick(&top, None, tag.as_deref(), &what)?;
    fetched(store, &digest)
}

/// The stored index or image `digest`.
fn fetched(store: &Store, digest: &Digest) -> Result<Fetched> {
    if let Some(list) = store.resolve_index(&digest.to_string())?
        && list.digest == *digest
    {
        return Ok(Fetched::List(Box::new(list)));
    }
    Ok(Fetched::Image(Box::new(store.image(digest).with_context(
        || format!("reading image {digest} from the store"),
    )?)))
}

/// Write the multi-platform image `list` from `store` to the destination; returns its digest
/// there.
async fn send_list(
    client: &Client,
    store: &Store,
    list: &rbuild_store::ImageList,
    dst: &Location,
    reporter: Arc<dyn Reporter>,
) -> Result<Digest> {
    let tag_names = |tag: &Option<String>| -> Result<Vec<Reference>> {
        let Some(t) = tag else {
            return Ok(Vec::new());
        };
        let base = list
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost/image".parse().expect("a valid reference"));
        Ok(vec![
            base.with_tag(t).with_context(|| format!("tag {t:?}"))?,
        ])
    };
    if !matches!(dst, Location::Docker(_) | Location::Store(_)) {
        for (digest, _) in list.entries() {
            if let Ok(image) = store.image(&digest) {
                crate::cache::fetch_remote_layers(store, client, &store.remote_layers(&image)?)
                    .await?;
            }
        }
    }
    match dst {
        Location::Docker(r) => super::push_index_from_store(client, store, list, r, reporter).await,
        Location::Store(name) => {
            let to: Reference = name
                .parse()
                .with_context(|| format!("image name {name:?}"))?;
            store
                .name_index(&list.digest, &[to])
                .with_context(|| format!("naming the image {name}"))?;
            Ok(list.digest.clone())
        }
        Location::DockerArchive(file, _) => Err(no_index_in_docker_archive(file)),
        Location::OciArchive(file, tag) => {
            // The layers held only remotely were fetched above, with the copy's client.
            save_index_archive(store, list, &tag_names(tag)?, file)?;
            Ok(list.digest.clone())
        }
        Location::Oci(dir, tag) => {
            let names = tag_names(tag)?;
            write_layout(dir, |f| {
                archive::save_index(store, &[(list.clone(), names)], &[], f)
            })?;
            Ok(list.digest.clone())
        }
    }
}

/// One end of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A registry image.
    Docker(Reference),
    /// An OCI image layout directory, optionally one tag (`org.opencontainers.image.ref.name`).
    Oci(PathBuf, Option<String>),
    /// An OCI layout as a tar file.
    OciArchive(PathBuf, Option<String>),
    /// A `docker save` tar file, optionally one image name in it.
    DockerArchive(PathBuf, Option<Reference>),
    /// The local store.
    Store(String),
}

/// Parse `transport:rest`.
pub fn parse_location(s: &str) -> Result<Location> {
    let (transport, rest) = s.split_once(':').ok_or_else(|| {
        invalid(format!("{s:?}: no transport")).with_hint(
            "write docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or rbuild:REF",
        )
    })?;
    let path_and = |rest: &str| -> (PathBuf, Option<String>) {
        match rest.split_once(':') {
            Some((p, t)) if !t.is_empty() => (PathBuf::from(p), Some(t.to_string())),
            _ => (PathBuf::from(rest.trim_end_matches(':')), None),
        }
    };
    let nonempty = |p: &Path| -> Result<()> {
        if p.as_os_str().is_empty() {
            return Err(invalid(format!("{s:?}: the path is empty")));
        }
        Ok(())
    };
    Ok(match transport {
        "docker" => {
            let r = rest
                .strip_prefix("//")
                .or_invalid(|| format!("{s:?}: docker transport is written docker://REF"))?;
            Location::Docker(
                r.parse()
                    .with_context(|| format!("image reference in {s:?}"))?,
            )
        }
        "oci" => {
            let (p, t) = path_and(rest);
            nonempty(&p)?;
            Location::Oci(p, t)
        }
        "oci-archive" => {
            let (p, t) = path_and(rest);
            nonempty(&p)?;
            Location::OciArchive(p, t)
        }
        "docker-archive" => {
            let (p, t) = path_and(rest);
            nonempty(&p)?;
            let r = t
                .map(|t| t.parse::<Reference>())
                .transpose()
                .with_context(|| format!("image name in {s:?}"))?;
            Location::DockerArchive(p, r)
        }
        "rbuild" => {
            if rest.is_empty() {
                return Err(invalid(format!("{s:?}: no image named")));
            }
            Location::Store(rest.to_string())
        }
        other => {
            return Err(invalid(format!("{s:?}: unknown transport {other:?}"))
                .with_hint("transports: docker://, oci:, oci-archive:, docker-archive:, rbuild:"));
        }
    })
}

/// Get the source image into `store`.
pub async fn fetch(
    client: &Client,
    store: &Store,
    src: &Location,
    opts: &PullOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Image> {
    let digest = match src {
        Location::Docker(r) => pull_to_store(client, store, r, opts, reporter).await?,
        Location::Store(name) => {
            return store
                .resolve(name)
                .with_context(|| format!("finding image {name:?} in the store"));
        }
        Location::Oci(dir, tag) => {
            let loaded = archive::load(store, LoadSource::Dir(dir.clone()))
                .with_context(|| format!("reading OCI layout {}", dir.display()))?;
            let by_tag = match tag {
                Some(t) => Some(oci_dir_tag(dir, t)?),
                None => None,
            };
            pick(
                &loaded,
                by_tag.as_ref(),
                tag.as_deref(),
                &dir.display().to_string(),
            )?
        }
        Location::OciArchive(file, tag) => {
            let loaded = load_file(store, file)?;
            pick(&loaded, None, tag.as_deref(), &file.display().to_string())?
        }
        Location::DockerArchive(file, name) => {
            let loaded = load_file(store, file)?;
            let wanted = name.as_ref().map(|n| n.to_string());
            pick(
                &loaded,
                None,
                wanted.as_deref(),
                &file.display().to_string(),
            )?
        }
    };
    store
        .image(&digest)
        .with_context(|| format!("reading image {digest} from the store"))
}

fn load_file(store: &Store, file: &Path) -> Result<Vec<Loaded>> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    archive::load(
        store,
        LoadSource::Stream {
            reader: Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            name: file.display().to_string(),
        },
    )
    .with_context(|| format!("reading archive {}", file.display()))
}

/// The manifest digest tagged `tag` in an OCI layout's `index.json`.
fn oci_dir_tag(dir: &Path, tag: &str) -> Result<Digest> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let index = rbuild_oci::manifest::decode_index(&bytes)
        .with_context(|| format!("decoding {}", path.display()))?;
    for d in index.manifests() {
        let name = d
            .annotations()
            .as_ref()
            .and_then(|a| a.get(archive::ANNOTATION_REF_NAME));
        if name.is_some_and(|n| n == tag || n.ends_with(&format!(":{tag}"))) {
            return Ok(rbuild_oci::manifest::descriptor_digest(d)?);
        }
    }
    Err(EngineError::NotFound(format!(
        "{}: no image tagged {tag:?}",
        path.display()
    )))
}

/// The one image wanted among those loaded.
fn pick(
    loaded: &[Loaded],
    digest: Option<&Digest>,
    name: Option<&str>,
    what: &str,
) -> Result<Digest> {
    if let Some(d) = digest {
        return Ok(d.clone());
    }
    if let Some(n) = name {
        let hit = loaded.iter().find(|l| {
            l.names
                .iter()
                .any(|r| r.to_string() == n || r.familiar() == n || r.tag() == Some(n))
        });
        return match (hit, loaded) {
            (Some(l), _) => Ok(l.manifest_digest.clone()),
            // A lone image whose index carries only a bare tag (skopeo's ref.name) is the one.
            (None, [one]) if one.names.is_empty() => Ok(one.manifest_digest.clone()),
            _ => Err(EngineError::NotFound(format!(
                "{what}: no image named {n:?}"
            ))),
        };
    }
    match loaded {
        [one] => Ok(one.manifest_digest.clone()),
        [] => Err(EngineError::NotFound(format!("{what}: no image in it"))),
        _ => Err(invalid(format!("{what}: holds {} images", loaded.len()))
            .with_hint("name one after the path, e.g. docker-archive:FILE:NAME:TAG")),
    }
}

/// Write the image from `store` to the destination; returns its manifest digest there.
pub async fn send(
    client: &Client,
    store: &Store,
    image: &Image,
    dst: &Location,
    reporter: Arc<dyn Reporter>,
) -> Result<Digest> {
    // A push places layers held only remotely itself (mounted where it can); the other ends
    // need their bytes.
    if !matches!(dst, Location::Docker(_) | Location::Store(_)) {
        crate::cache::fetch_remote_layers(store, client, &store.remote_layers(image)?).await?;
    }
    match dst {
        Location::Docker(r) => push_from_store(client, store, image, r, reporter).await,
        Location::Store(name) => {
            let r: Reference = name
                .parse()
                .with_context(|| format!("image name {name:?}"))?;
            store
                .tag(image, &r)
                .with_context(|| format!("naming the image {r}"))?;
            Ok(image.manifest_digest.clone())
        }
        Location::DockerArchive(file, name) => {
            let names: Vec<Reference> = name.iter().cloned().collect();
            save_archive(store, image, names, ArchiveFormat::Docker, file)?;
            Ok(image.manifest_digest.clone())
        }
        Location::OciArchive(file, tag) => {
            let names = tag_names(image, tag.as_deref())?;
            save_archive(store, image, names, ArchiveFormat::Oci, file)?;
            Ok(image.manifest_digest.clone())
        }
        Location::Oci(dir, tag) => {
            let names = tag_names(image, tag.as_deref())?;
            write_layout(dir, |f| {
                archive::save(store, &[(image.clone(), names)], ArchiveFormat::Oci, f)
            })?;
            Ok(image.manifest_digest.clone())
        }
    }
}

/// Write an OCI layout into `dir` with `save` (which writes it as a tar): blobs and
/// `oci-layout` first, then `index.json` (atomically) last. An existing layout keeps its
/// images: the new entries are added to its index, replacing only an entry of the same
/// name (`org.opencontainers.image.ref.name`) or the same unnamed manifest, as skopeo does.
fn write_layout(
    dir: &Path,
    save: impl FnOnce(&std::fs::File) -> rbuild_store::Result<()>,
) -> Result<()> {
    let what = || format!("writing OCI layout {}", dir.display());
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let index_path = dir.join("index.json");
    let existing =
        match std::fs::read(&index_path) {
            Ok(bytes) => Some(rbuild_oci::manifest::decode_index(&bytes).with_context(|| {
                format!("reading {} (not an OCI layout?)", index_path.display())
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", index_path.display())),
        };
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    save(tmp.as_file()).with_context(what)?;
    let mut new_index = None;
    let mut entries = tar::Archive::new(std::fs::File::open(tmp.path())?);
    for e in entries.entries().with_context(what)? {
        let mut e = e.with_context(what)?;
        if e.path().with_context(what)?.as_os_str() == "index.json" {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).with_context(what)?;
            new_index = Some(rbuild_oci::manifest::decode_index(&bytes).with_context(what)?);
            continue;
        }
        e.unpack_in(dir).with_context(what)?;
    }
    let mut index = new_index.ok_or_else(|| invalid(format!("{}: no index.json", what())))?;
    if let Some(old) = existing {
        let name = |d: &oci_spec::image::Descriptor| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(archive::ANNOTATION_REF_NAME))
                .cloned()
        };
        let added = index.manifests().clone();
        let mut kept: Vec<_> = old
            .manifests()
            .iter()
            .filter(|o| {
                !added.iter().any(|n| match (name(o), name(n)) {
                    (Some(a), Some(b)) => a == b,
                    (None, None) => o.digest() == n.digest(),
                    _ => false,
                })
            })
            .cloned()
            .collect();
        kept.extend(added);
        index.set_manifests(kept);
    }
    write_atomic(&index_path, |f| serde_json::to_writer(f, &index))
}

/// The names to record in an OCI index: the tag given (on the image's repository), else none.
fn tag_names(image: &Image, tag: Option<&str>) -> Result<Vec<Reference>> {
    let Some(tag) = tag else {
        return Ok(Vec::new());
    };
    let base = image
        .names
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost/image".parse().expect("a valid reference"));
    Ok(vec![
        base.with_tag(tag).with_context(|| format!("tag {tag:?}"))?,
    ])
}

/// Save to `file` through a temporary file in the same directory, renamed when complete
/// (`build --output type=docker|oci`). Layers held only remotely (a lazily imported cache's)
/// are fetched first, with `settings` (the command's: its TLS, insecure hosts, credentials).
pub fn write_archive(
    store: &Store,
    settings: &crate::RegistrySettings,
    image: &Image,
    names: Vec<Reference>,
    format: ArchiveFormat,
    file: &Path,
) -> Result<()> {
    crate::cache::materialize(store, settings, image)?;
    save_archive(store, image, names, format, file)
}

/// [`write_archive`] of an image whose layers are all in the store.
fn save_archive(
    store: &Store,
    image: &Image,
    names: Vec<Reference>,
    format: ArchiveFormat,
    file: &Path,
) -> Result<()> {
    write_atomic(file, |f| {
        archive::save(store, &[(image.clone(), names)], format, &*f)
    })
}

/// Write the multi-platform image `list` with `names` as an OCI archive `file` (replaced only
/// once complete): `build --output type=oci` of several platforms, `save --all-platforms`.
/// Layers held only remotely are fetched first, with `settings`.
pub fn write_index_archive(
    store: &Store,
    settings: &crate::RegistrySettings,
    list: &rbuild_store::ImageList,
    names: &[Reference],
    file: &Path,
) -> Result<()> {
    crate::cache::materialize_list(store, settings, list)?;
    save_index_archive(store, list, names, file)
}

/// [`write_index_archive`] of images whose layers are all in the store.
fn save_index_archive(
    store: &Store,
    list: &rbuild_store::ImageList,
    names: &[Reference],
    file: &Path,
) -> Result<()> {
    write_atomic(file, |f| {
        archive::save_index(store, &[(list.clone(), names.to_vec())], &[], &*f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        assert_eq!(
            parse_location("docker://localhost:5000/a:1").unwrap(),
            Location::Docker("localhost:5000/a:1".parse().unwrap())
        );
        assert_eq!(
            parse_location("oci:/tmp/l:v1").unwrap(),
            Location::Oci("/tmp/l".into(), Some("v1".into()))
        );
        assert_eq!(
            parse_location("oci-archive:x.tar").unwrap(),
            Location::OciArchive("x.tar".into(), None)
        );
        assert_eq!(
            parse_location("docker-archive:x.tar:app:2").unwrap(),
            Location::DockerArchive("x.tar".into(), Some("app:2".parse().unwrap()))
        );
        assert_eq!(
            parse_location("rbuild:app").unwrap(),
            Location::Store("app".into())
        );
        for bad in [
            "nope",
            "ftp:x",
            "docker:x",
            "oci:",
            "rbuild:",
            "docker://UPPER",
        ] {
            assert!(parse_location(bad).is_err(), "{bad}");
        }
    }
}
