//! A registry that drops the connection mid-blob (a proxy cutting the line) is survived: the
//! download resumes with `Range`; the upload asks the registry for its offset and resumes, or,
//! as with Distribution (which invalidates a session whose PATCH broke off), starts over. A line
//! that drops again and again is survived as long as each retry gets the blob further; one on
//! which the blob never gets further is given up after `retries` attempts.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbuild_oci::{Digest, Reference};
use rbuild_registry::{
    Client, ClientOptions, MemoryBlobs, PullOptions, PushOptions, RegistryError, Reporter, Silent,
    pull, push,
};
use support::cutting::{CuttingProxy, RequestCut};
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

/// Push `img` straight to the registry at `addr` as `name` (`repo:tag`).
async fn push_to(addr: &str, name: &str, img: &support::image::TestImage) {
    let reference: Reference = format!("{addr}/{name}").parse().unwrap();
    push(
        &client(1 << 20),
        &reference,
        &img.manifest,
        Arc::new(img.blobs.clone()),
        &PushOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();
}

/// Pull `name` from `addr` (a proxy, usually) into a fresh sink, noting the retries.
async fn pull_from(
    client: &Client,
    addr: &str,
    name: &str,
) -> Result<(MemoryBlobs, Arc<Retries>), RegistryError> {
    let reference: Reference = format!("{addr}/{name}").parse().unwrap();
    let sink = MemoryBlobs::new();
    let retries = Arc::new(Retries::default());
    pull(
        client,
        &reference,
        Arc::new(sink.clone()),
        &PullOptions::default(),
        retries.clone(),
    )
    .await?;
    Ok((sink, retries))
}

#[tokio::test(flavor = "multi_thread")]
async fn download_resumes_after_a_dropped_connection() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "download_resumes") else {
        return;
    };
    let img = test_image(21, &[4 << 20], false);
    push_to(&reg.addr, "resume/down:1", &img).await;

    let proxy = DroppingProxy::start(&reg.addr, Direction::Download, 1 << 20);
    let (sink, retries) = pull_from(&client(1 << 20), &proxy.addr, "resume/down:1")
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

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_and_server_errors_are_retried() {
    use support::proxy::FlakyProxy;
    let Some(reg) = RegistryProcess::start(Auth::Open, "rate_limits_retried") else {
        return;
    };
    let img = test_image(23, &[100_000, 10], false);
    // Two 503s on the manifest PUT: the push still lands.
    let flaky = FlakyProxy::start(
        &reg.addr,
        "PUT /v2/retry/me/manifests/",
        2,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
    );
    let r: Reference = format!("{}/retry/me:1", flaky.addr).parse().unwrap();
    push(
        &client(1 << 20),
        &r,
        &img.manifest,
        Arc::new(img.blobs.clone()),
        &PushOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();
    assert_eq!(flaky.injected.load(Ordering::SeqCst), 2);

    // 429 with Retry-After: 1 on a blob: the pull waits as told, then succeeds.
    let limited = FlakyProxy::start(
        &reg.addr,
        "GET /v2/retry/me/blobs/",
        1,
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
    );
    let r: Reference = format!("{}/retry/me:1", limited.addr).parse().unwrap();
    let sink = MemoryBlobs::new();
    let started = std::time::Instant::now();
    pull(
        &client(1 << 20),
        &r,
        Arc::new(sink.clone()),
        &PullOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();
    assert_eq!(limited.injected.load(Ordering::SeqCst), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(sink.get(&img.layers[0]), img.blobs.get(&img.layers[0]));

    // Even the first contact (`GET /v2/`) rides out a busy registry.
    let busy = FlakyProxy::start(
        &reg.addr,
        "GET /v2/ HTTP",
        2,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
    );
    let c = client(1 << 20);
    let handle = c.registry(&busy.addr).await.unwrap();
    assert!(handle.base_url().starts_with("http://"));
    assert_eq!(busy.injected.load(Ordering::SeqCst), 2);

    // A registry that keeps failing: the error names the status after the retries.
    let broken = FlakyProxy::start(
        &reg.addr,
        "GET /v2/retry/me/manifests/",
        100,
        "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
    );
    let r: Reference = format!("{}/retry/me:1", broken.addr).parse().unwrap();
    let e = pull(
        &client(1 << 20),
        &r,
        Arc::new(MemoryBlobs::new()),
        &PullOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("502"), "{e}");
    assert_eq!(
        broken.injected.load(Ordering::SeqCst),
        6,
        "1 try + 5 retries"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_redirects_are_followed() {
    use support::proxy::FlakyProxy;
    let Some(reg) = RegistryProcess::start(Auth::Open, "blob_redirects") else {
        return;
    };
    let img = test_image(24, &[200_000], false);
    push_to(&reg.addr, "redir/me:1", &img).await;
    // Like an S3-backed registry: the blob GET answers 307 to another address.
    let path = format!("/v2/redir/me/blobs/{}", img.layers[0]);
    let pattern: &'static str = Box::leak(format!("GET {path}").into_boxed_str());
    let response: &'static str = Box::leak(
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{}{path}\r\nContent-Length: 0\r\n\r\n",
            reg.addr
        )
        .into_boxed_str(),
    );
    let redirecting = FlakyProxy::start(&reg.addr, pattern, 1, response);
    let via: Reference = format!("{}/redir/me:1", redirecting.addr).parse().unwrap();
    let sink = MemoryBlobs::new();
    pull(
        &client(1 << 20),
        &via,
        Arc::new(sink.clone()),
        &PullOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();
    assert_eq!(
        redirecting.injected.load(Ordering::SeqCst),
        1,
        "redirected once"
    );
    assert_eq!(
        redirecting.forwarded.load(Ordering::SeqCst),
        0,
        "blob fetched elsewhere"
    );
    assert_eq!(sink.get(&img.layers[0]), img.blobs.get(&img.layers[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_copes_with_a_server_that_ignores_range() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "resume_without_range") else {
        return;
    };
    let img = test_image(25, &[3 << 20], false);
    push_to(&reg.addr, "norange/me:1", &img).await;
    let proxy = DroppingProxy::start_with(&reg.addr, Direction::Download, 1 << 20, true);
    let (sink, retries) = pull_from(&client(1 << 20), &proxy.addr, "norange/me:1")
        .await
        .unwrap();
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1);
    assert_eq!(retries.0.lock().unwrap().len(), 1);
    // The whole body came again; the bytes already held were skipped, not written twice.
    assert_eq!(sink.get(&img.layers[0]), img.blobs.get(&img.layers[0]));
}

// A line that drops again and again: only retries that got nowhere count against `retries`.

fn chunked_client(chunk_size: u64) -> Client {
    Client::new(ClientOptions {
        backoff: Duration::from_millis(20),
        monolithic_max: 1 << 20,
        chunk_size: Some(chunk_size),
        ..ClientOptions::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn download_through_a_line_that_drops_every_4_mb_completes() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "download_drops_every_4_mb") else {
        return;
    };
    let img = test_image(26, &[60 << 20], false);
    let layer = &img.layers[0];
    push_to(&reg.addr, "resume/big:1", &img).await;

    let proxy = CuttingProxy::start(
        &reg.addr,
        &format!("GET /v2/resume/big/blobs/{layer}"),
        Direction::Download,
        4 << 20,
        RequestCut::Buffered,
    );
    let (sink, retries) = pull_from(&client(1 << 20), &proxy.addr, "resume/big:1")
        .await
        .unwrap();
    // 15 connections of 4 MB: 14 cuts, far more than the 5 retries, each one 4 MB further.
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 14);
    let msgs = retries.0.lock().unwrap().clone();
    assert_eq!(msgs.len(), 14, "{msgs:?}");
    for (i, m) in msgs.iter().enumerate() {
        let at = format!("resuming at byte {}", (i as u64 + 1) * (4 << 20));
        assert!(m.contains(&at), "{m}");
    }
    assert_eq!(sink.get(layer), img.blobs.get(layer));
}

#[tokio::test(flavor = "multi_thread")]
async fn download_that_never_progresses_gives_up_after_the_retries() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "download_never_progresses") else {
        return;
    };
    let img = test_image(27, &[1 << 20], false);
    let layer = &img.layers[0];
    push_to(&reg.addr, "resume/stuck:1", &img).await;

    // The response head gets through, not one byte of the body.
    let proxy = CuttingProxy::start(
        &reg.addr,
        &format!("GET /v2/resume/stuck/blobs/{layer}"),
        Direction::Download,
        0,
        RequestCut::Buffered,
    );
    let via: Reference = format!("{}/resume/stuck:1", proxy.addr).parse().unwrap();
    let sink = MemoryBlobs::new();
    let e = tokio::time::timeout(
        Duration::from_secs(60),
        pull(
            &client(1 << 20),
            &via,
            Arc::new(sink.clone()),
            &PullOptions::default(),
            Arc::new(Silent),
        ),
    )
    .await
    .expect("the pull gives up instead of retrying forever")
    .unwrap_err();
    assert!(
        matches!(e, RegistryError::GaveUp { reached: 0, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains(&format!("blob {layer}")), "{text}");
    assert!(text.contains("no progress in 5 retries"), "{text}");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 6, "1 try + 5 retries");
    assert!(sink.get(layer).is_none(), "nothing of the blob was kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_upload_through_a_line_that_drops_every_few_chunks_completes() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "upload_drops_every_few_chunks") else {
        return;
    };
    let img = test_image(28, &[32 << 20], false);
    let layer = &img.layers[0];
    // Every connection carries three 1 MB chunks; the fourth is cut before the registry sees
    // it, so the upload resumes where the registry says it is.
    let proxy = CuttingProxy::start(
        &reg.addr,
        "PATCH /v2/resume/chunks/",
        Direction::Upload,
        (3 << 20) + (1 << 19),
        RequestCut::Buffered,
    );
    let via: Reference = format!("{}/resume/chunks:1", proxy.addr).parse().unwrap();
    let retries = Arc::new(Retries::default());
    let d = push(
        &chunked_client(1 << 20),
        &via,
        &img.manifest,
        Arc::new(img.blobs.clone()),
        &PushOptions::default(),
        retries.clone(),
    )
    .await
    .unwrap();
    assert_eq!(d, img.manifest);
    let cuts = proxy.cuts.load(Ordering::SeqCst);
    assert!(cuts > 5, "more cuts ({cuts}) than retries");
    let msgs = retries.0.lock().unwrap().clone();
    assert_eq!(msgs.len(), cuts, "{msgs:?}");
    assert!(
        msgs.iter().all(|m| m.contains("resuming at byte")),
        "{msgs:?}"
    );

    let sink = MemoryBlobs::new();
    let direct: Reference = format!("{}/resume/chunks:1", reg.addr).parse().unwrap();
    pull(
        &client(1 << 20),
        &direct,
        Arc::new(sink.clone()),
        &PullOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();
    assert_eq!(sink.get(layer), img.blobs.get(layer));
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_upload_gives_up_when_no_chunk_gets_through() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "upload_no_chunk_through") else {
        return;
    };
    let img = test_image(29, &[4 << 20], false);
    let proxy = CuttingProxy::start(
        &reg.addr,
        "PATCH /v2/resume/nochunk/",
        Direction::Upload,
        1 << 19,
        RequestCut::Buffered,
    );
    let via: Reference = format!("{}/resume/nochunk:1", proxy.addr).parse().unwrap();
    let retries = Arc::new(Retries::default());
    let e = tokio::time::timeout(
        Duration::from_secs(60),
        push(
            &chunked_client(1 << 20),
            &via,
            &img.manifest,
            Arc::new(img.blobs.clone()),
            &PushOptions::default(),
            retries.clone(),
        ),
    )
    .await
    .expect("the push gives up instead of retrying forever")
    .unwrap_err();
    assert!(
        matches!(e, RegistryError::GaveUp { reached: 0, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("no progress in 5 retries"), "{e}");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 6, "1 try + 5 retries");
    let msgs = retries.0.lock().unwrap().clone();
    assert_eq!(msgs.len(), 5, "{msgs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_that_keeps_starting_over_gives_up() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "upload_keeps_starting_over") else {
        return;
    };
    let img = test_image(30, &[8 << 20], false);
    // Two chunks get through, half of the third reaches the registry and the line drops:
    // Distribution drops the session, the upload starts over and gets no further than before.
    let proxy = CuttingProxy::start(
        &reg.addr,
        "PATCH /v2/resume/over/",
        Direction::Upload,
        (2 << 20) + (1 << 19),
        RequestCut::Streamed,
    );
    let via: Reference = format!("{}/resume/over:1", proxy.addr).parse().unwrap();
    let retries = Arc::new(Retries::default());
    let e = tokio::time::timeout(
        Duration::from_secs(60),
        push(
            &chunked_client(1 << 20),
            &via,
            &img.manifest,
            Arc::new(img.blobs.clone()),
            &PushOptions::default(),
            retries.clone(),
        ),
    )
    .await
    .expect("the push gives up instead of starting over forever")
    .unwrap_err();
    assert!(matches!(e, RegistryError::GaveUp { .. }), "{e:?}");
    assert!(e.to_string().contains("no progress in 5 retries"), "{e}");
    let msgs = retries.0.lock().unwrap().clone();
    assert!(
        msgs.iter().any(|m| m.contains("restarting the blob")),
        "{msgs:?}"
    );
}
