//! Which architectures' programs this kernel can execute: its own (and the 32-bit one it runs
//! natively), and every architecture an enabled `binfmt_misc` handler covers (Debian's
//! `qemu-user-static` + `binfmt-support` register one per architecture). A handler is matched
//! the way the kernel matches it: its magic and mask against the ELF header such a program
//! starts with.

use std::path::{Path, PathBuf};

/// Where the kernel lists its binfmt_misc handlers.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// One registered handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// Its name (`qemu-aarch64`).
    pub name: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// The interpreter the kernel runs.
    pub interpreter: PathBuf,
    /// Its flags (`F`: the interpreter was opened at registration, so it works inside
    /// containers whose root does not have it).
    pub flags: String,
    offset: usize,
    magic: Vec<u8>,
    mask: Vec<u8>,
}

impl Handler {
    /// Whether the kernel would hand a program starting with `header` to this handler.
    pub fn matches(&self, header: &[u8]) -> bool {
        if !self.enabled || self.magic.is_empty() {
            return false;
        }
        let Some(bytes) = header.get(self.offset..self.offset + self.magic.len()) else {
            return false;
        };
        bytes.iter().enumerate().all(|(i, b)| {
            let m = self.mask.get(i).copied().unwrap_or(0xff);
            b & m == self.magic[i] & m
        })
    }
}

/// The handlers registered in `dir` (the kernel's is [`BINFMT_DIR`]); none when binfmt_misc
/// is not mounted there.
pub fn handlers(dir: &Path) -> Vec<Handler> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Handler> = entries
        .flatten()
        .filter(|e| !matches!(e.file_name().to_str(), Some("register" | "status")))
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some(parse_handler(&e.file_name().to_string_lossy(), &text))
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn parse_handler(name: &str, text: &str) -> Handler {
    let mut h = Handler {
        name: name.to_string(),
        enabled: false,
        interpreter: PathBuf::new(),
        flags: String::new(),
        offset: 0,
        magic: Vec::new(),
        mask: Vec::new(),
    };
    for line in text.lines() {
        let (key, value) = line.split_once([' ', ':']).unwrap_or((line, ""));
        let value = value.trim();
        match key {
            "enabled" => h.enabled = true,
            "interpreter" => h.interpreter = PathBuf::from(value),
            "flags" => h.flags = value.to_string(),
            "offset" => h.offset = value.parse().unwrap_or(0),
            "magic" => h.magic = hex(value),
            "mask" => h.mask = hex(value),
            _ => {}
        }
    }
    h
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The first 20 bytes of an executable ELF program for OCI architecture `arch` (class,
/// byte order, `e_type` EXEC, `e_machine`), or `None` for an architecture not known here.
pub fn elf_header(arch: &str) -> Option<[u8; 20]> {
    // (64-bit, big-endian, e_machine)
    let (wide, big, machine): (bool, bool, u16) = match arch {
        "amd64" => (true, false, 62),
        "386" => (false, false, 3),
        "arm64" => (true, false, 183),
        "arm" => (false, false, 40),
        "ppc64le" => (true, false, 21),
        "ppc64" => (true, true, 21),
        "s390x" => (true, true, 22),
        "riscv64" => (true, false, 243),
        "mips64le" => (true, false, 8),
        "mips64" => (true, true, 8),
        "mipsle" => (false, false, 8),
        "mips" => (false, true, 8),
        "loong64" => (true, false, 258),
        _ => return None,
    };
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if wide { 2 } else { 1 };
    h[5] = if big { 2 } else { 1 };
    h[6] = 1;
    let (e_type, e_machine) = if big {
        (2u16.to_be_bytes(), machine.to_be_bytes())
    } else {
        (2u16.to_le_bytes(), machine.to_le_bytes())
    };
    h[16..18].copy_from_slice(&e_type);
    h[18..20].copy_from_slice(&e_machine);
    Some(h)
}

/// The architectures this machine runs without emulation (OCI names).
pub fn native_architectures() -> &'static [&'static str] {
    match std::env::consts::ARCH {
        "x86_64" => &["amd64", "386"],
        "aarch64" => &["arm64", "arm"],
        "x86" => &["386"],
        "arm" => &["arm"],
        "powerpc64" if cfg!(target_endian = "little") => &["ppc64le"],
        "powerpc64" => &["ppc64"],
        "s390x" => &["s390x"],
        "riscv64" => &["riscv64"],
        "loongarch64" => &["loong64"],
        _ => &[],
    }
}

/// Why programs for an architecture cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{arch} programs cannot run on this {host} machine: {reason}")]
pub struct NoEmulation {
    /// The architecture asked for (OCI name).
    pub arch: String,
    /// This machine's (OCI name).
    pub host: String,
    /// What is missing, and the fix.
    pub reason: String,
}

impl Handler {
    /// Whether the kernel opened the interpreter when the handler was registered (the `F`
    /// flag): only then does it run programs in a container, whose root lacks the
    /// interpreter's path.
    pub fn fixed_binary(&self) -> bool {
        self.flags.contains('F')
    }
}

/// The handler among `handlers` that runs programs for `arch` (OCI name) inside containers
/// (enabled, with the `F` flag), if any.
pub fn emulator<'a>(arch: &str, handlers: &'a [Handler]) -> Option<&'a Handler> {
    let header = elf_header(arch)?;
    handlers
        .iter()
        .find(|h| h.matches(&header) && h.fixed_binary())
}

/// Whether programs for `arch` (OCI name) can run here, natively or through a binfmt_misc
/// handler registered in `dir`; `Ok` names the handler used (none when native).
pub fn can_run(arch: &str, dir: &Path) -> Result<Option<Handler>, NoEmulation> {
    let native = native_architectures();
    if native.contains(&arch) {
        return Ok(None);
    }
    let no = |reason: String| NoEmulation {
        arch: arch.to_string(),
        host: native
            .first()
            .copied()
            .unwrap_or(std::env::consts::ARCH)
            .to_string(),
        reason,
    };
    if elf_header(arch).is_none() {
        return Err(no("the architecture is not known to rbuild".into()));
    }
    let all = handlers(dir);
    if all.is_empty() {
        return Err(no(format!(
            "no binfmt_misc handlers are registered ({} is empty or not mounted); install \
             qemu-user-static and binfmt-support",
            dir.display()
        )));
    }
    if let Some(h) = all
        .iter()
        .find(|h| elf_header(arch).is_some_and(|e| h.matches(&e)) && !h.fixed_binary())
        && emulator(arch, &all).is_none()
    {
        return Err(no(format!(
            "the binfmt_misc handler {} is registered without the F flag, so its interpreter \
             {} is looked for inside the container, where it is not; register it with F \
             (qemu-user-static and binfmt-support do: update-binfmts --enable {})",
            h.name,
            h.interpreter.display(),
            h.name
        )));
    }
    emulator(arch, &all)
        .map(|h| Some(h.clone()))
        .ok_or_else(|| {
            no(format!(
                "no enabled binfmt_misc handler in {} matches {arch} programs; install \
                 qemu-user-static and binfmt-support (whose handlers carry the F flag, so \
                 they work inside containers)",
                dir.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's qemu-user-static registration for aarch64, as the kernel lists it.
    const QEMU_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn dir_with(handlers: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        std::fs::write(dir.path().join("register"), "").unwrap();
        for (name, text) in handlers {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_qemu_handler_matches_its_architecture_only() {
        let dir = dir_with(&[("qemu-aarch64", QEMU_AARCH64)]);
        let hs = handlers(dir.path());
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].flags, "POCF");
        assert!(hs[0].matches(&elf_header("arm64").unwrap()));
        for other in ["s390x", "arm", "riscv64", "amd64"] {
            assert!(!hs[0].matches(&elf_header(other).unwrap()), "{other}");
        }
        if native_architectures().contains(&"amd64") {
            let used = can_run("arm64", dir.path()).unwrap().unwrap();
            assert_eq!(used.name, "qemu-aarch64");
            assert_eq!(can_run("amd64", dir.path()).unwrap(), None, "native");
            let e = can_run("s390x", dir.path()).unwrap_err().to_string();
            assert!(
                e.starts_with("s390x programs cannot run on this amd64 machine"),
                "{e}"
            );
            assert!(e.contains("qemu-user-static"), "{e}");
        }
    }

    #[test]
    fn a_disabled_handler_or_none_at_all_says_so() {
        let off = QEMU_AARCH64.replace("enabled", "disabled");
        let dir = dir_with(&[("qemu-aarch64", &off)]);
        if native_architectures().contains(&"amd64") {
            assert!(can_run("arm64", dir.path()).is_err());
            let empty = tempfile::tempdir().unwrap();
            let e = can_run("arm64", empty.path()).unwrap_err().to_string();
            assert!(e.contains("no binfmt_misc handlers are registered"), "{e}");
        }
    }

    #[test]
    fn a_handler_without_the_f_flag_does_not_run_programs_in_containers() {
        let no_f = QEMU_AARCH64.replace("flags: POCF", "flags: POC");
        let dir = dir_with(&[("qemu-aarch64", &no_f)]);
        let hs = handlers(dir.path());
        assert!(!hs[0].fixed_binary());
        assert!(emulator("arm64", &hs).is_none());
        if native_architectures().contains(&"amd64") {
            let e = can_run("arm64", dir.path()).unwrap_err().to_string();
            assert!(
                e.contains("qemu-aarch64 is registered without the F flag"),
                "{e}"
            );
        }
    }

    #[test]
    fn headers_carry_class_order_and_machine() {
        let s390x = elf_header("s390x").unwrap();
        assert_eq!(&s390x[..7], b"\x7fELF\x02\x02\x01");
        assert_eq!(&s390x[18..20], &[0, 22]);
        assert_eq!(&elf_header("arm").unwrap()[4..6], &[1, 1]);
        assert!(elf_header("sparc").is_none());
    }
}
