//! The response side of every HTTP streaming transport (HTTP-streaming, SSE and their
//! unidirectional forms): a body stream that writes what the client's outbox yields, drives
//! its timers, and ends with a disconnect push.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use pushwire_core::Client;
use pushwire_protocol::{Disconnect, Push};
use tokio::time::Sleep;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::positions::Positions;
use super::{cors, headers};
use crate::state::AppState;
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;

/// How messages are framed in the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Each JSON message followed by `\n`.
    JsonLines,
    /// Varint-delimited protobuf messages as they are.
    Protobuf,
    /// Each JSON message as an SSE event: `data: <json>\n\n`.
    Sse,
    /// SSE events carrying stream positions as their `id:` (unidirectional SSE).
    SseWithIds,
}

impl Framing {
    /// Bytes written before the first message (SSE starts with `\r\n`).
    fn prefix(self) -> &'static [u8] {
        match self {
            Framing::Sse | Framing::SseWithIds => b"\r\n",
            Framing::JsonLines | Framing::Protobuf => b"",
        }
    }

    /// The response's content type.
    fn content_type(self) -> &'static str {
        match self {
            Framing::JsonLines => "application/json",
            Framing::Protobuf => "application/octet-stream",
            Framing::Sse | Framing::SseWithIds => "text/event-stream; charset=utf-8",
        }
    }

    fn frame(self, messages: &[Bytes], positions: &mut Positions, out: &mut BytesMut) {
        for m in messages {
            match self {
                Framing::SseWithIds => {
                    if let Some(id) = positions.observe(m) {
                        out.put_slice(b"id: ");
                        out.put_slice(id.as_bytes());
                        out.put_u8(b'\n');
                    }
                    out.put_slice(b"data: ");
                    out.put_slice(m);
                    out.put_slice(b"\n\n");
                }
                Framing::JsonLines => {
                    out.put_slice(m);
                    out.put_u8(b'\n');
                }
                Framing::Protobuf => out.put_slice(m),
                Framing::Sse => {
                    out.put_slice(b"data: ");
                    out.put_slice(m);
                    out.put_slice(b"\n\n");
                }
            }
        }
    }
}

/// Closes the client when the response body is dropped (the peer went away).
struct Guard {
    client: Arc<Client>,
    _token: TaskTrackerToken,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.client.disconnect(Disconnect::CONNECTION_CLOSED);
    }
}

/// Releases the session and the client as soon as the client is closed for any reason (slow,
/// shutdown, API disconnect, peer gone), even while a full socket keeps the body from being
/// polled.
fn release_on_close(client: Arc<Client>, emulated: bool) {
    let node = client.node().clone();
    node.spawn(async move {
        client.outbox().wait_closed().await;
        if emulated {
            client.node().sessions().remove(client.session());
        }
        client.cleanup().await;
    });
}

struct State {
    guard: Guard,
    sleep: Pin<Box<Sleep>>,
    framing: Framing,
    positions: Positions,
    done: bool,
}

/// The streaming response of a connection: never-cached headers, CORS for the request's
/// origin, and [`body`]. Emulated sessions are registered for `/emulation` until the client
/// closes.
pub fn response(
    client: Arc<Client>,
    framing: Framing,
    state: &AppState,
    request: &HeaderMap,
) -> Response {
    let emulated = client.transport().emulated();
    if emulated {
        client.node().sessions().insert(client.clone());
    }
    let body = body(client, framing, emulated, state.tracker.token());
    let mut response = Response::new(Body::from_stream(body));
    headers::no_cache(&mut response, framing.content_type());
    cors::decorate(request, response)
}

/// The body stream of a streaming connection; SSE framings start with `\r\n`.
/// With `emulated`, the client's session is removed from the node's sessions once the client
/// closes.
pub fn body(
    client: Arc<Client>,
    framing: Framing,
    emulated: bool,
    token: TaskTrackerToken,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let sleep = Box::pin(tokio::time::sleep_until(client.next_deadline()));
    release_on_close(client.clone(), emulated);
    let state = State {
        guard: Guard {
            client,
            _token: token,
        },
        sleep,
        framing,
        positions: Positions::default(),
        done: false,
    };
    let prefix = framing.prefix();
    let first =
        futures_util::stream::iter((!prefix.is_empty()).then(|| Ok(Bytes::from_static(prefix))));
    let rest = futures_util::stream::unfold(state, |mut st| async move {
        let chunk = next_chunk(&mut st).await?;
        Some((Ok(chunk), st))
    });
    futures_util::StreamExt::chain(first, rest)
}

async fn next_chunk(st: &mut State) -> Option<Bytes> {
    if st.done {
        return None;
    }
    let client = st.guard.client.clone();
    let shutdown = client.node().shutdown_token().clone();
    st.sleep.as_mut().reset(client.next_deadline());
    loop {
        tokio::select! {
            drained = client.outbox().drain() => {
                let sent = pushwire_core::metrics::Delivered::of(&drained.messages, drained.stamp);
                client.delivered(sent);
                if !drained.shed.is_empty() {
                    Box::pin(client.release_shed(&drained.shed)).await;
                }
                let mut out = BytesMut::new();
                st.framing.frame(&drained.messages, &mut st.positions, &mut out);
                if let Some(d) = drained.disconnect {
                    st.done = true;
                    if d.code != Disconnect::CONNECTION_CLOSED.code {
                        let push = Push { disconnect: Some(d), ..Default::default() };
                        if let Ok(b) = client.encoding().push(&push) {
                            st.framing.frame(&[b], &mut st.positions, &mut out);
                        }
                    }
                }
                if out.is_empty() {
                    if st.done {
                        return None;
                    }
                    // Only shed subscriptions were released: their pushes come next.
                    continue;
                }
                return Some(out.freeze());
            }
            _ = &mut st.sleep => {
                if let Err(d) = client.on_timer() {
                    client.disconnect(d);
                }
                st.sleep.as_mut().reset(client.next_deadline());
            }
            _ = shutdown.cancelled(), if !client.is_connected() => {
                client.disconnect(Disconnect::SHUTDOWN);
            }
        }
    }
}
