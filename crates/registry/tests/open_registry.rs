//! Against a real, open `docker-registry`: push/pull round trips, skipping, mounting, indexes,
//! listings, manifest inspect/delete, registry → registry copy, and tampered content.

mod support;

use std::sync::{Arc, Mutex};

use rbuild_oci::{Digest, Platform, Reference};
use rbuild_registry::{
    BlobSink, Client, ClientOptions, MemoryBlobs, Outcome, PullOptions, PushOptions, RegistryError,
    Reporter, copy, pull, push,
};
use support::image::{TestImage, test_image};
use support::{Auth, RegistryProcess};

/// Records every blob outcome.
#[derive(Default)]
struct Outcomes(Mutex<Vec<(Digest, Outcome)>>);

impl Reporter for Outcomes {
    fn on_done(&self, digest: &Digest, outcome: Outcome) {
        self.0.lock().unwrap().push((digest.clone(), outcome));
    }
}

impl Outcomes {
    fn count(&self, o: Outcome) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, x)| *x == o)
            .count()
    }
}

fn reference(addr: &str, rest: &str) -> Reference {
    format!("{addr}/{rest}").parse().unwrap()
}

fn client() -> Client {
    Client::new(ClientOptions {
        monolithic_max: 1 << 20,
        ..ClientOptions::default()
    })
}

async fn push_image(
    client: &Client,
    r: &Reference,
    img: &TestImage,
    rep: Arc<dyn Reporter>,
) -> Digest {
    push(
        client,
        r,
        &img.manifest,
        Arc::new(img.blobs.clone()),
        &PushOptions::default(),
        rep,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn push_then_pull_round_trips_byte_identical() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "push_then_pull_round_trips") else {
        return;
    };
    let img = test_image(1, &[3 << 20, 1000, 0], false);
    let client = client();
    let r = reference(&reg.addr, "round/trip:v1");
    let pushed = push_image(&client, &r, &img, Arc::new(rbuild_registry::Silent)).await;
    assert_eq!(pushed, img.manifest);

    let sink = MemoryBlobs::new();
    let pulled = pull(
        &Client::new(ClientOptions::default()),
        &r,
        Arc::new(sink.clone()),
        &PullOptions::default(),
        Arc::new(rbuild_registry::Silent),
    )
    .await
    .unwrap();
    assert_eq!(pulled.digest, img.manifest);
    assert_eq!(sink.len(), img.blobs.len());
    for d in img.layers.iter().chain([&img.config, &img.manifest]) {
        assert_eq!(sink.get(d), img.blobs.get(d), "blob {d} differs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn second_push_uploads_nothing_and_pull_skips_present_blobs() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "second_push_uploads_nothing") else {
        return;
    };
    let img = test_image(2, &[2 << 20, 500], true);
    let client = client();
    let first = Arc::new(Outcomes::default());
    push_image(
        &client,
        &reference(&reg.addr, "again/app:1"),
        &img,
        first.clone(),
    )
    .await;
    assert_eq!(first.count(Outcome::Transferred), 3);

    // Same tag: the manifest is already there, nothing at all is sent.
    let second = Arc::new(Outcomes::default());
    push_image(
        &client,
        &reference(&reg.addr, "again/app:1"),
        &img,
        second.clone(),
    )
    .await;
    assert_eq!(second.0.lock().unwrap().len(), 0);
    // Another tag: every blob is found present.
    let third = Arc::new(Outcomes::default());
    push_image(
        &client,
        &reference(&reg.addr, "again/app:2"),
        &img,
        third.clone(),
    )
    .await;
    assert_eq!(third.count(Outcome::Present), 3);
    assert_eq!(third.count(Outcome::Transferred), 0);

    // A pull into a sink that has the layers already fetches only the rest.
    let sink = MemoryBlobs::new();
    sink.insert(img.blobs.get(&img.layers[0]).unwrap());
    let rep = Arc::new(Outcomes::default());
    pull(
        &client,
        &reference(&reg.addr, "again/app:2"),
        Arc::new(sink.clone()),
        &PullOptions::default(),
        rep.clone(),
    )
    .await
    .unwrap();
    assert_eq!(rep.count(Outcome::Present), 1);
    assert_eq!(rep.count(Outcome::Transferred), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_repository_mount_is_used() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "cross_repository_mount") else {
        return;
    };
    let img = test_image(3, &[1 << 20, 2000], false);
    let client = client();
    push_image(
        &client,
        &reference(&reg.addr, "mount/src:1"),
        &img,
        Arc::new(rbuild_registry::Silent),
    )
    .await;

    let rep = Arc::new(Outcomes::default());
    push(
        &client,
        &reference(&reg.addr, "mount/dst:1"),
        &img.manifest,
        Arc::new(img.blobs.clone()),
        &PushOptions {
            mount_from: vec!["mount/src".into()],
        },
        rep.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        rep.count(Outcome::Mounted),
        3,
        "{:?}",
        rep.0.lock().unwrap()
    );

    // copy within one registry mounts too, and keeps the digest.
    let rep = Arc::new(Outcomes::default());
    let d = copy(
        &client,
        &reference(&reg.addr, "mount/src:1"),
        &reference(&reg.addr, "mount/copied:x"),
        &PullOptions::default(),
        rep.clone(),
    )
    .await
    .unwrap();
    assert_eq!(d, img.manifest);
    assert_eq!(rep.count(Outcome::Mounted), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_between_registries_streams_and_keeps_digests() {
    let Some(a) = RegistryProcess::start(Auth::Open, "copy_between_registries") else {
        return;
    };
    let b = RegistryProcess::start(Auth::Open, "copy_between_registries").unwrap();
    let img = test_image(4, &[2 << 20, 10], false);
    let client = client();
    push_image(
        &client,
        &reference(&a.addr, "src/img:1"),
        &img,
        Arc::new(rbuild_registry::Silent),
    )
    .await;
    let rep = Arc::new(Outcomes::default());
    let d = copy(
        &client,
        &reference(&a.addr, "src/img:1"),
        &reference(&b.addr, "dst/img:2"),
        &PullOptions::default(),
        rep.clone(),
    )
    .await
    .unwrap();
    assert_eq!(d, img.manifest);
    assert_eq!(rep.count(Outcome::Transferred), 3);
    let regb = client.registry(&b.addr).await.unwrap();
    let m = regb.manifest("dst/img", "2").await.unwrap();
    assert_eq!(m.bytes, img.manifest_bytes);
    for l in &img.layers {
        assert_eq!(
            regb.blob_size("dst/img", l).await.unwrap(),
            Some(img.blobs.get(l).unwrap().len() as u64)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn index_platform_selection_and_all_platforms() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "index_platforms") else {
        return;
    };
    let amd = test_image(5, &[1000], false);
    let arm = test_image(6, &[2000], false);
    let blobs = MemoryBlobs::new();
    for img in [&amd, &arm] {
        for d in img.layers.iter().chain([&img.config, &img.manifest]) {
            blobs.insert(img.blobs.get(d).unwrap());
        }
    }
    let entry = |img: &TestImage, arch: &str| {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"{arch}"}}}}"#,
            img.manifest,
            img.manifest_bytes.len()
        )
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{}]}}"#,
        entry(&amd, "amd64"),
        entry(&arm, "arm64")
    );
    let index_digest = blobs.insert(index.into_bytes());
    let client = client();
    let r = reference(&reg.addr, "multi/arch:1");
    let pushed = push(
        &client,
        &r,
        &index_digest,
        Arc::new(blobs),
        &PushOptions::default(),
        Arc::new(rbuild_registry::Silent),
    )
    .await
    .unwrap();
    assert_eq!(pushed, index_digest);

    let sink = MemoryBlobs::new();
    let opts = PullOptions {
        platform: "linux/arm64".parse::<Platform>().unwrap(),
        all_platforms: false,
    };
    let p = pull(
        &client,
        &r,
        Arc::new(sink.clone()),
        &opts,
        Arc::new(rbuild_registry::Silent),
    )
    .await
    .unwrap();
    assert_eq!(p.digest, arm.manifest);
    assert!(sink.contains(&arm.layers[0]) && !sink.contains(&amd.layers[0]));
    assert!(!sink.contains(&index_digest));

    let sink = MemoryBlobs::new();
    let opts = PullOptions {
        all_platforms: true,
        ..opts
    };
    let p = pull(
        &client,
        &r,
        Arc::new(sink.clone()),
        &opts,
        Arc::new(rbuild_registry::Silent),
    )
    .await
    .unwrap();
    assert_eq!(p.digest, index_digest);
    assert_eq!(p.images.len(), 2);
    assert!(
        sink.contains(&arm.layers[0])
            && sink.contains(&amd.layers[0])
            && sink.contains(&index_digest)
    );

    let opts = PullOptions {
        platform: "linux/s390x".parse().unwrap(),
        all_platforms: false,
    };
    let e = pull(
        &client,
        &r,
        Arc::new(MemoryBlobs::new()),
        &opts,
        Arc::new(rbuild_registry::Silent),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RegistryError::NoPlatform { .. }), "{e}");
    assert!(e.to_string().contains("linux/amd64, linux/arm64"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_catalog_inspect_and_delete() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "tags_catalog_inspect_and_delete") else {
        return;
    };
    let img = test_image(7, &[100], false);
    let client = client();
    for t in ["a", "b", "c", "d", "e"] {
        push_image(
            &client,
            &reference(&reg.addr, &format!("list/me:{t}")),
            &img,
            Arc::new(rbuild_registry::Silent),
        )
        .await;
    }
    for repo in ["other/repo", "z/1", "z/2"] {
        push_image(
            &client,
            &reference(&reg.addr, &format!("{repo}:x")),
            &img,
            Arc::new(rbuild_registry::Silent),
        )
        .await;
    }
    let r = client.registry(&reg.addr).await.unwrap();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(r.tags("list/me").await.unwrap()),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(
        sorted(r.tags_paged("list/me", 2).await.unwrap()),
        ["a", "b", "c", "d", "e"]
    );
    let all = ["list/me", "other/repo", "z/1", "z/2"];
    assert_eq!(r.catalog().await.unwrap(), all);
    // One per page: four pages chained by `Link` headers (counted through a proxy).
    let counting = support::proxy::FlakyProxy::start(&reg.addr, "GET /v2/_catalog", 0, "");
    let via = client.registry(&counting.addr).await.unwrap();
    assert_eq!(via.catalog_paged(1).await.unwrap(), all);
    assert!(
        counting.forwarded.load(std::sync::atomic::Ordering::SeqCst) >= 4,
        "paginated"
    );
    let e = r.tags("no/such").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");

    let m = r.manifest("list/me", "c").await.unwrap();
    assert_eq!(m.bytes, img.manifest_bytes);
    assert_eq!(m.digest, img.manifest);
    assert_eq!(m.media_type, "application/vnd.oci.image.manifest.v1+json");
    let info = r.manifest_info("list/me", "c").await.unwrap().unwrap();
    assert_eq!(info.digest.as_ref(), Some(&img.manifest));

    r.delete_manifest("other/repo", &img.manifest)
        .await
        .unwrap();
    let e = r.manifest("other/repo", "x").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(
        r.manifest_info("other/repo", &img.manifest.to_string())
            .await
            .unwrap()
            .is_none()
    );
    // Referrers: Distribution 2.8 has no referrers API, which reads as "none".
    assert_eq!(r.referrers("list/me", &img.manifest).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_blob_is_rejected_and_nothing_is_kept() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "tampered_blob") else {
        return;
    };
    let img = test_image(8, &[300_000, 100], false);
    let client = client();
    let r = reference(&reg.addr, "tamper/me:1");
    push_image(&client, &r, &img, Arc::new(rbuild_registry::Silent)).await;
    let bad = &img.layers[0];
    let file = reg.blob_file(bad.hex());
    let mut data = std::fs::read(&file).unwrap();
    data[1000] ^= 0xff;
    std::fs::write(&file, data).unwrap();

    let sink = MemoryBlobs::new();
    let e = pull(
        &client,
        &r,
        Arc::new(sink.clone()),
        &PullOptions::default(),
        Arc::new(rbuild_registry::Silent),
    )
    .await
    .unwrap_err();
    match &e {
        RegistryError::DigestMismatch { expected, .. } => assert_eq!(expected, bad),
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert!(e.to_string().contains(&bad.to_string()), "{e}");
    assert!(!sink.contains(bad));
    assert!(
        !sink.contains(&img.manifest),
        "no manifest without its blobs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_uploads_send_ranges_in_order() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "chunked_uploads") else {
        return;
    };
    let img = test_image(9, &[(3 << 20) + 12345, 70_000], false);
    let chunked = Client::new(ClientOptions {
        monolithic_max: 64 << 10,
        chunk_size: Some(1 << 20),
        ..ClientOptions::default()
    });
    let r = reference(&reg.addr, "chunked/img:1");
    push_image(&chunked, &r, &img, Arc::new(rbuild_registry::Silent)).await;
    let sink = MemoryBlobs::new();
    pull(
        &client(),
        &r,
        Arc::new(sink.clone()),
        &PullOptions::default(),
        Arc::new(rbuild_registry::Silent),
    )
    .await
    .unwrap();
    for l in &img.layers {
        assert_eq!(sink.get(l), img.blobs.get(l), "layer {l}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn index_with_an_attestation_copies_whole_and_pulls_images_only() {
    let Some(a) = RegistryProcess::start(Auth::Open, "index_with_attestation") else {
        return;
    };
    let b = RegistryProcess::start(Auth::Open, "index_with_attestation").unwrap();
    let img = test_image(51, &[3000], false);
    let blobs = img.blobs.clone();
    // A buildx-style attestation: an OCI manifest whose layer is in-toto JSON, not a tar.
    let statement_bytes = br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#;
    let statement_len = statement_bytes.len();
    let statement = blobs.insert(statement_bytes.to_vec());
    let empty = blobs.insert(b"{}".to_vec());
    let att = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/vnd.in-toto+json","digest":"{statement}","size":{statement_len}}}]}}"#
    );
    let att_len = att.len();
    let att_digest = blobs.insert(att.into_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{att_digest}","size":{att_len},"platform":{{"os":"unknown","architecture":"unknown"}},"annotations":{{"vnd.docker.reference.type":"attestation-manifest","vnd.docker.reference.digest":"{}"}}}}]}}"#,
        img.manifest,
        img.manifest_bytes.len(),
        img.manifest
    );
    let index_digest = blobs.insert(index.clone().into_bytes());
    let client = client();
    let src = reference(&a.addr, "att/img:1");
    push(
        &client,
        &src,
        &index_digest,
        Arc::new(blobs),
        &PushOptions::default(),
        Arc::new(rbuild_registry::Silent),
    )
    .await
    .unwrap();

    let all = PullOptions {
        all_platforms: true,
        ..PullOptions::default()
    };
    let dst = reference(&b.addr, "att/copy:1");
    let d = copy(&client, &src, &dst, &all, Arc::new(rbuild_registry::Silent))
        .await
        .unwrap();
    assert_eq!(d, index_digest);
    let rb = client.registry(&b.addr).await.unwrap();
    assert_eq!(
        rb.manifest("att/copy", "1").await.unwrap().bytes,
        index.as_bytes()
    );
    assert!(
        rb.manifest_info("att/copy", &att_digest.to_string())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        rb.blob_size("att/copy", &statement).await.unwrap(),
        Some(statement_len as u64)
    );

    // Pulling every platform takes the images, not the attestation.
    let sink = MemoryBlobs::new();
    let p = pull(
        &client,
        &dst,
        Arc::new(sink.clone()),
        &all,
        Arc::new(rbuild_registry::Silent),
    )
    .await
    .unwrap();
    assert_eq!(p.images.len(), 1);
    assert_eq!(p.images[0].digest, img.manifest);
    assert!(!sink.contains(&statement));
}
