//! `down`: the project's containers (`run`'s one-offs too) stopped and removed, then its networks (found by their
//! labels), then with `-v` its volumes.

use super::{Kind, Runtime, Status, engine_err, labels};
use crate::error::ComposeError;

/// `down`'s flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct DownOptions {
    /// `-v`: remove the project's named volumes (and containers' anonymous ones).
    pub volumes: bool,
    /// `--remove-orphans`: also the containers of services no longer in the project.
    pub remove_orphans: bool,
    /// `-t`: seconds to wait for each container to stop.
    pub timeout: Option<i64>,
    /// `--rmi`: remove images too.
    pub rmi: Option<RemoveImages>,
}

/// `down --rmi local|all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveImages {
    /// `local`: the images compose built for services without an `image:` name.
    Local,
    /// `all`: every image a service uses.
    All,
}

impl std::str::FromStr for RemoveImages {
    type Err = ComposeError;

    fn from_str(s: &str) -> Result<Self, ComposeError> {
        match s {
            "local" => Ok(RemoveImages::Local),
            "all" => Ok(RemoveImages::All),
            _ => Err(ComposeError::Failed(format!(
                "invalid --rmi option {s:?}: expected local or all"
            ))),
        }
    }
}

impl Runtime<'_> {
    /// The images `down --rmi` removes, once each: a missing one is skipped, one still used
    /// by another container is an error (docker's conflict).
    fn remove_images(&self, rmi: RemoveImages) -> Result<(), ComposeError> {
        let mut seen = Vec::new();
        for name in self.project.service_order() {
            let s = self.service(&name);
            if rmi == RemoveImages::Local && (s.image.is_some() || s.build.is_none()) {
                continue;
            }
            let image = self.image_name(&name);
            if seen.contains(&image) {
                continue;
            }
            seen.push(image.clone());
            self.progress.event(Kind::Image, &image, Status::Removing);
            match self.engine.remove_image(&image, false) {
                Ok(_) => self.progress.event(Kind::Image, &image, Status::Removed),
                Err(rbuild_engine::EngineError::NotFound(_)) => {}
                Err(e) => return Err(engine_err(format!("removing image {image}"))(e)),
            }
        }
        Ok(())
    }

    /// `down`.
    pub fn down(&self, opts: &DownOptions) -> Result<(), ComposeError> {
        let known = self.project.service_names();
        let order = self.project.service_order();
        let mut containers = self.containers(true)?;
        let (mut ours, orphans): (Vec<_>, Vec<_>) = containers
            .drain(..)
            .partition(|c| known.contains(&c.service));
        if !orphans.is_empty() && !opts.remove_orphans {
            let names: Vec<&str> = orphans.iter().map(|o| o.container().name()).collect();
            self.progress.warning(&format!(
                "Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                names.join(" ")
            ));
        }
        // Dependents go first.
        ours.sort_by_key(|c| std::cmp::Reverse(order.iter().position(|s| *s == c.service)));
        let mut doomed = ours;
        if opts.remove_orphans {
            doomed.extend(orphans);
        }
        let stopping: Vec<_> = doomed.iter().map(|c| c.container().clone()).collect();
        self.stop_all(&stopping, opts.timeout)?;
        for c in &doomed {
            self.remove_one(c.container(), opts.volumes)?;
        }
        let (networks, _) = self
            .engine
            .list_networks()
            .map_err(engine_err("listing networks"))?;
        for n in networks
            .iter()
            .filter(|n| n.labels.get(labels::PROJECT) == Some(&self.project.name))
        {
            self.progress
                .event(Kind::Network, &n.name, Status::Removing);
            match self.engine.remove_network(&n.id) {
                Ok(_) => self.progress.event(Kind::Network, &n.name, Status::Removed),
                // Still used by a container of another project: left, as compose does.
                Err(e) if matches!(e, rbuild_engine::EngineError::Conflict(_)) => {
                    self.progress
                        .warning(&format!("network {} is still in use: {e}", n.name));
                }
                Err(e) => return Err(engine_err(format!("removing network {}", n.name))(e)),
            }
        }
        if opts.volumes {
            let vols = self
                .engine
                .list_volumes()
                .map_err(engine_err("listing volumes"))?;
            for v in vols
                .iter()
                .filter(|v| v.labels.get(labels::PROJECT) == Some(&self.project.name))
            {
                self.progress.event(Kind::Volume, &v.name, Status::Removing);
                self.engine
                    .remove_volume(&v.name)
                    .map_err(engine_err(format!("removing volume {}", v.name)))?;
                self.progress.event(Kind::Volume, &v.name, Status::Removed);
            }
        }
        if let Some(rmi) = opts.rmi {
            self.remove_images(rmi)?;
        }
        Ok(())
    }
}
