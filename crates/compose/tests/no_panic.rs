//! Property tests: no input makes interpolation, the env-file parser or loading a compose
//! file panic (the cargo-fuzz target in `fuzz/` explores the same entry points with coverage
//! guidance). Errors are fine, panics are not.

use proptest::prelude::*;
use rbuild_compose::{LoadOptions, Project, interpolate_str, parse_env_file};

fn lookup(name: &str) -> Option<String> {
    name.len().is_multiple_of(2).then(|| name.to_lowercase())
}

/// Load `text` as an override file over a small base, with `text` as the .env too.
fn load(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  base:\n    image: busybox\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("compose.override.yaml"), text).unwrap();
    std::fs::write(dir.path().join(".env"), text).unwrap();
    if let Ok(p) = Project::load(&LoadOptions {
        working_dir: dir.path().to_path_buf(),
        ..LoadOptions::default()
    }) {
        let _ = p.config_yaml();
        let _ = p.service_order();
    }
}

const TOKENS: &[&str] = &[
    "services:\n",
    "  web:\n",
    "  db:\n",
    "    image: ",
    "busybox",
    "\n",
    "    depends_on: [",
    "web",
    "db",
    "]",
    "    extends: ",
    "{service: ",
    "}",
    "    profiles: [x]\n",
    "    ports: [",
    "'80:80'",
    "    environment:\n",
    "      A: ",
    "- ",
    "name: ",
    "volumes:\n",
    "  v: {}\n",
    "$",
    "$$",
    "${",
    "${A",
    "${A:-",
    "${A:?",
    "${A:+",
    "}",
    "{",
    "'",
    "\"",
    "#",
    "=",
    "export ",
    ": ",
    "-",
    "[",
    ",",
    "x-",
    "&a ",
    "*a",
    "!!str ",
    "\t",
    " ",
    "\u{feff}",
    "♥",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_text_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = interpolate_str(&text, &lookup);
        let _ = parse_env_file(&text, &lookup);
        load(&text);
    }

    #[test]
    fn compose_shaped_text_never_panics(picks in proptest::collection::vec(0..TOKENS.len(), 0..60)) {
        let text: String = picks.iter().map(|&i| TOKENS[i]).collect();
        let _ = interpolate_str(&text, &lookup);
        let _ = parse_env_file(&text, &lookup);
        load(&text);
    }
}
