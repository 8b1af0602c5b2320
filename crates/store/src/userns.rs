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
