//! Naming and removing images: `tag`, `rmi` with docker's conflicts (an image a container
//! was created from stays: its layers are the container's lower dirs), `image prune`.

use std::collections::HashSet;

use rbuild_oci::{Digest, Reference};
use rbuild_runner::lifecycle::Container;
use rbuild_store::{Image, RemoveOutcome};

use crate::Engine;
use crate::error::{EngineError, Result};
use crate::events::{Event, EventType};

/// What removing an image did, one entry per step (docker's `ImageDeleteResponseItem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageDeleted {
    /// A name was removed.
    Untagged(Reference),
    /// The image itself was deleted.
    Deleted(Digest),
}

/// What `image prune` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagesPruned {
    /// The images deleted, by manifest digest.
    pub deleted: Vec<Digest>,
    /// Bytes the store's directory shrank by.
    pub reclaimed: u64,
}

/// Why `rmi` may not remove what was asked, with docker's wording, or `None` if it may.
/// Removing an image's last name or the image itself is refused while a container uses it
/// (its layers are the container's lower dirs): without `force` always, with it if that
/// container runs and the image was named by ID.
fn conflict(
    what: &str,
    img: &Image,
    force: bool,
    user: &Container,
    by_name: bool,
) -> Option<String> {
    let running = user.state().is_ok_and(|st| st.status.is_active());
    let short = &user.id()[..12];
    if by_name && !force {
        return Some(format!(
            "conflict: unable to remove repository reference {what:?} (must force) - container {short} is using its referenced image {}",
            img.id.short()
        ));
    }
    if by_name {
        return None;
    }
    if running {
        return Some(format!(
            "conflict: unable to delete {} (cannot be forced) - image is being used by running container {short}",
            img.id.short()
        ));
    }
    (!force).then(|| {
        format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped container {short}",
            img.id.short()
        )
    })
}

impl Engine {
    /// Give the image `source` names the name `target`. Sends a `tag` event.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        let store = self.store()?;
        // A multi-platform image's new name names its index too.
        if let Some(list) = store.resolve_index(source)? {
            if target.digest().is_some() {
                return Err(crate::EngineError::InvalidParameter(format!(
                    "{target}: cannot tag with a digest reference"
                )));
            }
            store.name_index(&list.digest, std::slice::from_ref(target))?;
            self.emit(Event::now(
                EventType::Image,
                "tag",
                &list.digest.to_string(),
                [("name", target.to_string())],
            ));
            return Ok(());
        }
        let image = store.resolve(source)?;
        store.tag(&image, target)?;
        self.emit(Event::now(
            EventType::Image,
            "tag",
            &image.id.to_string(),
            [("name", target.to_string())],
        ));
        Ok(())
    }

    /// Remove `what` (a name, ID or digest) as `docker rmi` does: a name of an image with
    /// others is untagged; the last name or the image deleted (several names need `force`).
    /// An image a container uses is a [`EngineError::Conflict`] (with a hint naming the
    /// container), or with `force` only loses its names. Sends `untag` and `delete` events.
    pub fn remove_image(&self, what: &str, force: bool) -> Result<Vec<ImageDeleted>> {
        let store = self.store()?;
        if let Some(list) = store.resolve_index(what)? {
            return self.remove_list(&list, what, force);
        }
        if let Ok(img) = store.resolve(what)
            && let Some(user) = self
                .containers()
                .list()?
                .into_iter()
                .find(|c| c.record.image_id == img.id.to_string())
        {
            let named = what
                .parse::<Reference>()
                .ok()
                .filter(|r| r.digest().is_none() && img.names.contains(r));
            // Another name stays: only this one goes, as without a container.
            let only_a_name = named.is_some() && img.names.len() > 1;
            if !only_a_name {
                if let Some(why) = conflict(what, &img, force, &user, named.is_some()) {
                    return Err(EngineError::Conflict(why).with_hint(format!(
                        "remove the container first (rbuild rm -f {})",
                        user.name()
                    )));
                }
                // Forced: the names go, the image stays (dangling) while the container does.
                let names = store.untag_all(&img.manifest_digest)?;
                let out: Vec<ImageDeleted> =
                    names.into_iter().map(ImageDeleted::Untagged).collect();
                self.emit_deleted(&img.id.to_string(), &out);
                return Ok(out);
            }
        }
        let out = match store.remove(what, force)? {
            RemoveOutcome::Untagged(name) => vec![ImageDeleted::Untagged(name)],
            RemoveOutcome::Deleted { id, untagged } => untagged
                .into_iter()
                .map(ImageDeleted::Untagged)
                .chain([ImageDeleted::Deleted(id)])
                .collect(),
        };
        self.emit_deleted(what, &out);
        Ok(out)
    }

    /// `rmi` of a multi-platform image: as [`Engine::remove_image`], a container created from
    /// any of its platforms' images counting as using it (forced, only the names go: the index
    /// and its images stay, unnamed, while the container does).
    fn remove_list(
        &self,
        list: &rbuild_store::ImageList,
        what: &str,
        force: bool,
    ) -> Result<Vec<ImageDeleted>> {
        let store = self.store()?;
        let ids: Vec<String> = list
            .entries()
            .iter()
            .filter_map(|(d, _)| store.image(d).ok())
            .map(|i| i.id.to_string())
            .collect();
        let user = self
            .containers()
            .list()?
            .into_iter()
            .find(|c| ids.contains(&c.record.image_id));
        if let Some(user) = user {
            let short = &user.id()[..12];
            if !force {
                return Err(EngineError::Conflict(format!(
                    "conflict: unable to remove repository reference {what:?} (must force) - container {short} is using its referenced image {}",
                    list.digest.short()
                ))
                .with_hint(format!(
                    "remove the container first (rbuild rm -f {})",
                    user.name()
                )));
            }
            let named = what
                .parse::<Reference>()
                .ok()
                .filter(|r| r.digest().is_none() && list.names.contains(r));
            let names: Vec<Reference> = match named {
                Some(n) => vec![n],
                None => list.names.clone(),
            };
            store.update_table(|t| {
                for n in &names {
                    t.remove_name(n);
                }
                Ok(())
            })?;
            let out: Vec<ImageDeleted> = names.into_iter().map(ImageDeleted::Untagged).collect();
            self.emit_deleted(&list.digest.to_string(), &out);
            return Ok(out);
        }
        let out = match store.remove(what, force)? {
            RemoveOutcome::Untagged(name) => vec![ImageDeleted::Untagged(name)],
            RemoveOutcome::Deleted { id, untagged } => untagged
                .into_iter()
                .map(ImageDeleted::Untagged)
                .chain([ImageDeleted::Deleted(id)])
                .collect(),
        };
        self.emit_deleted(what, &out);
        Ok(out)
    }

    fn emit_deleted(&self, id: &str, done: &[ImageDeleted]) {
        for d in done {
            let (action, name) = match d {
                ImageDeleted::Untagged(n) => ("untag", n.to_string()),
                ImageDeleted::Deleted(id) => ("delete", id.to_string()),
            };
            self.emit(Event::now(EventType::Image, action, id, [("name", name)]));
        }
    }

    /// Delete every image without a name that no container was created from, and the layers
    /// only they used (docker's `image prune`).
    pub fn prune_images(&self) -> Result<ImagesPruned> {
        let store = self.store()?;
        let before = crate::usage::dir_size(store.root(), u64::MAX);
        // Images containers were created from stay, dangling or not (their layers are the
        // containers' lower dirs).
        let in_use: HashSet<Digest> = self
            .containers()
            .list()?
            .iter()
            .filter_map(|c| c.record.image_id.parse().ok())
            .collect();
        let deleted = store.prune(&in_use)?;
        let after = crate::usage::dir_size(store.root(), u64::MAX);
        for d in &deleted {
            self.emit(Event::now(EventType::Image, "delete", &d.to_string(), []));
        }
        Ok(ImagesPruned {
            deleted,
            reclaimed: before.saturating_sub(after),
        })
    }
}
