//! Loading real and made-up projects from disk: file discovery, `-f` merging, `.env` and the
//! process environment, profiles, `extends`, the project name, and the errors docker compose
//! gives for bad input (each naming the file, service or key).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use rbuild_compose::{ComposeError, LoadOptions, Project};

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn load_in(dir: &Path, tweak: impl FnOnce(&mut LoadOptions)) -> Result<Project, ComposeError> {
    let mut opts = LoadOptions {
        working_dir: dir.to_path_buf(),
        ..LoadOptions::default()
    };
    tweak(&mut opts);
    Project::load(&opts)
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/compose")
        .join(name)
}

#[test]
fn a_real_project_loads_with_its_order_and_defaults() {
    let dir = sample("nginx-flask-mysql");
    let p = load_in(&dir, |_| {}).unwrap();
    assert_eq!(p.name, "nginx-flask-mysql");
    assert_eq!(p.files, [dir.join("compose.yaml")]);
    assert_eq!(p.service_order(), ["db", "backend", "proxy"]);
    assert_eq!(p.volume_names(), ["db-data"]);
    let db = &p.model.services["db"];
    assert_eq!(
        db.image.as_ref().map(ToString::to_string).as_deref(),
        Some("busybox:local"),
        "${{BASE_IMAGE:-busybox:local}} took its default"
    );
    let yaml = p.config_yaml();
    assert!(yaml.contains("name: nginx-flask-mysql"), "{yaml}");
    // `$$` is a literal `$` once interpolated.
    assert!(
        yaml.contains("--password=\"$(cat /run/secrets/db-password)\""),
        "{yaml}"
    );
    assert!(yaml.contains("condition: service_healthy"), "{yaml}");
}

#[test]
fn files_are_found_in_parent_directories_with_their_override() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  web:\n    image: a\n    ports: ['80:80']\n",
    );
    write(
        dir.path(),
        "compose.override.yaml",
        "services:\n  web:\n    image: b\n",
    );
    let sub = dir.path().join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let p = load_in(&sub, |_| {}).unwrap();
    assert_eq!(p.files.len(), 2);
    assert_eq!(p.directory, dir.path());
    let web = &p.model.services["web"];
    assert_eq!(web.image.as_ref().unwrap().to_string(), "b");
    assert_eq!(web.ports.len(), 1);

    let empty = tempfile::tempdir().unwrap();
    let e = load_in(empty.path(), |_| {}).unwrap_err();
    assert!(
        e.to_string().starts_with("no configuration file provided"),
        "{e}"
    );
}

#[test]
fn later_files_merge_over_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        "services:\n  web:\n    image: a\n    command: [one, two]\n    environment: [A=1, B=2]\n",
    );
    write(
        dir.path(),
        "b.yaml",
        "services:\n  web:\n    command: [three]\n    environment: {B: '3'}\n  db:\n    image: d\n",
    );
    let p = load_in(dir.path(), |o| {
        o.files = vec!["a.yaml".into(), "b.yaml".into()]
    })
    .unwrap();
    let yaml = p.config_yaml();
    assert!(
        yaml.contains("- three") && !yaml.contains("- one"),
        "{yaml}"
    );
    assert!(yaml.contains("A: '1'") && yaml.contains("B: '3'"), "{yaml}");
    assert_eq!(p.service_names(), ["db", "web"]);
}

#[test]
fn env_files_and_the_shell_interpolate_with_the_shell_winning() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "compose.yaml",
        "name: ${NAME:-fallback}\nservices:\n  web:\n    image: app:${TAG}\n    environment:\n      GREETING: ${GREETING}\n",
    );
    write(
        dir.path(),
        ".env",
        "TAG=1.0\nGREETING=from dotenv\nNAME=my_app\n",
    );
    write(dir.path(), "other.env", "TAG=2.0\n");
    let p = load_in(dir.path(), |o| {
        o.environment = IndexMap::from([("GREETING".to_string(), "from shell".to_string())]);
    })
    .unwrap();
    assert_eq!(p.name, "my_app", "name: from the file");
    let yaml = p.config_yaml();
    assert!(yaml.contains("image: app:1.0"), "{yaml}");
    assert!(yaml.contains("GREETING: from shell"), "{yaml}");

    let p = load_in(dir.path(), |o| {
        o.env_files = vec!["other.env".into()];
        o.project_name = Some("given-name".into());
    })
    .unwrap();
    assert_eq!(p.name, "given-name");
    assert!(p.config_yaml().contains("image: app:2.0"));
    // A given name must be valid as it is; only a directory's name is normalized.
    let e = load_in(dir.path(), |o| o.project_name = Some("Given Name!".into())).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid project name \"Given Name!\""),
        "{e}"
    );
    let named = dir.path().join("My Project.v2");
    write(&named, "compose.yaml", "services:\n  web:\n    image: a\n");
    assert_eq!(load_in(&named, |_| {}).unwrap().name, "myprojectv2");
}

#[test]
fn a_missing_required_variable_names_itself_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "compose.yaml",
        "services:\n  web:\n    image: app:${TAG:?set TAG to the release}\n",
    );
    let e = load_in(dir.path(), |_| {}).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: required variable TAG is missing a value: set TAG to the release",
            f.display()
        )
    );
}

#[test]
fn unknown_keys_and_bad_ports_are_errors_naming_file_service_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "compose.yaml",
        "services:\n  web:\n    image: a\n    imagee: b\n",
    );
    let e = load_in(dir.path(), |_| {}).unwrap_err().to_string();
    assert!(e.starts_with(&f.display().to_string()), "{e}");
    assert!(e.contains("services.web") && e.contains("imagee"), "{e}");

    write(
        dir.path(),
        "compose.yaml",
        "services:\n  web:\n    image: a\n    ports: ['80:http']\n",
    );
    let e = load_in(dir.path(), |_| {}).unwrap_err().to_string();
    assert!(e.contains("services.web") && e.contains("ports"), "{e}");
}

#[test]
fn depends_on_cycles_and_undefined_services_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on:\n      c: {condition: service_started}\n  c:\n    image: x\n    depends_on: [a]\n",
    );
    let e = load_in(dir.path(), |_| {}).unwrap_err().to_string();
    assert_eq!(e, "dependency cycle detected: a -> b -> c -> a");

    // As in awesome-compose's react-express-mongodb, where `Backend` is defined and
    // `backend` depended on.
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  frontend:\n    image: x\n    depends_on: [backend]\n  Backend:\n    image: x\n",
    );
    let e = load_in(dir.path(), |_| {}).unwrap_err().to_string();
    assert_eq!(
        e,
        "service \"frontend\" depends on undefined service \"backend\": invalid compose project"
    );
}

#[test]
fn profiles_switch_services_on() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  web:\n    image: x\n  debug:\n    image: x\n    profiles: [dev]\n  docs:\n    image: x\n    profiles: [docs, dev]\n",
    );
    assert_eq!(
        load_in(dir.path(), |_| {}).unwrap().service_names(),
        ["web"]
    );
    let dev = load_in(dir.path(), |o| o.profiles = vec!["dev".into()]).unwrap();
    assert_eq!(dev.service_names(), ["debug", "docs", "web"]);
    let env = load_in(dir.path(), |o| {
        o.environment = IndexMap::from([("COMPOSE_PROFILES".to_string(), "docs".to_string())]);
    })
    .unwrap();
    assert_eq!(env.service_names(), ["docs", "web"]);
}

#[test]
fn extends_takes_a_base_service_from_this_or_another_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "common.yaml",
        "services:\n  base:\n    image: common\n    environment: {LEVEL: info, FROM: common}\n",
    );
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  web:\n    extends: {file: common.yaml, service: base}\n    environment: {LEVEL: debug}\n  worker:\n    extends: web\n    command: [work]\n",
    );
    let p = load_in(dir.path(), |_| {}).unwrap();
    let yaml = p.config_yaml();
    assert_eq!(p.service_names(), ["web", "worker"]);
    assert!(!yaml.contains("extends"), "{yaml}");
    assert!(yaml.contains("image: common"), "{yaml}");
    assert!(
        yaml.contains("LEVEL: debug") && yaml.contains("FROM: common"),
        "{yaml}"
    );

    write(
        dir.path(),
        "compose.yaml",
        "services:\n  a:\n    image: x\n    extends: b\n  b:\n    extends: a\n",
    );
    let e = load_in(dir.path(), |_| {}).unwrap_err().to_string();
    assert!(e.contains("circular reference"), "{e}");
}

#[test]
fn restart_with_a_retry_count_and_octal_modes_load_as_docker_compose_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  a:\n    image: busybox\n    restart: on-failure:3\n    secrets:\n      - source: s\n        mode: 0440\n  b:\n    image: busybox\n    restart: always\nsecrets:\n  s:\n    environment: HOME\n",
    );
    let p = load_in(dir.path(), |_| {}).unwrap();
    let config = p.config_yaml();
    assert!(config.contains("restart: on-failure:3\n"), "{config}");
    assert!(config.contains("restart: always\n"), "{config}");
    assert!(config.contains("mode: 288\n"), "{config}");
    assert!(!config.contains("x-rbuild"), "{config}");
    // A count that is no number is still refused when the service is run.
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  a:\n    image: busybox\n    restart: sometimes\n",
    );
    let e = load_in(dir.path(), |_| {}).unwrap_err().to_string();
    assert!(e.contains("services.a.restart"), "{e}");
}
