//! The cluster-test harness checked on its own: the real HAProxy balances every request of one
//! keep-alive connection, streams responses without buffering, and the SDK scripts for the
//! cluster tests (`js/cluster.mjs`, `js/chaos.mjs`, `python/cluster_user.py`) pass through it
//! against a single real node.

use std::net::SocketAddr;
use std::time::Duration;

use pushwire_core::config::{ChannelOptions, NamespaceConfig};
use pushwire_test_support::haproxy::HaProxy;
use pushwire_test_support::sdk_live::LiveScript;
use pushwire_test_support::{token, TestServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A keep-alive HTTP/1.1 server on 127.0.0.1:0 answering every request with `name`.
async fn named_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut conn = BufReader::new(conn);
                while read_head(&mut conn).await.is_some() {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                        name.len()
                    );
                    if conn.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// An HTTP/1.1 server that answers `/health` and, for any other path, sends the head and a
/// first chunk of a chunked body, then holds the response open for 5 s.
async fn slow_stream_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut conn = BufReader::new(conn);
                let Some(head) = read_head(&mut conn).await else {
                    return;
                };
                let conn = conn.get_mut();
                if head.starts_with("GET /health") {
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(b"5\r\nfirst\r\n").await;
                tokio::time::sleep(Duration::from_secs(5)).await;
                let _ = conn.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

/// Reads one request head (requests here have no body); `None` at end of stream.
async fn read_head(conn: &mut BufReader<TcpStream>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Some(head);
        }
    }
}

/// Sends `GET /` on `conn` and returns the body of the response (Content-Length framed).
async fn get(conn: &mut BufReader<TcpStream>) -> String {
    conn.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("send request");
    let head = read_head(conn).await.expect("response head");
    assert!(head.starts_with("HTTP/1.1 200"), "response: {head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .expect("content-length")
        .parse()
        .expect("length");
    let mut body = vec![0; len];
    conn.read_exact(&mut body).await.expect("body");
    String::from_utf8(body).expect("utf-8")
}

#[tokio::test]
async fn every_request_of_one_connection_is_balanced() {
    let backends = [named_backend("A").await, named_backend("B").await];
    let proxy = HaProxy::start(&backends).await;
    let mut conn = BufReader::new(TcpStream::connect(proxy.addr()).await.expect("connect"));
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(get(&mut conn).await);
    }
    assert!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "consecutive requests on one keep-alive connection alternate backends: {seen:?}\n{}",
        proxy.log()
    );
}

#[tokio::test]
async fn streamed_responses_pass_through_at_once() {
    let proxy = HaProxy::start(&[slow_stream_backend().await]).await;
    let mut conn = TcpStream::connect(proxy.addr()).await.expect("connect");
    conn.write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("send");
    let mut got = Vec::new();
    let first = tokio::time::timeout(Duration::from_secs(2), async {
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("first") {
            let n = conn.read(&mut buf).await.expect("read");
            assert!(n > 0, "stream closed early");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        first.is_ok(),
        "first chunk not forwarded within 2 s (the backend holds the rest 5 s): {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// A node with `stream:` (history 1000, 300 s, force_recovery, no join/leave) behind HAProxy.
async fn node_behind_proxy() -> (TestServer, HaProxy) {
    let server = TestServer::start_with(|c| {
        let open = c.channel.without_namespace.clone();
        c.channel.namespaces.push(NamespaceConfig {
            name: "stream".into(),
            options: ChannelOptions {
                history_size: 1000,
                history_ttl: Duration::from_secs(300),
                force_recovery: true,
                ..open
            },
        });
    })
    .await;
    let proxy = HaProxy::start(&[server.addr]).await;
    (server, proxy)
}

async fn cluster_scenario(transport: &str) {
    let (_server, proxy) = node_behind_proxy().await;
    let user = format!("user-{transport}");
    let channel = format!("stream:cluster-{transport}");
    let token = token(json!({ "sub": user }));
    let script = LiveScript::node(
        &["js/cluster.mjs", transport, &channel, &user, &token],
        &proxy.http_url(),
    );
    let result = script.finish(Duration::from_secs(70)).await.result();
    assert_eq!(result["received"], 120, "{result}");
    assert_eq!(result["transport"], transport, "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_cluster_scenario_over_http_stream() {
    cluster_scenario("http_stream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_cluster_scenario_over_sse() {
    cluster_scenario("sse").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_chaos_observer_counts_every_publication() {
    let (server, proxy) = node_behind_proxy().await;
    let channel = "stream:chaos";
    let last = 99;
    let mut script = LiveScript::node(
        &[
            "js/chaos.mjs",
            channel,
            &last.to_string(),
            "300",
            "60",
            "chaos-user",
        ],
        &proxy.http_url(),
    );
    script
        .line("READY", Duration::from_secs(70), |l| l == "READY")
        .await;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for n in 0..=last {
        tick.tick().await;
        server.publish(channel, json!({ "n": n })).await;
        if n == last / 2 {
            // Every client reconnects (4000-4499) and recovers what it missed meanwhile.
            let disconnect = json!({ "user": "chaos-user", "disconnect": { "code": 4000 } });
            assert_eq!(server.api("disconnect", disconnect).await.0, 200);
        }
    }
    let result = script.finish(Duration::from_secs(90)).await.result();
    let want = json!({
        "clients": 300, "lost": 0, "duplicated": 0, "reconnects": 300, "complete": 300,
        "outOfOrder": 0, "unrecovered": 0, "unexpected": 0, "timedOut": false,
    });
    assert_eq!(result, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cluster_user_reports_events() {
    let (server, proxy) = node_behind_proxy().await;
    let channel = "stream:py";
    let token = token(json!({ "sub": "py-user" }));
    let mut script = LiveScript::python(
        &["python/cluster_user.py", &proxy.ws_url(), &token, channel],
        &proxy.http_url(),
    );
    let secs = Duration::from_secs(15);
    let is = |event: &'static str| move |v: &Value| v["event"] == event;
    script.json("connected", secs, is("connected")).await;
    let sub = script.json("subscribed", secs, is("subscribed")).await;
    assert_eq!(sub["channel"], channel);

    server.publish(channel, json!({ "n": 1 })).await;
    let publication = script.json("publication", secs, is("publication")).await;
    assert_eq!(publication["data"], json!({ "n": 1 }));
    assert_eq!(publication["channel"], channel);

    let (status, _) = server
        .api(
            "subscribe",
            json!({ "user": "py-user", "channel": "stream:server" }),
        )
        .await;
    assert_eq!(status, 200);
    let server_sub = script
        .json("server_subscribed", secs, is("server_subscribed"))
        .await;
    assert_eq!(server_sub["channel"], "stream:server");
    server.publish("stream:server", json!({ "n": 2 })).await;
    let publication = script.json("publication", secs, is("publication")).await;
    assert_eq!(publication["channel"], "stream:server");
    assert_eq!(publication["server_side"], true);

    let (status, _) = server
        .api(
            "unsubscribe",
            json!({ "user": "py-user", "channel": channel }),
        )
        .await;
    assert_eq!(status, 200);
    let unsub = script.json("unsubscribed", secs, is("unsubscribed")).await;
    assert_eq!(unsub["channel"], channel);

    let (status, _) = server
        .api(
            "disconnect",
            json!({ "user": "py-user", "disconnect": {"code": 4000, "reason": "test"} }),
        )
        .await;
    assert_eq!(status, 200);
    let connecting = script
        .json("connecting after disconnect", secs, |v| {
            v["event"] == "connecting" && v["code"] == 4000
        })
        .await;
    assert_eq!(connecting["reason"], "test");
    script.json("reconnected", secs, is("connected")).await;
    script.kill().await;
    println!("{}", script.report());
}
