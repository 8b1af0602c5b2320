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

/// `path` (absolute) with every symlink along it resolved inside the stage, the last
/// component too, as BuildKit resolves a COPY destination or a WORKDIR to create: absolute
/// link targets start again from the stage's `/`, `..` never climbs above it. A trailing `/`
/// is kept. Components that do not exist are taken as written.
pub fn resolve(layers: &[PathBuf], path: &str) -> String {
    const MAX_LINKS: usize = 40;
    let trailing = path.len() > 1 && path.ends_with('/');
    let mut todo: std::collections::VecDeque<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let candidate = format!("/{}/{part}", done.join("/"));
        let link = lookup(layers, &candidate)
            .filter(|(_, meta)| meta.file_type().is_symlink() && links < MAX_LINKS)
            .and_then(|(full, _)| std::fs::read_link(full).ok());
        match link {
            Some(target) => {
                links += 1;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                for c in target.split('/').filter(|c| !c.is_empty()).rev() {
                    todo.push_front(c.to_string());
                }
            }
            None => done.push(part),
        }
    }
    let mut out = format!("/{}", done.join("/"));
    if trailing && out != "/" {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_on_the_way_resolve_inside_the_stage() {
        let dir = tempfile::tempdir().unwrap();
        let (l1, l2) = (dir.path().join("l1"), dir.path().join("l2"));
        std::fs::create_dir_all(l1.join("real/sub")).unwrap();
        std::fs::create_dir_all(l2.join("opt")).unwrap();
        std::os::unix::fs::symlink("/real", l1.join("linkdir")).unwrap();
        std::os::unix::fs::symlink("../real/sub", l2.join("opt/rel")).unwrap();
        std::os::unix::fs::symlink("/../../loop", l2.join("up")).unwrap();
        std::os::unix::fs::symlink("loop", l2.join("loop")).unwrap();
        let layers = vec![l1, l2];
        assert_eq!(resolve(&layers, "/linkdir/"), "/real/");
        assert_eq!(resolve(&layers, "/linkdir"), "/real");
        assert_eq!(resolve(&layers, "/linkdir/new/f.txt"), "/real/new/f.txt");
        assert_eq!(resolve(&layers, "/opt/rel/x"), "/real/sub/x");
        assert_eq!(resolve(&layers, "/plain/dir/"), "/plain/dir/");
        assert_eq!(resolve(&layers, "/"), "/");
        // Never above the stage's root; a loop ends.
        assert_eq!(resolve(&layers, "/up"), "/loop");
        assert_eq!(resolve(&layers, "/loop/x"), "/loop/x");
    }

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
