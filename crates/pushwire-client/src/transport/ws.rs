//! Bidirectional WebSocket: subprotocol `centrifuge-protobuf` for protobuf (binary frames),
//! none for JSON (text frames). The server's disconnect arrives as the close frame's code.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pushwire_protocol::Protocol;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Incoming, OpenParams};
use crate::codec;
use crate::error::ClientError;

const NAME: &str = "websocket";

/// An open WebSocket.
pub(crate) struct WsTransport {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    protocol: Protocol,
}

impl WsTransport {
    /// Handshake, then the connect frame.
    pub(crate) async fn open(p: &OpenParams<'_>) -> Result<WsTransport, ClientError> {
        let mut req = p
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::transport(NAME, e))?;
        if p.protocol == Protocol::Protobuf {
            req.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("centrifuge-protobuf"),
            );
        }
        let connector = p
            .tls
            .map(|c| tokio_tungstenite::Connector::Rustls(c.clone()));
        let (ws, _resp) =
            tokio_tungstenite::connect_async_tls_with_config(req, None, false, connector)
                .await
                .map_err(|e| ClientError::transport(NAME, e))?;
        let mut t = WsTransport {
            ws,
            protocol: p.protocol,
        };
        t.send(p.connect_frame.clone()).await?;
        Ok(t)
    }

    /// The next frame's replies, or the close code.
    pub(crate) async fn next(&mut self) -> Result<Incoming, ClientError> {
        loop {
            let msg = match self.ws.next().await {
                None => return Ok(closed(1006, "connection lost")),
                Some(Err(e)) => return Err(ClientError::transport(NAME, e)),
                Some(Ok(m)) => m,
            };
            let replies = match msg {
                Message::Text(t) => codec::decode_frame(self.protocol, t.as_bytes())?,
                Message::Binary(b) => codec::decode_frame(self.protocol, &b)?,
                Message::Close(Some(f)) => {
                    return Ok(closed(u16::from(f.code).into(), f.reason.as_str()))
                }
                Message::Close(None) => return Ok(closed(1005, "closed without a code")),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            return Ok(Incoming::Replies(replies));
        }
    }

    /// Sends one frame: text for JSON, binary for protobuf.
    pub(crate) async fn send(&mut self, frame: Bytes) -> Result<(), ClientError> {
        let msg = match self.protocol {
            Protocol::Json => Message::Text(
                Utf8Bytes::try_from(frame).map_err(|e| ClientError::InvalidData(e.to_string()))?,
            ),
            Protocol::Protobuf => Message::Binary(frame),
        };
        self.ws
            .send(msg)
            .await
            .map_err(|e| ClientError::transport(NAME, e))
    }

    /// Sends close 1000 and waits briefly for the server's answer.
    pub(crate) async fn close(mut self) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: Utf8Bytes::from_static("client closed"),
        };
        if self.ws.send(Message::Close(Some(frame))).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(Ok(_)) = self.ws.next().await {}
            })
            .await;
        }
    }
}

fn closed(code: u32, reason: &str) -> Incoming {
    Incoming::Closed {
        code,
        reason: reason.to_owned(),
    }
}
