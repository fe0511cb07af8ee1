//! Issue 14 item 4 for lifecycle sinks: a dependency that *hangs* (SIGSTOP, socket still
//! open) rather than dies. A webhook receiver in a separate Python process (standard library
//! `http.server`) that checks each body's signature and appends every event to a file, and a
//! private `redis-server` behind a Redis stream sink. While it is stopped, clients connect,
//! subscribe and leave; the node keeps serving, says the sink is degraded (`/health`,
//! `/metrics`) once the sink's `timeout` has passed, and after SIGCONT every event made during
//! the hang arrives (at least once; the webhook's acknowledged deliveries in `seq` order, as
//! docs/lifecycle.md promises).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use pushwire_server::config::{SinkConfig, SinkKind};
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::stoppable::StoppableProcess;
use pushwire_test_support::{eventually, token, TestServer, WsClient};
use serde_json::{json, Value};

const SECRET: &str = "sink-hang-test-secret-0123456789";
/// The sink's delivery timeout.
const TIMEOUT: Duration = Duration::from_secs(3);
/// How long the receiver stays stopped.
const HANG: Duration = Duration::from_secs(8);
/// A client connecting, subscribing and getting a publication while the sink hangs takes a
/// few milliseconds; anything near the sink's timeout would mean the node waits for the sink.
const SERVED_WITHIN: Duration = Duration::from_millis(1500);

/// A webhook receiver: one request at a time (so events are recorded in the order the
/// requests were accepted), every event of a correctly signed body appended to the file
/// `argv[1]` as one JSON line `{"acked": bool, "event": {…}}`; a bad signature is answered
/// 401. `acked` is false for a request whose sender had already hung up when it was read (a
/// delivery the node timed out and will retry, read from the kernel's buffer after SIGCONT):
/// a real receiver processes those too — the duplicates docs/lifecycle.md warns of — but only
/// `acked` copies show that the node kept every event until it was acknowledged.
const RECEIVER: &str = r#"
import hashlib
import hmac
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

EVENTS, SECRET = sys.argv[1], sys.argv[2].encode()


def hung_up(sock):
    """Whether the peer closed its side (EOF pending) instead of waiting for the answer."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(self.headers.get("X-Pushwire-Signature", ""), expected):
            self.send_response(401)
            self.end_headers()
            return
        acked = not hung_up(self.connection)
        with open(EVENTS, "a") as f:
            for event in json.loads(body):
                f.write(json.dumps({"acked": acked, "event": event}) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(HTTPServer):
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # the answer to a sender that hung up: its socket is gone


server = Server(("127.0.0.1", 0), Handler)
print(f"READY {server.server_address[1]}", flush=True)
server.serve_forever()
"#;

/// One copy of an event the receiver got.
#[derive(Debug)]
struct Copy {
    /// Its request was still awaited by the node (see [`RECEIVER`]).
    acked: bool,
    event: Value,
}

/// Every complete line of the receiver's file, in the order it wrote them.
fn recorded(receiver: &StoppableProcess) -> Vec<Copy> {
    let text = std::fs::read_to_string(receiver.dir().join("events.jsonl")).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("the receiver writes JSON lines");
            Copy {
                acked: v["acked"].as_bool().expect("acked"),
                event: v["event"].take(),
            }
        })
        .collect()
}

/// A client of `user` connected with a token and subscribed to `channel`; its client id.
async fn subscribed(server: &TestServer, user: &str, channel: &str) -> (WsClient, String) {
    let t = token(json!({"sub": user, "exp": pushwire_test_support::now() + 600}));
    let (mut c, result) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    let r = c.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(r["subscribe"].is_object(), "{r}");
    (c, result["client"].as_str().expect("client id").to_owned())
}

async fn health(server: &TestServer) -> String {
    reqwest::get(format!("{}/health", server.http_url()))
        .await
        .expect("GET /health")
        .text()
        .await
        .expect("body")
}

/// What the node did while a sink's dependency was stopped.
#[derive(Debug)]
struct Hang {
    /// Clients that connected, subscribed and left during the hang.
    made: Vec<String>,
    /// When `/metrics` and `/health` first said the sink was degraded, after the SIGSTOP.
    degraded_after: Duration,
    /// How long a new client took to connect, subscribe and get a publication meanwhile.
    probe: Duration,
}

impl std::fmt::Display for Hang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "degraded {:?} after SIGSTOP, a client served in {:?} during the hang, {} clients \
             made during the hang",
            self.degraded_after,
            self.probe,
            self.made.len()
        )
    }
}

/// Stops `dependency` for [`HANG`] while clients connect, subscribe and leave (every 100 ms):
/// the sink `sink` must be reported degraded (`/metrics`, `/health`) during the hang, once its
/// [`TIMEOUT`] has passed and not before, and a new client must be served within
/// [`SERVED_WITHIN`] once it is. Returns before SIGCONT.
async fn hang_while_clients_come_and_go(
    server: &TestServer,
    dependency: &StoppableProcess,
    sink: &str,
) -> Hang {
    dependency.stop();
    let stopped_at = Instant::now();
    let degraded = format!("pushwire_lifecycle_sink_degraded{{sink=\"{sink}\"}}");
    let mut made = Vec::new();
    let mut probe = None;
    let mut degraded_after = None;
    let mut i = 0;
    while stopped_at.elapsed() < HANG - Duration::from_millis(500) {
        let (c, id) =
            subscribed(server, &format!("hang-{i}"), &format!("sinkhang-{}", i % 3)).await;
        drop(c);
        made.push(id);
        i += 1;
        if degraded_after.is_none() {
            if Scrape::of(server).await.count(&degraded) == 1 {
                degraded_after = Some(stopped_at.elapsed());
                assert_eq!(
                    health(server).await,
                    json!({"degraded": [format!("lifecycle sink {sink}")]}).to_string()
                );
            }
        } else if probe.is_none() {
            // The node serves a new client at once: connect, subscribe, get a publication.
            let started = Instant::now();
            let (mut c, id) = subscribed(server, "probe", "sinkhang-probe").await;
            server
                .publish("sinkhang-probe", json!({"during": "hang"}))
                .await;
            let p = c.next_publication("sinkhang-probe").await;
            assert_eq!(p["data"], json!({"during": "hang"}));
            probe = Some(started.elapsed());
            made.push(id);
            assert!(stopped_at.elapsed() < HANG, "the probe ran during the hang");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let degraded_after = degraded_after.expect("the sink was reported degraded during the hang");
    // Not before its `timeout`: a delivery is given the time the configuration grants it.
    assert!(
        degraded_after >= TIMEOUT - Duration::from_millis(200),
        "the sink gave up after {degraded_after:?}, before its timeout of {TIMEOUT:?}"
    );
    let probe = probe.expect("a client was served during the hang");
    assert!(
        probe < SERVED_WITHIN,
        "serving a client took {probe:?} while the sink hung"
    );
    tokio::time::sleep(HANG.saturating_sub(stopped_at.elapsed())).await;
    Hang {
        made,
        degraded_after,
        probe,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_webhook_degrades_the_sink_not_the_node_and_gets_every_event_after() {
    let receiver = StoppableProcess::python(RECEIVER, &["events.jsonl", SECRET]).await;
    let url = format!("{}/events", receiver.url());
    let server = TestServer::start_with(|c| {
        c.lifecycle.enabled = true;
        c.lifecycle.sinks = vec![SinkConfig {
            kind: SinkKind::Webhook,
            name: "hook".into(),
            url,
            secret: SECRET.into(),
            timeout: TIMEOUT,
            batch_interval: Duration::from_millis(20),
            retry_min_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(1),
            ..Default::default()
        }];
        c.http_server.connect_rate_per_ip = 0;
    })
    .await;

    // Before the hang: events arrive, the node is healthy.
    let (first, first_id) = subscribed(&server, "before", "sinkhang-0").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !recorded(&receiver)
        .iter()
        .any(|c| c.event["type"] == "subscribe" && c.event["client"] == json!(first_id))
    {
        assert!(Instant::now() < deadline, "no event reached the receiver");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(health(&server).await, "{}");

    // The hang: clients keep connecting, subscribing and leaving.
    drop(first);
    let hang = hang_while_clients_come_and_go(&server, &receiver, "hook").await;
    receiver.resume();
    let resumed_at = Instant::now();

    // After SIGCONT: every event the node made arrives in an acknowledged delivery, with no
    // gap in `seq`.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (copies, total) = loop {
        let total = Scrape::of(&server)
            .await
            .sum("pushwire_lifecycle_events_total") as u64;
        let copies = recorded(&receiver);
        let seqs: BTreeSet<u64> = copies
            .iter()
            .filter(|c| c.acked)
            .filter_map(|c| c.event["seq"].as_u64())
            .collect();
        if seqs.iter().copied().eq(1..=total) {
            break (copies, total);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {total} events acknowledged after SIGCONT; missing seqs: {:?}",
            seqs.len(),
            (1..=total)
                .filter(|s| !seqs.contains(s))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let delivered_after = resumed_at.elapsed();

    // Every client made during the hang: connect, subscribe, unsubscribe, disconnect.
    for id in &hang.made {
        for kind in ["connect", "subscribe", "unsubscribe", "disconnect"] {
            assert!(
                copies
                    .iter()
                    .any(|c| c.acked && c.event["type"] == kind && c.event["client"] == json!(id)),
                "no {kind} of client {id}"
            );
        }
    }
    // At least once: a copy is the same event (same id, same seq, same content); first
    // copies arrive in seq order.
    let mut first_copy: HashMap<&str, &Value> = HashMap::new();
    let mut order = Vec::new();
    for c in &copies {
        let id = c.event["id"].as_str().expect("id");
        match first_copy.get(id) {
            Some(earlier) => assert_eq!(*earlier, &c.event, "a duplicate is the same event"),
            None => {
                first_copy.insert(id, &c.event);
                order.push(c.event["seq"].as_u64().expect("seq"));
            }
        }
    }
    assert_eq!(first_copy.len() as u64, total, "one id per event");
    assert_eq!(
        order,
        (1..=total).collect::<Vec<_>>(),
        "first copies in seq order"
    );
    let abandoned = copies.iter().filter(|c| !c.acked).count();
    let acked_twice = copies.iter().filter(|c| c.acked).count() as u64 - total;

    // The sink recovered by itself.
    let m = Scrape::of(&server).await;
    assert_eq!(
        m.count("pushwire_lifecycle_sink_degraded{sink=\"hook\"}"),
        0
    );
    assert_eq!(
        m.count("pushwire_lifecycle_sink_refused_total{sink=\"hook\"}"),
        0
    );
    assert_eq!(
        m.count("pushwire_lifecycle_sink_dropped_total{sink=\"hook\"}"),
        0
    );
    assert!(m.count("pushwire_lifecycle_sink_failures_total{sink=\"hook\"}") >= 1);
    assert_eq!(health(&server).await, "{}");
    eprintln!(
        "webhook hang: {hang}; all {total} events delivered {delivered_after:?} after SIGCONT; \
         {abandoned} copies from deliveries the node had given up on, {acked_twice} \
         acknowledged twice"
    );
    server.stop().await;
}

/// One stream entry as XRANGE answers it: id and field/value pairs.
type Entry = (String, Vec<(String, Vec<u8>)>);

/// Every event in `stream` of the Redis at `url`, in stream order (copies included).
async fn stream_events(url: &str, stream: &str) -> Vec<Value> {
    let client = redis::Client::open(url).expect("redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the private redis");
    let entries: Vec<Entry> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    entries
        .into_iter()
        .flat_map(|(_, fields)| fields)
        .filter(|(k, _)| k == "e")
        .map(|(_, e)| serde_json::from_slice(&e).expect("an event as JSON"))
        .collect()
}

/// The same hang for the Redis stream sink: a private `redis-server` stopped for 8 s. The node
/// serves on, the sink is degraded after `timeout`, reconnects after SIGCONT, and every event
/// is in the stream (at least once: Redis also runs the pipelines the node timed out on once
/// it resumes, so copies are expected; they are the same events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_redis_stream_sink_degrades_the_sink_not_the_node_and_gets_every_event_after() {
    let redis = StoppableProcess::redis().await;
    let url = format!("redis://127.0.0.1:{}", redis.port());
    let stream = pushwire_test_support::unique("sinkhang.");
    let server = TestServer::start_with(|c| {
        c.lifecycle.enabled = true;
        c.lifecycle.sinks = vec![SinkConfig {
            kind: SinkKind::RedisStream,
            name: "stream".into(),
            address: url.clone(),
            stream: stream.clone(),
            timeout: TIMEOUT,
            batch_interval: Duration::from_millis(20),
            retry_min_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(1),
            ..Default::default()
        }];
        c.http_server.connect_rate_per_ip = 0;
    })
    .await;

    let (first, first_id) = subscribed(&server, "before", "sinkhang-0").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stream_events(&url, &stream)
        .await
        .iter()
        .any(|e| e["type"] == "subscribe" && e["client"] == json!(first_id))
    {
        assert!(Instant::now() < deadline, "no event reached the stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(health(&server).await, "{}");

    drop(first);
    let hang = hang_while_clients_come_and_go(&server, &redis, "stream").await;
    redis.resume();
    let resumed_at = Instant::now();

    // After SIGCONT the sink reconnects: a client that arrives now is in the stream too.
    let (after, after_id) = subscribed(&server, "after", "sinkhang-0").await;
    drop(after);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (events, total) = loop {
        let total = Scrape::of(&server)
            .await
            .sum("pushwire_lifecycle_events_total") as u64;
        let events = stream_events(&url, &stream).await;
        let seqs: BTreeSet<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
        let after_arrived = events
            .iter()
            .any(|e| e["type"] == "disconnect" && e["client"] == json!(after_id));
        if after_arrived && seqs.iter().copied().eq(1..=total) {
            break (events, total);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {total} events in the stream after SIGCONT; missing seqs: {:?}",
            seqs.len(),
            (1..=total)
                .filter(|s| !seqs.contains(s))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let delivered_after = resumed_at.elapsed();
    for id in &hang.made {
        for kind in ["connect", "subscribe", "unsubscribe", "disconnect"] {
            assert!(
                events
                    .iter()
                    .any(|e| e["type"] == kind && e["client"] == json!(id)),
                "no {kind} of client {id}"
            );
        }
    }
    let mut first_copy: HashMap<&str, &Value> = HashMap::new();
    for e in &events {
        let id = e["id"].as_str().expect("id");
        if let Some(earlier) = first_copy.insert(id, e) {
            assert_eq!(earlier, e, "a duplicate is the same event");
        }
    }
    assert_eq!(first_copy.len() as u64, total, "one id per event");
    eventually("the sink recovers", Duration::from_secs(5), || async {
        health(&server).await == "{}"
    })
    .await;
    let m = Scrape::of(&server).await;
    assert_eq!(
        m.count("pushwire_lifecycle_sink_degraded{sink=\"stream\"}"),
        0
    );
    assert_eq!(
        m.count("pushwire_lifecycle_sink_dropped_total{sink=\"stream\"}"),
        0
    );
    assert!(m.count("pushwire_lifecycle_sink_failures_total{sink=\"stream\"}") >= 1);
    eprintln!(
        "redis stream hang: {hang}; all {total} events in the stream {delivered_after:?} after \
         SIGCONT, {} copies in all",
        events.len()
    );
    server.stop().await;
}
