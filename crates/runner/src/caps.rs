//! Linux capabilities by name and number, and docker's default set.

use oci_spec::runtime::{Capabilities, Capability};

use crate::error::Error;

/// Capability names in kernel order (`CAP_CHOWN` is 0).
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The number of a capability given as `CAP_X`, `X` or `x`.
pub fn number(name: &str) -> Result<u32, Error> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES
        .iter()
        .position(|n| *n == bare)
        .map(|i| i as u32)
        .ok_or_else(|| Error::Capability(name.to_owned()))
}

/// The oci-spec value of a capability name.
pub fn parse(name: &str) -> Result<Capability, Error> {
    let n = number(name)?;
    let json = format!("\"CAP_{}\"", NAMES[n as usize]);
    serde_json::from_str(&json).map_err(|_| Error::Capability(name.to_owned()))
}

/// The number of an oci-spec capability.
pub fn number_of(cap: &Capability) -> Result<u32, Error> {
    let json = serde_json::to_string(cap).map_err(|e| Error::Capability(e.to_string()))?;
    number(json.trim_matches('"'))
}

/// A set's 64-bit mask, ignoring capabilities this kernel does not have.
pub fn mask(set: Option<&Capabilities>, last_cap: u32) -> Result<u64, Error> {
    let mut m = 0u64;
    for cap in set.into_iter().flatten() {
        let n = number_of(cap)?;
        if n <= last_cap {
            m |= 1 << n;
        }
    }
    Ok(m)
}

/// Docker's default set as oci-spec values.
pub fn docker_default() -> Capabilities {
    DOCKER_DEFAULT
        .iter()
        .map(|n| parse(n).expect("known capability"))
        .collect()
}

/// Every capability this crate knows (for `--privileged`).
pub fn all() -> Capabilities {
    NAMES.iter().filter_map(|n| parse(n).ok()).collect()
}

/// The highest capability number of the running kernel.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_mask_matches_dockers_capbnd() {
        // `grep CapBnd /proc/self/status` in `docker run busybox` prints 00000000a80425fb.
        assert_eq!(mask(Some(&docker_default()), 40).unwrap(), 0xa804_25fb);
    }

    #[test]
    fn names_round_trip_and_unknown_names_fail() {
        assert_eq!(number("cap_sys_admin").unwrap(), 21);
        assert_eq!(number("NET_ADMIN").unwrap(), 12);
        assert_eq!(number_of(&parse("CAP_BPF").unwrap()).unwrap(), 39);
        assert!(
            number("CAP_FLY")
                .unwrap_err()
                .to_string()
                .contains("CAP_FLY")
        );
    }
}
