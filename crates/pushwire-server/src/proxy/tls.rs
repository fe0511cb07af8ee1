//! TLS to proxy backends (`http.tls`, `grpc.tls`): one rustls client configuration (*ring*)
//! from the definition's PEM values, used by the HTTP client for `https://` endpoints and by
//! the gRPC channel's connector ([`TlsConnector`]) for `grpc://` endpoints.
//!
//! Roots are `server_ca_pem` when set, else the system's. `server_name` replaces the
//! endpoint's host when the backend's certificate is checked (and is the gRPC SNI);
//! `insecure_skip_verify` accepts any certificate (handshake signatures are still checked).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use hyper_util::rt::TokioIo;
use pushwire_core::config::ProxyTlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;

/// Why a TLS client configuration could not be built; names the key (relative to the proxy).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {why}")]
pub struct TlsSetupError {
    /// `http.tls.server_ca_pem`, `grpc.tls.key_pem`, …
    pub key: String,
    /// What went wrong.
    pub why: String,
}

/// The client configuration for `cfg` (under `section`: `http.tls` or `grpc.tls`), offering
/// the ALPN protocols `alpn`.
pub fn client_config(
    section: &str,
    cfg: &ProxyTlsConfig,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let err = |field: &str, why: String| TlsSetupError {
        key: format!("{section}.{field}"),
        why,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = if cfg.insecure_skip_verify {
        Arc::new(AnyCertificate(provider.clone()))
    } else {
        let mut roots = RootCertStore::empty();
        if cfg.server_ca_pem.is_empty() {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        } else {
            let certs = certificates(&cfg.server_ca_pem).map_err(|w| err("server_ca_pem", w))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(err("server_ca_pem", "no usable certificate".into()));
            }
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| err("server_ca_pem", e.to_string()))?;
        if cfg.server_name.is_empty() {
            webpki
        } else {
            let name = ServerName::try_from(cfg.server_name.clone())
                .map_err(|e| err("server_name", e.to_string()))?;
            Arc::new(NamedVerifier {
                inner: webpki,
                name,
            })
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("enabled", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = if cfg.cert_pem.is_empty() {
        builder.with_no_client_auth()
    } else {
        let certs = certificates(&cfg.cert_pem).map_err(|w| err("cert_pem", w))?;
        let key = private_key(&cfg.key_pem).map_err(|w| err("key_pem", w))?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| err("key_pem", e.to_string()))?
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The PEM text of a value: itself (it starts with `-----BEGIN`), the file it names, or its
/// base64 decoding.
fn pem_text(value: &str) -> Result<Vec<u8>, String> {
    let trimmed = value.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.as_bytes().to_vec());
    }
    if std::path::Path::new(trimmed).is_file() {
        return std::fs::read(trimmed).map_err(|e| format!("{trimmed}: {e}"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .map_err(|_| "neither PEM text, a readable file nor base64 PEM".to_owned())
}

fn certificates(value: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = pem_text(value)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(certs)
}

fn private_key(value: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(&pem_text(value)?).map_err(|e| e.to_string())
}

/// Verifies against a configured name instead of the endpoint's host.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate, any name.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects a gRPC channel over TLS: TCP to the URI's host and port, then the handshake with
/// SNI = `server_name` (else the host).
#[derive(Debug, Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl TlsConnector {
    /// A connector for `cfg` (`grpc.tls`), offering ALPN `h2`.
    pub fn new(cfg: &ProxyTlsConfig) -> Result<Self, TlsSetupError> {
        let config = client_config("grpc.tls", cfg, &[b"h2"])?;
        let server_name = (!cfg.server_name.is_empty())
            .then(|| ServerName::try_from(cfg.server_name.clone()).ok())
            .flatten();
        Ok(TlsConnector {
            config,
            server_name,
        })
    }
}

type Connecting = Pin<
    Box<
        dyn Future<
                Output = Result<
                    TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
                    std::io::Error,
                >,
            > + Send,
    >,
>;

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.config.clone();
        let configured = self.server_name.clone();
        Box::pin(async move {
            let invalid =
                |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
            let host = uri
                .host()
                .ok_or_else(|| invalid("endpoint has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = match configured {
                Some(name) => name,
                None => ServerName::try_from(host).map_err(|_| invalid("bad server name"))?,
            };
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_values_and_errors_name_the_key() {
        let cfg = ProxyTlsConfig {
            enabled: true,
            server_ca_pem: "/nonexistent/ca.pem".into(),
            ..Default::default()
        };
        let e = client_config("http.tls", &cfg, &[]).unwrap_err();
        assert_eq!(e.key, "http.tls.server_ca_pem");
        let cfg = ProxyTlsConfig {
            enabled: true,
            server_name: "bad name!".into(),
            insecure_skip_verify: false,
            server_ca_pem: String::new(),
            ..Default::default()
        };
        assert_eq!(
            client_config("grpc.tls", &cfg, &[]).unwrap_err().key,
            "grpc.tls.server_name"
        );
        let skip = ProxyTlsConfig {
            enabled: true,
            insecure_skip_verify: true,
            ..Default::default()
        };
        let c = client_config("grpc.tls", &skip, &[b"h2"]).expect("skip verify");
        assert_eq!(c.alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(
            pem_text("LS0tLS1CRUdJTg==").expect("base64"),
            b"-----BEGIN".to_vec()
        );
    }
}
