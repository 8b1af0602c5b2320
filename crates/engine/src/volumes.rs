//! Volumes: `<root>/volumes/<name>/_data`, made by `volume create` or a container's first use;
//! the records live in the runner's `lifecycle::Volumes`.

use std::collections::BTreeMap;

use rbuild_runner::lifecycle::Volume;

use crate::Engine;
use crate::error::{EngineError, Result};
use crate::events::{Event, EventType};
use crate::inspect::VolumeJson;

impl Engine {
    /// Create a volume (`name` or a generated one) with the `local` driver; an existing
    /// name is returned as it is. Sends a `create` event for a new one.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume> {
        if driver != "local" {
            return Err(EngineError::InvalidParameter(format!(
                "volume driver {driver:?} is not available (only local)"
            )));
        }
        let (v, new) = self.volumes().create(name, labels)?;
        if new {
            self.emit(Event::now(
                EventType::Volume,
                "create",
                &v.name,
                [("driver", "local".to_owned())],
            ));
        }
        Ok(v)
    }

    /// Every volume.
    pub fn list_volumes(&self) -> Result<Vec<Volume>> {
        Ok(self.volumes().list()?)
    }

    /// `docker volume inspect` of volume `name`.
    pub fn volume_inspect(&self, name: &str) -> Result<VolumeJson> {
        Ok(VolumeJson::from(&self.volumes().get(name)?))
    }

    /// Remove volume `name`; an error while a container's record mounts it. Sends a
    /// `destroy` event.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        self.volumes().remove(name)?;
        self.emit(Event::now(EventType::Volume, "destroy", name, []));
        Ok(())
    }

    /// Remove the volumes no container uses: anonymous ones, or with `all` every one;
    /// returns their names.
    pub fn prune_volumes(&self, all: bool) -> Result<Vec<String>> {
        let vols = self.volumes();
        let mut deleted = Vec::new();
        for v in vols.list()? {
            if (all || v.anonymous)
                && vols.users(&v.name)?.is_empty()
                && self.remove_volume(&v.name).is_ok()
            {
                deleted.push(v.name);
            }
        }
        Ok(deleted)
    }
}
