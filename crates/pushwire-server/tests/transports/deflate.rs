//! permessage-deflate (RFC 7692) on the WebSocket transport, with a raw client that reads and
//! writes frames itself: what is negotiated, which frames carry RSV1, and what the server does
//! with a decompression bomb (1009) and corrupt compressed data (1007) while another client on
//! the same server keeps receiving. The real peers (centrifuge-python, Chromium) are in
//! `tests/sdk/deflate.rs`.

use std::time::Duration;

use pushwire_deflate::codec;
use pushwire_test_support::{TestServer, WsClient};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OFFER_PYTHON: &str = "permessage-deflate; client_max_window_bits";

/// A WebSocket client speaking raw frames.
struct Raw {
    s: TcpStream,
    /// The `Sec-WebSocket-Extensions` answer, if any.
    extensions: Option<String>,
}

/// One frame from the server.
#[derive(Debug)]
struct Frame {
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Raw {
    async fn open(server: &TestServer, offer: Option<&str>) -> Raw {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let ext = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "GET /connection/websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{ext}\r\n",
            server.addr
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(s.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-extensions: "))
            .map(str::to_string);
        Raw { s, extensions }
    }

    /// Sends one masked frame.
    async fn send_frame(&mut self, fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
        if payload.len() < 126 {
            f.push(0x80 | payload.len() as u8);
        } else if payload.len() <= 65535 {
            f.push(0x80 | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.s.write_all(&f).await.unwrap();
    }

    /// Sends a text message, compressed when `compress`.
    async fn send_text(&mut self, text: &str, compress: bool) {
        if compress {
            let packed = codec::deflate(text.as_bytes(), 6);
            self.send_frame(true, true, 1, &packed).await;
        } else {
            self.send_frame(true, false, 1, text.as_bytes()).await;
        }
    }

    /// The next frame (server frames are unmasked and unfragmented).
    async fn frame(&mut self) -> Frame {
        let read = async {
            let b0 = self.s.read_u8().await?;
            let b1 = self.s.read_u8().await?;
            let len = match b1 & 0x7f {
                126 => u64::from(self.s.read_u16().await?),
                127 => self.s.read_u64().await?,
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.s.read_exact(&mut payload).await?;
            assert_eq!(b0 & 0x80, 0x80, "server frames are final");
            Ok::<_, std::io::Error>(Frame {
                rsv1: b0 & 0x40 != 0,
                opcode: b0 & 0x0f,
                payload,
            })
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("a frame within 5 s")
            .expect("frame")
    }

    /// The next data frame's JSON lines (inflated when compressed), answering pings.
    async fn lines(&mut self) -> (bool, Vec<Value>) {
        loop {
            let f = self.frame().await;
            assert!(f.opcode == 1, "text frame expected: {f:?}");
            let text = if f.rsv1 {
                codec::inflate(&f.payload, 1 << 24).expect("inflates")
            } else {
                f.payload
            };
            let lines: Vec<Value> = text
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            if lines == [json!({})] {
                self.send_text("{}", false).await;
                continue;
            }
            return (f.rsv1, lines);
        }
    }

    /// Reads frames until a close frame; its code.
    async fn close_code(&mut self) -> u16 {
        loop {
            let f = self.frame().await;
            if f.opcode == 8 {
                return u16::from_be_bytes([f.payload[0], f.payload[1]]);
            }
        }
    }

    /// Connects and subscribes to `channel`, the commands compressed when `compress`.
    async fn join(&mut self, channel: &str, compress: bool) {
        let cmds = format!(
            "{}\n{}",
            json!({"id": 1, "connect": {}}),
            json!({"id": 2, "subscribe": {"channel": channel}})
        );
        self.send_text(&cmds, compress).await;
        let mut replies = 0;
        while replies < 2 {
            let (_, lines) = self.lines().await;
            for l in lines {
                assert!(l.get("error").is_none(), "{l}");
                replies += usize::from(l.get("id").is_some());
            }
        }
    }
}

/// A JSON document of about 2 KB.
fn document(seq: u64) -> Value {
    let rows: Vec<Value> = (0..20)
        .map(|i| json!({"id": i, "name": format!("instrument {i:03}"), "venue": "primary exchange, continuous", "price": 1000 + i + seq}))
        .collect();
    json!({"seq": seq, "rows": rows})
}

fn compressed(server: &TestServer) -> u64 {
    pushwire_core::metrics::Metrics::get(&server.node().metrics().websocket_compressed)
}

#[tokio::test]
async fn offered_deflate_is_negotiated_and_data_round_trips_compressed() {
    let server = TestServer::start_with(|c| {
        c.websocket.compression = true;
        c.websocket.compression_min_size = 256;
    })
    .await;
    let mut c = Raw::open(&server, Some(OFFER_PYTHON)).await;
    assert_eq!(
        c.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    assert_eq!(compressed(&server), 1);
    // Compressed commands are inflated and answered.
    c.join("docs", true).await;
    for seq in 1..=5 {
        server.publish("docs", document(seq)).await;
        let (rsv1, lines) = c.lines().await;
        assert!(rsv1, "a 2 KB publication is compressed");
        assert_eq!(lines[0]["push"]["pub"]["data"], document(seq));
    }
    // Below compression_min_size: plain.
    server.publish("docs", json!({"n": 1})).await;
    let (rsv1, lines) = c.lines().await;
    assert!(!rsv1, "a small publication is sent plain");
    assert_eq!(lines[0]["push"]["pub"]["data"], json!({"n": 1}));
    // A compressed publish from the client reaches a plain client on the same channel.
    let mut plain = Raw::open(&server, None).await;
    plain.join("docs", false).await;
    let cmd = json!({"id": 3, "publish": {"channel": "docs", "data": document(99)}});
    c.send_text(&cmd.to_string(), true).await;
    let (rsv1, lines) = plain.lines().await;
    assert!(!rsv1);
    assert_eq!(lines[0]["push"]["pub"]["data"], document(99));
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_did_not_offer_gets_plain_frames() {
    let server = TestServer::start_with(|c| c.websocket.compression = true).await;
    let mut c = Raw::open(&server, None).await;
    assert_eq!(c.extensions, None);
    c.join("docs", false).await;
    server.publish("docs", document(1)).await;
    let (rsv1, lines) = c.lines().await;
    assert!(!rsv1);
    assert_eq!(lines[0]["push"]["pub"]["data"], document(1));
    // An offer the server cannot honour (a smaller server window) is declined too.
    let declined = Raw::open(
        &server,
        Some("permessage-deflate; server_max_window_bits=10"),
    )
    .await;
    assert_eq!(declined.extensions, None);
    assert_eq!(compressed(&server), 0);
    server.stop().await;
}

#[tokio::test]
async fn with_compression_off_an_offer_is_not_negotiated() {
    let server = TestServer::start().await;
    let mut c = Raw::open(&server, Some(OFFER_PYTHON)).await;
    assert_eq!(c.extensions, None);
    c.join("docs", false).await;
    server.publish("docs", document(1)).await;
    let (rsv1, _) = c.lines().await;
    assert!(!rsv1);
    // RSV1 without the extension: the connection fails, nothing is inflated.
    c.send_text("{}", true).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while c.s.read_u8().await.is_ok() {}
    })
    .await;
    assert!(closed.is_ok(), "connection closed");
    assert_eq!(compressed(&server), 0);
    server.stop().await;
}

/// A 10 MB-inflating frame (about 10 KB on the wire, under message_size_limit) is refused
/// with 1009 once the inflated bytes pass the bound; a client on the same server keeps
/// receiving.
#[tokio::test]
async fn a_decompression_bomb_closes_1009_and_no_one_else_is_affected() {
    let server = TestServer::start_with(|c| c.websocket.compression = true).await;
    let (mut bystander, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = bystander
        .command(json!({"subscribe": {"channel": "bystander"}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
    let mut bomber = Raw::open(&server, Some(OFFER_PYTHON)).await;
    bomber.join("docs", true).await;
    let bomb = codec::deflate(&vec![b' '; 10 * 1024 * 1024], 9);
    assert!(bomb.len() < 65536, "{} bytes on the wire", bomb.len());
    bomber.send_frame(true, true, 1, &bomb).await;
    assert_eq!(bomber.close_code().await, 1009);
    for n in 0..3 {
        server.publish("bystander", json!({"n": n})).await;
        assert_eq!(
            bystander.next_publication("bystander").await["data"],
            json!({"n": n})
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_decompressed_limit_is_configurable() {
    let server = TestServer::start_with(|c| {
        c.websocket.compression = true;
        c.websocket.decompressed_message_size_limit = 200 * 1024;
    })
    .await;
    let mut c = Raw::open(&server, Some(OFFER_PYTHON)).await;
    c.join("docs", true).await;
    // 150 KB inflated: accepted (published and delivered back).
    let big = "x".repeat(150_000);
    let cmd = json!({"id": 3, "publish": {"channel": "docs", "data": {"big": big}}});
    c.send_text(&cmd.to_string(), true).await;
    let mut got = false;
    while !got {
        let (_, lines) = c.lines().await;
        got = lines
            .iter()
            .any(|l| l["push"]["pub"]["data"]["big"].as_str().map(str::len) == Some(150_000));
    }
    // 300 KB: under the default bound (640 KB) but past this one.
    let big = "y".repeat(300_000);
    let cmd = json!({"id": 4, "publish": {"channel": "docs", "data": {"big": big}}});
    c.send_text(&cmd.to_string(), true).await;
    assert_eq!(c.close_code().await, 1009);
    server.stop().await;
}

#[tokio::test]
async fn a_corrupt_compressed_frame_closes_1007_and_no_one_else_is_affected() {
    let server = TestServer::start_with(|c| c.websocket.compression = true).await;
    let mut other = Raw::open(&server, Some(OFFER_PYTHON)).await;
    other.join("docs", true).await;
    let mut bad = Raw::open(&server, Some(OFFER_PYTHON)).await;
    bad.join("docs", true).await;
    bad.send_frame(true, true, 1, &[0xff; 40]).await;
    assert_eq!(bad.close_code().await, 1007);
    // RSV1 on a continuation frame breaks RFC 7692: 1002.
    let mut misframed = Raw::open(&server, Some(OFFER_PYTHON)).await;
    misframed.join("docs", true).await;
    misframed
        .send_frame(false, true, 1, &codec::deflate(b"{}", 1))
        .await;
    misframed.send_frame(true, true, 0, b"").await;
    assert_eq!(misframed.close_code().await, 1002);
    server.publish("docs", document(7)).await;
    let (rsv1, lines) = other.lines().await;
    assert!(rsv1);
    assert_eq!(lines[0]["push"]["pub"]["data"], document(7));
    server.stop().await;
}
