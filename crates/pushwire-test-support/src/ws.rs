//! A raw protocol client over real WebSocket, for asserting exact frames and codes.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any expected message.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// A JSON-protocol client that keeps pushes aside while waiting for replies.
#[derive(Debug)]
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u32,
    inbox: VecDeque<Value>,
    /// Number of WebSocket frames received so far.
    pub frames: usize,
}

impl WsClient {
    /// Opens a WebSocket to `url`.
    pub async fn open(url: &str) -> WsClient {
        Self::open_request(url.into_client_request().expect("request")).await
    }

    /// Opens a WebSocket with a custom request (headers, subprotocols).
    pub async fn open_request(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> WsClient {
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket handshake");
        WsClient {
            ws,
            next_id: 0,
            inbox: VecDeque::new(),
            frames: 0,
        }
    }

    /// Opens a WebSocket and connects (anonymously without `token`); returns the connect result.
    pub async fn connected(url: &str, token: Option<&str>) -> (WsClient, Value) {
        let mut c = Self::open(url).await;
        let mut req = json!({});
        if let Some(t) = token {
            req["token"] = json!(t);
        }
        let reply = c.command(json!({"connect": req})).await;
        let result = reply["connect"].clone();
        assert!(result.is_object(), "connect failed: {reply}");
        (c, result)
    }

    /// Sends raw text as one frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    /// Sends `body` (an object with one request field) with the next id; waits for the reply
    /// with that id. Pushes and pings received meanwhile stay in the inbox.
    pub async fn command(&mut self, mut body: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        body["id"] = json!(id);
        self.send_text(&body.to_string()).await;
        self.reply(id).await
    }

    /// Waits for the reply with `id`.
    pub async fn reply(&mut self, id: u32) -> Value {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self
                .inbox
                .iter()
                .skip(scanned)
                .position(|m| m["id"] == json!(id))
            {
                return self.inbox.remove(scanned + pos).expect("present");
            }
            scanned = self.inbox.len();
            assert!(
                self.pull().await,
                "connection closed while waiting for reply {id}"
            );
        }
    }

    /// The next message that is not a ping (pushes and replies), in order.
    pub async fn next_message(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.inbox.iter().position(|m| m != &json!({})) {
                self.inbox.drain(..pos);
                return self.inbox.pop_front();
            }
            self.inbox.clear();
            if !self.pull().await {
                return None;
            }
        }
    }

    /// The next publication push for `channel` (data and offset), skipping other messages.
    pub async fn next_publication(&mut self, channel: &str) -> Value {
        loop {
            let m = self.next_message().await.expect("connection open");
            if m["push"]["channel"] == json!(channel) && m["push"]["pub"].is_object() {
                return m["push"]["pub"].clone();
            }
        }
    }

    /// The next message including pings.
    pub async fn read_one(&mut self) -> Option<Value> {
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Some(m);
            }
            if !self.pull().await {
                return None;
            }
        }
    }

    /// Reads one frame from the socket into the inbox; false when the connection ended.
    async fn pull(&mut self) -> bool {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a message");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    self.frames += 1;
                    for line in t.as_str().split('\n').filter(|l| !l.trim().is_empty()) {
                        self.inbox
                            .push_back(serde_json::from_str(line).expect("server sends JSON"));
                    }
                    return true;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason (code 1006 when the
    /// socket ended without a close frame).
    pub async fn expect_close(&mut self) -> (u16, String) {
        self.inbox.clear();
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(Some(f)))) => {
                    return (u16::from(f.code), f.reason.to_string());
                }
                Some(Ok(Message::Close(None))) => {
                    return (u16::from(CloseCode::Status), String::new())
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return (1006, String::new()),
            }
        }
    }

    /// Whether nothing but pings arrives within `wait`.
    pub async fn silent_for(&mut self, wait: Duration) -> bool {
        if self.inbox.iter().any(|m| m != &json!({})) {
            return false;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "{}" => continue,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(_) => return false,
            }
        }
    }

    /// The underlying stream, for tests that misbehave on purpose.
    pub fn stream(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }
}
