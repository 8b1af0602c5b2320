//! Commands in a service's containers: `run` (a one-off container in the foreground) and
//! `exec` (in a running replica).

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn run_oneoff(
    rt: &Runtime<'_>,
    engine: &rbuild_engine::Engine,
    a: RunArgs,
    globals: &Globals,
) -> anyhow::Result<ExitCode> {
    let store = engine.store()?;
    let registry = &a.registry;
    let pull = |reference: &Reference, platform: &Platform| {
        pull_image_blocking(registry, store, reference, platform, true)
            .map_err(|e| format!("{e:#}"))
    };
    let reporter = BuildProgress::new(ProgressMode::Auto);
    let images = Images {
        pull: &pull,
        reporter: &reporter,
    };
    let interactive = !a.detach;
    let tty = !a.detach && !a.no_tty && std::io::stdin().is_terminal();
    let env = a
        .env
        .iter()
        .filter_map(|e| rbuild_engine::options::expand_env(e))
        .collect();
    let c = rt.create_oneoff(
        &RunOptions {
            service: a.service.clone(),
            command: a.command.clone(),
            env,
            entrypoint: a.entrypoint.clone(),
            user: a.user.clone(),
            workdir: a.workdir.clone(),
            rm: a.rm,
            no_deps: a.no_deps,
            service_ports: a.service_ports,
            name: a.name.clone(),
            tty,
            interactive,
        },
        &images,
    )?;
    if a.detach {
        engine.start(&c)?;
        println!("{}", c.name());
        return Ok(ExitCode::SUCCESS);
    }
    crate::commands::run::foreground(tty, interactive, globals, &c, None)
}

pub(super) fn exec(rt: &Runtime<'_>, a: ExecArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let cs = rt.service_containers(std::slice::from_ref(&a.service))?;
    let Some(c) = cs.iter().find(|c| c.number == a.index) else {
        bail!(
            "service {:?} is not running container #{}",
            a.service,
            a.index
        );
    };
    if !c.summary.state.status.is_active() {
        bail!("service {:?} is not running", a.service);
    }
    let tty = !a.no_tty && std::io::stdin().is_terminal();
    crate::commands::exec::run(
        crate::commands::exec::ExecArgs {
            interactive: true,
            tty,
            detach: a.detach,
            env: a.env,
            workdir: a.workdir,
            user: a.user,
            privileged: a.privileged,
            container: c.container().id().to_owned(),
            command: a.command,
        },
        globals,
    )
}
