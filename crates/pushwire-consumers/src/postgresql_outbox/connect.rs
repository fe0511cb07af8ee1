//! Connecting to PostgreSQL, in plain text or over TLS.
//!
//! TLS is used when the DSN says `sslmode=require` or `tls_ca_pem_file` is set. The server's
//! certificate is always verified (rustls, ring) against the system's roots plus
//! `tls_ca_pem_file`, and must name the DSN's host: stricter than libpq's `require`, which
//! encrypts without verifying. Otherwise (`disable`, or the default `prefer`) the connection is
//! plain text, as before.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, NoTls};

use super::PostgresOutboxSettings;
use crate::error::ConsumerError;

/// A connected client, the task driving its socket, and the wake-up its notifications ring.
pub(crate) struct Connected {
    pub client: Client,
    pub driver: JoinHandle<()>,
    pub wake: Arc<Notify>,
}

/// Connects within `timeout`, over TLS when asked (see the module docs).
pub(crate) async fn connect(
    s: &PostgresOutboxSettings,
    timeout: Duration,
) -> Result<Connected, ConsumerError> {
    let config: Config = s
        .dsn
        .parse()
        .map_err(|e| ConsumerError::config("postgresql_outbox.dsn", format!("{e}")))?;
    let tls = wants_tls(&config, &s.tls_ca_pem_file);
    let timed_out = || ConsumerError::Connection("connect: timed out".into());
    let failed = |e: tokio_postgres::Error| ConsumerError::Connection(e.to_string());
    if tls {
        let mut config = config;
        config.ssl_mode(SslMode::Require);
        let connector = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(
            "postgresql_outbox.tls_ca_pem_file",
            &s.tls_ca_pem_file,
        )?);
        let (client, connection) = tokio::time::timeout(timeout, config.connect(connector))
            .await
            .map_err(|_| timed_out())?
            .map_err(failed)?;
        Ok(drive(client, connection))
    } else {
        let (client, connection) = tokio::time::timeout(timeout, config.connect(NoTls))
            .await
            .map_err(|_| timed_out())?
            .map_err(failed)?;
        Ok(drive(client, connection))
    }
}

/// Spawns the task that drives the socket and turns notifications into wake-ups.
fn drive<S, T>(client: Client, mut connection: Connection<S, T>) -> Connected
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let wake = Arc::new(Notify::new());
    let notify = wake.clone();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => notify.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "postgresql connection ended");
                    break;
                }
                None => break,
            }
        }
    });
    Connected {
        client,
        driver,
        wake,
    }
}

/// Whether a connection with this DSN and CA file is encrypted (see the module docs).
pub(crate) fn wants_tls(config: &Config, tls_ca_pem_file: &str) -> bool {
    config.get_ssl_mode() == SslMode::Require || !tls_ca_pem_file.is_empty()
}

/// System roots plus `tls_ca_pem_file` (`key` names it in errors); the server's certificate
/// is verified and must name the host.
pub(crate) fn client_config(
    key: &str,
    tls_ca_pem_file: &str,
) -> Result<rustls::ClientConfig, ConsumerError> {
    let bad = |m: String| ConsumerError::config(key, m);
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if !tls_ca_pem_file.is_empty() {
        let certs = CertificateDer::pem_file_iter(tls_ca_pem_file)
            .map_err(|e| bad(format!("{tls_ca_pem_file}: {e}")))?;
        for cert in certs {
            let cert = cert.map_err(|e| bad(format!("{tls_ca_pem_file}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("{tls_ca_pem_file}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
