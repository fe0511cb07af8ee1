//! One subscriber connection: open the WebSocket, connect and subscribe, then count and time
//! every publication until told to stop; in a reconnect storm, come back after a server-side
//! close.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use pushwire_deflate::{negotiate, DeflateStream, Limits};
use pushwire_protocol::Disconnect;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_EXTENSIONS;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::seq::SeqWindow;
use crate::stats::{latency_us, unix_nanos, Shard, Stats};
use crate::wire::{self, Incoming, CONNECT_ID, PONG, SUBSCRIBE_ID};

type Ws = WebSocketStream<DeflateStream<TcpStream>>;

/// Longest a connection may take from TCP connect to its subscribe reply.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the close handshake may take at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// What every subscriber task shares.
pub(crate) struct Shared {
    /// `ws://HOST/connection/websocket`.
    pub(crate) url: String,
    /// Connection token, if any.
    pub(crate) token: Option<String>,
    /// The channel of each connection, by index.
    pub(crate) channel_of: Box<dyn Fn(usize) -> String + Send + Sync>,
    /// A channel every connection subscribes to besides its own (`scale`: the shared one).
    pub(crate) shared_channel: Option<String>,
    /// Delivery statistics.
    pub(crate) stats: Arc<Stats>,
    /// Bounds the handshakes in progress.
    pub(crate) handshakes: Semaphore,
    /// Set during a reconnect storm: a server-side close makes the task connect again
    /// instead of counting the connection as dropped.
    pub(crate) reconnect: AtomicBool,
    /// Delta compression asked for in subscribe (`fossil`).
    pub(crate) delta: Option<String>,
    /// Offer permessage-deflate in the handshake.
    pub(crate) deflate: bool,
    /// Handshakes in which the server accepted permessage-deflate.
    pub(crate) deflated: AtomicU64,
}

/// What a subscriber task reports to the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Connection `index` is connected and subscribed.
    Up {
        /// Connection number.
        index: usize,
    },
    /// The first handshake failed; the task has ended.
    Failed {
        /// What went wrong.
        error: String,
    },
    /// Connected and subscribed again after a server-side close.
    Reconnected,
    /// A reconnect failed; the task has ended.
    ReconnectFailed {
        /// What went wrong.
        error: String,
    },
}

/// How a receive loop ended.
enum End {
    /// The bench said stop.
    Stopped,
    /// The server closed the connection or ended the subscription; `slow`: it closed the
    /// connection with 3008 (the connection's outbox overflowed).
    Lost { slow: bool },
}

/// Small buffers: thousands of connections each receive a few small messages per second.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_write_buffer_size(64 * 1024)
}

/// Runs connection number `index`: reports the handshake outcome on `events`, records
/// deliveries until `stop` turns true (or its sender goes away), and during a reconnect storm
/// reconnects after a server-side close.
pub(crate) async fn run(
    index: usize,
    shared: Arc<Shared>,
    events: mpsc::Sender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let own = (shared.channel_of)(index);
    let mut channels = vec![own.as_str()];
    channels.extend(shared.shared_channel.as_deref());
    let hello = wire::hello_frame(shared.token.as_deref(), &channels, shared.delta.as_deref());
    let mut ws = match open(&shared, &hello).await {
        Ok((ws, latency)) => {
            shared.stats.connection_up(latency, false);
            let _ = events.send(Event::Up { index }).await;
            ws
        }
        Err(e) => {
            let _ = events.send(Event::Failed { error: e }).await;
            return;
        }
    };
    let shard = shared.stats.shard(index);
    let mut window = SeqWindow::default();
    loop {
        // A new connection starts a new delta chain.
        let mut base = shared.delta.as_ref().map(|_| Vec::new());
        let end = receive(&mut ws, &mut stop, &mut window, shard, base.as_mut()).await;
        shared.stats.connection_down();
        let stopping = *stop.borrow();
        match end {
            End::Stopped => break,
            End::Lost { .. } if stopping => return,
            End::Lost { slow } if !shared.reconnect.load(Ordering::Relaxed) => {
                shared.stats.connection_dropped(slow);
                return;
            }
            End::Lost { .. } => match open(&shared, &hello).await {
                Ok((again, latency)) => {
                    shared.stats.connection_up(latency, true);
                    let _ = events.send(Event::Reconnected).await;
                    ws = again;
                }
                Err(error) => {
                    // Counted by the reconnect storm, not as a dropped connection.
                    let _ = events.send(Event::ReconnectFailed { error }).await;
                    return;
                }
            },
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
}

/// One bounded handshake: waits for a permit, then connects and subscribes within
/// [`HANDSHAKE_TIMEOUT`]. Returns the socket and the handshake latency in microseconds
/// (measured from the permit, so the bench's own queue is not counted).
async fn open(shared: &Shared, hello: &str) -> Result<(Ws, u64), String> {
    let _permit = shared.handshakes.acquire().await;
    let started = Instant::now();
    let subscribes = 1 + u32::from(shared.shared_channel.is_some());
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(shared, hello, subscribes)).await {
        Ok(Ok(ws)) => {
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            Ok((ws, us))
        }
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("handshake timed out after {HANDSHAKE_TIMEOUT:?}")),
    }
}

/// Records publications until the bench stops or the server ends the connection.
async fn receive(
    ws: &mut Ws,
    stop: &mut watch::Receiver<bool>,
    window: &mut SeqWindow,
    shard: &Mutex<Shard>,
    mut base: Option<&mut Vec<u8>>,
) -> End {
    loop {
        if *stop.borrow_and_update() {
            return End::Stopped;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    return End::Stopped;
                }
            }
            msg = ws.next() => {
                let frame = match &msg {
                    Some(Ok(Message::Text(t))) => t.as_bytes(),
                    Some(Ok(Message::Binary(b))) => &b[..],
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(Some(close)))) => {
                        let slow = u32::from(u16::from(close.code)) == Disconnect::SLOW.code;
                        return End::Lost { slow };
                    }
                    Some(Ok(Message::Close(None)) | Err(_)) | None => {
                        return End::Lost { slow: false }
                    }
                };
                let action = handle_frame(frame, window, shard, base.as_deref_mut());
                if action.ended {
                    return End::Lost { slow: false };
                }
                if action.pong && ws.send(Message::text(PONG)).await.is_err() {
                    return End::Lost { slow: false };
                }
            }
        }
    }
}

/// Opens the WebSocket, sends connect and `subscribes` subscribe commands and waits for every
/// reply.
async fn handshake(shared: &Shared, hello: &str, subscribes: u32) -> Result<Ws> {
    let mut ws = open_socket(shared).await?;
    ws.send(Message::text(hello)).await?;
    let (mut connected, mut subscribed) = (false, 0u32);
    while !(connected && subscribed == subscribes) {
        let msg = ws
            .next()
            .await
            .ok_or_else(|| anyhow!("closed during handshake"))??;
        let frame = match &msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => &b[..],
            Message::Close(c) => bail!("closed during handshake: {c:?}"),
            _ => continue,
        };
        let mut pong = false;
        for line in wire::lines(frame) {
            match wire::parse_line(line) {
                Incoming::Reply { id, error: Some(e) } => {
                    let what = if id == CONNECT_ID {
                        "connect"
                    } else {
                        "subscribe"
                    };
                    bail!("{what}: {e}");
                }
                Incoming::Reply { id, error: None } => {
                    connected |= id == CONNECT_ID;
                    if (SUBSCRIBE_ID..SUBSCRIBE_ID + subscribes).contains(&id) {
                        subscribed += 1;
                    }
                }
                Incoming::Ping => pong = true,
                Incoming::Ended(why) => bail!("{why}"),
                Incoming::Publication { .. } | Incoming::Other => {}
            }
        }
        if pong {
            ws.send(Message::text(PONG)).await?;
        }
    }
    Ok(ws)
}

/// Opens the WebSocket (plain TCP, `ws://` only), offering permessage-deflate when asked;
/// turns the inflating layer on when the server accepted.
async fn open_socket(shared: &Shared) -> Result<Ws> {
    let mut request = shared.url.as_str().into_client_request()?;
    if shared.deflate {
        request.headers_mut().insert(
            SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(negotiate::OFFER),
        );
    }
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("no host in {}", shared.url))?;
    let port = uri.port_u16().unwrap_or(80);
    let tcp = TcpStream::connect((host.trim_matches(|c| c == '[' || c == ']'), port)).await?;
    tcp.set_nodelay(true)?;
    let (mut ws, response) = tokio_tungstenite::client_async_with_config(
        request,
        DeflateStream::plain(tcp),
        Some(ws_config()),
    )
    .await?;
    let values = response.headers().get_all(SEC_WEBSOCKET_EXTENSIONS);
    if negotiate::accepted(values.iter().filter_map(|v| v.to_str().ok())) {
        // The bench trusts its server: bounds only against runaway memory.
        let limits = Limits {
            wire: 64 << 20,
            inflated: 256 << 20,
        };
        ws.get_mut().enable(false, limits);
        shared.deflated.fetch_add(1, Ordering::Relaxed);
    }
    Ok(ws)
}

/// What a frame asks of the connection.
#[derive(Debug, Default, PartialEq, Eq)]
struct FrameAction {
    /// Answer a ping.
    pong: bool,
    /// The server ended the subscription or the connection.
    ended: bool,
}

/// Records the publications of one frame (one receive time for all of them), its size, and
/// notes pings and disconnects. With `base` (a delta subscription) publications carry their
/// data as a JSON string, full or a Fossil delta against `base`, and rebuild `base`. The
/// shard is locked once per frame.
fn handle_frame(
    frame: &[u8],
    window: &mut SeqWindow,
    shard: &Mutex<Shard>,
    mut base: Option<&mut Vec<u8>>,
) -> FrameAction {
    let now = unix_nanos();
    let mut action = FrameAction::default();
    let mut guard = shard.lock();
    guard.bytes += frame.len() as u64;
    guard.frames += 1;
    for line in wire::lines(frame) {
        if let Some(base) = base.as_deref_mut()
            && let Some((data, delta)) = wire::delta_publication(line)
        {
            let full = if delta {
                pushwire_protocol::fossil::apply(base, data.as_bytes()).ok()
            } else {
                Some(data.into_bytes())
            };
            // A delta that does not apply loses this and every later publication of
            // the chain: they count as lost.
            if let Some((ts, seq)) = full.and_then(|f| {
                let fields = wire::bench_fields(&f);
                *base = f;
                fields
            }) {
                let first = window.observe(seq);
                guard.record_seq(seq, first, latency_us(now, ts));
            }
            continue;
        }
        match wire::parse_line(line) {
            Incoming::Publication { ts, seq } => {
                let first = window.observe(seq);
                guard.record_seq(seq, first, latency_us(now, ts));
            }
            Incoming::Ping => action.pong = true,
            Incoming::Ended(_) => action.ended = true,
            Incoming::Reply { .. } | Incoming::Other => {}
        }
    }
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_with_pushes_ping_and_duplicate() {
        let stats = Stats::new(1);
        let mut window = SeqWindow::default();
        let ts = unix_nanos();
        let frame = format!(
            "{{\"push\":{{\"channel\":\"bench\",\"pub\":{{\"data\":{{\"ts\":{ts},\"seq\":0}}}}}}}}\n\
             {{}}\n\n\
             {{\"push\":{{\"channel\":\"bench\",\"pub\":{{\"data\":{{\"ts\":{ts},\"seq\":1}}}}}}}}\n\
             {{\"push\":{{\"channel\":\"bench\",\"pub\":{{\"data\":{{\"ts\":{ts},\"seq\":1}}}}}}}}\n"
        );
        let action = handle_frame(frame.as_bytes(), &mut window, stats.shard(0), None);
        assert_eq!(
            action,
            FrameAction {
                pong: true,
                ended: false
            }
        );
        let t = stats.totals();
        assert_eq!((t.delivered, t.duplicates), (2, 1));
        assert!(t.latency.max() < 10_000_000);
    }

    #[test]
    fn delta_frames_are_rebuilt_and_sized() {
        let stats = Stats::new(1);
        let mut window = SeqWindow::default();
        let ts = unix_nanos();
        let a = format!(r#"{{"ts":{ts},"seq":0,"pad":"same same same same same same"}}"#);
        let b = format!(r#"{{"ts":{ts},"seq":1,"pad":"same same same same same same"}}"#);
        let d = pushwire_protocol::fossil::create(a.as_bytes(), b.as_bytes());
        let line = |data: &str, delta: bool| {
            serde_json::json!({"push": {"channel": "bench", "pub": {"data": data, "delta": delta}}})
                .to_string()
        };
        let frame = format!(
            "{}\n{}",
            line(&a, false),
            line(std::str::from_utf8(&d).unwrap(), true)
        );
        let mut base = Vec::new();
        handle_frame(
            frame.as_bytes(),
            &mut window,
            stats.shard(0),
            Some(&mut base),
        );
        assert_eq!(base, b.as_bytes());
        let t = stats.totals();
        assert_eq!((t.delivered, t.frames), (2, 1));
        assert_eq!(t.bytes, frame.len() as u64);
    }

    #[test]
    fn frame_with_disconnect() {
        let stats = Stats::new(1);
        let action = handle_frame(
            br#"{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}"#,
            &mut SeqWindow::default(),
            stats.shard(0),
            None,
        );
        assert!(action.ended && !action.pong);
    }
}
