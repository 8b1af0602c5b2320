//! Images to and from archives (`docker save`/`docker load`): docker-archive or OCI, the
//! archive's bytes going to or coming from wherever the front end says.

use std::io::Write;

use rbuild_oci::Reference;
use rbuild_store::archive::{self, ArchiveFormat, LoadSource, Loaded};
use rbuild_store::{Image, ImageList};

use crate::Engine;
use crate::error::Result;
use crate::events::{Event, EventType};

/// The images `what` (names, IDs, digests) name, grouped by image; a name argument puts
/// that name in the archive.
pub type SaveList = Vec<(Image, Vec<Reference>)>;

/// Multi-platform images to save whole, each with the names the arguments gave.
pub type SaveLists = Vec<(ImageList, Vec<Reference>)>;

impl Engine {
    /// What `save` of `what` writes: each image once, with the names the arguments gave.
    pub fn images_to_save(&self, what: &[String]) -> Result<SaveList> {
        let store = self.store()?;
        let mut images: SaveList = Vec::new();
        for w in what {
            let img = store.resolve(w)?;
            let name = w
                .parse::<Reference>()
                .ok()
                .filter(|r| img.names.contains(r));
            match images
                .iter_mut()
                .find(|(i, _)| i.manifest_digest == img.manifest_digest)
            {
                Some((_, names)) => names.extend(name),
                None => images.push((img, name.into_iter().collect())),
            }
        }
        Ok(images)
    }

    /// What `save --all-platforms` of `what` writes: multi-platform images whole (with the
    /// names the arguments gave), other images as [`Engine::images_to_save`] does.
    pub fn lists_to_save(&self, what: &[String]) -> Result<(SaveLists, SaveList)> {
        let store = self.store()?;
        let mut lists: SaveLists = Vec::new();
        let mut single = Vec::new();
        for w in what {
            let Some(list) = store.resolve_index(w)? else {
                single.push(w.clone());
                continue;
            };
            require_every_platform(store, &list, w)?;
            let name = w
                .parse::<Reference>()
                .ok()
                .filter(|r| list.names.contains(r));
            match lists.iter_mut().find(|(l, _)| l.digest == list.digest) {
                Some((_, names)) => names.extend(name),
                None => lists.push((list, name.into_iter().collect())),
            }
        }
        Ok((lists, self.images_to_save(&single)?))
    }

    /// Write multi-platform images `lists` and `images` as one OCI archive to `out`. Sends
    /// a `save` event per image and list.
    pub fn save_lists(
        &self,
        lists: &[(ImageList, Vec<Reference>)],
        images: &SaveList,
        out: impl Write,
    ) -> Result<()> {
        let store = self.store()?;
        for (list, _) in lists {
            crate::cache::materialize_list(store, self.registry(), list)?;
        }
        for (image, _) in images {
            crate::cache::materialize(store, self.registry(), image)?;
        }
        archive::save_index(store, lists, images, out)?;
        for (l, _) in lists {
            self.emit(Event::now(
                EventType::Image,
                "save",
                &l.digest.to_string(),
                [],
            ));
        }
        for (img, _) in images {
            self.emit(Event::now(
                EventType::Image,
                "save",
                &img.id.to_string(),
                [],
            ));
        }
        Ok(())
    }

    /// Write `images` as one archive in `format` to `out`. Sends a `save` event per image.
    pub fn save(&self, images: &SaveList, format: ArchiveFormat, out: impl Write) -> Result<()> {
        let store = self.store()?;
        for (image, _) in images {
            crate::cache::materialize(store, self.registry(), image)?;
        }
        archive::save(store, images, format, out)?;
        for (img, _) in images {
            self.emit(Event::now(
                EventType::Image,
                "save",
                &img.id.to_string(),
                [],
            ));
        }
        Ok(())
    }

    /// Load the images of a docker-archive, OCI archive or OCI layout. Sends a `load` event
    /// per image.
    pub fn load(&self, source: LoadSource<'_>) -> Result<Vec<Loaded>> {
        self.load_with(source, false)
    }

    /// [`Engine::load`]; with `all_platforms`, a multi-platform image of an OCI archive keeps
    /// every platform and its index (named as the archive names it).
    pub fn load_with(&self, source: LoadSource<'_>, all_platforms: bool) -> Result<Vec<Loaded>> {
        let loaded = archive::load_with(self.store()?, source, all_platforms)?;
        for l in &loaded {
            self.emit(Event::now(EventType::Image, "load", &l.id.to_string(), []));
        }
        Ok(loaded)
    }
}

/// Refuse to write the multi-platform image `list` (named `what`) whole when the store holds
/// only some of its platforms (a pull of one platform keeps the index): the error names what
/// is missing and how to get it, instead of a bare "not found" from deep in the write.
pub(crate) fn require_every_platform(
    store: &rbuild_store::Store,
    list: &ImageList,
    what: &str,
) -> Result<()> {
    let mut have = Vec::new();
    let mut missing = Vec::new();
    for (digest, platform) in list.entries() {
        let whole = store.image(&digest).is_ok_and(|img| {
            img.diff_ids()
                .is_ok_and(|layers| layers.iter().all(|d| store.has_layer(d)))
        });
        let name = platform.map_or_else(|| digest.short().to_string(), |p| p.to_string());
        if whole {
            have.push(name)
        } else {
            missing.push(name)
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let held = if have.is_empty() {
        "none of its platforms".to_string()
    } else {
        format!("only {}", have.join(", "))
    };
    Err(crate::EngineError::InvalidParameter(format!(
        "{what}: a multi-platform image of which this store holds {held}; not pulled: {}",
        missing.join(", ")
    ))
    .with_hint(format!(
        "pull it with --all-platforms first, or name one platform with --platform {}",
        have.first().map_or("OS/ARCH", String::as_str)
    )))
}
