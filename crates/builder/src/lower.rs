//! Looking at a stage's filesystem without mounting it: its layers are unpacked snapshot
//! directories in overlay form (bottom first), so a path's current state is the top-most
//! layer that has it, unless a whiteout (char device 0/0) or an opaque directory above hides it.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Metadata of `path` (relative to `/`, no leading slash needed) as the stage sees it.
pub fn lookup(layers: &[PathBuf], path: &str) -> Option<(PathBuf, std::fs::Metadata)> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return None;
    }
    for layer in layers.iter().rev() {
        let full = layer.join(rel);
        if let Ok(meta) = full.symlink_metadata() {
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                return None;
            }
            return Some((full, meta));
        }
        if hidden_by_opaque_parent(layer, rel) {
            return None;
        }
    }
    None
}

fn hidden_by_opaque_parent(layer: &Path, rel: &str) -> bool {
    let mut dir = Path::new(rel).parent();
    while let Some(d) = dir {
        if d.as_os_str().is_empty() {
            break;
        }
        let full = layer.join(d);
        if let Ok(meta) = full.symlink_metadata() {
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                return true;
            }
            if meta.is_dir() && rbuild_store::layer::is_opaque(&full) {
                return true;
            }
        }
        dir = d.parent();
    }
    false
}

/// The content of a regular file as the stage sees it (symlinks inside the stage are not
/// followed; `/etc/passwd` and friends are plain files in practice).
pub fn read_file(layers: &[PathBuf], path: &str) -> Option<String> {
    let (full, meta) = lookup(layers, path)?;
    if !meta.is_file() {
        return None;
    }
    std::fs::read_to_string(full).ok()
}

/// Whether `path` is a directory in the stage (following one level of symlink within the
/// same layer is not attempted; a symlink counts as not a directory).
pub fn is_dir(layers: &[PathBuf], path: &str) -> bool {
    lookup(layers, path).is_some_and(|(_, m)| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_layer_wins_and_whiteouts_hide() {
        let dir = tempfile::tempdir().unwrap();
        let (l1, l2) = (dir.path().join("l1"), dir.path().join("l2"));
        std::fs::create_dir_all(l1.join("etc")).unwrap();
        std::fs::create_dir_all(l2.join("etc")).unwrap();
        std::fs::write(l1.join("etc/passwd"), "old").unwrap();
        std::fs::write(l1.join("etc/group"), "g").unwrap();
        std::fs::write(l2.join("etc/passwd"), "new").unwrap();
        let layers = vec![l1.clone(), l2.clone()];
        assert_eq!(read_file(&layers, "/etc/passwd").as_deref(), Some("new"));
        assert_eq!(read_file(&layers, "etc/group").as_deref(), Some("g"));
        assert!(is_dir(&layers, "/etc"));
        assert!(read_file(&layers, "/etc/none").is_none());
        nix::sys::stat::mknod(
            &l2.join("etc/group"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        assert!(
            read_file(&layers, "/etc/group").is_none(),
            "a whiteout hides the lower file"
        );
    }
}
