//! The HTTPS trust of registry clients: the system's CA roots (through rustls' platform
//! verifier) plus a registry's own `certs.d` CAs, read on the first certificate to verify.
//!
//! The platform verifier reads and parses every certificate under `/etc/ssl/certs` when it
//! is made, which reqwest does when a client is built: a few milliseconds and some 300 file
//! system calls on every command, even one that only talks plain HTTP to a local registry
//! (`localhost:5000`, the usual CI set-up). [`LazyVerifier`] makes it when a server first
//! presents a certificate instead.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::Verifier;

use crate::error::{RegistryError, Result};

/// The TLS settings of a registry client trusting the system roots plus the PEM CA
/// certificates in `certs` (each file may hold several).
pub(crate) fn client_config(certs: &[PathBuf]) -> Result<rustls::ClientConfig> {
    // rustls takes its cryptography from the process-wide provider: ring, installed once
    // (an error only says one is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut extra_roots = Vec::new();
    for path in certs {
        let pem = std::fs::read(path).map_err(|source| RegistryError::File {
            path: path.clone(),
            source,
        })?;
        let before = extra_roots.len();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            extra_roots.push(cert.map_err(|e| {
                RegistryError::Config(format!("{}: not a PEM certificate: {e}", path.display()))
            })?);
        }
        if extra_roots.len() == before {
            return Err(RegistryError::Config(format!(
                "{}: not a PEM certificate: no certificate in it",
                path.display()
            )));
        }
    }
    let verifier = LazyVerifier {
        provider: provider.clone(),
        extra_roots,
        made: OnceLock::new(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Config(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // HTTP/1.1 only (the client is built without HTTP/2).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The platform verifier with extra roots, made when the first certificate is verified.
#[derive(Debug)]
struct LazyVerifier {
    provider: Arc<CryptoProvider>,
    extra_roots: Vec<CertificateDer<'static>>,
    made: OnceLock<std::result::Result<Verifier, rustls::Error>>,
}

impl LazyVerifier {
    fn verifier(&self) -> std::result::Result<&Verifier, rustls::Error> {
        self.made
            .get_or_init(|| {
                Verifier::new_with_extra_roots(self.extra_roots.clone(), self.provider.clone())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    /// Asked for the client's first message, before any certificate: the provider's schemes,
    /// which are the platform verifier's (a WebPKI verifier over the same provider).
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_roots_are_not_read_until_a_certificate_is_verified() {
        let config = client_config(&[]).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let verifier = LazyVerifier {
            provider: CryptoProvider::get_default().unwrap().clone(),
            extra_roots: Vec::new(),
            made: OnceLock::new(),
        };
        assert!(!verifier.supported_verify_schemes().is_empty());
        assert!(
            verifier.made.get().is_none(),
            "schemes alone made the verifier"
        );
        // A certificate no root signed: the verifier is made, and refuses it.
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let name = ServerName::try_from("registry.example").unwrap();
        assert!(
            verifier
                .verify_server_cert(&junk, &[], &name, &[], UnixTime::now())
                .is_err()
        );
        assert!(verifier.made.get().is_some());
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = client_config(std::slice::from_ref(&path)).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        assert!(err.to_string().contains("not a PEM certificate"), "{err}");
    }
}
