//! TLS for the listeners (`http_server.tls.*`, `grpc_api.tls.*`): rustls with one crypto provider, *ring*.
//!
//! The workspace builds rustls with the `ring` feature only. The provider is installed as the
//! process default once ([`install_crypto_provider`]); the server configuration is also built
//! with the provider explicitly, so start-up never depends on which features other crates turned
//! on (rustls panics in `ServerConfig::builder()` when two providers are compiled in and none is
//! installed). ALPN offers `h2` then `http/1.1`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// Why TLS could not be set up; the message names the key and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("{section}.cert_pem_file {path}: {why}")]
    Cert {
        /// The configuration section (`http_server.tls`, `grpc_api.tls`).
        section: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// The key file could not be read or holds no private key.
    #[error("{section}.key_pem_file {path}: {why}")]
    Key {
        /// The configuration section.
        section: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// rustls refused the pair (the key does not match the certificate, unsupported key type).
    #[error("{0}: {1}")]
    Config(&'static str, String),
}

/// Installs *ring* as the process-wide rustls provider; later calls do nothing.
pub fn install_crypto_provider() {
    // An error means a provider is installed already (by an earlier call): fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the acceptor's configuration from the PEM files, or `None` when TLS is disabled.
///
/// Installs the process-wide provider first, TLS or not: other rustls users in the process
/// (broker and JWKS clients) then never depend on which providers are compiled in.
pub fn server_config(cfg: &TlsConfig) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    server_config_for("http_server.tls", cfg)
}

/// [`server_config`] for the section `section` (named in the errors).
pub fn server_config_for(
    section: &'static str,
    cfg: &TlsConfig,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    install_crypto_provider();
    if !cfg.enabled {
        return Ok(None);
    }
    let certs = load_certs(section, &cfg.cert_pem_file)?;
    let key = load_key(section, &cfg.key_pem_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(section, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(section, e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

fn load_certs(
    section: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |why: String| TlsError::Cert {
        section,
        path: path.display().to_string(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn load_key(section: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        section,
        path: path.display().to_string(),
        why: e.to_string(),
    })
}

/// The protocol the TLS handshake agreed on.
pub fn negotiated_h2(conn: &rustls::ServerConnection) -> bool {
    conn.alpn_protocol() == Some(b"h2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_is_none_and_missing_files_name_the_key() {
        assert!(server_config(&TlsConfig::default()).unwrap().is_none());
        let cfg = TlsConfig {
            enabled: true,
            cert_pem_file: "/nonexistent/cert.pem".into(),
            key_pem_file: "/nonexistent/key.pem".into(),
        };
        let e = server_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("http_server.tls.cert_pem_file"), "{e}");
    }
}
