//! `run`'s one-off containers: a service's container with `oneoff=True`, its dependencies
//! brought up first.

use std::collections::BTreeMap;

use rbuild_runner::lifecycle::Container;

use super::service;
use super::{Images, Runtime, UpOptions};
use crate::error::ComposeError;

/// `run`'s flags: a one-off container of a service.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The service.
    pub service: String,
    /// The command replacing the service's (empty: the service's).
    pub command: Vec<String>,
    /// `-e KEY=VALUE` over the service's environment.
    pub env: Vec<String>,
    /// `--entrypoint`.
    pub entrypoint: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `--rm`: remove the container when it exits.
    pub rm: bool,
    /// `--no-deps`: do not start the services it depends on.
    pub no_deps: bool,
    /// `--service-ports`: publish the service's ports (not published by default).
    pub service_ports: bool,
    /// `--name`.
    pub name: Option<String>,
    /// `-t` (a terminal) and `-i` (standard input kept open).
    pub tty: bool,
    /// Keep standard input open.
    pub interactive: bool,
}

impl Runtime<'_> {
    /// `run`: the service's dependencies up (unless `no_deps`), then a one-off container
    /// of it created (not started: the front end runs it in the foreground).
    pub fn create_oneoff(
        &self,
        opts: &RunOptions,
        images: &Images<'_>,
    ) -> Result<Container, ComposeError> {
        self.check_services(std::slice::from_ref(&opts.service))?;
        let name = opts.service.as_str();
        service::check_supported(name, self.service(name))?;
        super::files::service_files(self.project, name, self.service(name))?;
        if !opts.no_deps {
            let deps: Vec<String> = self
                .dependencies(name)
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            if !deps.is_empty() {
                self.up(
                    &UpOptions {
                        services: deps,
                        ..UpOptions::default()
                    },
                    images,
                )?;
            }
            for (dep, cond) in self.dependencies(name) {
                self.wait_for(&dep, cond)?;
            }
        }
        // Built or pulled when missing.
        self.image_for(name, &UpOptions::default(), images)?;
        let mut networks = BTreeMap::new();
        for (key, _, _) in service::service_networks(self.service(name)) {
            let engine_name = self.ensure_network(&key)?;
            networks.insert(key, engine_name);
        }
        for v in self.project.volume_names() {
            self.ensure_volume(&v)?;
        }
        let suffix = &rbuild_runner::lifecycle::new_id()[..12];
        let cname = opts
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{name}-run-{suffix}", self.project.name));
        let hash = service::config_hash(self.service(name));
        self.create_with(name, 1, &hash, &networks, true, &|o| {
            o.name = Some(cname.clone());
            if !opts.command.is_empty() {
                o.cmd = opts.command.clone();
            }
            if let Some(e) = &opts.entrypoint {
                o.entrypoint = Some(e.clone());
            }
            o.env.extend(opts.env.iter().cloned());
            if opts.user.is_some() {
                o.user = opts.user.clone();
            }
            if opts.workdir.is_some() {
                o.workdir = opts.workdir.clone();
            }
            if !opts.service_ports {
                o.ports.clear();
            }
            o.auto_remove = opts.rm;
            o.restart = Default::default();
            o.tty = opts.tty;
            o.interactive = opts.interactive;
            o.stdin_once = opts.interactive;
        })
    }
}
