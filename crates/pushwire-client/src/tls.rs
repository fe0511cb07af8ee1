//! TLS for `wss://` and `https://` endpoints: rustls with the ring provider, the system's root
//! certificates plus any given in [`crate::ClientConfig::tls_root_certificates_pem`]. One
//! configuration is built when the client is created and shared by every connection attempt.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::error::ClientError;

const KEY: &str = "tls_root_certificates_pem";

/// The client TLS configuration: system roots (when they load) plus `extra_pem`. Fails when
/// `extra_pem` holds no certificate or a bad one, or when no root at all is trusted.
pub(crate) fn client_config(
    extra_pem: Option<&[u8]>,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let bad = |message: String| ClientError::Config { key: KEY, message };
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: explicit roots may be all the caller needs.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = extra_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("certificate refused: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("no certificate in the PEM data".into()));
        }
    }
    if roots.is_empty() {
        return Err(bad(
            "no trusted root certificate: the system has none readable and none was given".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // WebSocket needs HTTP/1.1; the HTTP client is built without HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_a_config_error() {
        for pem in [
            &b"not pem"[..],
            b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        ] {
            match client_config(Some(pem)) {
                Err(ClientError::Config { key, .. }) => assert_eq!(key, KEY),
                other => panic!("{other:?}"),
            }
        }
    }
}
