//! Volumes under the store root: `<root>/volumes/<name>/_data` (what containers mount) and
//! `<root>/volumes/<name>/volume.json`. Named volumes are made by `volume create` or on
//! first use; anonymous ones (a 64-hex name) for `-v /path` and the image's `VOLUME`s, and
//! go with `rm -v`. A volume is in use while a container's record mounts it.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::ContainerError;
use super::store::{Containers, new_id};
use super::time::now_ns;
use crate::error::Error;

/// What is stored about a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Creation time, nanoseconds since the epoch.
    pub created: i64,
    /// Made for one container (`-v /path`, an image's VOLUME).
    pub anonymous: bool,
    /// Labels given at creation.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The directory containers mount.
    #[serde(skip)]
    pub mountpoint: PathBuf,
}

/// The volumes of one store root.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
    root: PathBuf,
}

impl Volumes {
    /// The volumes under the store root `root`.
    pub fn new(root: &Path) -> Volumes {
        Volumes {
            dir: root.join("volumes"),
            root: root.to_owned(),
        }
    }

    fn load(&self, name: &str) -> Result<Volume, Error> {
        let meta = self.dir.join(name).join("volume.json");
        let bytes = fs::read(&meta).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::Container(ContainerError::NoSuchVolume(name.to_owned()))
            }
            _ => Error::io(&meta)(e),
        })?;
        let mut v: Volume = serde_json::from_slice(&bytes).map_err(|source| {
            Error::Container(ContainerError::Corrupt {
                path: meta.clone(),
                source,
            })
        })?;
        v.mountpoint = self.dir.join(name).join("_data");
        Ok(v)
    }

    /// The volume called `name`.
    pub fn get(&self, name: &str) -> Result<Volume, Error> {
        if !super::names::valid(name) {
            return Err(ContainerError::NoSuchVolume(name.to_owned()).into());
        }
        self.load(name)
    }

    /// Create a volume (`None`: an anonymous one); an existing named volume is returned as
    /// it is, as docker does. The second value says whether it was made now.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<(Volume, bool), Error> {
        let anonymous = name.is_none();
        let name = name.map_or_else(new_id, str::to_owned);
        if !super::names::valid(&name) {
            return Err(ContainerError::InvalidName(name).into());
        }
        if let Ok(v) = self.load(&name) {
            return Ok((v, false));
        }
        fs::create_dir_all(&self.dir).map_err(Error::io(&self.dir))?;
        let staging = self.dir.join(format!(".creating-{}", new_id()));
        fs::create_dir_all(staging.join("_data")).map_err(Error::io(&staging))?;
        let v = Volume {
            name: name.clone(),
            created: now_ns(),
            anonymous,
            labels,
            mountpoint: self.dir.join(&name).join("_data"),
        };
        let meta = staging.join("volume.json");
        fs::write(&meta, serde_json::to_vec(&v).expect("a volume serialises"))
            .map_err(Error::io(&meta))?;
        match fs::rename(&staging, self.dir.join(&name)) {
            Ok(()) => Ok((v, true)),
            Err(_) => {
                // Made by someone else meanwhile.
                let _ = fs::remove_dir_all(&staging);
                self.load(&name).map(|v| (v, false))
            }
        }
    }

    /// All volumes, by name.
    pub fn list(&self) -> Result<Vec<Volume>, Error> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir)(e)),
        };
        let mut out: Vec<Volume> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| self.load(&n).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The containers whose records mount `name`.
    pub fn users(&self, name: &str) -> Result<Vec<String>, Error> {
        Ok(Containers::new(&self.root)
            .list()?
            .into_iter()
            .filter(|c| {
                c.record
                    .mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.name == name)
            })
            .map(|c| c.id().to_owned())
            .collect())
    }

    /// Remove a volume no container uses.
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        let v = self.get(name)?;
        let users = self.users(&v.name)?;
        if let Some(id) = users.first() {
            return Err(ContainerError::VolumeInUse {
                name: v.name,
                id: id.clone(),
            }
            .into());
        }
        let dir = self.dir.join(&v.name);
        let doomed = self.dir.join(format!(".removing-{}", new_id()));
        fs::rename(&dir, &doomed).map_err(Error::io(&dir))?;
        fs::remove_dir_all(&doomed).map_err(Error::io(&doomed))
    }

    /// Fill an empty, new volume with the image's content at `path` (docker copies it on
    /// first use), from its layer directories, bottom first.
    pub fn populate(&self, v: &Volume, layers: &[PathBuf], path: &str) -> Result<(), Error> {
        let rel = path.trim_start_matches('/');
        let subdirs: Vec<PathBuf> = layers
            .iter()
            .map(|l| l.join(rel))
            .filter(|d| d.is_dir())
            .collect();
        if subdirs.is_empty() {
            return Ok(());
        }
        crate::copy::copy_layers(&subdirs, &v.mountpoint)
    }
}
