//! Transports: how frames reach the server and replies come back.
//!
//! - [`ws`]: bidirectional WebSocket (text frames for JSON, binary for protobuf).
//! - [`http_stream`]: `POST /connection/http_stream`; replies stream back in the body.
//! - [`sse`]: `GET /connection/sse?cf_connect=…`; replies arrive as SSE `data:` events.
//! - [`emulation`]: the `/emulation` POSTs that carry later commands for the two above.
//!
//! Every transport is opened with the encoded connect command, yields decoded replies from
//! [`Transport::next`] (cancel-safe: partial input stays buffered in the transport), and takes
//! later frames through [`Transport::send`].

pub(crate) mod emulation;
pub(crate) mod http_stream;
pub(crate) mod sse;
pub(crate) mod ws;

use std::time::Duration;

use bytes::Bytes;
use pushwire_protocol::{Protocol, Reply};
use reqwest::Url;

use crate::error::ClientError;

/// The transports the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Bidirectional WebSocket (`ws://…/connection/websocket`).
    Websocket,
    /// HTTP-streaming emulation (`http://…/connection/http_stream` + `/emulation`).
    HttpStream,
    /// SSE emulation (`http://…/connection/sse` + `/emulation`); JSON only.
    Sse,
}

impl TransportKind {
    /// `websocket`, `http_stream` or `sse`: the server's name for the same transport.
    pub fn name(self) -> &'static str {
        self.wire().name()
    }

    /// The protocol's transport kind this one is (so names cannot drift from the server's).
    pub fn wire(self) -> pushwire_protocol::TransportKind {
        match self {
            TransportKind::Websocket => pushwire_protocol::TransportKind::WebSocket,
            TransportKind::HttpStream => pushwire_protocol::TransportKind::HttpStream,
            TransportKind::Sse => pushwire_protocol::TransportKind::Sse,
        }
    }

    /// The URL scheme the endpoint must use.
    pub(crate) fn scheme(self) -> &'static str {
        match self {
            TransportKind::Websocket => "ws",
            TransportKind::HttpStream | TransportKind::Sse => "http",
        }
    }

    /// Whether later commands go through `/emulation`.
    pub(crate) fn emulated(self) -> bool {
        self.wire().is_emulated()
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one read produced.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// Replies, pushes and pings, in order.
    Replies(Vec<Reply>),
    /// The transport closed: the WebSocket close code (1006 when the connection just
    /// dropped) or 1006 for an HTTP stream that ended.
    Closed { code: u32, reason: String },
}

/// Everything needed to open a transport.
pub(crate) struct OpenParams<'a> {
    pub kind: TransportKind,
    pub url: &'a Url,
    pub emulation: Option<&'a Url>,
    pub protocol: Protocol,
    pub connect_frame: Bytes,
    pub http: &'a reqwest::Client,
    /// For `wss://` (the HTTP client carries its own copy).
    pub tls: Option<&'a std::sync::Arc<rustls::ClientConfig>>,
    pub timeout: Duration,
}

/// An open transport.
pub(crate) enum Transport {
    // Both boxed: one allocation per connection, and the enum stays a pointer wide whatever
    // the TLS stream adds to the WebSocket.
    Ws(Box<ws::WsTransport>),
    Emulated(Box<emulation::EmulatedTransport>),
}

impl Transport {
    /// Opens the transport and sends the connect command through it.
    pub(crate) async fn open(p: OpenParams<'_>) -> Result<Transport, ClientError> {
        let opened = tokio::time::timeout(p.timeout, async {
            match p.kind {
                TransportKind::Websocket => ws::WsTransport::open(&p)
                    .await
                    .map(|t| Transport::Ws(Box::new(t))),
                TransportKind::HttpStream => http_stream::open(&p)
                    .await
                    .map(|t| Transport::Emulated(Box::new(t))),
                TransportKind::Sse => sse::open(&p)
                    .await
                    .map(|t| Transport::Emulated(Box::new(t))),
            }
        })
        .await;
        match opened {
            Ok(r) => r,
            Err(_) => Err(ClientError::transport(p.kind.name(), "open timed out")),
        }
    }

    /// The next replies, or the close. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Result<Incoming, ClientError> {
        match self {
            Transport::Ws(t) => t.next().await,
            Transport::Emulated(t) => t.next().await,
        }
    }

    /// Sends one frame of commands.
    pub(crate) async fn send(&mut self, frame: Bytes) -> Result<(), ClientError> {
        match self {
            Transport::Ws(t) => t.send(frame).await,
            Transport::Emulated(t) => t.send(frame).await,
        }
    }

    /// Records the emulation session from the connect reply (no-op for WebSocket).
    pub(crate) fn set_session(&mut self, session: &str, node: &str) {
        if let Transport::Emulated(t) = self {
            t.set_session(session, node);
        }
    }

    /// Closes cleanly (WebSocket close 1000; HTTP: drop the stream).
    pub(crate) async fn close(self) {
        match self {
            Transport::Ws(t) => t.close().await,
            Transport::Emulated(t) => drop(t),
        }
    }

    /// Which transport this is.
    pub(crate) fn kind(&self) -> TransportKind {
        match self {
            Transport::Ws(_) => TransportKind::Websocket,
            Transport::Emulated(t) => t.kind(),
        }
    }
}
