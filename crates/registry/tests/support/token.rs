//! A tiny token endpoint (Docker token auth): checks Basic credentials, grants every scope asked
//! for, and signs RS256 JWTs with a self-signed certificate the registry trusts (`x5c` header).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::{X509, X509NameBuilder};

use super::{TOKEN_ISSUER, TOKEN_SERVICE};

/// A running token server.
pub struct TokenServer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The certificate the registry must trust.
    pub cert_pem: String,
    /// Tokens issued so far.
    pub issued: Arc<AtomicUsize>,
}

struct Signing {
    /// The first this-many tokens are issued already expired (beyond the registry's leeway).
    expired_first: usize,
    key: PKey<Private>,
    cert_der: Vec<u8>,
    user: String,
    password: String,
    lifetime: u64,
}

impl TokenServer {
    /// Start serving tokens to `user`/`password`, each valid `lifetime` seconds.
    pub fn start(user: &str, password: &str, lifetime: u64) -> TokenServer {
        TokenServer::start_expiring(user, password, lifetime, 0)
    }

    /// Like [`TokenServer::start`], but the first `expired_first` tokens are stale on arrival.
    pub fn start_expiring(
        user: &str,
        password: &str,
        lifetime: u64,
        expired_first: usize,
    ) -> TokenServer {
        let rsa = Rsa::generate(2048).unwrap();
        let key = PKey::from_rsa(rsa).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "rbuild test token signer")
            .unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        let serial = openssl::bn::BigNum::from_u32(1)
            .unwrap()
            .to_asn1_integer()
            .unwrap();
        b.set_serial_number(&serial).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        let signing = Arc::new(Signing {
            expired_first,
            key,
            cert_der: cert.to_der().unwrap(),
            user: user.to_string(),
            password: password.to_string(),
            lifetime,
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&issued);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let signing = Arc::clone(&signing);
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    let _ = serve(conn, &signing, &counter);
                });
            }
        });
        TokenServer {
            realm: format!("http://127.0.0.1:{port}/token"),
            cert_pem: String::from_utf8(cert.to_pem().unwrap()).unwrap(),
            issued,
        }
    }
}

fn serve(conn: std::net::TcpStream, s: &Signing, counter: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut authorization = None;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("authorization")
            {
                authorization = Some(v.trim().to_string());
            }
        }
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", s.user, s.password))
        );
        let (status, body) = if authorization.as_deref() != Some(expected.as_str()) {
            (
                "401 Unauthorized",
                r#"{"details":"bad credentials"}"#.to_string(),
            )
        } else {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let token = sign(s, &scopes(&target), n < s.expired_first);
            (
                "200 OK",
                format!(r#"{{"token":"{token}","expires_in":{}}}"#, s.lifetime),
            )
        };
        write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        conn.flush()?;
    }
}

fn scopes(target: &str) -> Vec<String> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("scope="))
        .map(|v| {
            let v = v.replace('+', " ");
            percent_decode(&v)
        })
        .flat_map(|v| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn sign(s: &Signing, scopes: &[String], expired: bool) -> String {
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Distribution allows 60 s of clock skew: a stale token is dated well before that.
    let now = if expired { real_now - 600 } else { real_now };
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|sc| {
            let (typ, rest) = sc.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({
                "type": typ,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [STANDARD.encode(&s.cert_der)],
    });
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": s.user,
        "aud": TOKEN_SERVICE,
        "exp": now + s.lifetime,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", rand_id()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), &s.key).unwrap();
    signer.update(signing_input.as_bytes()).unwrap();
    let sig = signer.sign_to_vec().unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn rand_id() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}
