//! A read-only view of a stage's or image's filesystem: its snapshot layers stacked by a
//! lower-only overlay mount, unmounted when the view is dropped. `COPY --from` selects from it
//! and `RUN --mount=type=bind,from=` binds into it.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::BuildError;

/// A mounted read-only view; unmounted on drop.
#[derive(Debug)]
pub struct View {
    target: PathBuf,
}

impl View {
    /// Mount `layers` (bottom first) read-only at `target` (created). An empty directory
    /// beside `target` serves as the bottom layer so the overlay always has two lowers.
    pub fn mount(layers: &[PathBuf], target: &Path) -> Result<View, BuildError> {
        let empty = target.with_extension("empty");
        for dir in [target, empty.as_path()] {
            std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
        }
        let mut lowers: Vec<String> = layers
            .iter()
            .rev()
            .map(|p| p.to_string_lossy().replace(':', "\\:"))
            .collect();
        lowers.push(empty.to_string_lossy().to_string());
        let data = format!(
            "lowerdir={}{}",
            lowers.join(":"),
            rbuild_store::userns::overlay_options()
        );
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::MS_RDONLY,
            Some(data.as_str()),
        )
        .map_err(|e| {
            BuildError::io(
                target,
                std::io::Error::other(format!("mounting a read-only view of the layers: {e}")),
            )
        })?;
        Ok(View {
            target: target.to_path_buf(),
        })
    }

    /// Where the view is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for View {
    fn drop(&mut self) {
        let _ = umount2(&self.target, MntFlags::MNT_DETACH);
    }
}
