//! Listings: `ps` (docker compose's table or one JSON object per line) and `ls` (the
//! projects of the store's containers).

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn ps(rt: &Runtime<'_>, project: &Project, a: PsArgs) -> anyhow::Result<ExitCode> {
    let cs: Vec<ServiceContainer> = rt
        .service_containers(&a.service)?
        .into_iter()
        .filter(|c| a.all || c.summary.state.status.is_active())
        .collect();
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for c in &cs {
            writeln!(out, "{}", c.container().id())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.services {
        let mut names: Vec<&str> = cs.iter().map(|c| c.service.as_str()).collect();
        names.dedup();
        for n in names {
            writeln!(out, "{n}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match a.format.as_str() {
        "json" => {
            for c in &cs {
                writeln!(out, "{}", ps_json(c, &project.name))?;
            }
        }
        "table" => {
            let mut rows = vec![
                [
                    "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for c in &cs {
                let k = c.container();
                rows.push(vec![
                    k.name().to_owned(),
                    k.record.image.clone(),
                    format!(
                        "{:?}",
                        crate::commands::containers::ellipsis(&command_text(k), 20)
                    ),
                    c.service.clone(),
                    since(secs(k.record.created)),
                    status_text(&c.summary.state),
                    ports_text(k, &c.summary.state),
                ]);
            }
            out.write_all(table(&rows).as_bytes())?;
        }
        other => bail!("--format {other:?}: expected table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `ps --format json`, as docker compose v2 prints it.
pub(super) fn ps_json(c: &ServiceContainer, project: &str) -> Value {
    let k = c.container();
    let st = &c.summary.state;
    let created = secs(k.record.created);
    let labels: Vec<String> = k
        .record
        .labels
        .iter()
        .map(|(a, b)| format!("{a}={b}"))
        .collect();
    let publishers: Vec<Value> = st
        .ports
        .iter()
        .map(|p| {
            json!({
                "URL": p.host_ip,
                "TargetPort": p.container_port,
                "PublishedPort": p.host_port,
                "Protocol": p.protocol.as_str(),
            })
        })
        .collect();
    json!({
        "Command": format!("{:?}", command_text(k)),
        "CreatedAt": docker_time(created),
        "ExitCode": st.exit_code,
        "Health": st.health.as_ref().map(|h| h.status.as_str()).unwrap_or_default(),
        "ID": k.id(),
        "Image": k.record.image,
        "Labels": labels.join(","),
        "LocalVolumes": k.record.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
        "Mounts": k.record.mounts.iter().map(|m| if m.name.is_empty() { m.destination.clone() } else { m.name.clone() }).collect::<Vec<_>>().join(","),
        "Name": k.name(),
        "Names": k.name(),
        "Networks": k.record.network,
        "Ports": ports_text(k, st),
        "Project": project,
        "Publishers": publishers,
        "RunningFor": since(created),
        "Service": c.service,
        "Size": "0B",
        "State": st.status.as_str(),
        "Status": status_text(st),
    })
}

/// `ls`: the projects of the store's containers, from their labels.
pub(super) fn ls(engine: &rbuild_engine::Engine, a: &LsArgs) -> anyhow::Result<ExitCode> {
    use rbuild_compose::runtime::labels;
    let list = engine.list_containers(&rbuild_engine::ListOptions {
        all: true,
        limit: None,
        filters: vec![("label".into(), labels::PROJECT.into())],
    })?;
    // project -> (state -> count, config files)
    let mut projects: std::collections::BTreeMap<
        String,
        (std::collections::BTreeMap<String, usize>, String),
    > = Default::default();
    for c in &list {
        let l = &c.container.record.labels;
        let entry = projects
            .entry(l.get(labels::PROJECT).cloned().unwrap_or_default())
            .or_default();
        *entry
            .0
            .entry(c.state.status.as_str().to_owned())
            .or_default() += 1;
        if let Some(f) = l.get(labels::CONFIG_FILES) {
            entry.1 = f.clone();
        }
    }
    projects.retain(|_, (states, _)| a.all || states.contains_key("running"));
    let mut out = std::io::stdout().lock();
    let status = |states: &std::collections::BTreeMap<String, usize>| {
        states
            .iter()
            .map(|(s, n)| format!("{s}({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if a.quiet {
        for name in projects.keys() {
            writeln!(out, "{name}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<Value> = projects
                .iter()
                .map(|(n, (st, f))| json!({"Name": n, "Status": status(st), "ConfigFiles": f}))
                .collect();
            writeln!(out, "{}", Value::Array(v))?;
        }
        "table" => {
            let mut rows = vec![vec![
                "NAME".to_owned(),
                "STATUS".to_owned(),
                "CONFIG FILES".to_owned(),
            ]];
            for (n, (st, f)) in &projects {
                rows.push(vec![n.clone(), status(st), f.clone()]);
            }
            out.write_all(table(&rows).as_bytes())?;
        }
        other => bail!("--format {other:?}: expected table or json"),
    }
    Ok(ExitCode::SUCCESS)
}
