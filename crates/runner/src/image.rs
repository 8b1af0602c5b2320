//! What an image's config contributes to a container, with docker's rules: ENTRYPOINT and
//! CMD combination, environment layering, and reading `/etc/passwd`-style files from layers.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// The command a container runs, as `docker run` combines it:
/// `--entrypoint` (if given) replaces the image's ENTRYPOINT and drops its CMD; arguments
/// after the image replace CMD. An empty `--entrypoint ""` clears the ENTRYPOINT.
pub fn command(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint: Option<&str>,
    args: &[String],
) -> Vec<String> {
    let (ep, default_cmd): (Vec<String>, &[String]) = match entrypoint {
        Some("") => (Vec::new(), &[]),
        Some(e) => (vec![e.to_owned()], &[]),
        None => (image_entrypoint.to_vec(), image_cmd),
    };
    let cmd = if args.is_empty() { default_cmd } else { args };
    ep.into_iter().chain(cmd.iter().cloned()).collect()
}

/// Layer `overrides` (`KEY=VALUE`) over `base`: a later key replaces an earlier one in place.
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for kv in overrides {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        match out
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = kv.clone(),
            None => out.push(kv.clone()),
        }
    }
    out
}

/// Read a file of the image's filesystem from its layer directories (bottom first), the
/// topmost layer that has it winning; a whiteout (character device 0/0) hides it.
pub fn read_file(layers: &[PathBuf], path: &str) -> Option<String> {
    let rel = Path::new(path.trim_start_matches('/'));
    for layer in layers.iter().rev() {
        let p = layer.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_char_device() => return None,
            Ok(m) if m.is_file() => return fs::read_to_string(&p).ok(),
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn entrypoint_and_cmd_combine_like_docker_run() {
        let ep = v(&["/entry", "-x"]);
        let cmd = v(&["serve"]);
        assert_eq!(command(&ep, &cmd, None, &[]), v(&["/entry", "-x", "serve"]));
        assert_eq!(
            command(&ep, &cmd, None, &v(&["other"])),
            v(&["/entry", "-x", "other"])
        );
        assert_eq!(command(&ep, &cmd, Some("sh"), &[]), v(&["sh"]));
        assert_eq!(
            command(&ep, &cmd, Some("sh"), &v(&["-c", "id"])),
            v(&["sh", "-c", "id"])
        );
        assert_eq!(command(&ep, &cmd, Some(""), &v(&["ls"])), v(&["ls"]));
        assert_eq!(command(&[], &cmd, None, &[]), v(&["serve"]));
        assert!(command(&[], &[], None, &[]).is_empty());
    }

    #[test]
    fn later_environment_wins_in_place() {
        let base = v(&["PATH=/bin", "A=1"]);
        assert_eq!(
            merge_env(&base, &v(&["A=2", "B=3", "PATH=/x"])),
            v(&["PATH=/x", "A=2", "B=3"])
        );
    }

    #[test]
    fn files_come_from_the_topmost_layer_and_whiteouts_hide_them() {
        let base = tempfile::tempdir().unwrap();
        let top = tempfile::tempdir().unwrap();
        fs::create_dir_all(base.path().join("etc")).unwrap();
        fs::create_dir_all(top.path().join("etc")).unwrap();
        fs::write(base.path().join("etc/passwd"), "base").unwrap();
        fs::write(base.path().join("etc/group"), "g").unwrap();
        fs::write(top.path().join("etc/passwd"), "top").unwrap();
        let layers = vec![base.path().to_path_buf(), top.path().to_path_buf()];
        assert_eq!(read_file(&layers, "/etc/passwd").as_deref(), Some("top"));
        assert_eq!(read_file(&layers, "/etc/group").as_deref(), Some("g"));
        assert_eq!(read_file(&layers, "/etc/shadow"), None);
    }
}
