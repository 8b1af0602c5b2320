//! Images to and from archives (`docker save`/`docker load`): docker-archive or OCI, the
//! archive's bytes going to or coming from wherever the front end says.

use std::io::Write;

use rbuild_oci::Reference;
use rbuild_store::Image;
use rbuild_store::archive::{self, ArchiveFormat, LoadSource, Loaded};

use crate::Engine;
use crate::error::Result;
use crate::events::{Event, EventType};

/// The images `what` (names, IDs, digests) name, grouped by image; a name argument puts
/// that name in the archive.
pub type SaveList = Vec<(Image, Vec<Reference>)>;

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

    /// Write `images` as one archive in `format` to `out`. Sends a `save` event per image.
    pub fn save(&self, images: &SaveList, format: ArchiveFormat, out: impl Write) -> Result<()> {
        archive::save(self.store()?, images, format, out)?;
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
        let loaded = archive::load(self.store()?, source)?;
        for l in &loaded {
            self.emit(Event::now(EventType::Image, "load", &l.id.to_string(), []));
        }
        Ok(loaded)
    }
}
