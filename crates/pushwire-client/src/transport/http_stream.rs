//! HTTP-streaming: `POST /connection/http_stream` with the connect command as the body
//! (`application/json`, or `application/octet-stream` for protobuf); the response body streams
//! JSON lines or varint-delimited protobuf replies.

use super::emulation::{check_status, EmulatedTransport, Framing};
use super::{OpenParams, TransportKind};
use crate::error::ClientError;
use pushwire_protocol::Protocol;

/// Opens the stream; the connect reply is the first thing it yields.
pub(crate) async fn open(p: &OpenParams<'_>) -> Result<EmulatedTransport, ClientError> {
    let kind = TransportKind::HttpStream;
    let emulation = p
        .emulation
        .cloned()
        .ok_or_else(|| ClientError::transport(kind.name(), "no emulation endpoint"))?;
    let (content_type, framing) = match p.protocol {
        Protocol::Json => ("application/json", Framing::JsonLines),
        Protocol::Protobuf => ("application/octet-stream", Framing::Protobuf),
    };
    let resp = p
        .http
        .post(p.url.clone())
        .header("Content-Type", content_type)
        .header("Accept", content_type)
        .body(p.connect_frame.clone())
        .send()
        .await
        .map_err(|e| ClientError::transport(kind.name(), e))?;
    let resp = check_status(kind, resp)?;
    Ok(EmulatedTransport::new(
        kind,
        resp,
        framing,
        p.protocol,
        p.http.clone(),
        emulation,
        p.timeout,
    ))
}
