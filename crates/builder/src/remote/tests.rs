use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;
use crate::config::civil_from_days;

const BODY: &[u8] = b"hello from the test server\n";
const SUNDAY: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const SUNDAY_SECS: i64 = 784_111_777;

/// A tiny HTTP/1.1 server on 127.0.0.1 answering each connection from a fixed route table,
/// then closing it. Lives as long as the test process (the thread blocks in accept).
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Drain the headers.
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let (status, headers, body): (&str, String, &[u8]) = match path {
                "/files/hello.txt" => (
                    "200 OK",
                    format!("Last-Modified: {SUNDAY}\r\nETag: \"v1\"\r\n"),
                    BODY,
                ),
                "/plain" => ("200 OK", String::new(), BODY),
                "/truncated" => (
                    "200 OK",
                    format!("Content-Length: {}\r\n", BODY.len() + 100),
                    BODY,
                ),
                _ => ("404 Not Found", String::new(), b"no such file\n"),
            };
            let length = if headers.contains("Content-Length") {
                String::new()
            } else {
                format!("Content-Length: {}\r\n", body.len())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{headers}{length}Connection: close\r\n\r\n"
            );
            let _ = stream.write_all(body);
        }
    });
    format!("http://{addr}")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn downloads_with_docker_metadata() {
    let base = serve();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{base}/files/hello.txt");
    let dest = dir.path().join("sub/hello.txt");
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |done: u64, total: Option<u64>| seen.lock().unwrap().push((done, total));
    let opts = FetchOptions {
        progress: Some(&progress),
        ..Default::default()
    };
    let got = fetch(&url, &opts, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), BODY);
    assert_eq!(got.digest, Digest::sha256_of(BODY));
    assert_eq!(got.size, BODY.len() as u64);
    assert_eq!(got.filename, "hello.txt");
    assert_eq!(got.last_modified, Some(SUNDAY_SECS));
    assert_eq!(got.etag.as_deref(), Some("\"v1\""));
    let meta = std::fs::metadata(&dest).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o600,
        "docker's mode for downloads"
    );
    assert_eq!(meta.mtime(), SUNDAY_SECS, "mtime from Last-Modified");
    assert_eq!(
        names(dest.parent().unwrap()),
        ["hello.txt"],
        "no temporary file left"
    );
    let seen = seen.into_inner().unwrap();
    assert_eq!(
        seen.last(),
        Some(&(BODY.len() as u64, Some(BODY.len() as u64)))
    );
}

#[test]
fn without_last_modified_the_mtime_is_the_epoch() {
    let base = serve();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let opts = FetchOptions {
        chmod: Some(0o755),
        ..Default::default()
    };
    let got = fetch(&format!("{base}/plain"), &opts, &dest).unwrap();
    assert_eq!(got.last_modified, None);
    assert_eq!(got.filename, "plain");
    let meta = std::fs::metadata(&dest).unwrap();
    assert_eq!(meta.mtime(), 0);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755, "--chmod wins");
}

#[test]
fn chown_is_applied() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let base = serve();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let opts = FetchOptions {
        owner: Some((123, 456)),
        ..Default::default()
    };
    fetch(&format!("{base}/plain"), &opts, &dest).unwrap();
    let meta = std::fs::metadata(&dest).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (123, 456));
}

#[test]
fn checksum_good_and_bad() {
    let base = serve();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{base}/files/hello.txt");
    let good = FetchOptions {
        checksum: Some(Digest::sha256_of(BODY)),
        ..Default::default()
    };
    fetch(&url, &good, &dir.path().join("good")).unwrap();

    let mut sha512 = Hasher::new(Algorithm::Sha512);
    sha512.update(BODY);
    let good512 = FetchOptions {
        checksum: Some(sha512.finish()),
        ..Default::default()
    };
    let got = fetch(&url, &good512, &dir.path().join("good512")).unwrap();
    assert_eq!(
        got.digest,
        Digest::sha256_of(BODY),
        "the digest is sha256 whatever --checksum uses"
    );

    let wrong = Digest::sha256_of(b"something else");
    let bad = FetchOptions {
        checksum: Some(wrong.clone()),
        ..Default::default()
    };
    let err = fetch(&url, &bad, &dir.path().join("bad")).unwrap_err();
    match &err {
        BuildError::ChecksumMismatch {
            url: u,
            expected,
            actual,
        } => {
            assert_eq!(u, &url);
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &Digest::sha256_of(BODY));
        }
        other => panic!("expected a checksum mismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&url) && msg.contains("digest mismatch"),
        "{msg}"
    );
    assert_eq!(
        names(dir.path()),
        ["good", "good512"],
        "a failed checksum leaves nothing behind"
    );
}

#[test]
fn http_error_status_names_url_and_status() {
    let base = serve();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{base}/missing.tar.gz");
    let err = fetch(&url, &FetchOptions::default(), &dir.path().join("f")).unwrap_err();
    assert!(matches!(err, BuildError::HttpStatus { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{url}: invalid response status 404 Not Found")
    );
    assert!(names(dir.path()).is_empty());
}

#[test]
fn a_body_cut_short_is_an_error() {
    let base = serve();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{base}/truncated");
    let err = fetch(&url, &FetchOptions::default(), &dir.path().join("f")).unwrap_err();
    assert!(matches!(err, BuildError::Download { .. }), "{err}");
    assert!(err.to_string().starts_with(&url), "{err}");
    assert!(names(dir.path()).is_empty());
}

#[test]
fn connection_refused_names_the_url() {
    // Bind then drop: the port is (almost certainly) closed now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/x");
    let dir = tempfile::tempdir().unwrap();
    let err = fetch(&url, &FetchOptions::default(), &dir.path().join("f")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BuildError::Download { .. }), "{msg}");
    assert!(msg.starts_with(&url), "{msg}");
    assert!(
        msg.to_lowercase().contains("refused"),
        "the cause is shown: {msg}"
    );
}

#[test]
fn file_names_follow_buildkit() {
    for (url, want) in [
        ("https://example.com/a/b.tar.gz", "b.tar.gz"),
        ("https://example.com/a/b.tar.gz?sig=1#frag", "b.tar.gz"),
        ("https://example.com/dir/", "dir"),
        ("https://example.com/dir//", "dir"),
        ("https://example.com/", UNNAMED),
        ("https://example.com", UNNAMED),
        ("https://example.com/a%20b.txt", "a b.txt"),
        ("https://example.com/a%2Fb", "b"),
        ("https://example.com/100%", "100%"),
        ("not a url", UNNAMED),
    ] {
        assert_eq!(file_name(url), want, "{url}");
    }
    assert!(is_url("http://x/y") && is_url("https://x"));
    assert!(!is_url("ftp://x/y") && !is_url("src/http://x") && !is_url("git@github.com:a/b"));
}

#[test]
fn http_dates_in_all_three_forms() {
    assert_eq!(parse_http_date(SUNDAY), Some(SUNDAY_SECS));
    assert_eq!(
        parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
        Some(SUNDAY_SECS)
    );
    assert_eq!(
        parse_http_date("Sun Nov  6 08:49:37 1994"),
        Some(SUNDAY_SECS)
    );
    assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    assert_eq!(
        parse_http_date("Wed, 29 Feb 2040 23:59:60 GMT"),
        Some(2_214_172_800)
    );
    for bad in [
        "",
        "yesterday",
        "Sun, 06 Nov 1994 08:49:37 CET",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Nov 1994 08:49 GMT",
    ] {
        assert_eq!(parse_http_date(bad), None, "{bad:?}");
    }
}

#[test]
fn days_from_civil_inverts_civil_from_days() {
    for days in (-800_000..800_000).step_by(997) {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
    }
}
