//! `credHelpers` / `credsStore` run `docker-credential-NAME`: a fake helper on PATH answers.
//! Alone in its test binary because it changes PATH.

use std::os::unix::fs::PermissionsExt;

use rbuild_registry::Credential;
use rbuild_registry::credentials::DockerConfig;

#[test]
fn credential_helpers_are_asked_and_told() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("helper.log");
    let bin = dir.path().join("docker-credential-rbtest");
    // Knows one registry; records store/erase calls (without the secret) in a log.
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\ninput=$(cat)\ncase \"$1\" in\n get) if [ \"$input\" = reg.example:5000 ]; then echo '{{\"ServerURL\":\"reg.example:5000\",\"Username\":\"hu\",\"Secret\":\"hs\"}}'; else echo 'credentials not found in native keychain'; exit 1; fi;;\n store) echo \"store $(echo \"$input\" | grep -o '\"Username\":\"[^\"]*\"')\" >> {log};;\n erase) echo \"erase $input\" >> {log};;\nesac\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let old = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![dir.path().to_path_buf()];
    paths.extend(std::env::split_paths(&old));
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PATH", std::env::join_paths(paths).unwrap()) };

    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"credsStore":"rbtest"}"#).unwrap();
    let mut c = DockerConfig::load(&path).unwrap();
    assert_eq!(
        c.get("reg.example:5000").unwrap(),
        Some(Credential {
            username: "hu".into(),
            secret: "hs".into()
        })
    );
    assert_eq!(c.get("other.example").unwrap(), None);
    c.store(
        "new.example",
        &Credential {
            username: "nu".into(),
            secret: "never-in-file".into(),
        },
    )
    .unwrap();
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(!file.contains("never-in-file"), "{file}");
    assert!(file.contains("new.example"), "{file}");
    assert!(c.erase("new.example").unwrap());
    // A helper that is not installed: no credentials (anonymous), but storing fails clearly.
    std::fs::write(&path, r#"{"credsStore":"not-installed-here"}"#).unwrap();
    let mut c = DockerConfig::load(&path).unwrap();
    assert_eq!(c.get("reg.example:5000").unwrap(), None);
    let e = c
        .store(
            "reg.example:5000",
            &Credential {
                username: "u".into(),
                secret: "p".into(),
            },
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("docker-credential-not-installed-here"),
        "{e}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged, "store \"Username\":\"nu\"\nerase new.example\n");
}
