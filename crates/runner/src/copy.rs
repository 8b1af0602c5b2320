//! The root filesystem without overlayfs: the image's layers (in overlay form, as the store
//! unpacks them) copied into one directory, bottom first, applying each layer's whiteouts
//! (character devices 0/0 delete what is below) and opaque directories
//! (`trusted.overlay.opaque=y` hides what is below) as overlayfs would.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Opaque markers: `trusted.*` as root, `user.*` in rootless mode (overlay's `userxattr`).
const OPAQUE: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// A character device 0/0, or an empty file with overlay's whiteout xattr (the form made where
/// device nodes cannot be, see `rbuild_store::userns::make_whiteout`).
fn is_whiteout(path: &Path, meta: &fs::Metadata) -> bool {
    if meta.file_type().is_char_device() && meta.rdev() == 0 {
        return true;
    }
    meta.is_file()
        && meta.len() == 0
        && ["user.overlay.whiteout", "trusted.overlay.whiteout"]
            .iter()
            .any(|n| matches!(xattr::get(path, n), Ok(Some(_))))
}

fn remove_any(path: &Path) -> Result<(), Error> {
    let res = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return Ok(()),
    };
    res.map_err(Error::io(path))
}

/// Copy `layers` (bottom first) into `dest`, which is created.
pub fn copy_layers(layers: &[PathBuf], dest: &Path) -> Result<(), Error> {
    fs::create_dir_all(dest).map_err(Error::io(dest))?;
    for layer in layers {
        let mut whiteouts = Vec::new();
        // Deletions and type changes first, so the copy below never meets a conflict.
        for entry in walkdir::WalkDir::new(layer).min_depth(1) {
            let entry = entry.map_err(|e| Error::Io {
                path: e.path().unwrap_or(layer).to_path_buf(),
                source: e.into(),
            })?;
            let rel = entry
                .path()
                .strip_prefix(layer)
                .expect("walkdir stays below its root");
            let target = dest.join(rel);
            let meta = entry
                .path()
                .symlink_metadata()
                .map_err(Error::io(entry.path()))?;
            let below = fs::symlink_metadata(&target).ok();
            if is_whiteout(entry.path(), &meta) {
                remove_any(&target)?;
                whiteouts.push(target);
            } else if meta.is_dir() {
                let opaque = OPAQUE.iter().any(|name| {
                    xattr::get(entry.path(), name)
                        .ok()
                        .flatten()
                        .is_some_and(|v| v == b"y")
                });
                if opaque || below.as_ref().is_some_and(|b| !b.is_dir()) {
                    remove_any(&target)?;
                }
            } else if below.is_some_and(|b| b.is_dir()) {
                remove_any(&target)?;
            }
        }
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", layer.display()))
            .arg(dest)
            .status()
            .map_err(Error::io(layer))?;
        if !status.success() {
            return Err(Error::Io {
                path: layer.clone(),
                source: std::io::Error::other(format!("copying the layer failed: cp {status}")),
            });
        }
        for w in whiteouts {
            remove_any(&w)?;
        }
    }
    // The markers have done their job; the copy is a plain tree.
    for entry in walkdir::WalkDir::new(dest).into_iter().flatten() {
        if entry.file_type().is_dir() {
            for name in OPAQUE {
                let _ = xattr::remove(entry.path(), name);
            }
        }
    }
    Ok(())
}
