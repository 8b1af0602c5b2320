//! Resolving a path inside the container's root filesystem before it is assembled: the image's
//! symlinks are followed within the layers (topmost wins, `..` clamped at the root), as
//! runc's securejoin does, so a mount point never lands on the host.

use std::path::{Component, Path, PathBuf};

use crate::error::Error;
use crate::rootfs::{RootfsSource, container_path};

/// The layer directories in which the rootfs's files are looked up, topmost last.
fn lookup_layers(source: &RootfsSource) -> Vec<&Path> {
    match source {
        RootfsSource::Overlay { lowers, upper, .. } => lowers
            .iter()
            .map(PathBuf::as_path)
            .chain([upper.as_path()])
            .collect(),
        RootfsSource::Directory(d) => vec![d.as_path()],
    }
}

/// Resolve `dest` inside the root filesystem the way the kernel would after `chroot`:
/// symlinks in the image (absolute or with `..`) stay within the root, so a mount point can
/// never land on the host through a link planted in an image.
pub fn resolve_in_rootfs(source: &RootfsSource, dest: &Path) -> Result<PathBuf, Error> {
    // Refuse `..` in what we are given; links may use it, clamped at the root.
    container_path(Path::new("/"), dest)?;
    let layers = lookup_layers(source);
    let mut resolved = PathBuf::new();
    let mut pending: std::collections::VecDeque<std::ffi::OsString> = dest
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        if name == "." {
            continue;
        }
        let candidate = resolved.join(&name);
        // The topmost layer that has the path decides what it is.
        let found = layers.iter().rev().find_map(|l| {
            let p = l.join(&candidate);
            std::fs::symlink_metadata(&p).ok().map(|m| (p, m))
        });
        match found {
            Some((p, m)) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(Error::InvalidSpec(format!(
                        "too many symbolic links resolving {} in the image",
                        dest.display()
                    )));
                }
                let target = std::fs::read_link(&p).map_err(Error::io(&p))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push_front(n.to_os_string()),
                        Component::ParentDir => pending.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    Ok(Path::new("/").join(resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_in_the_image_cannot_lead_a_mount_out_of_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("real/dir")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc", r.join("up")).unwrap();
        std::os::unix::fs::symlink("real/dir", r.join("rel")).unwrap();
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        let source = RootfsSource::Directory(r.to_path_buf());
        let resolve = |p: &str| resolve_in_rootfs(&source, Path::new(p));
        assert_eq!(resolve("/abs/x").unwrap(), Path::new("/etc/x"));
        assert_eq!(
            resolve("/up/x").unwrap(),
            Path::new("/etc/x"),
            "`..` stops at the root"
        );
        assert_eq!(resolve("/rel/x").unwrap(), Path::new("/real/dir/x"));
        assert_eq!(resolve("/new/path").unwrap(), Path::new("/new/path"));
        assert!(
            resolve("/loop/x")
                .unwrap_err()
                .to_string()
                .contains("too many symbolic links")
        );
        // Upper layers win over lower ones.
        let top = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/real", top.path().join("abs")).unwrap();
        let layered = RootfsSource::Overlay {
            lowers: vec![r.to_path_buf(), top.path().to_path_buf()],
            upper: top.path().join("none"),
            work: top.path().join("none"),
            volatile: false,
        };
        assert_eq!(
            resolve_in_rootfs(&layered, Path::new("/abs/dir")).unwrap(),
            Path::new("/real/dir")
        );
    }
}
