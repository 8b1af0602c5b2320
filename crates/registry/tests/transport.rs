//! Which scheme and which certificates: HTTPS verified against extra CA certificates from
//! `certs.d/HOST/` or `--cert-dir`; plain HTTP only for loopback names and listed insecure hosts.

mod support;

use std::net::ToSocketAddrs;
use std::sync::Arc;

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use rbuild_registry::{Client, ClientOptions, MemoryBlobs, PullOptions, PushOptions, Silent};
use support::image::test_image;
use support::{Auth, RegistryProcess};

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

/// A CA certificate and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) PEM.
fn certificates() -> (String, String, String) {
    let ca_key = key();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name("rbuild test CA")).unwrap();
    b.set_issuer_name(&name("rbuild test CA")).unwrap();
    b.set_pubkey(&ca_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    let serial = openssl::bn::BigNum::from_u32(1)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca = b.build();

    let server_key = key();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name("127.0.0.1")).unwrap();
    b.set_issuer_name(ca.subject_name()).unwrap();
    b.set_pubkey(&server_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    let serial = openssl::bn::BigNum::from_u32(2)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&b.x509v3_context(Some(&ca), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    let pem = |v: Vec<u8>| String::from_utf8(v).unwrap();
    (
        pem(ca.to_pem().unwrap()),
        pem(cert.to_pem().unwrap()),
        pem(server_key.private_key_to_pem_pkcs8().unwrap()),
    )
}

async fn round_trip(client: &Client, addr: &str) {
    let img = test_image(41, &[5000], false);
    let r = format!("{addr}/tls/app:1").parse().unwrap();
    push(client, &r, &img).await;
    let sink = MemoryBlobs::new();
    let p = rbuild_registry::pull(
        client,
        &r,
        Arc::new(sink),
        &PullOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();
    assert_eq!(p.digest, img.manifest);
}

async fn push(client: &Client, r: &rbuild_oci::Reference, img: &support::image::TestImage) {
    rbuild_registry::push(
        client,
        r,
        &img.manifest,
        Arc::new(img.blobs.clone()),
        &PushOptions::default(),
        Arc::new(Silent),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_extra_ca_certificates() {
    if !support::have("docker-registry", "https_with_extra_ca") {
        return;
    }
    let (ca, cert, key) = certificates();
    let Some(reg) = RegistryProcess::start_tls(&cert, &key, "https_with_extra_ca") else {
        return;
    };
    // Unknown CA: refused, and the error is the HTTPS one (no silent downgrade to HTTP).
    let plain = Client::new(ClientOptions {
        cert_dirs: Vec::new(),
        ..ClientOptions::default()
    });
    let e = plain.registry(&reg.addr).await.unwrap_err();
    assert!(
        matches!(&e, rbuild_registry::RegistryError::Transport { url, .. } if url.starts_with("https://")),
        "{e:?}"
    );

    // certs.d/HOST/ca.crt
    let certs_d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(certs_d.path().join(&reg.addr)).unwrap();
    std::fs::write(certs_d.path().join(&reg.addr).join("ca.crt"), &ca).unwrap();
    let client = Client::new(ClientOptions {
        cert_dirs: vec![certs_d.path().to_path_buf()],
        ..ClientOptions::default()
    });
    assert!(
        client
            .registry(&reg.addr)
            .await
            .unwrap()
            .base_url()
            .starts_with("https://")
    );
    round_trip(&client, &reg.addr).await;

    // --cert-dir DIR with DIR/*.crt
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("extra.crt"), &ca).unwrap();
    let client = Client::new(ClientOptions {
        cert_dirs: Vec::new(),
        cert_dir: Some(dir.path().to_path_buf()),
        ..ClientOptions::default()
    });
    round_trip(&client, &reg.addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_only_for_loopback_names_and_listed_hosts() {
    let Some(reg) = RegistryProcess::start(Auth::Open, "plain_http_rules") else {
        return;
    };
    let client = Client::new(ClientOptions::default());
    let r = client.registry(&reg.addr).await.unwrap();
    assert!(
        r.base_url().starts_with("http://127.0.0.1:"),
        "{}",
        r.base_url()
    );

    // The machine's own name reaches the same registry but is not a loopback *name*.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let port = reg.addr.rsplit(':').next().unwrap();
    let named = format!("{host}:{port}");
    let resolves_here = named
        .to_socket_addrs()
        .is_ok_and(|mut a| a.any(|a| a.ip().is_loopback()));
    if host.is_empty() || host == "localhost" || !resolves_here {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("hostname {host:?} does not resolve to loopback; insecure-host part skipped");
        }
        return;
    }
    let e = client.registry(&named).await.unwrap_err();
    assert!(e.to_string().starts_with("GET https://"), "{e}");
    let insecure = Client::new(ClientOptions {
        insecure_registries: vec![named.clone()],
        ..ClientOptions::default()
    });
    assert!(
        insecure
            .registry(&named)
            .await
            .unwrap()
            .base_url()
            .starts_with("http://")
    );
    round_trip(&insecure, &named).await;
}
