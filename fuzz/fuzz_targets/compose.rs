//! Fuzz compose-file loading: the bytes as a compose file (with the same bytes as its .env),
//! interpolated, merged over a base file, typed and checked, plus the env-file parser and
//! interpolation on their own. Run with `cargo +nightly fuzz run compose` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild_compose::{LoadOptions, Project, interpolate_str, parse_env_file};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lookup = |name: &str| name.len().is_multiple_of(2).then(|| name.to_lowercase());
    let _ = interpolate_str(&text, &lookup);
    let _ = parse_env_file(&text, &lookup);
    let Ok(dir) = tempfile::tempdir() else { return };
    let base = "services:\n  base:\n    image: busybox\n";
    if std::fs::write(dir.path().join("compose.yaml"), base).is_err()
        || std::fs::write(dir.path().join("compose.override.yaml"), text.as_bytes()).is_err()
        || std::fs::write(dir.path().join(".env"), text.as_bytes()).is_err()
    {
        return;
    }
    if let Ok(project) = Project::load(&LoadOptions {
        working_dir: dir.path().to_path_buf(),
        ..LoadOptions::default()
    }) {
        let _ = project.config_yaml();
        let _ = project.service_order();
    }
});
