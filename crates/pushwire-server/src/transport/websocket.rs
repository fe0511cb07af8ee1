//! WebSocket: bidirectional at `/connection/websocket`, unidirectional at
//! `/connection/uni_websocket`.
//!
//! One task per connection drives reading, writing and timers with `select!`: no second task,
//! no channel between them. Everything queued in the outbox is written as one frame
//! (newline-joined JSON, concatenated protobuf). Disconnects travel as close frames with the
//! code and reason; the unidirectional form sends a bare disconnect push first. A
//! unidirectional client sends its ConnectRequest as the first message (or in the
//! `cf_connect` query) and nothing after that counts.
//!
//! permessage-deflate (`websocket.compression`): negotiated in [`super::ws_upgrade`] when the
//! client offers it; outgoing messages of at least `websocket.compression_min_size` bytes are
//! deflated here (and sent plain when that would not make them smaller); the client's
//! compressed messages are inflated beneath tungstenite by [`DeflateStream`], bounded by
//! `websocket.decompressed_message_size_limit` (1009 past it, 1007 for corrupt data).

use std::sync::Arc;

use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::future::OptionFuture;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use pushwire_core::outbox::Drained;
use pushwire_core::{Client, TransportKind};
use pushwire_deflate::{codec, DeflateError, DeflateStream, Limits};
use pushwire_protocol::{frame::join_into, Disconnect, Protocol};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::admit;
use super::ws_socket::{data_header, WsSocket, MAX_HEADER};
use super::ws_upgrade::Upgrade;
use crate::config::ServerConfig;
use crate::state::AppState;

const SUBPROTOCOLS: [&str; 2] = ["centrifuge-json", "centrifuge-protobuf"];

/// A server WebSocket over hyper's upgraded connection, with the permessage-deflate layer.
type WebSocket = WsSocket<DeflateStream<TokioIo<Upgraded>>>;

/// Query parameters of the WebSocket endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct WsQuery {
    /// `protobuf` selects the protobuf protocol.
    format: Option<String>,
    /// `protobuf` selects the protobuf protocol.
    cf_protocol: Option<String>,
    /// Unidirectional only: the ConnectRequest as JSON.
    cf_connect: Option<String>,
}

/// Bidirectional or unidirectional.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bidi,
    Uni,
}

/// `GET /connection/websocket`: origin check, protocol selection, buffer sizes.
pub async fn handler(state: State<AppState>, query: Query<WsQuery>, req: Request) -> Response {
    upgrade(state, query, req, Mode::Bidi)
}

/// `GET /connection/uni_websocket` (JSON only).
pub async fn uni_handler(state: State<AppState>, query: Query<WsQuery>, req: Request) -> Response {
    upgrade(state, query, req, Mode::Uni)
}

fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    mut req: Request,
    mode: Mode,
) -> Response {
    let on_upgrade = req.extensions_mut().remove::<OnUpgrade>();
    let headers = req.headers();
    let cfg = &state.config.websocket;
    let up = match Upgrade::check(
        req.method(),
        headers,
        on_upgrade,
        &SUBPROTOCOLS,
        cfg.compression,
    ) {
        Ok(up) => up,
        Err(response) => return response,
    };
    if let Err(r) = admit::origin(&state, headers) {
        return r;
    }
    if let Err(r) = admit::accepting(&state) {
        return r.into_response();
    }
    let by_query = [query.format.as_deref(), query.cf_protocol.as_deref()]
        .into_iter()
        .any(|v| v == Some("protobuf"));
    let protocol = if mode == Mode::Bidi && (by_query || up.protocol == Some("centrifuge-protobuf"))
    {
        Protocol::Protobuf
    } else {
        Protocol::Json
    };
    let kept = super::forward::kept(&state.node, headers);
    let limits = Limits {
        wire: cfg.message_size_limit,
        inflated: cfg.decompressed_limit(),
    };
    // tungstenite sees inflated messages: with compression its bound is the inflated one,
    // and the layer beneath it holds every message's wire bytes to message_size_limit.
    let max_message = if up.deflate {
        limits.inflated.max(limits.wire)
    } else {
        limits.wire
    };
    // tungstenite writes only control frames (pong, close); data frames bypass it
    // (`WsSocket::poll_write_frames`).
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(cfg.read_buffer_size)
        .write_buffer_size(cfg.write_buffer_size)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let response = up.response();
    let Upgrade {
        on_upgrade,
        deflate,
        ..
    } = up;
    // The handshake in a task of its own, and the connection in another, so the upgrade
    // machinery (and its task) is freed once the handshake is done instead of living as long
    // as the connection.
    let tracker = state.tracker.clone();
    tracker.spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = TokioIo::new(upgraded);
        let stream = if deflate {
            DeflateStream::negotiated(io, true, limits)
        } else {
            DeflateStream::plain(io)
        };
        let socket = WsSocket::new(stream, ws_config);
        if deflate {
            pushwire_core::metrics::Metrics::add(&state.node.metrics().websocket_compressed, 1);
        }
        let kind = match mode {
            Mode::Bidi => TransportKind::WebSocket,
            Mode::Uni => TransportKind::UniWebSocket,
        };
        let client = admit::build(&state, kind, protocol, &kept);
        // The connection task gets only what it needs: everything it captures stays in every
        // idle connection.
        let fut = serve(
            socket,
            client,
            state.config.clone(),
            query.cf_connect.map(Box::new),
        );
        state.tracker.spawn(fut);
    });
    response
}

/// The connection task. A plain fn returning an `async move` block: the block uses its
/// captures in place, where an `async fn` would also copy every argument into a local (the
/// socket alone is 368 bytes), and that copy would live in every idle connection. For the
/// same reason it captures no more than it needs (the client, the configuration, and the
/// `cf_connect` query boxed to one word): captures stay in the task for its whole life.
// `Box<String>`: one word in the task instead of three; the box exists only for the rare
// `cf_connect` query.
#[allow(clippy::manual_async_fn, clippy::box_collection)]
fn serve(
    mut socket: WebSocket,
    client: Arc<Client>,
    config: Arc<ServerConfig>,
    cf_connect: Option<Box<String>>,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        if let Some(c) = cf_connect {
            Box::pin(uni_connect(&client, c.as_bytes())).await;
        }
        let outcome = drive(&mut socket, &client, &config).await;
        // Release subscriptions, presence and the registry entry before the (possibly slow)
        // close handshake.
        let pending = client.outbox().try_drain().messages;
        // The close reason, for the disconnect metrics and log (first reason wins).
        match &outcome {
            Outcome::Close(d) | Outcome::Interrupted(d, _) => client.disconnect(d.clone()),
            Outcome::Refused(code, reason) => client.disconnect(Disconnect {
                code: u32::from(*code),
                reason: (*reason).into(),
            }),
            Outcome::Gone => {}
        }
        Box::pin(client.cleanup()).await;
        Box::pin(finish(&mut socket, &client, outcome, pending, &config)).await;
    }
}

/// How the connection loop ended.
enum Outcome {
    /// The peer went away or the socket failed; nothing more to write.
    Gone,
    /// The server closes with this disconnect.
    Close(Disconnect),
    /// The server closes with this disconnect while a write was part-way through its frames:
    /// the rest of them goes out first, so the peer reads whole frames and then the close
    /// frame (a close frame after half a data frame would read as garbage, then 1006).
    Interrupted(Disconnect, Box<Unsent>),
    /// The peer sent a message the server refuses: too big (1009), compressed data that does
    /// not inflate (1007), frames breaking permessage-deflate's rules (1002).
    Refused(u16, &'static str),
}

/// Data frames a write had started: `frames[written..]` is still to go.
struct Unsent {
    frames: Vec<u8>,
    written: usize,
}

/// How a read error ends the connection.
fn read_failure(e: &WsError) -> Outcome {
    match e {
        WsError::Capacity(_) => {
            Outcome::Refused(CloseCode::Size.into(), "message size limit exceeded")
        }
        WsError::Io(io) => match DeflateError::of(io) {
            Some(d) => Outcome::Refused(d.close_code(), d.reason()),
            None => Outcome::Gone,
        },
        _ => Outcome::Gone,
    }
}

/// The read/write/timer loop. Everything it holds while waiting sits in every idle
/// connection, so it keeps little: no copy of the outbox handle or of the shutdown token, no
/// buffer between writes, the deadline only inside the timer (boxed), and the shutdown watch
/// (needed only until the client is connected) boxed and dropped once connected.
async fn drive(socket: &mut WebSocket, client: &Arc<Client>, config: &ServerConfig) -> Outcome {
    let outbox = client.outbox();
    // Boxed (about 120 bytes, mimalloc's 128-byte class): inline it takes the task past the
    // 1,024-byte class into the 1,280-byte one.
    let mut sleep = Box::pin(tokio::time::sleep_until(client.next_deadline()));
    // Connected clients hear about shutdown through their outbox (3001).
    let mut shutdown = Some(Box::pin(
        client.node().shutdown_token().clone().cancelled_owned(),
    ));
    loop {
        // Deadlines and the connected state only change when a frame was handled or a timer
        // fired; deliveries (the hot path) skip both checks.
        let mut handled = false;
        tokio::select! {
            drained = outbox.drain() => {
                let Drained { messages: mut queued, disconnect, stamp, shed } = drained;
                if !queued.is_empty() {
                    let sent = pushwire_core::metrics::Delivered::of(&queued, stamp);
                    if let Err(o) = Box::pin(write(socket, client, &mut queued, config, true)).await {
                        return o;
                    }
                    client.delivered(sent);
                }
                if !shed.is_empty() {
                    Box::pin(client.release_shed(&shed)).await;
                }
                if let Some(d) = disconnect {
                    return Outcome::Close(d);
                }
            }
            msg = socket.next() => match msg {
                None => return Outcome::Gone,
                Some(Err(e)) => return read_failure(&e),
                // Boxed: command handling is a deep future that only exists while a frame is
                // handled; inline it would sit in every idle connection's task.
                Some(Ok(Message::Text(t))) => {
                    handled = true;
                    if let Err(d) = Box::pin(incoming(client, t.as_bytes())).await {
                        return Outcome::Close(d);
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    handled = true;
                    if let Err(d) = Box::pin(incoming(client, &b)).await {
                        return Outcome::Close(d);
                    }
                }
                Some(Ok(Message::Close(_))) => return Outcome::Gone,
                Some(Ok(_)) => {}
            },
            _ = &mut sleep => {
                handled = true;
                if let Err(d) = client.on_timer() {
                    return Outcome::Close(d);
                }
            }
            Some(()) = OptionFuture::from(shutdown.as_mut()), if shutdown.is_some() => {
                return Outcome::Close(Disconnect::SHUTDOWN);
            }
        }
        if !handled {
            continue;
        }
        if shutdown.is_some() && client.is_connected() {
            shutdown = None;
        }
        let next = client.next_deadline();
        if next != sleep.deadline() {
            sleep.as_mut().reset(next);
        }
    }
}

/// One incoming message: commands for bidirectional clients; for unidirectional ones the
/// first message is the ConnectRequest and the rest is ignored.
async fn incoming(client: &Arc<Client>, data: &[u8]) -> Result<(), Disconnect> {
    if !client.transport().unidirectional() {
        return client.handle_frame(data).await;
    }
    if !client.is_connected() {
        uni_connect(client, data).await;
    }
    Ok(())
}

async fn uni_connect(client: &Arc<Client>, data: &[u8]) {
    match serde_json::from_slice::<pushwire_protocol::ConnectRequest>(data) {
        Ok(req) => {
            if let Err(d) = client.connect_unidirectional(req).await {
                client.disconnect(d);
            }
        }
        Err(_) => client.disconnect(Disconnect::BAD_REQUEST),
    }
}

/// Writes everything in `queued` as data frames built in one buffer, which is freed when the
/// write completes: nothing stays allocated in an idle connection. While the socket is full it
/// waits up to `websocket.write_timeout`, and with `watch_close` stops at once if the outbox is
/// closed meanwhile.
async fn write(
    socket: &mut WebSocket,
    client: &Client,
    queued: &mut Vec<bytes::Bytes>,
    config: &ServerConfig,
    watch_close: bool,
) -> Result<(), Outcome> {
    let (frames, mut written) = build_frames(socket, client, queued, config)?;
    // The common case: the socket takes the frames at once. Trying that first avoids arming a
    // timer and a close watch for every message.
    let first = {
        let mut cx = Context::from_waker(Waker::noop());
        socket.poll_write_frames(&mut cx, &frames, &mut written)
    };
    match first {
        Poll::Ready(Ok(())) => return Ok(()),
        Poll::Ready(Err(_)) => return Err(Outcome::Gone),
        // Partly written: go on below, from where it stopped.
        Poll::Pending => {}
    }
    // A slow peer blocks the write; if its queue overflows meanwhile (or the server closes it
    // for any reason), stop waiting at once so its resources are released now.
    let outbox = client.outbox();
    let closed = {
        let send = tokio::time::timeout(
            config.websocket.write_timeout,
            poll_fn(|cx| socket.poll_write_frames(cx, &frames, &mut written)),
        );
        tokio::pin!(send);
        loop {
            tokio::select! {
                sent = &mut send => return match sent {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(Outcome::Gone),
                    // Timed out: the peer takes nothing, so neither the rest nor a close
                    // frame would go out either.
                    Err(_) => Err(Outcome::Close(outbox.closed().unwrap_or(Disconnect::WRITE_ERROR))),
                },
                _ = outbox.changed(), if watch_close => {
                    if let Some(d) = outbox.closed() {
                        break d;
                    }
                }
            }
        }
    };
    Err(if written == 0 {
        Outcome::Close(closed)
    } else {
        Outcome::Interrupted(closed, Box::new(Unsent { frames, written }))
    })
}

/// The data frames for `queued`, header and payload, in one buffer, and where they start in
/// it. Bidirectional: everything in one frame, joined behind room for its header (no copy).
/// Unidirectional: one push per frame (its clients parse each frame as one JSON object).
/// Payloads of at least `websocket.compression_min_size` are deflated when the connection
/// negotiated it and that makes them smaller (RSV1 is per message).
fn build_frames(
    socket: &WebSocket,
    client: &Client,
    queued: &mut Vec<bytes::Bytes>,
    config: &ServerConfig,
) -> Result<(Vec<u8>, usize), Outcome> {
    let text = client.transport().protocol == Protocol::Json;
    let ws = &config.websocket;
    let deflate = socket.get_ref().is_negotiated();
    let pack = |payload: &[u8]| {
        if text && std::str::from_utf8(payload).is_err() {
            return Err(Outcome::Close(Disconnect::INAPPROPRIATE_PROTOCOL));
        }
        if deflate && payload.len() >= ws.compression_min_size {
            let packed = codec::deflate(payload, ws.compression_level);
            if packed.len() < payload.len() {
                return Ok(Some(packed));
            }
        }
        Ok(None)
    };
    if !client.transport().unidirectional() && queued.len() > 1 {
        let size = MAX_HEADER + queued.iter().map(|m| m.len() + 1).sum::<usize>();
        let mut joined = Vec::with_capacity(size);
        joined.resize(MAX_HEADER, 0);
        join_into(client.transport().protocol, queued.drain(..), &mut joined);
        if let Some(packed) = pack(&joined[MAX_HEADER..])? {
            let mut out = Vec::with_capacity(MAX_HEADER + packed.len());
            push_frame(&mut out, text, true, &packed);
            return Ok((out, 0));
        }
        let (header, used) = data_header(text, false, joined.len() - MAX_HEADER);
        let start = MAX_HEADER - used;
        joined[start..MAX_HEADER].copy_from_slice(&header[..used]);
        return Ok((joined, start));
    }
    let size = queued.iter().map(|m| m.len() + MAX_HEADER).sum();
    let mut out = Vec::with_capacity(size);
    for frame in queued.drain(..) {
        match pack(&frame[..])? {
            Some(packed) => push_frame(&mut out, text, true, &packed),
            None => push_frame(&mut out, text, false, &frame),
        }
    }
    Ok((out, 0))
}

/// Appends one data frame carrying `payload` to `out`.
fn push_frame(out: &mut Vec<u8>, text: bool, compressed: bool, payload: &[u8]) {
    let (header, used) = data_header(text, compressed, payload.len());
    out.extend_from_slice(&header[..used]);
    out.extend_from_slice(payload);
}

async fn finish(
    socket: &mut WebSocket,
    client: &Arc<Client>,
    outcome: Outcome,
    pending: Vec<bytes::Bytes>,
    config: &ServerConfig,
) {
    let outcome = match outcome {
        Outcome::Interrupted(d, mut unsent) => {
            // Whole frames first, within the write timeout; a peer that takes nothing more
            // gets no close frame (it would land inside a data frame).
            let Unsent { frames, written } = &mut *unsent;
            let rest = tokio::time::timeout(
                config.websocket.write_timeout,
                poll_fn(|cx| socket.poll_write_frames(cx, frames, written)),
            );
            if !matches!(rest.await, Ok(Ok(()))) {
                return;
            }
            Outcome::Close(d)
        }
        other => other,
    };
    let close = match outcome {
        Outcome::Gone | Outcome::Interrupted(..) => return,
        Outcome::Refused(code, reason) => CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        },
        Outcome::Close(d) => {
            // Whatever was queued before the disconnect (an error reply, say) goes first.
            let mut rest = pending;
            if client.transport().unidirectional() && d != Disconnect::CONNECTION_CLOSED {
                let push = pushwire_protocol::Push {
                    disconnect: Some(d.clone()),
                    ..Default::default()
                };
                if let Ok(b) = client.encoding().push(&push) {
                    rest.push(b);
                }
            }
            if !rest.is_empty()
                && d != Disconnect::SLOW
                && write(socket, client, &mut rest, config, false)
                    .await
                    .is_err()
            {
                return;
            }
            if d.code == Disconnect::CONNECTION_CLOSED.code {
                return;
            }
            tracing::debug!(client = %client.id(), code = d.code, reason = %d.reason, "disconnect");
            CloseFrame {
                code: CloseCode::from(d.code as u16),
                reason: d.reason.as_ref().into(),
            }
        }
    };
    let timeout = config.websocket.write_timeout;
    let _ = tokio::time::timeout(timeout, socket.send(Message::Close(Some(close)))).await;
    // Give the peer a moment to answer the close handshake, then drop.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while let Some(Ok(m)) = socket.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    /// The size of what `f` returns.
    fn returned_size<A, B, C, D, R>(_: fn(A, B, C, D) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// Every idle connection holds its task: the future plus tokio's task header and trailer,
    /// 128-byte aligned: tokio's header, scheduler, id, stage tag and trailer take 104 bytes
    /// and the task tracker's token 8, so a future of at most 912 bytes keeps the task in
    /// mimalloc's 1,024-byte class (past it, the 1,280-byte one).
    #[test]
    fn connection_task_fits_the_1024_byte_class() {
        let task = returned_size(super::serve);
        eprintln!("connection task future: {task} bytes");
        assert!(task <= 912, "the connection task future is {task} bytes");
    }
}
