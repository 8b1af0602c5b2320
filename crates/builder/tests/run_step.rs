//! A RUN step for real (root, overlayfs, busybox from Debian's busybox-static): output is
//! streamed, changes land in the upper dir with whiteouts, runtime mount stubs do not.
#![allow(clippy::print_stdout)]

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rbuild_builder::run::{RunStep, run_step};
use rbuild_runner::Network;

fn busybox(dir: &Path) -> bool {
    let peers = std::env::var("RBUILD_TEST_PEERS").is_ok();
    if !nix::unistd::geteuid().is_root() {
        assert!(!peers, "RBUILD_TEST_PEERS=1 but not root");
        println!("run_step: skipped (needs root)");
        return false;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs");
    let ok = std::process::Command::new(script)
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok || !peers, "scripts/busybox-rootfs failed");
    if !ok {
        println!("run_step: skipped (no busybox-static)");
    }
    ok
}

fn step(lower: &Path, script: &str, name: &str) -> RunStep {
    RunStep {
        id: format!("rbuild-test-run-{name}-{}", std::process::id()),
        lower: vec![lower.to_path_buf()],
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec!["GREETING=hi".into()],
        cwd: "/work".into(),
        user: None,
        network: Network::Host,
        network_namespace: None,
        resolv_conf: None,
        mounts: vec![],
        platform: "linux/amd64".into(),
    }
}

#[test]
fn changes_land_in_upper_and_output_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    if !busybox(&base) {
        return;
    }
    let mut out = Vec::new();
    let script = "echo $GREETING from $(pwd); echo oops >&2; mkdir -p /opt/x && echo data > /opt/x/f; rm /bin/ls";
    let upper = run_step(
        &step(&base, script, "changes"),
        &tmp.path().join("c1"),
        |c| out.extend_from_slice(c),
    )
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("hi from /work") && text.contains("oops"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(upper.join("opt/x/f")).unwrap(),
        "data\n"
    );
    let ls = std::fs::symlink_metadata(upper.join("bin/ls")).unwrap();
    assert!(
        ls.file_type().is_char_device() && ls.rdev() == 0,
        "deletion is an overlay whiteout"
    );
    for stub in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        assert!(
            !upper.join(stub).exists(),
            "{stub} mount stub leaked into the layer"
        );
    }
    assert!(
        upper.join("work").is_dir(),
        "the working directory is created"
    );
    assert!(base.join("bin/ls").exists(), "the lower layer is untouched");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(tmp.path().to_str().unwrap()),
        "no mount left behind"
    );
}

#[test]
fn failing_command_reports_its_code() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    if !busybox(&base) {
        return;
    }
    let result = run_step(
        &step(&base, "echo before; exit 3", "failing"),
        &tmp.path().join("c2"),
        |_| {},
    )
    .unwrap();
    assert_eq!(result, Err(3));
}

#[test]
fn a_program_of_an_architecture_without_emulation_says_what_is_missing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::path::Path::new(rbuild_runner::binfmt::BINFMT_DIR);
    if rbuild_runner::binfmt::can_run("s390x", dir).is_ok() {
        println!("skipped: this machine runs s390x programs (a binfmt_misc handler is registered)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    if !busybox(&base) {
        return;
    }
    // An s390x program as far as the kernel can tell: its ELF header.
    let fake = base.join("bin/s390x-tool");
    let mut bytes = rbuild_runner::binfmt::elf_header("s390x").unwrap().to_vec();
    bytes.resize(64, 0);
    std::fs::write(&fake, bytes).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut s = step(&base, "", "foreign");
    s.args = vec!["/bin/s390x-tool".into()];
    s.platform = "linux/s390x".into();
    let err = run_step(&s, &tmp.path().join("c"), |_| {}).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, rbuild_builder::BuildError::NoEmulation { .. }),
        "{text}"
    );
    assert!(
        text.starts_with("RUN for linux/s390x: s390x programs cannot run on this"),
        "{text}"
    );
    assert!(text.contains("qemu-user-static"), "{text}");
}
