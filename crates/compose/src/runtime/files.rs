//! A service's `secrets` and `configs`, as docker compose gives them to containers outside a
//! swarm: a `file:` one is bind-mounted read-only (a secret at `/run/secrets/NAME`, a config
//! at `/NAME`, or at `target:`); an `environment:` one (and a config's `content:`) is written
//! into the container before it starts, mode 0444 unless `mode:` says otherwise.

use std::path::{Path, PathBuf};

use compose_spec::service::ConfigOrSecret;
use compose_spec::{Resource, Service, ShortOrLong};

use super::service::text;
use crate::error::ComposeError;
use crate::project::Project;

/// What a container gets of its service's secrets and configs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ServiceFiles {
    /// `SOURCE:TARGET:ro` bind mounts.
    pub binds: Vec<String>,
    /// Files written into the container before its start: (path, contents, mode).
    pub written: Vec<(String, Vec<u8>, u32)>,
}

enum Source {
    File(PathBuf),
    Value(String),
}

fn refused(service: &str, what: String) -> ComposeError {
    ComposeError::NotSupported(format!(
        "service {service:?}: {what} is not supported yet by rbuild compose"
    ))
}

fn invalid(service: &str, message: String) -> ComposeError {
    ComposeError::Service {
        service: service.to_owned(),
        message,
    }
}

/// The secrets and configs of service `name`.
pub(crate) fn service_files(
    project: &Project,
    name: &str,
    service: &Service,
) -> Result<ServiceFiles, ComposeError> {
    let mut out = ServiceFiles::default();
    let env = |k: &str| project.environment.get(k).cloned();
    for (kind, list) in [("secrets", &service.secrets), ("configs", &service.configs)] {
        for item in list {
            let long: ConfigOrSecret = match item {
                ShortOrLong::Short(id) => ConfigOrSecret {
                    source: id.clone(),
                    target: None,
                    uid: None,
                    gid: None,
                    mode: None,
                    extensions: Default::default(),
                },
                ShortOrLong::Long(l) => l.clone(),
            };
            let key = text(&long.source);
            let source = if kind == "secrets" {
                match project
                    .model
                    .secrets
                    .iter()
                    .find(|(k, _)| k.as_str() == key)
                {
                    None => {
                        return Err(invalid(
                            name,
                            format!("secrets: service refers to undefined secret {key}"),
                        ));
                    }
                    Some((_, Resource::External { .. })) => {
                        return Err(refused(
                            name,
                            format!("external secret {key:?} (it needs a swarm)"),
                        ));
                    }
                    Some((_, Resource::Compose(s))) => match &s.source {
                        compose_spec::secret::Source::File(p) => Source::File(p.clone()),
                        compose_spec::secret::Source::Environment(v) => {
                            Source::Value(env(v).unwrap_or_default())
                        }
                    },
                }
            } else {
                match project
                    .model
                    .configs
                    .iter()
                    .find(|(k, _)| k.as_str() == key)
                {
                    None => {
                        return Err(invalid(
                            name,
                            format!("configs: service refers to undefined config {key}"),
                        ));
                    }
                    Some((_, Resource::External { .. })) => {
                        return Err(refused(
                            name,
                            format!("external config {key:?} (it needs a swarm)"),
                        ));
                    }
                    Some((_, Resource::Compose(c))) => match &c.source {
                        compose_spec::config::Source::File(p) => Source::File(p.clone()),
                        compose_spec::config::Source::Environment(v) => {
                            Source::Value(env(v).unwrap_or_default())
                        }
                        compose_spec::config::Source::Content(s) => Source::Value(s.clone()),
                    },
                }
            };
            let target = match (&long.target, kind) {
                (Some(t), "secrets") if !t.is_absolute() => {
                    Path::new("/run/secrets").join(t).display().to_string()
                }
                (Some(t), _) if !t.is_absolute() => Path::new("/").join(t).display().to_string(),
                (Some(t), _) => t.display().to_string(),
                (None, "secrets") => format!("/run/secrets/{key}"),
                (None, _) => format!("/{key}"),
            };
            match source {
                Source::File(p) => {
                    if long.uid.is_some() || long.gid.is_some() || long.mode.is_some() {
                        return Err(refused(
                            name,
                            format!("{kind}.{key}: uid, gid and mode of a file-based one"),
                        ));
                    }
                    let path = project.directory.join(&p);
                    let path = std::path::absolute(&path).unwrap_or(path);
                    if !path.exists() {
                        return Err(invalid(
                            name,
                            format!("{kind}.{key}: file {} does not exist", path.display()),
                        ));
                    }
                    out.binds.push(format!("{}:{target}:ro", path.display()));
                }
                Source::Value(v) => {
                    if long.uid.is_some() || long.gid.is_some() {
                        return Err(refused(name, format!("{kind}.{key}: uid and gid")));
                    }
                    out.written
                        .push((target, v.into_bytes(), long.mode.unwrap_or(0o444)));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_compose() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw.txt"), "s3cret").unwrap();
        std::fs::write(dir.path().join("nginx.conf"), "conf").unwrap();
        std::fs::write(
            dir.path().join("compose.yaml"),
            "services:\n  web:\n    image: a\n    secrets: [pw, {source: token, target: tok, mode: 256}]\n    configs: [nginx, {source: inline, target: /etc/app.conf}]\nsecrets:\n  pw: {file: ./pw.txt}\n  token: {environment: TOKEN}\nconfigs:\n  nginx: {file: nginx.conf}\n  inline: {content: 'a=1'}\n",
        )
        .unwrap();
        let opts = crate::LoadOptions {
            working_dir: dir.path().to_owned(),
            environment: [("TOKEN".to_owned(), "t0k".to_owned())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let project = crate::Project::load(&opts).unwrap();
        let (_, web) = project.model.services.iter().next().unwrap();
        let f = service_files(&project, "web", web).unwrap();
        let root = std::path::absolute(dir.path()).unwrap();
        assert_eq!(
            f.binds,
            [
                format!("{}:/run/secrets/pw:ro", root.join("pw.txt").display()),
                format!("{}:/nginx:ro", root.join("nginx.conf").display()),
            ]
        );
        assert_eq!(
            f.written,
            [
                ("/run/secrets/tok".to_owned(), b"t0k".to_vec(), 0o400),
                ("/etc/app.conf".to_owned(), b"a=1".to_vec(), 0o444),
            ]
        );
    }
}
