//! SSE: `GET /connection/sse?cf_connect=<the connect command as JSON>`; each reply is one
//! `data:` event. JSON only (the configuration refuses SSE with protobuf).

use super::emulation::{check_status, EmulatedTransport, Framing};
use super::{OpenParams, TransportKind};
use crate::error::ClientError;

/// Opens the event stream; the connect reply is its first event.
pub(crate) async fn open(p: &OpenParams<'_>) -> Result<EmulatedTransport, ClientError> {
    let kind = TransportKind::Sse;
    let emulation = p
        .emulation
        .cloned()
        .ok_or_else(|| ClientError::transport(kind.name(), "no emulation endpoint"))?;
    let connect = std::str::from_utf8(&p.connect_frame)
        .map_err(|e| ClientError::transport(kind.name(), e))?;
    let mut url = p.url.clone();
    url.query_pairs_mut().append_pair("cf_connect", connect);
    let resp = p
        .http
        .get(url)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| ClientError::transport(kind.name(), e))?;
    let resp = check_status(kind, resp)?;
    Ok(EmulatedTransport::new(
        kind,
        resp,
        Framing::Sse,
        p.protocol,
        p.http.clone(),
        emulation,
        p.timeout,
    ))
}
