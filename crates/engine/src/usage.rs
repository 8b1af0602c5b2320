//! Disk usage (`docker system df`, the Engine API's `/system/df`): what images, containers,
//! volumes and the build cache take, and what of it is in use, measured once for every front
//! end; `system prune` and `builder prune` (`/build/prune`).

use rbuild_builder::build::{CachePruneOptions, CachePruneReport, CacheUsage};
use rbuild_runner::lifecycle::Volume;

use crate::error::{EngineError, Result};
use crate::{ContainerSummary, Engine, ImageSummary, ListOptions};

/// An image and the containers made from it.
#[derive(Debug, Clone)]
pub struct ImageUsage {
    /// The image as `images` lists it (its size is its layers').
    pub summary: ImageSummary,
    /// How many containers, running or not, use it.
    pub containers: usize,
}

/// A container and the bytes of its writable layer.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    /// The container as `ps -a` lists it.
    pub summary: ContainerSummary,
    /// The bytes of the files in its writable layer.
    pub size: u64,
}

/// A volume, its bytes and the containers that mount it.
#[derive(Debug, Clone)]
pub struct VolumeUsage {
    /// The volume.
    pub volume: Volume,
    /// The bytes of the files in it.
    pub size: u64,
    /// How many containers' records mount it.
    pub links: usize,
}

/// What the store root's images, containers and volumes take.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    /// Every image.
    pub images: Vec<ImageUsage>,
    /// Every container.
    pub containers: Vec<ContainerUsage>,
    /// Every volume.
    pub volumes: Vec<VolumeUsage>,
    /// The build cache's objects.
    pub build_cache: CacheUsage,
}

impl DiskUsage {
    /// The images' bytes in all, and those of images no container uses (reclaimable).
    pub fn images_size(&self) -> (u64, u64) {
        sums(
            self.images
                .iter()
                .map(|i| (i.summary.size, i.containers == 0)),
        )
    }

    /// The containers' writable layers' bytes in all, and those of stopped containers.
    pub fn containers_size(&self) -> (u64, u64) {
        sums(
            self.containers
                .iter()
                .map(|c| (c.size, !c.summary.state.status.is_active())),
        )
    }

    /// The volumes' bytes in all, and those of volumes no container mounts.
    pub fn volumes_size(&self) -> (u64, u64) {
        sums(self.volumes.iter().map(|v| (v.size, v.links == 0)))
    }
}

/// The total of `items`' sizes and the total of those marked.
fn sums(items: impl Iterator<Item = (u64, bool)>) -> (u64, u64) {
    items.fold((0, 0), |(all, marked), (size, m)| {
        (all + size, marked + if m { size } else { 0 })
    })
}

pub(crate) use rbuild_store::dir_size;

impl Engine {
    /// The disk usage of the store root's images, containers and volumes.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let containers = self.list_containers(&ListOptions {
            all: true,
            ..ListOptions::default()
        })?;
        let images = self
            .list_images(None)?
            .into_iter()
            .map(|summary| {
                let id = summary.image.id.to_string();
                let containers = containers
                    .iter()
                    .filter(|c| c.container.record.image_id == id)
                    .count();
                ImageUsage {
                    summary,
                    containers,
                }
            })
            .collect();
        let containers = containers
            .into_iter()
            .map(|summary| ContainerUsage {
                size: dir_size(&summary.container.dir().join("upper"), u64::MAX),
                summary,
            })
            .collect();
        let vols = self.volumes();
        let mut volumes = Vec::new();
        for volume in self.list_volumes()? {
            let links = vols.users(&volume.name)?.len();
            let size = dir_size(&volume.mountpoint, u64::MAX);
            volumes.push(VolumeUsage {
                volume,
                size,
                links,
            });
        }
        Ok(DiskUsage {
            images,
            containers,
            volumes,
            build_cache: CacheUsage::read(self.store()?)?,
        })
    }

    /// `docker builder prune`: remove build cache objects as `opts` says, and the layers
    /// only they used (never an image's).
    pub fn prune_build_cache(&self, opts: &CachePruneOptions) -> Result<CachePruneReport> {
        Ok(rbuild_builder::build::prune_build_cache(
            self.store()?,
            opts,
        )?)
    }
}

/// `builder prune`'s options from docker's flags or query: `all`, the `--filter`s
/// (`until=DURATION`, also an RFC 3339 or Unix time) and `--keep-storage SIZE` (`10GB`,
/// `512m`; `0` is no budget), each refused with a message naming it when malformed.
pub fn build_prune_options(
    all: bool,
    filters: &[(String, String)],
    keep_storage: Option<&str>,
) -> Result<CachePruneOptions> {
    let mut until = None;
    for (k, v) in filters {
        match k.as_str() {
            "until" | "unused-for" => {
                let t = crate::options::parse_when(v).map_err(|e| {
                    EngineError::InvalidParameter(format!("invalid filter 'until={v}': {e}"))
                })?;
                until = Some(until.map_or(t, |u: i64| u.min(t)));
            }
            _ => {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter '{k}': build cache prune supports until"
                )));
            }
        }
    }
    let keep_storage = match keep_storage.map(str::trim) {
        None | Some("" | "0") => None,
        Some(s) => Some(crate::options::parse_size(s).map_err(|e| {
            EngineError::InvalidParameter(format!("invalid keep-storage {s:?}: {e}"))
        })? as u64),
    };
    Ok(CachePruneOptions {
        all,
        until,
        keep_storage,
    })
}

/// What `system prune` removes besides stopped containers, unused networks and dangling
/// images.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemPrune {
    /// Every image no container uses, not only dangling ones (`-a`).
    pub all_images: bool,
    /// Anonymous volumes no container uses (`--volumes`).
    pub volumes: bool,
}

/// What `system prune` removed.
#[derive(Debug, Clone, Default)]
pub struct SystemPruned {
    /// The removed containers' IDs.
    pub containers: Vec<String>,
    /// The removed networks' names.
    pub networks: Vec<String>,
    /// The removed volumes' names.
    pub volumes: Vec<String>,
    /// The images untagged and deleted, in removal order.
    pub images: Vec<crate::ImageDeleted>,
    /// The removed build cache objects' IDs (unused ones; every one with `all_images`).
    pub build_cache: Vec<String>,
    /// The bytes the store root shrank by.
    pub reclaimed: u64,
}

impl Engine {
    /// `docker system prune`: stopped containers, networks no container uses, dangling images
    /// (every unused one with `all_images`), the build cache no image shares (all of it with
    /// `all_images`) and, with `volumes`, unused anonymous volumes.
    pub fn system_prune(&self, opts: &SystemPrune) -> Result<SystemPruned> {
        let before = dir_size(self.root(), u64::MAX);
        let containers = self.prune_containers()?;
        let networks = self.prune_networks()?;
        let volumes = if opts.volumes {
            self.prune_volumes(false)?
        } else {
            Vec::new()
        };
        let mut images = Vec::new();
        if opts.all_images {
            let used: std::collections::HashSet<String> = self
                .containers()
                .list()?
                .iter()
                .map(|c| c.record.image_id.clone())
                .collect();
            for i in self.list_images(None)? {
                let id = i.image.id.to_string();
                if !used.contains(&id) {
                    images.extend(self.remove_image(&id, true)?);
                }
            }
        }
        images.extend(
            self.prune_images()?
                .deleted
                .into_iter()
                .map(crate::ImageDeleted::Deleted),
        );
        let build_cache = self
            .prune_build_cache(&CachePruneOptions {
                all: opts.all_images,
                ..CachePruneOptions::default()
            })?
            .deleted;
        let after = dir_size(self.root(), u64::MAX);
        Ok(SystemPruned {
            containers,
            networks,
            volumes,
            images,
            build_cache,
            reclaimed: before.saturating_sub(after),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_regular_files_and_reclaimable_ones_apart() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/b"), vec![0u8; 50]).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();
        assert_eq!(dir_size(dir.path(), u64::MAX), 150);
        assert!(dir_size(dir.path(), 10) > 10);
        assert_eq!(
            sums([(5, true), (7, false), (1, true)].into_iter()),
            (13, 6)
        );
    }

    #[test]
    fn build_prune_options_are_checked() {
        let f = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let o = build_prune_options(true, &f("until", "24h"), Some("1GB")).unwrap();
        assert!(o.all);
        assert_eq!(o.keep_storage, Some(1 << 30));
        let day_ago = rbuild_runner::lifecycle::time::now_ns() - 86_400_000_000_000;
        assert!((o.until.unwrap() - day_ago).abs() < 5_000_000_000);
        assert_eq!(
            build_prune_options(false, &[], Some("0")).unwrap(),
            CachePruneOptions::default()
        );
        let e = build_prune_options(false, &f("until", "soon"), None).unwrap_err();
        assert!(e.to_string().contains("until=soon"), "{e}");
        let e = build_prune_options(false, &f("label", "x"), None).unwrap_err();
        assert!(e.to_string().contains("invalid filter 'label'"), "{e}");
        let e = build_prune_options(false, &[], Some("lots")).unwrap_err();
        assert!(e.to_string().contains("keep-storage \"lots\""), "{e}");
    }
}
