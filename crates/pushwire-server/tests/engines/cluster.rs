//! A cluster behaves as one server: nodes on one Redis prefix apply user operations made on any
//! node, list each other in `info`, answer `channels` surveys, forward `/emulation` bodies to
//! the node that owns the session, and count `client.user_connection_limit` across nodes.
//! Real Redis, real HAProxy (round-robin, no stickiness), real centrifuge-js and
//! centrifuge-python; nodes killed with SIGKILL are real `pushwire serve` processes.

use std::time::Duration;

use pushwire_server::config::EngineKind;
use pushwire_server::ServerConfig;
use pushwire_test_support::haproxy::HaProxy;
use pushwire_test_support::node_process::NodeProcess;
use pushwire_test_support::sdk_live::LiveScript;
use pushwire_test_support::{test_config, token, TestServer, WsClient, API_KEY};
use serde_json::{json, Value};

const REDIS: &str = "redis://127.0.0.1:6379";
const PUSHWIRE: &str = env!("CARGO_BIN_EXE_pushwire");

async fn redis() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(REDIS).expect("redis url");
    match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => panic!(
            "the cluster tests need a real Redis at {REDIS} (scripts/services.sh starts it): {e}"
        ),
    }
}

fn unique_prefix() -> String {
    format!("pwcluster.{}", uuid::Uuid::new_v4().simple())
}

/// The test configuration on Redis under `prefix`, with fast announcements.
fn config(prefix: &str) -> ServerConfig {
    let mut c = test_config();
    c.engine.kind = EngineKind::Redis;
    c.engine.redis.address = REDIS.into();
    c.engine.redis.prefix = prefix.into();
    c.node.info_interval = Duration::from_millis(200);
    c.node.info_ttl = Duration::from_secs(2);
    c.node.survey_timeout = Duration::from_secs(2);
    c.http_server.connect_rate_per_ip = 0;
    // A long history, so a client of a killed node recovers everything it missed.
    c.channel
        .namespaces
        .push(pushwire_core::config::NamespaceConfig {
            name: "stream".into(),
            options: pushwire_core::config::ChannelOptions {
                history_size: 1000,
                history_ttl: Duration::from_secs(300),
                force_recovery: true,
                allow_subscribe_for_client: true,
                allow_subscribe_for_anonymous: true,
                allow_history_for_subscriber: true,
                ..Default::default()
            },
        });
    c
}

/// `n` in-process nodes on one prefix, each seeing all the others in `info`.
async fn nodes(prefix: &str, n: usize, f: impl Fn(&mut ServerConfig)) -> Vec<TestServer> {
    drop(redis().await);
    let mut out = Vec::new();
    for i in 0..n {
        let c = {
            let mut c = config(prefix);
            c.node.name = format!("node-{i}");
            f(&mut c);
            c
        };
        out.push(TestServer::start_with(move |x| *x = c).await);
    }
    for node in &out {
        wait_for_nodes(node, n).await;
    }
    out
}

async fn wait_for_nodes(node: &TestServer, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = node.api("info", json!({})).await;
        let got = body["result"]["nodes"].as_array().map_or(0, Vec::len);
        if got == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} nodes in info, got {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cleanup(prefix: &str) {
    let mut conn = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}.*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

fn user_token(user: &str) -> String {
    token(json!({"sub": user, "exp": pushwire_test_support::now() + 3600}))
}

const T: Duration = Duration::from_secs(10);

/// One server API call on `node` made with the real `cent` client; its result.
async fn cent(node: &TestServer, method: &str, params: Value) -> Value {
    let params = params.to_string();
    LiveScript::python(
        &["python/cluster_api.py", method, &params],
        &node.http_url(),
    )
    .finish(Duration::from_secs(30))
    .await
    .result()
}

#[tokio::test]
async fn user_operations_made_on_one_node_reach_the_user_on_another() {
    let prefix = unique_prefix();
    let n = nodes(&prefix, 2, |_| {}).await;
    let (a, b) = (&n[0], &n[1]);
    let tok = user_token("42");
    let mut user = LiveScript::python(
        &["python/cluster_user.py", &b.ws_url(), &tok, "-", "60"],
        &b.http_url(),
    );
    user.json("connected", T, |v| v["event"] == "connected")
        .await;

    // subscribe on A (cent) → server-side subscription on B, and its publications flow.
    cent(a, "subscribe", json!({"user": "42", "channel": "chat:ops"})).await;
    user.json("server_subscribed", T, |v| {
        v["event"] == "server_subscribed" && v["channel"] == "chat:ops"
    })
    .await;
    a.publish("chat:ops", json!({"n": 1})).await;
    let p = user
        .json("publication", T, |v| v["event"] == "publication")
        .await;
    assert_eq!(p["data"]["n"], 1);

    // unsubscribe on A → server-side unsubscription on B.
    cent(
        a,
        "unsubscribe",
        json!({"user": "42", "channel": "chat:ops"}),
    )
    .await;
    user.json("server_unsubscribed", T, |v| {
        v["event"] == "server_unsubscribed" && v["channel"] == "chat:ops"
    })
    .await;

    // refresh on A with expired → B closes the connection with 3005 (the SDK reconnects).
    cent(a, "refresh", json!({"user": "42", "expired": true})).await;
    let c = user
        .json("connecting after 3005", T, |v| {
            v["event"] == "connecting" && v["code"] == 3005
        })
        .await;
    assert_eq!(c["code"], 3005);
    user.json("reconnected", T, |v| v["event"] == "connected")
        .await;

    // disconnect on A with a terminal code → the SDK on B stops.
    cent(
        a,
        "disconnect",
        json!({"user": "42", "disconnect": {"code": 4501, "reason": "bye"}}),
    )
    .await;
    let d = user
        .json("disconnected", T, |v| v["event"] == "disconnected")
        .await;
    assert_eq!(d["code"], 4501);

    // info through cent on B lists both nodes.
    let info = cent(b, "info", json!({})).await;
    assert_eq!(info["nodes"].as_array().map(Vec::len), Some(2), "{info}");
    drop(user);
    for s in n {
        s.stop().await;
    }
    cleanup(&prefix).await;
}

#[tokio::test]
async fn channels_on_one_node_lists_channels_held_only_on_others() {
    let prefix = unique_prefix();
    let n = nodes(&prefix, 3, |_| {}).await;
    let mut clients = Vec::new();
    for (i, node) in n.iter().enumerate().skip(1) {
        for k in 0..=i {
            let (mut ws, _) = WsClient::connected(&node.ws_url(), None).await;
            let ch = format!("room-{i}");
            let r = ws.command(json!({"subscribe": {"channel": ch}})).await;
            assert!(r.get("error").is_none(), "{r} (client {k})");
            clients.push(ws);
        }
    }
    let (status, body) = n[0].api("channels", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["result"]["channels"],
        json!({"room-1": {"num_clients": 2}, "room-2": {"num_clients": 3}}),
        "{body}"
    );
    let (_, body) = n[0].api("channels", json!({"pattern": "room-2*"})).await;
    assert_eq!(
        body["result"]["channels"],
        json!({"room-2": {"num_clients": 3}})
    );
    let metrics = reqwest::get(format!("{}/metrics", n[0].http_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\npushwire_cluster_surveys_total 2\n"),
        "surveys counted:\n{metrics}"
    );
    assert!(metrics.contains("\npushwire_cluster_nodes 3\n"));
    assert!(metrics.contains("\npushwire_cluster_surveys_partial_total 0\n"));
    drop(clients);
    for s in n {
        s.stop().await;
    }
    cleanup(&prefix).await;
}

#[tokio::test]
async fn the_user_connection_limit_counts_every_node() {
    let prefix = unique_prefix();
    let n = nodes(&prefix, 3, |c| c.client.user_connection_limit = 2).await;
    let tok = user_token("lim");
    let (_a, ra) = WsClient::connected(&n[0].ws_url(), Some(&tok)).await;
    assert!(ra.get("error").is_none(), "{ra}");
    let (_b, rb) = WsClient::connected(&n[1].ws_url(), Some(&tok)).await;
    assert!(rb.get("error").is_none(), "{rb}");
    // The third, on a node that holds none of the user's connections, is refused.
    let mut c = WsClient::open(&n[2].ws_url()).await;
    c.send_text(&json!({"id": 1, "connect": {"token": tok}}).to_string())
        .await;
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 3504, "connection limit");
    // Another user is not affected; a closed connection frees its place.
    let (_o, ro) = WsClient::connected(&n[2].ws_url(), Some(&user_token("other"))).await;
    assert!(ro.get("error").is_none(), "{ro}");
    drop(_a);
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let mut ws = WsClient::open(&n[2].ws_url()).await;
        ws.send_text(&json!({"id": 1, "connect": {"token": tok}}).to_string())
            .await;
        let r = ws.next_message().await.unwrap_or(Value::Null);
        if r["connect"].is_object() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "place not freed: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in n {
        s.stop().await;
    }
    cleanup(&prefix).await;
}

#[tokio::test]
async fn bad_control_messages_are_counted_and_dropped() {
    let prefix = unique_prefix();
    let n = nodes(&prefix, 1, |_| {}).await;
    let mut conn = redis().await;
    let garbage: i64 = redis::cmd("PUBLISH")
        .arg(format!("{prefix}.control"))
        .arg(&b"\xff\xff\xffnot protobuf"[..])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(garbage, 1, "the node listens on the control channel");
    // Version 99 of an envelope: field 1 = 99, field 2 = "x", field 14 (leave) = empty.
    let future = [0x08, 99, 0x12, 1, b'x', 0x72, 0];
    let _: i64 = redis::cmd("PUBLISH")
        .arg(format!("{prefix}.control"))
        .arg(&future[..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let m = reqwest::get(format!("{}/metrics", n[0].http_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.contains("\npushwire_cluster_control_invalid_total 2\n") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The node keeps serving.
    n[0].publish("chat:x", json!({"ok": true})).await;
    wait_for_nodes(&n[0], 1).await;
    for s in n {
        s.stop().await;
    }
    cleanup(&prefix).await;
}

/// A process node on `prefix`.
async fn process(prefix: &str, name: &str) -> NodeProcess {
    let mut c = config(prefix);
    c.node.name = name.into();
    c.log.level = "info".into();
    NodeProcess::start(PUSHWIRE, c).await
}

async fn info_names(node: &NodeProcess) -> Vec<String> {
    let (_, body) = node.api("info", json!({})).await;
    let mut names: Vec<String> = body["result"]["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn info_lists_every_node_and_forgets_a_killed_one_within_the_ttl() {
    let prefix = unique_prefix();
    drop(redis().await);
    let a = process(&prefix, "a").await;
    let b = process(&prefix, "b").await;
    let mut c = process(&prefix, "c").await;
    let deadline = tokio::time::Instant::now() + T;
    while info_names(&a).await != ["a", "b", "c"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            info_names(&a).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, body) = b.api("info", json!({})).await;
    for node in body["result"]["nodes"].as_array().unwrap() {
        assert!(
            node["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{node}"
        );
        assert!(node["version"].as_str().is_some_and(|v| !v.is_empty()));
        assert!(node["uptime"].is_u64() && node["num_clients"].is_u64());
    }
    c.kill().await;
    let killed = tokio::time::Instant::now();
    while info_names(&a).await != ["a", "b"] {
        assert!(
            killed.elapsed() < Duration::from_secs(2) + Duration::from_millis(800),
            "a killed node is gone within node.info_ttl: {:?}",
            info_names(&a).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(info_names(&b).await, ["a", "b"]);
    // Emulation for a session of the dead node: 404 once it is gone (centrifuge-js reconnects).
    let resp = reqwest::Client::new()
        .post(format!("{}/emulation", a.http_url()))
        .json(&json!({"session": "s", "node": "no-such-node", "data": "{}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    drop((a, b));
    cleanup(&prefix).await;
}

/// Three nodes behind round-robin HAProxy.
async fn balanced_cluster(prefix: &str) -> (Vec<NodeProcess>, HaProxy) {
    drop(redis().await);
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(process(prefix, name).await);
    }
    let deadline = tokio::time::Instant::now() + T;
    while info_names(&nodes[0]).await.len() != 3 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let lb = HaProxy::start(&addrs).await;
    (nodes, lb)
}

#[tokio::test]
async fn centrifuge_js_over_http_stream_and_sse_through_round_robin_haproxy() {
    let prefix = unique_prefix();
    let (nodes, lb) = balanced_cluster(&prefix).await;
    for transport in ["http_stream", "sse"] {
        let channel = format!("stream:lb-{transport}");
        let run = LiveScript::node(
            &["js/cluster.mjs", transport, &channel, "lb-user"],
            &lb.http_url(),
        )
        .finish(Duration::from_secs(90))
        .await;
        let r = run.result();
        assert_eq!(r["live"], 100, "{r}");
        assert_eq!(r["recovered"], 20, "{r}");
        assert_eq!(r["duplicates"], 0, "{r}");
    }
    // Emulation bodies did cross nodes (round robin over 3 nodes).
    let mut forwarded = 0;
    for n in &nodes {
        let m = reqwest::get(format!("{}/metrics", n.http_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        forwarded += m
            .lines()
            .find_map(|l| l.strip_prefix("pushwire_cluster_emulation_forwarded_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert!(forwarded > 0, "no emulation request was forwarded");
    drop((nodes, lb));
    cleanup(&prefix).await;
}

#[tokio::test]
async fn chaos_a_killed_node_loses_nothing_for_300_clients_behind_haproxy() {
    let prefix = unique_prefix();
    let (mut nodes, lb) = balanced_cluster(&prefix).await;
    const LAST: u64 = 399;
    let channel = "stream:chaos";
    let mut clients = LiveScript::node(
        &["js/chaos.mjs", channel, &LAST.to_string(), "300", "120"],
        &lb.http_url(),
    );
    clients
        .line("READY", Duration::from_secs(60), |l| l == "READY")
        .await;
    // 50 publications/s through node a's API; node c dies a third of the way.
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..=LAST {
        tick.tick().await;
        if i == 130 {
            nodes[2].kill().await;
        }
        let resp = http
            .post(format!("{}/api/publish", nodes[0].http_url()))
            .header("X-API-Key", API_KEY)
            .json(&json!({"channel": channel, "data": {"n": i}}))
            .send()
            .await
            .expect("publish");
        assert_eq!(resp.status().as_u16(), 200);
    }
    let run = clients.finish(Duration::from_secs(150)).await;
    let r = run.result();
    assert_eq!(r["clients"], 300, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicated"], 0, "{r}");
    assert_eq!(r["complete"], 300, "{r}");
    assert!(
        r["reconnects"].as_u64().unwrap_or(0) >= 50,
        "the clients of the killed node reconnected: {r}"
    );
    drop((nodes, lb));
    cleanup(&prefix).await;
}

#[tokio::test]
async fn emulation_for_a_node_that_just_died_answers_503_so_the_sdk_reconnects() {
    let prefix = unique_prefix();
    drop(redis().await);
    let a = process(&prefix, "a").await;
    let mut b = process(&prefix, "b").await;
    let deadline = tokio::time::Instant::now() + T;
    while info_names(&a).await != ["a", "b"] {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, body) = b.api("info", json!({})).await;
    let b_uid = body["result"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "b")
        .and_then(|n| n["uid"].as_str())
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let post = |node: String| {
        http.post(format!("{}/emulation", a.http_url()))
            .json(&json!({"session": "gone", "node": node, "data": "{}"}))
            .send()
    };
    // While b lives, a body for one of its (unknown) sessions is forwarded and accepted.
    assert_eq!(post(b_uid.clone()).await.unwrap().status().as_u16(), 204);
    b.kill().await;
    // b is still in a's table (node.info_ttl) but no longer answers.
    let started = tokio::time::Instant::now();
    assert_eq!(post(b_uid.clone()).await.unwrap().status().as_u16(), 503);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited node.survey_timeout"
    );
    // Once b is forgotten: 404.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(post(b_uid).await.unwrap().status().as_u16(), 404);
    drop(a);
    cleanup(&prefix).await;
}

/// A redis-server of this test alone, so the test can stop it.
struct OwnRedis {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = pushwire_test_support::node_process::free_port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server (scripts/services.sh installs it)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return OwnRedis {
                    port,
                    child: Some(child),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on {port} did not start");
    }

    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}

#[tokio::test]
async fn with_redis_down_user_operations_fail_visibly_and_surveys_are_partial() {
    let mut own = OwnRedis::start().await;
    let prefix = unique_prefix();
    let mut servers = Vec::new();
    for name in ["a", "b"] {
        let mut c = config(&prefix);
        c.engine.redis.address = format!("redis://127.0.0.1:{}", own.port).into();
        c.engine.redis.command_timeout = Duration::from_millis(500);
        c.node.name = name.into();
        servers.push(TestServer::start_with(move |x| *x = c).await);
    }
    for s in &servers {
        wait_for_nodes(s, 2).await;
    }
    let a = &servers[0];
    let (mut ws, _) = WsClient::connected(&a.ws_url(), Some(&user_token("7"))).await;
    own.stop().await;
    // The API answers internal error, and nothing was applied here either.
    let (status, body) = a.api("disconnect", json!({"user": "7"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["error"]["code"], 100, "{body}");
    assert!(
        ws.silent_for(Duration::from_millis(500)).await,
        "the connection stays: nothing half-applied"
    );
    let (_, body) = a
        .api("subscribe", json!({"user": "7", "channel": "chat:x"}))
        .await;
    assert_eq!(body["error"]["code"], 100, "{body}");
    // channels answers with what it has (this node's), and the survey is counted as partial.
    let (status, body) = a.api("channels", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["result"]["channels"].is_object(), "{body}");
    let m = reqwest::get(format!("{}/metrics", a.http_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("\npushwire_cluster_surveys_partial_total 1\n"),
        "{m}"
    );
    assert!(
        !m.contains("\npushwire_cluster_control_send_errors_total 0\n"),
        "{m}"
    );
    // /health still answers 200 (the node serves its clients) and names what is degraded.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let r = reqwest::get(format!("{}/health", a.http_url()))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body: Value = r.json().await.unwrap();
        if body["degraded"][0]
            .as_str()
            .is_some_and(|d| d.contains("redis pub/sub disconnected"))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(ws);
    for s in servers {
        s.stop().await;
    }
}
