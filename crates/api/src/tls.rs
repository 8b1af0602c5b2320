//! TLS for a TCP listener, dockerd's way: `--tls` serves over TLS with `--tlscert` and
//! `--tlskey`; `--tlsverify` also requires every client to present a certificate signed by
//! `--tlscacert` (the only setting under which a non-loopback address is served).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the TLS files are and whether clients must present a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Require and verify client certificates against `ca` (`--tlsverify`).
    pub verify: bool,
    /// The CA that signs client certificates (`--tlscacert`).
    pub ca: PathBuf,
    /// The server's certificate chain, PEM (`--tlscert`).
    pub cert: PathBuf,
    /// The server's private key, PEM (`--tlskey`).
    pub key: PathBuf,
}

/// A loaded TLS configuration.
#[derive(Clone)]
pub struct Tls {
    pub(crate) config: Arc<rustls::ServerConfig>,
    verify: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("verify", &self.verify).finish()
    }
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct TlsError {
    /// The file (or the option's file) at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

fn tls_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, e))?;
    if certs.is_empty() {
        return Err(tls_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

impl Tls {
    /// Read the certificate, key and (with `verify`) the CA, and make the server's
    /// configuration (TLS 1.2 and 1.3, rustls' safe defaults, ring's primitives).
    pub fn load(o: &TlsOptions) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = certificates(&o.cert)?;
        let key = PrivateKeyDer::from_pem_file(&o.key).map_err(|e| {
            tls_error(
                &o.key,
                format!("no usable PEM private key in the file ({e})"),
            )
        })?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&o.cert, e))?;
        let builder = if o.verify {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(&o.ca)? {
                roots.add(ca).map_err(|e| tls_error(&o.ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_error(&o.ca, e))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            tls_error(
                &o.key,
                format!("does not go with {}: {e}", o.cert.display()),
            )
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            verify: o.verify,
        })
    }

    /// Whether clients must present a certificate the CA signed.
    pub fn verifies_clients(&self) -> bool {
        self.verify
    }
}
