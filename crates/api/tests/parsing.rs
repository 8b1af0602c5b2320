//! Request parsing never panics and malformed requests get a 400: property tests over the
//! path, query and filter parsers, and a live service (in this process, over a temporary
//! store) fed arbitrary bytes, arbitrary paths and arbitrary JSON bodies, which must keep
//! answering.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use rbuild_api::http::{parse_filters, split_path};

proptest! {
    #[test]
    fn paths_split_without_panicking(path in "(/[a-zA-Z0-9%:._v-]{0,12}){0,6}") {
        if let Ok((version, segments)) = split_path(&path) {
            prop_assert!(segments.iter().all(|s| !s.is_empty()));
            if let Some(v) = version {
                prop_assert!(!rbuild_api::http::version_less(&v, rbuild_api::MIN_API_VERSION));
            }
        }
    }

    #[test]
    fn filters_parse_or_fail_cleanly(text in ".{0,64}") {
        let _ = parse_filters(&text);
    }

    #[test]
    fn well_formed_filters_round_trip(
        pairs in proptest::collection::btree_map("[a-z]{1,8}", proptest::collection::vec("[a-z0-9=]{0,8}", 0..4), 0..4)
    ) {
        let text = serde_json::to_string(&pairs).unwrap();
        let got = parse_filters(&text).unwrap();
        let want: Vec<(String, String)> = pairs
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
            .collect();
        prop_assert_eq!(got, want);
    }
}

/// One service for the whole test binary, on a temporary store and socket.
fn service() -> &'static PathBuf {
    static SOCK: OnceLock<PathBuf> = OnceLock::new();
    SOCK.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let sock = dir.join("s.sock");
        let address = rbuild_api::Address::Unix(sock.clone());
        let engine = rbuild_engine::Engine::new(dir.join("root"));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let l = rbuild_api::bind(&address, None).unwrap();
                rbuild_api::serve(engine, l, rbuild_api::ServeOptions::default())
                    .await
                    .unwrap();
            });
        });
        for _ in 0..500 {
            if UnixStream::connect(&sock).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        sock
    })
}

/// Send `bytes` (a whole request asking for `Connection: close`), read the answer until
/// the service closes; its status code (0: none).
fn exchange(bytes: &[u8]) -> u16 {
    exchange_then(bytes, false)
}

/// [`exchange`]; with `hang_up`, the client closes its side once the bytes are sent (the
/// service then drops an unfinished request).
fn exchange_then(bytes: &[u8], hang_up: bool) -> u16 {
    let mut s = UnixStream::connect(service()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    if hang_up {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn still_serving() -> bool {
    exchange(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 200
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_bring_the_service_down(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let code = exchange_then(&bytes, true);
        // Either no HTTP at all (closed) or a 4xx/5xx answer; never a hang or a crash.
        prop_assert!(code == 0 || (400..600).contains(&code) || code == 200, "{code}");
        prop_assert!(still_serving());
    }

    #[test]
    fn arbitrary_routes_answer(method in "(GET|POST|DELETE|HEAD|PUT)", path in "(/[a-zA-Z0-9%._-]{1,10}){1,5}", query in "[a-z=&%0-9]{0,20}") {
        // Only routes that read, or that fail on a missing object: nothing in the store.
        if path.starts_with("/events") {
            return Ok(());
        }
        let req = format!("{method} {path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let code = exchange(req.as_bytes());
        prop_assert!(code >= 200, "{req}: {code}");
        prop_assert!(still_serving());
    }

    #[test]
    fn arbitrary_create_bodies_get_400_or_an_engine_answer(body in ".{0,200}") {
        let req = format!(
            "POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let code = exchange(req.as_bytes());
        // Without an image in the store, nothing can be created.
        prop_assert!(matches!(code, 400 | 404 | 501), "{body:?}: {code}");
        prop_assert!(still_serving());
    }
}

#[test]
fn typed_but_wrong_create_fields_are_400() {
    for body in [
        r#"{"Image":"x","Cmd":5}"#,
        r#"{"Image":"x","HostConfig":{"PortBindings":{"abc/tcp":[{"HostPort":"1"}]}}}"#,
        r#"{"Image":"x","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#,
        r#"{"Image":"x","HostConfig":{"Memory":"lots"}}"#,
        r#"{"Cmd":["true"]}"#,
        r#"[]"#,
    ] {
        let req = format!(
            "POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(exchange(req.as_bytes()), 400, "{body}");
    }
}
