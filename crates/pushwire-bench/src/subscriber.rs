//! One subscriber connection: open the WebSocket, connect and subscribe, then count and time
//! every publication until told to stop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::seq::SeqWindow;
use crate::stats::{latency_us, unix_nanos, Shard, Stats};
use crate::wire::{self, Incoming, CONNECT_ID, PONG, SUBSCRIBE_ID};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest a connection may take from TCP connect to its subscribe reply.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the close handshake may take at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// What every subscriber task shares.
pub(crate) struct Shared {
    /// `ws://HOST/connection/websocket`.
    pub(crate) url: String,
    /// The batched connect + subscribe frame.
    pub(crate) hello: String,
    /// Delivery statistics.
    pub(crate) stats: Arc<Stats>,
    /// Bounds the handshakes in progress.
    pub(crate) handshakes: Semaphore,
}

/// Small buffers: thousands of connections each receive a few small messages per second.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_write_buffer_size(64 * 1024)
}

/// Runs connection number `index`: reports the handshake outcome on `ready`, then records
/// deliveries until `stop` turns true (or the sender goes away).
pub(crate) async fn run(
    index: usize,
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    mut stop: watch::Receiver<bool>,
) {
    let opened = {
        let _permit = shared.handshakes.acquire().await;
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&shared.url, &shared.hello))
            .await
            .unwrap_or_else(|_| Err(anyhow!("handshake timed out")))
    };
    let mut ws = match opened {
        Ok(ws) => {
            let _ = ready.send(Ok(()));
            ws
        }
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    drop(ready);
    let shard = shared.stats.shard(index);
    let mut window = SeqWindow::default();
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            msg = ws.next() => {
                let frame = match &msg {
                    Some(Ok(Message::Text(t))) => t.as_bytes(),
                    Some(Ok(Message::Binary(b))) => &b[..],
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => {
                        if !*stop.borrow() {
                            shared.stats.connection_dropped();
                        }
                        return;
                    }
                };
                let action = handle_frame(frame, &mut window, shard);
                if action.ended {
                    shared.stats.connection_dropped();
                    break;
                }
                if action.pong && ws.send(Message::text(PONG)).await.is_err() {
                    if !*stop.borrow() {
                        shared.stats.connection_dropped();
                    }
                    return;
                }
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
}

/// Opens the WebSocket, sends connect + subscribe and waits for both replies.
async fn handshake(url: &str, hello: &str) -> Result<Ws> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await?;
    ws.send(Message::text(hello)).await?;
    let (mut connected, mut subscribed) = (false, false);
    while !(connected && subscribed) {
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
                    subscribed |= id == SUBSCRIBE_ID;
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

/// What a frame asks of the connection.
#[derive(Debug, Default, PartialEq, Eq)]
struct FrameAction {
    /// Answer a ping.
    pong: bool,
    /// The server ended the subscription or the connection.
    ended: bool,
}

/// Records the publications of one frame (one receive time for all of them) and notes pings
/// and disconnects. The shard is locked at most once per frame.
fn handle_frame(frame: &[u8], window: &mut SeqWindow, shard: &Mutex<Shard>) -> FrameAction {
    let now = unix_nanos();
    let mut action = FrameAction::default();
    let mut guard = None;
    for line in wire::lines(frame) {
        match wire::parse_line(line) {
            Incoming::Publication { ts, seq } => {
                let first = window.observe(seq);
                guard
                    .get_or_insert_with(|| shard.lock())
                    .record(first, latency_us(now, ts));
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
        let action = handle_frame(frame.as_bytes(), &mut window, stats.shard(0));
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
    fn frame_with_disconnect() {
        let stats = Stats::new(1);
        let action = handle_frame(
            br#"{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}"#,
            &mut SeqWindow::default(),
            stats.shard(0),
        );
        assert!(action.ended && !action.pong);
    }
}
