//! rbuild's container runner: given a root filesystem (an image's unpacked layers, or a
//! directory) and an OCI runtime spec, run the spec's process in a real Linux container and
//! return its exit status.
//!
//! # Architecture
//!
//! * **Plan, then apply.** Everything the container's first process does to itself between
//!   `clone` and `exec` — mounts, `pivot_root`, masked and read-only paths, hostname, rlimits,
//!   bounding set, ids, capabilities, `no_new_privs`, seccomp — is first built in the parent as
//!   an ordered list of [`plan::Op`]s ([`rootfs::rootfs_ops`], [`process::process_ops`]), then
//!   applied in the child by [`plan::apply`] through the [`Syscall`] seam. Unit tests apply
//!   plans to a [`RecordingSyscall`] and check the order without root; the integration tests
//!   in `tests/` prove the real thing as root.
//! * **clone without re-exec.** The parent may be multithreaded (tokio), so the child must do
//!   nothing after `clone` that could need a lock another thread held: it only makes raw
//!   system calls on memory prepared before the clone (C strings, pointer arrays, the plan,
//!   the compiled BPF filter) and reports failures as a fixed-size record on a close-on-exec
//!   pipe. This is the async-signal-safe discipline `posix_spawn` follows; it avoids runc's
//!   re-exec of `/proc/self/exe` (and its cost: a second binary start per container) and
//!   works from any binary, including test harnesses. The child is created by the raw
//!   `clone` system call with the namespace flags, so it is PID 1 of its PID namespace.
//! * **Minimal init.** With [`ContainerConfig::init`], PID 1 blocks all signals, starts the
//!   command as its child, forwards every signal to it with `sigwaitinfo` + `kill`, reaps
//!   every zombie, and exits with the command's status (128 + signal if it was killed).
//! * **Synchronisation.** The child waits on a pipe until the parent has put it into its
//!   cgroup, so no instruction of the command runs unlimited. A close-on-exec error pipe
//!   tells the parent either "exec happened" (EOF) or which plan step failed with which errno.
//! * **Cleanup.** Mounts live only in the container's mount namespace (the child first makes
//!   every mount private), so they vanish with it; the cgroup and, with `remove`, the
//!   container's directory are removed by [`Running::wait`] (or on drop).
//!
//! [`spec::docker_spec`] builds a spec with docker's defaults from `docker run`-like options.
//!
//! # Example: a build step
//!
//! ```no_run
//! use rbuild_runner::{
//!     ContainerConfig, EtcFiles, Network, Rootfs, RunOptions, Stdio, docker_spec, run,
//! };
//!
//! # fn main() -> Result<(), rbuild_runner::Error> {
//! let layers = vec!["/var/lib/rbuild/snapshots/sha256/<diffid>".into()]; // bottom first
//! let opts = RunOptions {
//!     args: vec!["/bin/sh".into(), "-c".into(), "make install".into()],
//!     network: Network::Host, // RUN steps usually need the network
//!     ..Default::default()
//! };
//! let outcome = run(ContainerConfig {
//!     id: "step-1".into(),
//!     dir: "/var/lib/rbuild/containers/step-1".into(), // its `upper` dir is the step's diff
//!     spec: docker_spec(&opts)?,
//!     rootfs: Rootfs::Layers(layers),
//!     init: true,
//!     stdio: Stdio::default(),
//!     remove: false,
//!     volatile: false,
//!     etc: EtcFiles::Docker,
//! })?;
//! assert_eq!(outcome.status.code(), 0);
//! # Ok(())
//! # }
//! ```

pub mod binfmt;
pub mod caps;
pub mod cgroup;
mod child;
pub mod chroot;
pub mod container;
pub mod copy;
pub mod error;
pub mod etc;
pub mod exec;
mod handshake;
pub mod image;
pub mod lifecycle;
pub mod netns;
pub mod network;
pub mod plan;
pub mod process;
pub mod resolve;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod spec;
pub mod syscall;
pub mod user;

pub use container::{
    ConsoleSize, ContainerConfig, ExitStatus, Notes, Outcome, Rootfs, Running, Stdio,
    overlay_supported, run, spawn,
};
pub use error::Error;
pub use etc::EtcFiles;
pub use netns::{LoopbackNetwork, join_network};
pub use spec::{Network, RunOptions, docker_spec};
pub use syscall::{LinuxSyscall, RecordingSyscall, Syscall};
pub use user::{Identity, resolve as resolve_user};
