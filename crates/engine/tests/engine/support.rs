//! Shared by the engine tests: peers, a busybox image made in a store, waiting.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rbuild_engine::{Engine, EngineError, events::Recorded};
use rbuild_oci::{Platform, Reference};
use rbuild_store::Image;

/// Whether the peers are required (`RBUILD_TEST_PEERS=1`, set by scripts/test).
pub fn peers_required() -> bool {
    std::env::var("RBUILD_TEST_PEERS").as_deref() == Ok("1")
}

/// Skip (false, with a note) when `what` is missing, fail when the peers are required.
fn have(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    assert!(!peers_required(), "RBUILD_TEST_PEERS=1 but {what}");
    eprintln!("skipped: {what} (run scripts/test, or source scripts/lib/peers.sh; peers_start)");
    false
}

/// Whether containers can run here (root).
pub fn root() -> bool {
    have(
        nix::unistd::Uid::effective().is_root(),
        "not root (containers need it)",
    )
}

/// The registry's `host:port`, if the test can run (root for containers, the registry).
pub fn registry() -> Option<String> {
    if !root() {
        return None;
    }
    let reg = std::env::var("RBUILD_TEST_REGISTRY").ok();
    have(reg.is_some(), "RBUILD_TEST_REGISTRY is not set").then(|| reg.unwrap())
}

/// An engine over `root` whose detached containers' monitor is this test binary, recording
/// its events.
pub fn engine(root: &Path) -> (Engine, Arc<Recorded>) {
    let events = Arc::new(Recorded::default());
    let engine = Engine::new(root)
        .with_monitor_program(std::env::current_exe().unwrap())
        .with_events(events.clone());
    (engine, events)
}

/// A busybox image (from Debian's busybox-static, through `scripts/busybox-rootfs`) stored
/// by `engine` under `name`, with a `PATH` and `CMD ["/bin/sh"]`.
pub fn busybox_image(engine: &Engine, name: &Reference) -> Option<Image> {
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(repo.join("scripts/busybox-rootfs"))
        .arg(&rootfs)
        .output()
        .unwrap();
    if !have(
        out.status.success(),
        "no busybox (apt-get install busybox-static)",
    ) {
        return None;
    }
    let tarball = work.path().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let store = engine.store().unwrap();
    let layer = store
        .add_layer_tar(std::fs::File::open(&tarball).unwrap(), "busybox")
        .unwrap();
    let host = Platform::host();
    let config = serde_json::json!({
        "architecture": host.architecture,
        "os": host.os,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
    });
    Some(
        store
            .commit_image(
                &serde_json::to_vec(&config).unwrap(),
                std::slice::from_ref(name),
            )
            .unwrap(),
    )
}

/// Poll `f` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The JSON value at `pointer` of `v`, failing with the whole value when absent.
pub fn at<'a>(v: &'a serde_json::Value, pointer: &str) -> &'a serde_json::Value {
    v.pointer(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in {v:#}"))
}

/// Whether `e` says "not found".
pub fn not_found(e: &EngineError) -> bool {
    e.is_not_found()
}
