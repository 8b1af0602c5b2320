//! What the store does differently in a user namespace (rbuild's rootless mode): overlay
//! metadata in `user.overlay.*` xattrs (overlayfs's `userxattr` mode, as `trusted.*` needs the
//! host's root), and owners kept only when the namespace maps more than one id.

use std::sync::OnceLock;

fn uid_map() -> &'static str {
    static MAP: OnceLock<String> = OnceLock::new();
    MAP.get_or_init(|| std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default())
}

/// Whether this process runs in a user namespace other than the host's.
pub fn in_user_namespace() -> bool {
    let fields: Vec<&str> = uid_map().split_whitespace().collect();
    !fields.is_empty() && fields != ["0", "0", "4294967295"]
}

/// Whether files can be given the owners a layer records: as root, outside a user namespace
/// or in one that maps more than the user's own id.
pub fn can_chown() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return false;
    }
    let mapped: u64 = uid_map()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum();
    !in_user_namespace() || mapped > 1
}

/// The xattr that marks an overlay lower directory opaque: `user.overlay.opaque` in a user
/// namespace (read by overlayfs mounted with `userxattr`), `trusted.overlay.opaque` otherwise.
pub fn opaque_xattr() -> &'static str {
    if in_user_namespace() {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}

/// The overlayfs mount options this process needs besides the directories: `userxattr` in a
/// user namespace (Linux 5.11+), none otherwise.
pub fn overlay_options() -> &'static str {
    if in_user_namespace() {
        ",userxattr"
    } else {
        ""
    }
}

/// The xattr that makes an empty regular file a whiteout (overlayfs's "xwhiteout", Linux
/// 6.7+): the form used where a character device 0/0 cannot be made (inside an unprivileged
/// container, whose overlayfs root refuses them).
pub const WHITEOUT_XATTR: &str = "user.overlay.whiteout";

/// Whether `path` is a whiteout: a character device 0/0, or an empty regular file marked with
/// [`WHITEOUT_XATTR`] (or its `trusted.` form).
pub fn is_whiteout(path: &std::path::Path, md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if md.file_type().is_char_device() && md.rdev() == 0 {
        return true;
    }
    md.is_file()
        && md.len() == 0
        && [WHITEOUT_XATTR, "trusted.overlay.whiteout"]
            .iter()
            .any(|n| matches!(xattr::get(path, n), Ok(Some(_))))
}

/// Make a whiteout at `path`: a character device 0/0, or where that is refused (`EPERM`) an
/// empty file marked with [`WHITEOUT_XATTR`].
pub fn make_whiteout(path: &std::path::Path) -> std::io::Result<()> {
    use nix::sys::stat::{Mode, SFlag};
    match nix::sys::stat::mknod(path, SFlag::S_IFCHR, Mode::empty(), 0) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            std::fs::File::create(path)?;
            xattr::set(path, WHITEOUT_XATTR, b"y")
        }
        Err(e) => Err(e.into()),
    }
}
