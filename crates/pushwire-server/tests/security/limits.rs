//! Limits (docs/security.md "Limits"): every limit is hit on purpose and each test checks the
//! documented answer AND that a well-behaved client is served at the same time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pushwire_test_support::{token, TestServer, WsClient};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connected client subscribed to `bystander`.
async fn bystander(server: &TestServer) -> WsClient {
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = c
        .command(json!({"subscribe": {"channel": "bystander"}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
    c
}

/// The bystander still gets publications, and a fresh client still connects.
async fn assert_served(server: &TestServer, c: &mut WsClient, n: u32) {
    server.publish("bystander", json!({ "n": n })).await;
    assert_eq!(
        c.next_publication("bystander").await["data"],
        json!({ "n": n })
    );
    let (mut fresh, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = fresh
        .command(json!({"subscribe": {"channel": "fresh"}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
}

/// A cheap command a client subscribed to `flood` may send.
fn publish_cmd() -> Value {
    json!({"publish": {"channel": "flood", "data": {}}})
}

fn upgrade_head(addr: SocketAddr) -> String {
    format!(
        "GET /connection/websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// Reads an HTTP response head (up to the blank line); "" when the socket closed first.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Waits until the peer closes; true when it did within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .expect("VmRSS in /proc/self/status")
}

#[tokio::test]
async fn connect_flood_from_one_ip_is_rate_limited_and_others_are_served() {
    const ATTEMPTS: usize = 10_000;
    let server = TestServer::start_with(|c| {
        c.http_server.connect_rate_per_ip = 50;
        c.http_server.connect_burst_per_ip = 100;
    })
    .await;
    let mut ok = bystander(&server).await;
    let addr = server.addr;
    let started = Instant::now();
    // 10,000 fresh TCP connections from 127.0.0.1, 64 at a time, each asking for an upgrade.
    let flood = tokio::spawn(async move {
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let next = next.clone();
            workers.spawn(async move {
                let (mut upgraded, mut limited, mut other) = (0usize, 0usize, 0usize);
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < ATTEMPTS {
                    let Ok(mut s) = TcpStream::connect(addr).await else {
                        other += 1;
                        continue;
                    };
                    let _ = s.write_all(upgrade_head(addr).as_bytes()).await;
                    match status(&read_head(&mut s).await) {
                        101 => upgraded += 1,
                        429 => limited += 1,
                        _ => other += 1,
                    }
                }
                (upgraded, limited, other)
            });
        }
        let mut total = (0, 0, 0);
        while let Some(r) = workers.join_next().await {
            let (a, b, c) = r.expect("worker");
            total = (total.0 + a, total.1 + b, total.2 + c);
        }
        total
    });
    // During the flood: the bystander is served, and a client from another address connects.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_served_during_flood(&server, &mut ok).await;
    let (upgraded, limited, other) = flood.await.expect("flood");
    let elapsed = started.elapsed();
    eprintln!(
        "{ATTEMPTS} attempts in {elapsed:?}: {upgraded} upgraded, {limited} got 429, {other} other"
    );
    assert_eq!(upgraded + limited + other, ATTEMPTS);
    let allowed = 100.0 + 50.0 * elapsed.as_secs_f64() + 5.0;
    assert!(
        (upgraded as f64) <= allowed,
        "{upgraded} upgrades exceed burst + rate ({allowed})"
    );
    assert!(upgraded >= 100, "the burst is honoured: {upgraded}");
    assert!(
        limited >= ATTEMPTS - allowed as usize - other,
        "{limited} refused"
    );
    assert!(elapsed < Duration::from_secs(15), "flood took {elapsed:?}");
    // The flooded address gets tokens back at the configured rate.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_served(&server, &mut ok, 2).await;
    server.stop().await;
}

/// A client from 127.0.0.2 is not limited by 127.0.0.1's flood; the bystander is served.
async fn assert_served_during_flood(server: &TestServer, ok: &mut WsClient) {
    server.publish("bystander", json!({ "n": 1 })).await;
    assert_eq!(
        ok.next_publication("bystander").await["data"],
        json!({ "n": 1 })
    );
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let tcp = socket.connect(server.addr).await.expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async(server.ws_url(), tcp)
        .await
        .expect("another address is not rate limited");
    assert_eq!(resp.status().as_u16(), 101);
    use futures_util::{SinkExt, StreamExt};
    ws.send(r#"{"id":1,"connect":{}}"#.into())
        .await
        .expect("send");
    let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("connect reply in time during the flood")
        .expect("open")
        .expect("frame");
    assert!(m.to_string().contains("\"connect\""), "{m}");
}

#[tokio::test]
async fn command_flood_of_1000_per_second_gets_111_and_others_are_served() {
    let server = TestServer::start_with(|c| {
        c.client.command_rate_limit = 100;
        c.client.command_burst = 200;
    })
    .await;
    let mut ok = bystander(&server).await;
    let (mut flooder, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = flooder
        .command(json!({"subscribe": {"channel": "flood"}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
    // 1,000 commands in one second: ten frames of 100, 100 ms apart.
    let mut id = 1000u32;
    for _ in 0..10 {
        let frame: Vec<String> = (0..100)
            .map(|_| {
                id += 1;
                let mut c = publish_cmd();
                c["id"] = json!(id);
                c.to_string()
            })
            .collect();
        flooder.send_text(&frame.join("\n")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut served, mut limited) = (0, 0);
    for i in 1001..=id {
        let r = flooder.reply(i).await;
        match r["error"]["code"].as_u64() {
            None if r["publish"].is_object() => served += 1,
            Some(111) => {
                assert_eq!(r["error"]["temporary"], json!(true), "{r}");
                limited += 1
            }
            _ => panic!("unexpected reply: {r}"),
        }
    }
    eprintln!("1000 commands: {served} served, {limited} got 111");
    assert_eq!(served + limited, 1000);
    assert!(
        (190..=330).contains(&served),
        "burst 200 + ~100/s: {served}"
    );
    // The flooder's connection survives and recovers once it slows down.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = flooder.command(publish_cmd()).await;
    assert!(r["publish"].is_object(), "{r}");
    assert_served(&server, &mut ok, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn hundred_megabyte_frame_is_refused_without_buffering() {
    let server = TestServer::start().await;
    let mut ok = bystander(&server).await;
    let rss_before = rss_kib();
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(upgrade_head(server.addr).as_bytes())
        .await
        .expect("handshake");
    assert_eq!(status(&read_head(&mut s).await), 101);
    // One masked binary frame announcing 100 MB, then its payload streamed from a 64 KiB
    // buffer: the test itself never holds 100 MB.
    let len: u64 = 100 * 1024 * 1024;
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let started = Instant::now();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        if wr.write_all(&header).await.is_err() {
            return sent;
        }
        while sent < len {
            match tokio::time::timeout(Duration::from_secs(5), wr.write_all(&chunk)).await {
                Ok(Ok(())) => sent += chunk.len() as u64,
                _ => break,
            }
        }
        sent
    });
    // The server answers with close 1009 (message too big) right after the frame header.
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf))
        .await
        .expect("close frame in time")
        .expect("read");
    assert!(n >= 4, "a close frame, got {n} bytes");
    assert_eq!(buf[0], 0x88, "close opcode");
    assert_eq!(
        u16::from_be_bytes([buf[2], buf[3]]),
        1009,
        "close code 1009"
    );
    let refused_after = started.elapsed();
    drop(rd);
    let sent = writer.await.expect("writer");
    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    eprintln!("refused after {refused_after:?}, {sent} bytes written, RSS +{grown_mib} MiB");
    assert!(refused_after < Duration::from_secs(2), "{refused_after:?}");
    assert!(
        sent < len / 4,
        "the server stopped reading: {sent} bytes went through"
    );
    assert!(grown_mib < 32, "memory grew by {grown_mib} MiB");

    // An HTTP body announced as 100 MB gets 413 once the 64 KiB limit is crossed.
    let s = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "POST /connection/http_stream HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\n\r\n",
        server.addr
    );
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await.expect("head");
        let chunk = vec![b' '; 16 * 1024];
        let mut sent = 0u64;
        while sent < len {
            match tokio::time::timeout(Duration::from_secs(3), wr.write_all(&chunk)).await {
                Ok(Ok(())) => sent += chunk.len() as u64,
                _ => break,
            }
        }
        sent
    });
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), rd.read(&mut answer))
        .await
        .expect("413 in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert_eq!(status(&answer), 413, "{answer}");
    drop(rd);
    let sent = writer.await.expect("writer");
    assert!(
        sent < len / 4,
        "the server stopped reading: {sent} bytes went through"
    );
    assert_served(&server, &mut ok, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn headers_dribbled_one_byte_a_second_are_cut_by_the_header_timeout() {
    let server = TestServer::start_with(|c| {
        c.http_server.header_read_timeout = Duration::from_secs(2);
        c.http_server.handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let mut ok = bystander(&server).await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    let head = upgrade_head(server.addr);
    let started = Instant::now();
    let mut sent = 0;
    for b in head.as_bytes() {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        sent += 1;
        if closed_within(&mut s, Duration::from_secs(1)).await {
            break;
        }
    }
    let elapsed = started.elapsed();
    eprintln!("dribbler cut after {elapsed:?} and {sent} bytes");
    assert!(sent < head.len(), "the whole head went through");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_served(&server, &mut ok, 1).await;

    // A connection that sends nothing at all is closed by the handshake timeout.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert_served(&server, &mut ok, 2).await;
    server.stop().await;
}

#[tokio::test]
async fn connection_that_never_sends_connect_is_closed_3502() {
    let server =
        TestServer::start_with(|c| c.client.stale_close_delay = Duration::from_millis(500)).await;
    let mut ok = bystander(&server).await;
    let started = Instant::now();
    let mut silent = WsClient::open(&server.ws_url()).await;
    let close = silent.expect_close().await;
    assert_eq!((close.0, close.1.as_str()), (3502, "stale"));
    assert!(started.elapsed() < Duration::from_secs(2));
    // A failed connect leaves the connection unauthenticated: it is closed the same way.
    let mut failed = WsClient::open(&server.ws_url()).await;
    let expired = token(json!({"sub": "u", "exp": pushwire_test_support::now() - 10}));
    let r = failed.command(json!({"connect": {"token": expired}})).await;
    assert_eq!(r["error"]["code"], json!(109), "{r}");
    let close = failed.expect_close().await;
    assert_eq!((close.0, close.1.as_str()), (3502, "stale"));
    // The connected bystander is not stale.
    assert_served(&server, &mut ok, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn per_user_connection_limit_closes_3504() {
    let server = TestServer::start_with(|c| c.client.user_connection_limit = 2).await;
    let mut ok = bystander(&server).await;
    let t = token(json!({"sub": "42"}));
    let (mut a, _) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    let (_b, _) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    let mut third = WsClient::open(&server.ws_url()).await;
    third
        .send_text(&json!({"id": 1, "connect": {"token": t}}).to_string())
        .await;
    let close = third.expect_close().await;
    assert_eq!((close.0, close.1.as_str()), (3504, "connection limit"));
    // Another user is not affected.
    let other = token(json!({"sub": "43"}));
    let (_c, _) = WsClient::connected(&server.ws_url(), Some(&other)).await;
    // A slot freed by a close is usable again.
    a.stream().close(None).await.expect("close");
    let mut again = None;
    for _ in 0..50 {
        let mut c = WsClient::open(&server.ws_url()).await;
        let r = c.command(json!({"connect": {"token": t}})).await;
        if r["connect"].is_object() {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the freed slot is reused");
    assert_served(&server, &mut ok, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn subscriptions_beyond_channel_limit_get_106() {
    let server = TestServer::start_with(|c| c.client.channel_limit = 3).await;
    let mut ok = bystander(&server).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    for ch in ["a", "b", "c"] {
        let r = c.command(json!({"subscribe": {"channel": ch}})).await;
        assert!(r["subscribe"].is_object(), "{r}");
    }
    let r = c.command(json!({"subscribe": {"channel": "d"}})).await;
    assert_eq!(r["error"]["code"], json!(106), "{r}");
    // Still usable: unsubscribe frees a slot.
    let r = c.command(json!({"unsubscribe": {"channel": "a"}})).await;
    assert!(r.get("error").is_none(), "{r}");
    let r = c.command(json!({"subscribe": {"channel": "d"}})).await;
    assert!(r["subscribe"].is_object(), "{r}");
    assert_served(&server, &mut ok, 1).await;
    server.stop().await;
}

/// A connect asking (in `subs`) for more channels than `client.channel_limit` is closed with
/// 3505, as docs/security.md says, instead of being cut silently.
#[tokio::test]
async fn connect_subs_beyond_channel_limit_close_3505() {
    let server = TestServer::start_with(|c| c.client.channel_limit = 3).await;
    let mut ok = bystander(&server).await;
    let mut c = WsClient::open(&server.ws_url()).await;
    let subs: serde_json::Map<String, Value> = ["a", "b", "c", "d"]
        .iter()
        .map(|ch| (ch.to_string(), json!({})))
        .collect();
    c.send_text(&json!({"id": 1, "connect": {"subs": subs}}).to_string())
        .await;
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 3505);
    // Up to the limit is fine.
    let mut c = WsClient::open(&server.ws_url()).await;
    let subs: serde_json::Map<String, Value> = ["a", "b", "c"]
        .iter()
        .map(|ch| (ch.to_string(), json!({})))
        .collect();
    let r = c.command(json!({"connect": {"subs": subs}})).await;
    assert_eq!(
        r["connect"]["subs"].as_object().map(|m| m.len()),
        Some(3),
        "{r}"
    );
    assert_served(&server, &mut ok, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_max_connections_get_503() {
    let server = TestServer::start_with(|c| c.http_server.max_connections = 3).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(WsClient::connected(&server.ws_url(), None).await.0);
    }
    let mut s = TcpStream::connect(server.addr).await.expect("tcp accept");
    let _ = s.write_all(upgrade_head(server.addr).as_bytes()).await;
    let head = tokio::time::timeout(Duration::from_secs(2), read_head(&mut s))
        .await
        .expect("answer in time");
    assert_eq!(status(&head), 503, "{head}");
    assert!(head.contains("Retry-After: 1"), "{head}");
    // The connected clients keep working.
    let r = clients[0]
        .command(json!({"subscribe": {"channel": "x"}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
    // A closed connection frees its slot.
    let mut gone = clients.pop().expect("one");
    gone.stream().close(None).await.expect("close");
    drop(gone);
    let mut admitted = false;
    for _ in 0..50 {
        let mut s = TcpStream::connect(server.addr).await.expect("tcp");
        let _ = s.write_all(upgrade_head(server.addr).as_bytes()).await;
        if status(&read_head(&mut s).await) == 101 {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "a freed slot admits a new connection");
    drop(clients);
    server.stop().await;
}

#[tokio::test]
async fn oversized_headers_get_431_and_oversized_emulation_body_413() {
    let server = TestServer::start_with(|c| {
        c.http_server.max_header_size = 2048;
        c.http_server.connection_body_size_limit = 2048;
    })
    .await;
    let mut ok = bystander(&server).await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    let big = "x".repeat(4096);
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: {}\r\nX-Big: {big}\r\n\r\n",
        server.addr
    );
    s.write_all(head.as_bytes()).await.expect("head");
    assert_eq!(status(&read_head(&mut s).await), 431);

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let emulation = |body: Value| {
        http.post(format!("{}/emulation", server.http_url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let resp = emulation(json!({"session": "s", "node": "n", "data": "x".repeat(4096)}))
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 413);
    let resp = emulation(json!({"session": "s", "node": "n", "data": "{}"}))
        .await
        .expect("request");
    assert_eq!(
        resp.status().as_u16(),
        404,
        "small body passes to the session lookup"
    );
    let resp = http
        .get(format!("{}/health", server.http_url()))
        .send()
        .await
        .expect("health");
    assert_eq!(resp.status().as_u16(), 200);
    assert_served(&server, &mut ok, 1).await;
    server.stop().await;
}

/// Status of a plain GET of the WebSocket endpoint with `X-Forwarded-For: xff` (no upgrade:
/// anything but 429 means the connect-rate limiter let it through).
async fn connect_status(server: &TestServer, xff: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("http://{}/connection/websocket", server.addr))
        .header("x-forwarded-for", xff)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn connect_rate_counts_the_forwarded_client_only_behind_a_trusted_proxy() {
    let limited = |proxies: Vec<String>| {
        move |c: &mut pushwire_server::ServerConfig| {
            c.http_server.connect_rate_per_ip = 1;
            c.http_server.connect_burst_per_ip = 2;
            c.http_server.trusted_proxies = proxies.clone();
        }
    };
    // The test client (127.0.0.1) is the trusted proxy: each forwarded client has its own bucket.
    let server = TestServer::start_with(limited(vec!["127.0.0.0/8".into()])).await;
    for client in ["198.51.100.1", "198.51.100.2"] {
        assert_ne!(connect_status(&server, client).await, 429, "{client}");
        assert_ne!(connect_status(&server, client).await, 429, "{client}");
        assert_eq!(connect_status(&server, client).await, 429, "{client}");
    }
    // A forged entry left of the proxy's own does not buy a new bucket.
    assert_eq!(
        connect_status(&server, "203.0.113.50, 198.51.100.1").await,
        429
    );
    server.stop().await;

    // Not trusted: the header is ignored and every request counts against 127.0.0.1.
    let server = TestServer::start_with(limited(Vec::new())).await;
    assert_ne!(connect_status(&server, "198.51.100.1").await, 429);
    assert_ne!(connect_status(&server, "198.51.100.2").await, 429);
    assert_eq!(connect_status(&server, "198.51.100.3").await, 429);
    server.stop().await;
}

#[tokio::test]
async fn idle_http2_connection_gets_goaway_and_a_streaming_one_is_kept() {
    let timeout = Duration::from_millis(800);
    let server = TestServer::start_with(|c| c.http_server.http2_idle_timeout = timeout).await;

    // Handshake (HTTP/2 with prior knowledge) and nothing else: closed after the timeout.
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (_requests, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let started = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the idle connection is closed by the server");
    let waited = started.elapsed();
    assert!(waited >= timeout - Duration::from_millis(50), "{waited:?}");

    // An SSE stream open for three timeouts keeps its connection; once it ends, the
    // connection goes idle and is closed.
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (mut requests, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let req = axum::http::Request::get(format!(
        "http://{}/connection/sse?cf_connect=%7B%22id%22%3A1%2C%22connect%22%3A%7B%7D%7D",
        server.addr
    ))
    .body(())
    .unwrap();
    let (response, _) = requests.send_request(req, true).expect("send");
    let response = response.await.expect("response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut seen = String::new();
    while !seen.contains("connect") {
        let chunk = body.data().await.expect("connect reply").expect("data");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    tokio::time::sleep(timeout * 3).await;
    assert!(
        !conn.is_finished(),
        "a connection with a stream in flight stays"
    );
    drop(body);
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("closed once idle")
        .expect("join")
        .ok();
    server.stop().await;
}

/// A raw TCP connection with a 4 KB receive buffer that sends `request` and then never reads.
async fn never_reading(addr: SocketAddr, request: String) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut s = socket.connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("request");
    s
}

/// Finding 1 of the adversarial probe: streaming readers that stop reading used to keep their
/// socket (and `max_connections` permit) until they closed it themselves.
#[tokio::test]
async fn streaming_readers_that_stop_reading_are_cut_by_the_write_timeout() {
    let server = TestServer::start_with(|c| {
        c.http_server.max_connections = 4;
        c.http_server.write_timeout = Duration::from_secs(1);
        c.client.queue_max_size = 64 * 1024;
    })
    .await;
    let addr = server.addr;
    let sse = never_reading(
        addr,
        format!(
            "GET /connection/uni_sse?cf_connect=%7B%22subs%22%3A%7B%22hold%22%3A%7B%7D%7D%7D \
             HTTP/1.1\r\nHost: {addr}\r\n\r\n"
        ),
    )
    .await;
    let body = r#"{"subs":{"hold":{}}}"#;
    let stream = never_reading(
        addr,
        format!(
            "POST /connection/uni_http_stream HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    let mut watcher = bystander(&server).await;
    // Both readers subscribed (the node counts their subscriptions to `hold`).
    pushwire_test_support::sdk::eventually("both readers subscribed to hold", || {
        server.node().hub().num_subscribers("hold") == 2
    })
    .await;
    // 8 MB into `hold`: more than the kernel buffers of the two sockets absorb.
    let chunk = "x".repeat(4096);
    for _ in 0..2000 {
        server.publish("hold", json!({ "x": chunk })).await;
    }
    // The slots are full: the two stalled readers, the bystander and the API client's
    // keep-alive connection. Once the stalled writes
    // time out, a new connection is admitted.
    let started = Instant::now();
    let mut admitted = false;
    while started.elapsed() < Duration::from_secs(8) {
        let mut s = TcpStream::connect(addr).await.expect("tcp");
        let _ = s.write_all(upgrade_head(addr).as_bytes()).await;
        if status(&read_head(&mut s).await) == 101 {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(admitted, "the stalled readers' slots were freed");
    assert_served(&server, &mut watcher, 1).await;
    drop((sse, stream));
    server.stop().await;
}

/// Finding 2: a request body announced and then withheld used to hold its connection for
/// ever; now it gets 408 within `http_server.body_read_timeout` and the connection closes.
#[tokio::test]
async fn withheld_request_bodies_get_408_within_the_body_timeout() {
    let server = TestServer::start_with(|c| {
        c.http_server.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut watcher = bystander(&server).await;
    for path in ["/emulation", "/api/publish", "/connection/http_stream"] {
        let mut s = TcpStream::connect(server.addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{{",
            server.addr,
            pushwire_test_support::API_KEY
        );
        s.write_all(head.as_bytes()).await.expect("head");
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), read_head(&mut s))
            .await
            .expect("an answer within the timeout");
        assert_eq!(status(&answer), 408, "{path}: {answer}");
        assert!(started.elapsed() >= Duration::from_millis(900), "{path}");
        assert!(
            closed_within(&mut s, Duration::from_secs(3)).await,
            "{path}: the connection closes"
        );
    }
    assert_served(&server, &mut watcher, 1).await;
    server.stop().await;
}

/// Finding 3: an HTTP/2 peer that ignores GOAWAY (and its PING) used to keep the connection
/// for ever; it is cut `header_read_timeout` after GOAWAY.
#[tokio::test]
async fn http2_peer_ignoring_goaway_is_cut() {
    let server = TestServer::start_with(|c| {
        c.http_server.http2_idle_timeout = Duration::from_millis(500);
        c.http_server.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    // The preface and an empty SETTINGS frame, then nothing: no SETTINGS ack, no PING ack.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    assert!(
        closed_within(&mut s, Duration::from_secs(6)).await,
        "a peer ignoring GOAWAY is cut"
    );
    server.stop().await;
}
