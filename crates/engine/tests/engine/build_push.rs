//! A build through the engine, pushed, pulled elsewhere and run.

use std::sync::Arc;

use rbuild_builder::build::BuildOptions;
use rbuild_builder::reporter::Silent as QuietBuild;
use rbuild_engine::build::BaseImages;
use rbuild_engine::transfer::block_on;
use rbuild_engine::{CreateOptions, RegistrySettings};
use rbuild_oci::Reference;
use rbuild_registry::{PullOptions, Silent};

use crate::support::{at, busybox_image, engine, registry, wait_for};

pub fn build_then_push_and_run_the_pulled_image() {
    let Some(reg) = registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (src, events) = engine(dir.path());
    let base: Reference = "engine/busybox:base".parse().unwrap();
    let Some(base_image) = busybox_image(&src, &base) else {
        return;
    };
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("greeting.txt"), "copied in\n").unwrap();
    let tag: Reference = format!("{reg}/engine/built:1").parse().unwrap();
    let opts = BuildOptions {
        context: context.path().to_owned(),
        dockerfile: "FROM engine/busybox:base\n\
                     COPY greeting.txt /greeting.txt\n\
                     RUN echo built > /built.txt\n\
                     ENV GREETING=hi\n\
                     CMD [\"sh\", \"-c\", \"cat /greeting.txt /built.txt; exit 3\"]\n"
            .into(),
        tags: vec![tag.clone()],
        ..BuildOptions::default()
    };
    let no_pull = |r: &Reference, _: &rbuild_oci::Platform| Err(format!("{r}: no pulls here"));
    let store = src.store().unwrap();
    let images = BaseImages::new(store, false, &no_pull);
    let built = src.build(&opts, &images, &QuietBuild).unwrap();
    assert_eq!(built.image.names, vec![tag.clone()]);
    let diff_ids = built.image.diff_ids().unwrap();
    assert_eq!(diff_ids.len(), 3, "base + COPY + RUN");
    assert_eq!(diff_ids[0], base_image.diff_ids().unwrap()[0]);

    let client = RegistrySettings::default().client().unwrap();
    let pushed = block_on(|| src.push(&client, &built.image, &tag, Arc::new(Silent))).unwrap();
    let actions: Vec<String> = events.events().into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["tag", "push"]);

    // Elsewhere: pulled by the same name, the same image, and it runs.
    let other = tempfile::tempdir().unwrap();
    let (dst, _) = engine(other.path());
    let opts = PullOptions::default();
    let digest = block_on(|| dst.pull(&client, &tag, &opts, Arc::new(Silent))).unwrap();
    assert_eq!(digest, pushed);
    let img = serde_json::to_value(dst.image_inspect(&tag.to_string()).unwrap()).unwrap();
    assert_eq!(at(&img, "/Id"), &built.image.id.to_string());
    assert_eq!(at(&img, "/RepoTags"), &serde_json::json!([tag.familiar()]));
    assert_eq!(
        at(&img, "/RepoDigests"),
        &serde_json::json!([tag.with_digest(pushed.clone()).familiar()])
    );
    let layers: Vec<String> = diff_ids.iter().map(|d| d.to_string()).collect();
    assert_eq!(at(&img, "/RootFS/Layers"), &serde_json::json!(layers));
    let env = at(&img, "/Config/Env").as_array().unwrap();
    assert!(env.contains(&serde_json::json!("GREETING=hi")), "{env:?}");

    let c = dst
        .create_container(&CreateOptions::new(tag.to_string(), Vec::new()))
        .unwrap()
        .container;
    dst.start(&c).unwrap();
    wait_for(10, "the built image's command to exit", || {
        (c.state().unwrap().status.as_str() == "exited").then_some(())
    });
    let text: String = dst
        .logs(&c, &Default::default())
        .into_iter()
        .map(|e| e.log)
        .collect();
    assert_eq!(text, "copied in\nbuilt\n");
    let inspect = serde_json::to_value(dst.container_inspect(c.id()).unwrap()).unwrap();
    assert_eq!(at(&inspect, "/State/ExitCode"), 3);
    assert_eq!(
        at(&inspect, "/Config/Cmd"),
        &serde_json::json!(["sh", "-c", "cat /greeting.txt /built.txt; exit 3"])
    );
    dst.remove_container(&c, false, false).unwrap();
}
