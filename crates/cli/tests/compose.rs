//! `rbuild compose`: `config` renders the loaded project (files merged, variables from the
//! shell and `.env`, profiles); bad files fail naming the file and key; the verbs that run
//! containers say they are not supported yet instead of doing something else.

use std::path::Path;
use std::process::{Command, Output};

fn compose(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("compose")
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn config_renders_the_merged_interpolated_project() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("compose.yaml"),
        "services:\n  web:\n    image: app:${TAG}\n    ports: ['8080:80']\n    depends_on: [db]\n  db:\n    image: db:${DB_TAG:-15}\n  debug:\n    image: tools\n    profiles: [debug]\nvolumes:\n  data: {}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("extra.yaml"),
        "services:\n  web:\n    environment: {MODE: prod}\n",
    )
    .unwrap();
    std::fs::write(d.join(".env"), "TAG=from-dotenv\n").unwrap();

    let yaml = stdout_ok(&compose(d, &["config"], &[("TAG", "from-shell")]));
    assert!(yaml.contains("image: app:from-shell"), "{yaml}");
    assert!(yaml.contains("image: db:15"), "{yaml}");
    assert!(!yaml.contains("tools"), "profile off: {yaml}");
    let name = d.file_name().unwrap().to_string_lossy().to_lowercase();
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(
        yaml.contains(&format!("name: {}", name.trim_start_matches(['-', '_']))),
        "{yaml}"
    );

    let merged = stdout_ok(&compose(
        d,
        &[
            "-f",
            "compose.yaml",
            "-f",
            "extra.yaml",
            "-p",
            "shop",
            "config",
            "--format",
            "json",
        ],
        &[],
    ));
    let v: serde_json::Value = serde_json::from_str(&merged).unwrap();
    assert_eq!(v["name"], "shop");
    assert_eq!(v["services"]["web"]["image"], "app:from-dotenv");
    assert_eq!(v["services"]["web"]["environment"]["MODE"], "prod");

    let services = stdout_ok(&compose(
        d,
        &["--profile", "debug", "config", "--services"],
        &[],
    ));
    assert_eq!(services, "db\ndebug\nweb\n");
    assert_eq!(
        stdout_ok(&compose(d, &["config", "--volumes"], &[])),
        "data\n"
    );
    assert_eq!(stdout_ok(&compose(d, &["config", "-q"], &[])), "");
}

#[test]
fn bad_files_fail_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  web:\n    image: a\n    restrat: always\n",
    )
    .unwrap();
    let out = compose(d, &["config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(
        err.contains("services.web") && err.contains("restrat"),
        "{err}"
    );

    std::fs::write(
        &file,
        "services:\n  web:\n    image: a:${TAG:?TAG is the release}\n",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&compose(d, &["config"], &[]).stderr).into_owned();
    assert!(
        err.contains("required variable TAG is missing a value: TAG is the release"),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    let err = String::from_utf8_lossy(&compose(empty.path(), &["config"], &[]).stderr).into_owned();
    assert!(err.contains("no configuration file provided"), "{err}");
}

#[test]
fn verbs_that_run_containers_are_not_supported_yet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  web:\n    image: a\n",
    )
    .unwrap();
    for verb in [&["up", "-d"][..], &["down"], &["ps"]] {
        let out = compose(dir.path(), verb, &[]);
        assert_eq!(out.status.code(), Some(1), "{verb:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("rbuild compose {}: not supported yet", verb[0])),
            "{err}"
        );
    }
    let err =
        String::from_utf8_lossy(&compose(dir.path(), &["frobnicate"], &[]).stderr).into_owned();
    assert!(err.contains("unknown command \"frobnicate\""), "{err}");
}
