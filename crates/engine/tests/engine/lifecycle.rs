//! A container's life through the engine: pulled image → create → start → logs → stop →
//! remove, and docker's inspect JSON on the way.

use std::sync::Arc;

use rbuild_engine::options::parse_publish;
use rbuild_engine::transfer::block_on;
use rbuild_engine::{CreateOptions, Engine, RegistrySettings};
use rbuild_oci::Reference;
use rbuild_registry::{PullOptions, Silent};

use crate::support::{at, busybox_image, engine, not_found, registry, wait_for};

/// Push a busybox image to the test registry under `repo` and pull it into a fresh engine;
/// returns that engine (its store root kept alive by the returned directory), its events and
/// the reference.
fn pulled_busybox(
    repo: &str,
) -> Option<(
    tempfile::TempDir,
    Engine,
    Arc<rbuild_engine::events::Recorded>,
    Reference,
)> {
    let reg = registry()?;
    let name: Reference = format!("{reg}/engine/{repo}:1").parse().unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let (src, _) = engine(src_dir.path());
    let image = busybox_image(&src, &name)?;
    let client = RegistrySettings::default().client().unwrap();
    block_on(|| src.push(&client, &image, &name, Arc::new(Silent))).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (dst, events) = engine(dir.path());
    let opts = PullOptions::default();
    let digest = block_on(|| dst.pull(&client, &name, &opts, Arc::new(Silent))).unwrap();
    assert_eq!(
        dst.store()
            .unwrap()
            .resolve(&name.to_string())
            .unwrap()
            .manifest_digest,
        digest
    );
    Some((dir, dst, events, name))
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

pub fn pull_create_start_logs_stop_remove() {
    let Some((_dir, engine, events, name)) = pulled_busybox("lifecycle") else {
        return;
    };
    let mut opts = CreateOptions::new(
        name.to_string(),
        sh("echo hello from the engine; echo to stderr >&2; exec sleep 1000"),
    );
    opts.name = Some("engine-lifecycle".into());
    opts.stop_timeout = Some(1);
    let created = engine.create_container(&opts).unwrap();
    assert!(created.warnings.is_empty(), "{:?}", created.warnings);
    let c = created.container;
    assert_eq!(engine.container("engine-lifecycle").unwrap().id(), c.id());
    assert_eq!(c.state().unwrap().status.as_str(), "created");

    assert!(engine.start(&c).unwrap(), "started");
    assert!(
        !engine.start(&c).unwrap(),
        "a second start finds it running"
    );
    let logs = wait_for(10, "both lines in the log", || {
        let logs = engine.logs(&c, &Default::default());
        (logs.len() >= 2).then_some(logs)
    });
    let out: Vec<(&str, &str)> = logs
        .iter()
        .map(|e| (e.stream.as_str(), e.log.as_str()))
        .collect();
    assert!(
        out.contains(&("stdout", "hello from the engine\n")),
        "{out:?}"
    );
    assert!(out.contains(&("stderr", "to stderr\n")), "{out:?}");
    assert_eq!(c.state().unwrap().status.as_str(), "running");
    let info = engine.info().unwrap();
    assert_eq!(
        (info.containers, info.containers_running, info.images),
        (1, 1, 1)
    );

    // sleep as PID 1 ignores SIGTERM: the stop ends with SIGKILL after the 1 s timeout.
    engine.stop(&c, None, None).unwrap();
    let st = c.state().unwrap();
    assert_eq!(st.status.as_str(), "exited");
    assert_eq!(st.exit_code, 137);

    engine.remove_container(&c, false, false).unwrap();
    let gone = engine.container(c.id()).unwrap_err();
    assert!(not_found(&gone), "{gone}");
    assert!(engine.containers().list().unwrap().is_empty());

    let actions: Vec<String> = events.events().into_iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        ["pull", "create", "start", "stop", "destroy"],
        "events in order"
    );
}

pub fn inspect_shows_the_fields_docker_users_script_against() {
    let Some((_dir, engine, _events, name)) = pulled_busybox("inspect") else {
        return;
    };
    let store = engine.store().unwrap();
    let image = store.resolve(&name.to_string()).unwrap();

    // The image: tags, digests, layers.
    let img = serde_json::to_value(engine.image_inspect(&name.to_string()).unwrap()).unwrap();
    assert_eq!(at(&img, "/Id"), &image.id.to_string());
    assert_eq!(at(&img, "/RepoTags"), &serde_json::json!([name.familiar()]));
    assert_eq!(
        at(&img, "/RepoDigests"),
        &serde_json::json!([name.with_digest(image.manifest_digest.clone()).familiar()])
    );
    let layers: Vec<String> = image
        .diff_ids()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(at(&img, "/RootFS/Layers"), &serde_json::json!(layers));
    assert_eq!(at(&img, "/RootFS/Type"), "layers");
    assert_eq!(at(&img, "/Config/Cmd"), &serde_json::json!(["/bin/sh"]));

    // A running container: ports, mounts, env.
    let mut opts = CreateOptions::new(name.to_string(), sh("exec sleep 1000"));
    opts.env = vec!["GREETING=hello".into()];
    opts.ports = vec![parse_publish("127.0.0.1:0:8080").unwrap()];
    opts.volumes = vec!["engine-data:/data".into()];
    opts.stop_timeout = Some(0);
    let c = engine.create_container(&opts).unwrap().container;
    let created = serde_json::to_value(engine.container_inspect(c.id()).unwrap()).unwrap();
    assert_eq!(at(&created, "/State/Status"), "created");
    assert_eq!(at(&created, "/State/Running"), false);
    assert_eq!(
        at(&created, "/NetworkSettings/Ports"),
        &serde_json::json!({})
    );
    assert_eq!(
        at(&created, "/HostConfig/PortBindings/8080~1tcp/0/HostIp"),
        "127.0.0.1"
    );
    engine.start(&c).unwrap();
    let running = serde_json::to_value(engine.container_inspect(c.id()).unwrap()).unwrap();
    assert_eq!(at(&running, "/Id"), c.id());
    assert_eq!(at(&running, "/Image"), &image.id.to_string());
    assert_eq!(at(&running, "/Config/Image"), &name.to_string());
    assert_eq!(at(&running, "/State/Status"), "running");
    assert_eq!(at(&running, "/State/Running"), true);
    assert!(at(&running, "/State/Pid").as_i64().unwrap() > 0);
    let port = at(&running, "/NetworkSettings/Ports/8080~1tcp/0");
    assert_eq!(at(port, "/HostIp"), "127.0.0.1");
    let host_port: u16 = at(port, "/HostPort").as_str().unwrap().parse().unwrap();
    assert_ne!(host_port, 0, "a free port was bound: {port}");
    assert_eq!(at(&running, "/Mounts/0/Type"), "volume");
    assert_eq!(at(&running, "/Mounts/0/Name"), "engine-data");
    assert_eq!(at(&running, "/Mounts/0/Destination"), "/data");
    assert_eq!(at(&running, "/Mounts/0/RW"), true);
    assert_eq!(
        at(&running, "/Mounts/0/Source"),
        &serde_json::json!(engine.volumes().get("engine-data").unwrap().mountpoint)
    );
    let env: Vec<&str> = at(&running, "/Config/Env")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"GREETING=hello"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    engine.kill(&c, 9).unwrap();
    wait_for(10, "the killed container to be recorded", || {
        (c.state().unwrap().status.as_str() == "exited").then_some(())
    });
    let killed = serde_json::to_value(engine.container_inspect(c.id()).unwrap()).unwrap();
    assert_eq!(at(&killed, "/State/Status"), "exited");
    assert_eq!(at(&killed, "/State/ExitCode"), 137);
    assert_eq!(
        at(&killed, "/NetworkSettings/Ports"),
        &serde_json::json!({})
    );

    // A command's own exit status.
    let c2 = engine
        .create_container(&CreateOptions::new(name.to_string(), sh("exit 3")))
        .unwrap()
        .container;
    engine.start(&c2).unwrap();
    wait_for(10, "the container to exit", || {
        (c2.state().unwrap().status.as_str() == "exited").then_some(())
    });
    let exited = serde_json::to_value(engine.container_inspect(c2.id()).unwrap()).unwrap();
    assert_eq!(at(&exited, "/State/ExitCode"), 3);
    assert_ne!(at(&exited, "/State/FinishedAt"), "0001-01-01T00:00:00Z");

    // Removing a running container needs force; the conflict says so.
    engine.start(&c).unwrap();
    let err = engine.remove_container(&c, false, false).unwrap_err();
    assert!(
        matches!(err, rbuild_engine::EngineError::Conflict(_)),
        "{err}"
    );
    engine.remove_container(&c, true, true).unwrap();
    engine.remove_container(&c2, false, false).unwrap();
}

pub fn foreground_run_records_its_exit_and_removes_an_rm_container() {
    if !crate::support::root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (engine, events) = engine(dir.path());
    let name: Reference = "engine/busybox:fg".parse().unwrap();
    if busybox_image(&engine, &name).is_none() {
        return;
    }
    let mut opts = CreateOptions::new(name.to_string(), sh("echo in the foreground; exit 7"));
    opts.auto_remove = true;
    let c = engine.create_container(&opts).unwrap().container;
    let fg = engine.foreground(&c).unwrap();
    let again = engine.foreground(&c).unwrap_err();
    assert!(
        matches!(again, rbuild_engine::EngineError::Conflict(_)),
        "{again}"
    );
    // The output goes where the front end says (here a pipe), not to the log.
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let ran = fg.spawn(rbuild_runner::Stdio {
        stdin: Some(std::fs::File::open("/dev/null").unwrap().into()),
        stdout: Some(out_w),
        ..Default::default()
    });
    let outcome = fg.wait(ran).unwrap();
    assert_eq!(outcome.status.code(), 7);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(out_r), &mut out).unwrap();
    assert_eq!(out, "in the foreground\n");
    assert_eq!(c.state().unwrap().exit_code, 7);
    fg.finish().unwrap();
    assert!(engine.container(c.id()).unwrap_err().is_not_found());
    let actions: Vec<String> = events.events().into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["create", "start", "die", "destroy"]);
}
