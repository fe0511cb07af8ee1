//! Client configuration: endpoints, protocol, credentials, timers and queue sizes.
//!
//! Built with [`ClientConfig::new`] and the builder methods, validated once by
//! [`crate::Client::new`] (an invalid value is a [`ClientError::Config`] or
//! [`ClientError::InvalidUrl`] naming the setting).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
pub use pushwire_protocol::Protocol;
use reqwest::Url;

use crate::backoff::Backoff;
use crate::error::{BoxError, ClientError};
use crate::transport::TransportKind;

/// The future a token callback returns.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>>;
/// A token callback: called for the first connect and whenever the server says the token
/// expired (error 109, disconnect 3005) or must be dropped (3014), and before the connection
/// expires when the connect reply says `expires`.
pub type TokenFn = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// One endpoint the client may connect through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Which transport.
    pub kind: TransportKind,
    /// Its URL (`ws://…/connection/websocket`, `http://…/connection/http_stream`,
    /// `http://…/connection/sse`).
    pub url: String,
}

/// Client settings. Defaults: JSON, name `rust`, timeout 5 s, max server ping delay 10 s,
/// backoff 100 ms .. 20 s, event queue 1024, command queue 256.
///
/// ```no_run
/// use std::time::Duration;
/// use pushwire_client::{ClientConfig, Protocol, TransportKind};
///
/// let config = ClientConfig::new("ws://127.0.0.1:8000/connection/websocket")
///     .protocol(Protocol::Protobuf)
///     .token("<jwt>")
///     .fallback(TransportKind::HttpStream, "http://127.0.0.1:8000/connection/http_stream")
///     .max_server_ping_delay(Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    /// Endpoints in order of preference; the first is normally WebSocket.
    pub endpoints: Vec<Endpoint>,
    /// `/emulation` URL for HTTP-streaming and SSE; derived from the first emulated endpoint
    /// (same origin, path `/emulation`) when unset.
    pub emulation_endpoint: Option<String>,
    /// Wire format. SSE carries JSON only.
    pub protocol: Protocol,
    /// A fixed connection token.
    pub token: Option<String>,
    /// A token callback (takes precedence over `token`).
    pub token_fn: Option<TokenFn>,
    /// `ConnectRequest.name`.
    pub name: String,
    /// `ConnectRequest.version`.
    pub version: String,
    /// `ConnectRequest.data` (raw JSON with the JSON protocol).
    pub data: Option<Bytes>,
    /// Reconnect (and resubscribe) delays.
    pub backoff: Backoff,
    /// How long to wait for a transport to open, for the connect reply, for a subscribe reply
    /// and for any call's reply.
    pub timeout: Duration,
    /// Extra time on top of the server's ping interval before the connection is considered
    /// dead (closed with local code 2 "no ping", then reconnected).
    pub max_server_ping_delay: Duration,
    /// Capacity of the event queue.
    pub event_queue_capacity: usize,
    /// Capacity of the queue of calls waiting for the connection task.
    pub command_queue_capacity: usize,
    /// Extra root certificates (PEM) trusted for `wss://` and `https://` endpoints, on top of
    /// the system's (e.g. a private CA, or a self-signed server certificate in development).
    pub tls_root_certificates_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoints", &self.endpoints)
            .field("protocol", &self.protocol)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_fn", &self.token_fn.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A configuration connecting over WebSocket to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_endpoint(TransportKind::Websocket, url)
    }

    /// A configuration whose first endpoint is `kind` at `url`.
    pub fn with_endpoint(kind: TransportKind, url: impl Into<String>) -> Self {
        ClientConfig {
            endpoints: vec![Endpoint {
                kind,
                url: url.into(),
            }],
            emulation_endpoint: None,
            protocol: Protocol::Json,
            token: None,
            token_fn: None,
            name: "rust".into(),
            version: String::new(),
            data: None,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(5),
            max_server_ping_delay: Duration::from_secs(10),
            event_queue_capacity: 1024,
            command_queue_capacity: 256,
            tls_root_certificates_pem: None,
        }
    }

    /// Trusts the certificates in `pem` (one or more PEM blocks) for TLS endpoints, on top of
    /// the system's roots.
    pub fn tls_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificates_pem = Some(pem.into());
        self
    }

    /// Adds a fallback endpoint, tried when the ones before it fail to open.
    pub fn fallback(mut self, kind: TransportKind, url: impl Into<String>) -> Self {
        self.endpoints.push(Endpoint {
            kind,
            url: url.into(),
        });
        self
    }

    /// Sets the `/emulation` URL.
    pub fn emulation_endpoint(mut self, url: impl Into<String>) -> Self {
        self.emulation_endpoint = Some(url.into());
        self
    }

    /// Sets the wire format.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets a fixed connection token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets a token callback.
    ///
    /// ```no_run
    /// use pushwire_client::ClientConfig;
    ///
    /// let config = ClientConfig::new("ws://127.0.0.1:8000/connection/websocket")
    ///     .token_callback(|| async { Ok("<jwt from your backend>".to_string()) });
    /// ```
    pub fn token_callback<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
    {
        self.token_fn = Some(Arc::new(move || Box::pin(f())));
        self
    }

    /// Sets the reconnect backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the timeout of transports, connect, subscribe and calls.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the extra delay allowed on top of the server's ping interval.
    pub fn max_server_ping_delay(mut self, delay: Duration) -> Self {
        self.max_server_ping_delay = delay;
        self
    }

    /// Sets `ConnectRequest.name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks every setting once; the error names the setting.
    pub(crate) fn validate(&self) -> Result<Validated, ClientError> {
        if self.endpoints.is_empty() {
            return Err(config("endpoints", "at least one endpoint is required"));
        }
        if self.timeout.is_zero() {
            return Err(config("timeout", "must be > 0"));
        }
        if self.event_queue_capacity == 0 {
            return Err(config("event_queue_capacity", "must be > 0"));
        }
        if self.command_queue_capacity == 0 {
            return Err(config("command_queue_capacity", "must be > 0"));
        }
        if self.backoff.max_delay < self.backoff.min_delay {
            return Err(config("backoff.max_delay", "must be >= backoff.min_delay"));
        }
        let mut endpoints = Vec::new();
        for e in &self.endpoints {
            let url = parse_url(&e.url, e.kind.scheme())?;
            if e.kind == TransportKind::Sse && self.protocol == Protocol::Protobuf {
                return Err(config("protocol", "SSE carries JSON only"));
            }
            endpoints.push((e.kind, url));
        }
        let emulation = match (
            &self.emulation_endpoint,
            endpoints.iter().find(|e| e.0.emulated()),
        ) {
            (Some(u), _) => Some(parse_url(u, "http")?),
            (None, Some((_, url))) => {
                let mut u = url.clone();
                u.set_path("/emulation");
                u.set_query(None);
                Some(u)
            }
            (None, None) => None,
        };
        if let Some(data) = &self.data
            && self.protocol == Protocol::Json
            && serde_json::from_slice::<&serde_json::value::RawValue>(data).is_err()
        {
            return Err(config(
                "data",
                "must be one JSON value with the JSON protocol",
            ));
        }
        let uses_tls = endpoints
            .iter()
            .map(|(_, u)| u)
            .chain(emulation.as_ref())
            .any(|u| matches!(u.scheme(), "wss" | "https"));
        let tls = if uses_tls || self.tls_root_certificates_pem.is_some() {
            Some(crate::tls::client_config(
                self.tls_root_certificates_pem.as_deref(),
            )?)
        } else {
            None
        };
        Ok(Validated {
            endpoints,
            emulation,
            tls,
        })
    }
}

/// Parsed endpoints.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub endpoints: Vec<(TransportKind, Url)>,
    pub emulation: Option<Url>,
    /// Built when an endpoint uses TLS (or roots were given).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

fn config(key: &'static str, message: &str) -> ClientError {
    ClientError::Config {
        key,
        message: message.into(),
    }
}

fn parse_url(url: &str, scheme: &str) -> Result<Url, ClientError> {
    let bad = |message: String| ClientError::InvalidUrl {
        url: url.into(),
        message,
    };
    let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
    // `ws`/`wss` for WebSocket, `http`/`https` for the HTTP transports.
    if parsed.scheme() != scheme && parsed.scheme() != format!("{scheme}s") {
        return Err(bad(format!(
            "scheme must be `{scheme}` or `{scheme}s`, got `{}`",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_typed_errors() {
        for url in [
            "",
            "not a url",
            "http://x/connection/websocket",
            "https://h/x",
            "ws://",
        ] {
            match ClientConfig::new(url).validate() {
                Err(ClientError::InvalidUrl { .. }) => {}
                other => panic!("{url}: {other:?}"),
            }
        }
        let ok = ClientConfig::new("ws://127.0.0.1:1/connection/websocket")
            .fallback(TransportKind::Sse, "http://127.0.0.1:1/connection/sse")
            .validate()
            .unwrap();
        assert_eq!(
            ok.emulation.unwrap().as_str(),
            "http://127.0.0.1:1/emulation"
        );
    }

    #[test]
    fn settings_are_named() {
        let c = ClientConfig::new("ws://h/x").timeout(Duration::ZERO);
        assert!(matches!(
            c.validate(),
            Err(ClientError::Config { key: "timeout", .. })
        ));
        let c = ClientConfig::new("ws://h/x")
            .protocol(Protocol::Protobuf)
            .fallback(TransportKind::Sse, "http://h/connection/sse");
        assert!(matches!(
            c.validate(),
            Err(ClientError::Config {
                key: "protocol",
                ..
            })
        ));
    }
}
