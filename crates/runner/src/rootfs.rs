//! The container's filesystem view as a plan: the root (overlayfs of the image's layers, or a
//! prepared directory) mounted at `merged`, the spec's mounts under it, `/dev` populated,
//! `pivot_root` into it, then masked and read-only paths — runc's order.

use std::ffi::{CString, c_ulong};
use std::path::{Component, Path, PathBuf};

use nix::libc;
use oci_spec::runtime::Mount;

use crate::error::Error;
use crate::plan::Op;
use crate::resolve::resolve_in_rootfs;

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsSource {
    /// overlayfs: read-only layer directories (bottom layer first, as in the image) under a
    /// per-container writable `upper` dir and its `work` dir.
    Overlay {
        /// Unpacked layer directories, bottom first.
        lowers: Vec<PathBuf>,
        /// The container's writable layer: every change lands here.
        upper: PathBuf,
        /// overlayfs's scratch directory, on the same filesystem as `upper`.
        work: PathBuf,
        /// Mount it `volatile`: no sync of the upper filesystem when it is unmounted.
        volatile: bool,
    },
    /// A complete root filesystem directory, used as is (bind-mounted onto itself).
    Directory(PathBuf),
}

/// What the rootfs plan needs from the spec.
#[derive(Debug, Clone, Copy)]
pub struct RootfsSpec<'a> {
    /// Where the root is assembled before `pivot_root` (the overlay mount point).
    pub merged: &'a Path,
    /// The root's source.
    pub source: &'a RootfsSource,
    /// The spec's mounts, in order.
    pub mounts: &'a [Mount],
    /// Paths hidden from the container.
    pub masked_paths: &'a [String],
    /// Paths made read-only.
    pub readonly_paths: &'a [String],
    /// Remount `/` read-only at the end.
    pub readonly_root: bool,
    /// Whether the container has its own network namespace (sysfs can only be mounted then).
    pub own_network: bool,
}

/// The default device nodes (runc's): name, major, minor.
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The default `/dev` symlinks (runc's).
const DEV_LINKS: [(&str, &str); 6] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
    ("/proc/kcore", "core"),
];

pub(crate) fn cstring(p: impl AsRef<[u8]>, what: &str) -> Result<CString, Error> {
    CString::new(p.as_ref().to_vec())
        .map_err(|_| Error::InvalidSpec(format!("{what} contains a NUL byte")))
}

fn cpath(p: &Path) -> Result<CString, Error> {
    cstring(
        p.as_os_str().as_encoded_bytes(),
        &format!("path {}", p.display()),
    )
}

/// `merged` joined with a container path, refusing `..` so a mount cannot escape the root.
pub fn container_path(merged: &Path, dest: &Path) -> Result<PathBuf, Error> {
    let mut out = merged.to_path_buf();
    for comp in dest.components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(c) => out.push(c),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::InvalidSpec(format!(
                    "container path {} must not contain `..`",
                    dest.display()
                )));
            }
        }
    }
    Ok(out)
}

/// The directory all `paths` are directly in, if they share one.
fn common_parent(paths: &[PathBuf]) -> Option<PathBuf> {
    let first = paths.first()?.parent()?;
    paths
        .iter()
        .all(|p| p.parent() == Some(first))
        .then(|| first.to_path_buf())
}

/// `mkdir` for every component of `path` below `base`.
fn mkdir_chain(base: &Path, path: &Path, ops: &mut Vec<Op>) -> Result<(), Error> {
    let rel = path.strip_prefix(base).unwrap_or(path);
    let mut cur = base.to_path_buf();
    for comp in rel.components() {
        cur.push(comp);
        ops.push(Op::Mkdir {
            path: cpath(&cur)?,
            mode: 0o755,
        });
    }
    Ok(())
}

/// Mount options split into flags, propagation flags and filesystem data, as runc does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// `MS_*` flags (ro, nosuid, …).
    pub flags: c_ulong,
    /// Propagation flags applied with a separate mount call.
    pub propagation: c_ulong,
    /// Options passed through to the filesystem (`mode=755`, `size=65536k`, …).
    pub data: Vec<String>,
    /// `bind` or `rbind`.
    pub bind: bool,
}

/// Parse OCI mount options.
pub fn parse_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let (set, clear): (c_ulong, c_ulong) = match opt.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "relatime" => (libc::MS_RELATIME, 0),
            "noatime" => (libc::MS_NOATIME, 0),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "bind" => {
                o.bind = true;
                (libc::MS_BIND, 0)
            }
            "rbind" => {
                o.bind = true;
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" | "unbindable"
            | "runbindable" => {
                let base = match opt.trim_start_matches('r') {
                    "private" => libc::MS_PRIVATE,
                    "slave" => libc::MS_SLAVE,
                    "shared" => libc::MS_SHARED,
                    _ => libc::MS_UNBINDABLE,
                };
                let rec = if opt.starts_with('r') {
                    libc::MS_REC
                } else {
                    0
                };
                o.propagation |= base | rec;
                (0, 0)
            }
            _ => {
                o.data.push(opt.clone());
                (0, 0)
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o
}

/// Whether this kernel mounts overlayfs with `volatile` (Linux 5.10+).
pub(crate) fn volatile_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        kernel_at_least(&release, (5, 10))
    })
}

/// Whether kernel `release` (`6.18.44-...`) is `min` (major, minor) or later.
fn kernel_at_least(release: &str, min: (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}

/// Build the rootfs part of a container's plan.
pub fn rootfs_ops(spec: &RootfsSpec<'_>) -> Result<Vec<Op>, Error> {
    let merged = spec.merged;
    let mut ops = vec![Op::Mount {
        source: None,
        target: c"/".into(),
        fstype: None,
        flags: libc::MS_REC | libc::MS_PRIVATE,
        data: None,
    }];
    match spec.source {
        RootfsSource::Overlay {
            lowers,
            upper,
            work,
            volatile,
        } => {
            let render = |base: Option<&Path>| -> String {
                let lowerdir: Vec<String> = lowers
                    .iter()
                    .rev()
                    .map(|p| match base.and_then(|b| p.strip_prefix(b).ok()) {
                        Some(rel) => rel.display().to_string(),
                        None => p.display().to_string(),
                    })
                    .collect();
                format!(
                    "lowerdir={},upperdir={},workdir={}{}{}",
                    lowerdir.join(":"),
                    upper.display(),
                    work.display(),
                    // In rootless mode's user namespace overlay keeps its metadata in
                    // `user.overlay.*` xattrs (Linux 5.11+).
                    if crate::rootless::active() {
                        ",userxattr"
                    } else {
                        ""
                    },
                    if *volatile { ",volatile" } else { "" }
                )
            };
            let mut data = render(None);
            // The kernel copies mount data into one page. Layers from the store share a
            // parent directory: name them relative to it (the child changes into it first),
            // which fits about 60 layers instead of about 40.
            if data.len() >= 4096
                && let Some(base) = common_parent(lowers)
            {
                data = render(Some(&base));
                ops.push(Op::Chdir {
                    path: cpath(&base)?,
                });
            }
            if data.len() >= 4096 {
                return Err(Error::InvalidSpec(format!(
                    "overlay options are {} bytes for {} layers, over the kernel's 4096",
                    data.len(),
                    lowers.len()
                )));
            }
            ops.push(Op::Mount {
                source: Some(c"overlay".into()),
                target: cpath(merged)?,
                fstype: Some(c"overlay".into()),
                flags: 0,
                data: Some(cstring(data, "overlay options")?),
            });
        }
        RootfsSource::Directory(dir) => ops.push(Op::Mount {
            source: Some(cpath(dir)?),
            target: cpath(merged)?,
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REC,
            data: None,
        }),
    }
    let mut dev_tmpfs = false;
    for m in spec.mounts {
        mount_ops(spec, m, &mut ops)?;
        if m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs") {
            dev_tmpfs = true;
        }
    }
    if dev_tmpfs {
        let dev = merged.join("dev");
        for (name, major, minor) in DEVICES {
            ops.push(Op::Device {
                path: cpath(&dev.join(name))?,
                host: cpath(&Path::new("/dev").join(name))?,
                mode: libc::S_IFCHR | 0o666,
                dev: libc::makedev(major, minor),
            });
        }
        for (target, link) in DEV_LINKS {
            ops.push(Op::Symlink {
                target: cstring(target, "link")?,
                link: cpath(&dev.join(link))?,
            });
        }
    }
    ops.push(Op::Chdir {
        path: cpath(merged)?,
    });
    ops.push(Op::PivotRoot);
    for p in spec.masked_paths {
        ops.push(Op::Mask {
            path: cpath(&container_path(Path::new("/"), Path::new(p))?)?,
        });
    }
    for p in spec.readonly_paths {
        ops.push(Op::ReadOnly {
            path: cpath(&container_path(Path::new("/"), Path::new(p))?)?,
        });
    }
    if spec.readonly_root {
        ops.push(Op::Mount {
            source: None,
            target: c"/".into(),
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            data: None,
        });
    }
    Ok(ops)
}

fn mount_ops(spec: &RootfsSpec<'_>, m: &Mount, ops: &mut Vec<Op>) -> Result<(), Error> {
    let inside = resolve_in_rootfs(spec.source, m.destination())?;
    let target = container_path(spec.merged, &inside)?;
    let mut typ = m.typ().clone().unwrap_or_default();
    let mut options = parse_options(m.options().as_deref().unwrap_or_default());
    let mut source = m.source().clone();
    // A single-id user namespace maps no tty group: devpts takes the namespace's only gid.
    if typ == "devpts" && crate::rootless::single_id() {
        options.data.retain(|d| !d.starts_with("gid="));
    }
    // sysfs belongs to a network namespace: without our own, bind the host's (as runc does).
    if typ == "sysfs" && !spec.own_network {
        typ = "bind".into();
        source = Some(PathBuf::from("/sys"));
        options.bind = true;
        options.flags |= libc::MS_BIND | libc::MS_REC;
    }
    if options.bind || typ == "bind" {
        let src = source.ok_or_else(|| {
            Error::InvalidSpec(format!(
                "bind mount on {} has no source",
                m.destination().display()
            ))
        })?;
        let meta = std::fs::metadata(&src).map_err(|e| Error::MountSource {
            path: src.clone(),
            source: e,
        })?;
        if meta.is_dir() {
            mkdir_chain(spec.merged, &target, ops)?;
        } else {
            if let Some(parent) = target.parent() {
                mkdir_chain(spec.merged, parent, ops)?;
            }
            ops.push(Op::CreateFile {
                path: cpath(&target)?,
            });
        }
        let rec = options.flags & libc::MS_REC;
        ops.push(Op::Mount {
            source: Some(cpath(&src)?),
            target: cpath(&target)?,
            fstype: None,
            flags: libc::MS_BIND | rec,
            data: None,
        });
        // Bind mounts ignore other flags on creation: apply them with a remount.
        let extra = options.flags & !(libc::MS_BIND | libc::MS_REC);
        if extra != 0 {
            ops.push(Op::Mount {
                source: None,
                target: cpath(&target)?,
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REMOUNT | rec | extra,
                data: None,
            });
        }
    } else {
        mkdir_chain(spec.merged, &target, ops)?;
        let src = source.unwrap_or_else(|| PathBuf::from(&typ));
        let data = options.data.join(",");
        ops.push(Op::Mount {
            source: Some(cpath(&src)?),
            target: cpath(&target)?,
            fstype: Some(cstring(&typ, "mount type")?),
            flags: options.flags,
            data: if data.is_empty() {
                None
            } else {
                Some(cstring(data, "mount options")?)
            },
        });
    }
    if options.propagation != 0 {
        ops.push(Op::Mount {
            source: None,
            target: cpath(&target)?,
            fstype: None,
            flags: options.propagation,
            data: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::apply;
    use crate::syscall::RecordingSyscall;
    use oci_spec::runtime::MountBuilder;

    fn mount(dest: &str, typ: &str, src: &str, opts: &[&str]) -> Mount {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(src)
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    fn record(spec: &RootfsSpec<'_>) -> Vec<String> {
        let ops = rootfs_ops(spec).unwrap();
        let mut sys = RecordingSyscall::default();
        apply(&ops, &mut sys).unwrap();
        sys.calls
    }

    /// A rootfs plan of `source` at `merged` with no mounts, masks or read-only paths.
    fn no_mounts<'a>(merged: &'a Path, source: &'a RootfsSource) -> RootfsSpec<'a> {
        RootfsSpec {
            merged,
            source,
            mounts: &[],
            masked_paths: &[],
            readonly_paths: &[],
            readonly_root: false,
            own_network: true,
        }
    }

    #[test]
    fn a_volatile_overlay_says_so_and_kernels_are_compared_by_version() {
        let source = RootfsSource::Overlay {
            lowers: vec!["/l/base".into()],
            upper: "/c/upper".into(),
            work: "/c/work".into(),
            volatile: true,
        };
        let calls = record(&no_mounts(Path::new("/c/merged"), &source));
        assert!(
            calls[1].starts_with("mount overlay /c/merged overlay 0x0 lowerdir=/l/base,upperdir=/c/upper,workdir=/c/work")
                && calls[1].ends_with(",volatile"),
            "{}",
            calls[1]
        );
        assert!(kernel_at_least("6.18.44-fc-v1272", (5, 10)));
        assert!(kernel_at_least("5.10.0-21-amd64", (5, 10)));
        assert!(!kernel_at_least("5.4.0-150-generic", (5, 10)));
        assert!(!kernel_at_least("4.19.0", (5, 10)));
        assert!(!kernel_at_least("", (5, 10)));
    }

    #[test]
    fn overlay_lists_layers_top_first_then_mounts_then_pivots_then_masks() {
        let source = RootfsSource::Overlay {
            lowers: vec!["/l/base".into(), "/l/top".into()],
            upper: "/c/upper".into(),
            work: "/c/work".into(),
            volatile: false,
        };
        let mounts = [
            mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
            mount(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
        ];
        let spec = RootfsSpec {
            merged: Path::new("/c/merged"),
            source: &source,
            mounts: &mounts,
            masked_paths: &["/proc/kcore".into()],
            readonly_paths: &["/proc/sys".into()],
            readonly_root: false,
            own_network: true,
        };
        let calls = record(&spec);
        let pos = |needle: &str| {
            calls
                .iter()
                .position(|c| c.starts_with(needle))
                .unwrap_or_else(|| panic!("{needle}"))
        };
        assert_eq!(calls[0], "mount none / none 0x44000 none");
        assert_eq!(
            calls[1],
            "mount overlay /c/merged overlay 0x0 lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work"
        );
        assert!(calls.contains(&"mount proc /c/merged/proc proc 0xe none".to_owned()));
        assert!(calls.contains(
            &"mount tmpfs /c/merged/dev tmpfs 0x1000002 mode=755,size=65536k".to_owned()
        ));
        assert!(calls.contains(&"mknod /c/merged/dev/null 20666 0x103".to_owned()));
        assert!(calls.contains(&"symlink pts/ptmx /c/merged/dev/ptmx".to_owned()));
        // Mounts before the devices in them, pivot after both, masking after the pivot.
        assert!(pos("mount tmpfs /c/merged/dev") < pos("mknod /c/merged/dev/null"));
        assert!(pos("mknod /c/merged/dev/tty") < pos("pivot_root"));
        assert!(pos("pivot_root") < pos("stat /proc/kcore"));
        assert!(pos("stat /proc/kcore") < pos("stat /proc/sys"));
        assert_eq!(
            calls.last().unwrap(),
            "mount /proc/sys /proc/sys none 0x502f none"
        );
    }

    #[test]
    fn many_layers_are_named_relative_to_their_shared_directory() {
        let dir = "/var/lib/rbuild/snapshots/sha256";
        let lowers: Vec<PathBuf> = (0..50)
            .map(|i| PathBuf::from(format!("{dir}/{i:064x}")))
            .collect();
        let source = RootfsSource::Overlay {
            lowers: lowers.clone(),
            upper: "/c/u".into(),
            work: "/c/w".into(),
            volatile: false,
        };
        let calls = record(&no_mounts(Path::new("/c/m"), &source));
        assert_eq!(calls[1], format!("chdir {dir}"));
        let lowerdir = format!("lowerdir={:064x}:{:064x}:", 49, 48);
        assert!(
            calls[2].starts_with(&format!("mount overlay /c/m overlay 0x0 {lowerdir}")),
            "{}",
            calls[2]
        );
        // Far too many layers is an error that says why.
        let many: Vec<PathBuf> = (0..80)
            .map(|i| PathBuf::from(format!("{dir}/{i:064x}")))
            .collect();
        let source = RootfsSource::Overlay {
            lowers: many,
            upper: "/c/u".into(),
            work: "/c/w".into(),
            volatile: false,
        };
        let err = rootfs_ops(&no_mounts(Path::new("/c/m"), &source))
            .unwrap_err()
            .to_string();
        assert!(err.contains("80 layers"), "{err}");
    }

    #[test]
    fn readonly_bind_mount_is_remounted_and_file_sources_get_a_file_target() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts");
        std::fs::write(&file, "x").unwrap();
        let mounts = [
            mount(
                "/data",
                "bind",
                dir.path().to_str().unwrap(),
                &["rbind", "ro"],
            ),
            mount("/etc/hosts", "bind", file.to_str().unwrap(), &["bind"]),
        ];
        let source = RootfsSource::Directory("/rootfs".into());
        let spec = RootfsSpec {
            merged: Path::new("/m"),
            source: &source,
            mounts: &mounts,
            masked_paths: &[],
            readonly_paths: &[],
            readonly_root: true,
            own_network: true,
        };
        let calls = record(&spec);
        let d = dir.path().display();
        assert_eq!(calls[1], "mount /rootfs /m none 0x5000 none");
        let i = calls
            .iter()
            .position(|c| c == &format!("mount {d} /m/data none 0x5000 none"));
        let i = i.expect("bind mount of the directory");
        assert_eq!(calls[i - 1], "mkdir /m/data 755");
        assert_eq!(calls[i + 1], "mount none /m/data none 0x5021 none");
        assert!(calls.contains(&"create /m/etc/hosts".to_owned()));
        assert_eq!(calls.last().unwrap(), "mount none / none 0x1021 none");
    }

    #[test]
    fn sysfs_without_own_network_binds_the_hosts() {
        let mounts = [mount("/sys", "sysfs", "sysfs", &["nosuid", "ro"])];
        let source = RootfsSource::Directory("/r".into());
        let spec = RootfsSpec {
            merged: Path::new("/m"),
            source: &source,
            mounts: &mounts,
            masked_paths: &[],
            readonly_paths: &[],
            readonly_root: false,
            own_network: false,
        };
        let calls = record(&spec);
        assert!(
            calls.contains(&"mount /sys /m/sys none 0x5000 none".to_owned()),
            "{calls:?}"
        );
    }

    #[test]
    fn missing_bind_source_and_dotdot_are_errors_naming_the_path() {
        let source = RootfsSource::Directory("/r".into());
        let mounts = [mount("/x", "bind", "/no/such/dir", &["rbind"])];
        let mut spec = RootfsSpec {
            merged: Path::new("/m"),
            source: &source,
            mounts: &mounts,
            masked_paths: &[],
            readonly_paths: &[],
            readonly_root: false,
            own_network: true,
        };
        let err = rootfs_ops(&spec).unwrap_err().to_string();
        assert!(err.contains("/no/such/dir"), "{err}");
        let mounts = [mount("/../etc", "tmpfs", "tmpfs", &[])];
        spec.mounts = &mounts;
        let err = rootfs_ops(&spec).unwrap_err().to_string();
        assert!(err.contains("/../etc"), "{err}");
    }
}
