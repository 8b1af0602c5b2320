//! A registry that drops the connection mid-blob (a proxy cutting the line) is survived: the
//! download resumes with `Range`; the upload asks the registry for its offset and resumes, or,
//! as with Distribution (which invalidates a session whose PATCH broke off), starts over.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbuild_oci::{Digest, Reference};
use rbuild_registry::{
    Client, ClientOptions, MemoryBlobs, PullOptions, PushOptions, Reporter, Silent, pull, push,
};
use support::image::test_image;
use support::proxy::{Direction, DroppingProxy};
use support::{Auth, RegistryProcess};

#[derive(Default)]
struct Retries(Mutex<Vec<String>>);

impl Reporter for Retries {
    fn on_retry(&self, _: &Digest, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

fn client(monolithic_max: u64) -> Client {
    Client::new(ClientOptions {
        backoff: Duration::from_millis(20),
        monolithic_max,
        ..ClientOptions::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn download_resumes_after_a_dropped_connection() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "download_resumes") else {
        return;
    };
    let img = test_image(21, &[4 << 20], false);
    let direct: Reference = format!("{}/resume/down:1", reg.addr).parse().unwrap();
    push(
        &client(1 << 20),
        &direct,
        &img.manifest,
        Arc::new(img.blobs.clone()),
        &PushOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();

    let proxy = DroppingProxy::start(&reg.addr, Direction::Download, 1 << 20);
    let via: Reference = format!("{}/resume/down:1", proxy.addr).parse().unwrap();
    let sink = MemoryBlobs::new();
    let retries = Arc::new(Retries::default());
    pull(
        &client(1 << 20),
        &via,
        Arc::new(sink.clone()),
        &PullOptions::default(),
        retries.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the proxy cut a connection"
    );
    let msgs = retries.0.lock().unwrap().clone();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].contains("resuming at byte"), "{msgs:?}");
    assert!(
        !msgs[0].contains("resuming at byte 0;"),
        "resumed mid-blob: {msgs:?}"
    );
    assert_eq!(sink.get(&img.layers[0]), img.blobs.get(&img.layers[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_survives_a_dropped_connection() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "upload_resumes") else {
        return;
    };
    let img = test_image(22, &[6 << 20], false);
    let proxy = DroppingProxy::start(&reg.addr, Direction::Upload, 2 << 20);
    let via: Reference = format!("{}/resume/up:1", proxy.addr).parse().unwrap();
    let retries = Arc::new(Retries::default());
    let d = push(
        &client(1 << 20),
        &via,
        &img.manifest,
        Arc::new(img.blobs.clone()),
        &PushOptions::default(),
        retries.clone(),
    )
    .await
    .unwrap();
    assert_eq!(d, img.manifest);
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the proxy cut a connection"
    );
    let msgs = retries.0.lock().unwrap().clone();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(
        msgs[0].contains("resuming at byte") || msgs[0].contains("restarting the blob"),
        "{msgs:?}"
    );

    // What arrived is the blob, byte for byte.
    let sink = MemoryBlobs::new();
    let direct: Reference = format!("{}/resume/up:1", reg.addr).parse().unwrap();
    pull(
        &client(1 << 20),
        &direct,
        Arc::new(sink.clone()),
        &PullOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();
    assert_eq!(sink.get(&img.layers[0]), img.blobs.get(&img.layers[0]));
}
