//! Auth against real `docker-registry` configurations: htpasswd Basic and token (JWTs from a
//! test token endpoint the registry trusts). Wrong credentials give a clear 401 message that
//! never contains the password.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rbuild_oci::Reference;
use rbuild_registry::{
    Client, ClientOptions, Credential, MemoryBlobs, PullOptions, PushOptions, RegistryError, Scope,
    Silent, StaticCredential, pull, push,
};
use support::image::test_image;
use support::token::TokenServer;
use support::{Auth, RegistryProcess};

const SECRET: &str = "correct horse battery staple";

fn client_with(registry: &str, user: &str, password: &str) -> Client {
    Client::new(ClientOptions {
        credentials: Arc::new(StaticCredential {
            registry: registry.to_string(),
            credential: Credential {
                username: user.into(),
                secret: password.into(),
            },
        }),
        ..ClientOptions::default()
    })
}

async fn round_trip(client: &Client, addr: &str) {
    let img = test_image(11, &[2 << 20, 100], false);
    let r: Reference = format!("{addr}/auth/app:1").parse().unwrap();
    push(
        client,
        &r,
        &img.manifest,
        Arc::new(img.blobs.clone()),
        &PushOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();
    let sink = MemoryBlobs::new();
    let p = pull(
        client,
        &r,
        Arc::new(sink.clone()),
        &PullOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();
    assert_eq!(p.digest, img.manifest);
    assert_eq!(sink.get(&img.layers[0]), img.blobs.get(&img.layers[0]));
    // Mount between repositories needs pull on the source and push on the target in one token.
    push(
        client,
        &format!("{addr}/auth/other:1").parse().unwrap(),
        &img.manifest,
        Arc::new(img.blobs.clone()),
        &PushOptions {
            mount_from: vec!["auth/app".into()],
        },
        Arc::new(Silent),
    )
    .await
    .unwrap();
}

fn assert_clear_401(e: &RegistryError, hint: &str) {
    let text = e.to_string();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{text}");
    assert!(text.contains("401"), "{text}");
    assert!(text.contains(hint), "{text}");
    assert!(
        !text.contains(SECRET) && !text.contains("wrong-password"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_basic_auth() {
    let Some(reg) = RegistryProcess::start(
        Auth::Htpasswd {
            user: "alice".into(),
            password: SECRET.into(),
        },
        "htpasswd_basic_auth",
    ) else {
        return;
    };
    round_trip(&client_with(&reg.addr, "alice", SECRET), &reg.addr).await;

    let wrong = client_with(&reg.addr, "alice", "wrong-password");
    let r: Reference = format!("{}/auth/app:1", reg.addr).parse().unwrap();
    let e = pull(
        &wrong,
        &r,
        Arc::new(MemoryBlobs::new()),
        &PullOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap_err();
    assert_clear_401(&e, "credentials rejected");

    let anonymous = Client::new(ClientOptions::default());
    let e = pull(
        &anonymous,
        &r,
        Arc::new(MemoryBlobs::new()),
        &PullOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap_err();
    assert_clear_401(&e, "rbuild login");

    // `login` checks credentials the same way.
    let reg_handle = wrong.registry(&reg.addr).await.unwrap();
    assert_clear_401(
        &reg_handle.check_login(&Scope::none()).await.unwrap_err(),
        "credentials rejected",
    );
    let ok = client_with(&reg.addr, "alice", SECRET);
    ok.registry(&reg.addr)
        .await
        .unwrap()
        .check_login(&Scope::none())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn token_auth_with_jwt_endpoint() {
    if !support::have("docker-registry", "token_auth") {
        return;
    }
    let tokens = TokenServer::start("bob", SECRET, 300);
    let Some(reg) = RegistryProcess::start(
        Auth::Token {
            realm: tokens.realm.clone(),
            cert_pem: tokens.cert_pem.clone(),
        },
        "token_auth",
    ) else {
        return;
    };
    let client = client_with(&reg.addr, "bob", SECRET);
    round_trip(&client, &reg.addr).await;
    // Tokens are reused per scope: one for push of auth/app, one for pull, one for the
    // mount scope, a few more at most — not one per request (there were dozens).
    let issued = tokens.issued.load(Ordering::SeqCst);
    assert!((2..=6).contains(&issued), "{issued} tokens issued");

    let r = client.registry(&reg.addr).await.unwrap();
    assert_eq!(r.catalog().await.unwrap(), ["auth/app", "auth/other"]);
    assert_eq!(r.tags("auth/app").await.unwrap(), ["1"]);

    let wrong = client_with(&reg.addr, "bob", "wrong-password");
    let e = pull(
        &wrong,
        &format!("{}/auth/app:1", reg.addr).parse().unwrap(),
        Arc::new(MemoryBlobs::new()),
        &PullOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap_err();
    assert_clear_401(&e, "rejected the username or password");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_tokens_are_refreshed_on_401() {
    if !support::have("docker-registry", "expired_tokens") {
        return;
    }
    // The first token arrives already expired: the registry answers 401 to it, and the client
    // must fetch a fresh one once and carry on.
    let tokens = TokenServer::start_expiring("dan", SECRET, 300, 1);
    let Some(reg) = RegistryProcess::start(
        Auth::Token {
            realm: tokens.realm.clone(),
            cert_pem: tokens.cert_pem.clone(),
        },
        "expired_tokens",
    ) else {
        return;
    };
    let client = client_with(&reg.addr, "dan", SECRET);
    let r = client.registry(&reg.addr).await.unwrap();
    assert_eq!(r.catalog().await.unwrap(), Vec::<String>::new());
    assert_eq!(
        tokens.issued.load(Ordering::SeqCst),
        2,
        "stale token replaced once"
    );
    assert_eq!(r.catalog().await.unwrap(), Vec::<String>::new());
    assert_eq!(
        tokens.issued.load(Ordering::SeqCst),
        2,
        "fresh token reused"
    );
}
