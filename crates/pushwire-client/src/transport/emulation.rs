//! The shared half of HTTP-streaming and SSE: a response body that yields replies (parsed by
//! the transport's [`Framing`]) and `/emulation` POSTs for every later command.
//!
//! `/emulation` bodies: JSON `{"session","node","data":"<newline-joined commands>"}`, or a
//! protobuf `EmulationRequest` with `Content-Type: application/octet-stream`. 204 is success;
//! anything else (404 unknown node, 5xx) breaks the session and the client reconnects.

use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use pushwire_protocol::prost::Message as _;
use pushwire_protocol::{pb, Protocol, Reply};
use reqwest::Url;

use super::{Incoming, TransportKind};
use crate::codec;
use crate::error::ClientError;

/// Largest reply the client buffers from a stream (16 MiB); more is a protocol error.
const MAX_BUFFERED: usize = 16 << 20;

/// How replies are framed in the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// One JSON reply per line.
    JsonLines,
    /// Varint-delimited protobuf replies.
    Protobuf,
    /// SSE events whose `data:` is one JSON reply.
    Sse,
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An emulated session: the stream and where to POST commands.
pub(crate) struct EmulatedTransport {
    kind: TransportKind,
    body: Body,
    buf: BytesMut,
    framing: Framing,
    protocol: Protocol,
    http: reqwest::Client,
    emulation: Url,
    session: String,
    node: String,
    /// SSE: the `data:` lines of the event being read.
    sse_data: Vec<u8>,
    /// Deadline of each `/emulation` POST.
    timeout: std::time::Duration,
}

impl EmulatedTransport {
    /// Wraps an open streaming response.
    pub(crate) fn new(
        kind: TransportKind,
        resp: reqwest::Response,
        framing: Framing,
        protocol: Protocol,
        http: reqwest::Client,
        emulation: Url,
        timeout: std::time::Duration,
    ) -> Self {
        EmulatedTransport {
            kind,
            body: Box::pin(resp.bytes_stream()),
            buf: BytesMut::new(),
            framing,
            protocol,
            http,
            emulation,
            session: String::new(),
            node: String::new(),
            sse_data: Vec::new(),
            timeout,
        }
    }

    pub(crate) fn kind(&self) -> TransportKind {
        self.kind
    }

    pub(crate) fn set_session(&mut self, session: &str, node: &str) {
        self.session = session.to_owned();
        self.node = node.to_owned();
    }

    /// The next replies from the stream; `Closed` when it ends. Cancel-safe: bytes are only
    /// appended to the buffer after a chunk has arrived.
    pub(crate) async fn next(&mut self) -> Result<Incoming, ClientError> {
        loop {
            let replies = self.parse_buffered()?;
            if !replies.is_empty() {
                return Ok(Incoming::Replies(replies));
            }
            if self.buf.len() > MAX_BUFFERED {
                return Err(ClientError::Protocol("reply too large".into()));
            }
            match self.body.next().await {
                None => {
                    return Ok(Incoming::Closed {
                        code: 1006,
                        reason: "stream ended".into(),
                    })
                }
                Some(Err(e)) => return Err(ClientError::transport(self.kind.name(), e)),
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
            }
        }
    }

    fn parse_buffered(&mut self) -> Result<Vec<Reply>, ClientError> {
        let mut out = Vec::new();
        match self.framing {
            Framing::JsonLines => {
                while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                    let line = self.buf.split_to(pos + 1);
                    let line = &line[..pos];
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        out.push(codec::decode_json(line)?);
                    }
                }
            }
            Framing::Protobuf => {
                while let Some((msg, used)) = codec::take_delimited(&self.buf)? {
                    out.push(codec::decode_pb(msg)?);
                    self.buf.advance(used);
                }
            }
            Framing::Sse => {
                while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                    let raw = self.buf.split_to(pos + 1);
                    let mut line = &raw[..pos];
                    if let [rest @ .., b'\r'] = line {
                        line = rest;
                    }
                    if line.is_empty() {
                        if !self.sse_data.is_empty() {
                            let data = std::mem::take(&mut self.sse_data);
                            out.push(codec::decode_json(&data)?);
                        }
                    } else if let Some(d) = line.strip_prefix(b"data:") {
                        let d = d.strip_prefix(b" ").unwrap_or(d);
                        if !self.sse_data.is_empty() {
                            self.sse_data.push(b'\n');
                        }
                        self.sse_data.extend_from_slice(d);
                    }
                    // `event:`, `id:`, `retry:` and comments carry nothing for this transport.
                }
            }
        }
        Ok(out)
    }

    /// POSTs one frame of commands to `/emulation`.
    pub(crate) async fn send(&mut self, frame: Bytes) -> Result<(), ClientError> {
        let req = self.http.post(self.emulation.clone()).timeout(self.timeout);
        let req = match self.protocol {
            Protocol::Json => {
                let data = String::from_utf8(frame.to_vec())
                    .map_err(|e| ClientError::InvalidData(e.to_string()))?;
                let body = serde_json::json!({
                    "session": self.session,
                    "node": self.node,
                    "data": data,
                });
                req.header("Content-Type", "application/json")
                    .body(body.to_string())
            }
            Protocol::Protobuf => {
                let body = pb::EmulationRequest {
                    node: self.node.clone(),
                    session: self.session.clone(),
                    data: frame,
                };
                req.header("Content-Type", "application/octet-stream")
                    .body(body.encode_to_vec())
            }
        };
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::transport(self.kind.name(), e))?;
        if resp.status().as_u16() != 204 && !resp.status().is_success() {
            return Err(ClientError::transport(
                self.kind.name(),
                format!("/emulation answered {}", resp.status()),
            ));
        }
        Ok(())
    }
}

/// Checks a stream response's status: 200 is required.
pub(crate) fn check_status(
    kind: TransportKind,
    resp: reqwest::Response,
) -> Result<reqwest::Response, ClientError> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(ClientError::transport(
            kind.name(),
            format!("HTTP status {}", resp.status()),
        ))
    }
}
