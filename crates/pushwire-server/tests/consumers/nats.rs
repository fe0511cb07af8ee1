//! The NATS JetStream consumer end to end. The shared scenarios (`consumers_common`) over
//! [`Nats`]: events written to a stream with `async-nats` reach a real centrifuge-python
//! subscriber in order and a poison message is dead-lettered (with why and where it came
//! from) while later messages still flow; NATS down at start is retried while the node
//! serves (here also: an outage mid-stream); a node killed (SIGKILL) mid-burst and started
//! again loses and doubles nothing from the client's point of view (Redis engine: history,
//! epoch and idempotency keys survive the restart). Here only: the throughput benchmark.
//!
//! Needs NATS with JetStream on 127.0.0.1:4222, Redis on 127.0.0.1:6379 and the SDKs
//! (`scripts/setup-sdks.sh`).

use crate::consumers_common::source::{with_mode, Source};
use crate::consumers_common::{kill, late, ordered, wait_until};

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use pushwire_consumers::nats_jetstream::NatsJetStreamSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::consume::{bench_n, measure_throughput, unique_name};
use pushwire_test_support::{TestServer, WsClient};
use serde_json::json;

const NATS_URL: &str = "nats://127.0.0.1:4222";

/// JetStream on the local NATS; a clear failure when it is not running.
async fn jetstream() -> jetstream::Context {
    let client = async_nats::connect(NATS_URL).await.unwrap_or_else(|e| {
        panic!("NATS is not reachable at {NATS_URL} ({e}): start `nats-server -js -a 127.0.0.1` (see ../shared/reference/real-peers.md)")
    });
    jetstream::new(client)
}

/// A stream `name` capturing `subjects`, created fresh.
async fn create_stream(js: &jetstream::Context, name: &str, subjects: Vec<String>) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create stream {name} (is JetStream enabled, -js?): {e}"));
}

/// Publishes `body` to `subject` and waits for the stream's acknowledgement; the stream
/// sequence.
async fn produce(js: &jetstream::Context, subject: &str, body: Vec<u8>) -> u64 {
    js.publish(subject.to_owned(), body.into())
        .await
        .expect("publish")
        .await
        .expect("stream ack")
        .sequence
}

/// An event with `n`, as the producer writes it.
fn event(n: u64) -> Vec<u8> {
    json!({"type": "order", "n": n}).to_string().into_bytes()
}

/// A route-mode NATS consumer `name` publishing every message of `stream` into `channel`
/// (tag `type`), dead-lettering to `dead_letter_subject`.
fn consumer(name: &str, stream: &str, subject: &str, channel: &str, dl: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(name, ConsumerType::NatsJetstream);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: channel.into(),
        tag_field: "type".into(),
        skip_history: false,
    };
    c.nats_jetstream = Some(NatsJetStreamSettings {
        url: NATS_URL.into(),
        stream: stream.into(),
        durable_consumer_name: "pushwire".into(),
        subjects: vec![subject.into()],
        ack_wait: Duration::from_secs(2),
        dead_letter_subject: dl.into(),
        ..Default::default()
    });
    c
}

/// The next `n` of the publications on `channel`, waiting at most 30 s.
async fn next_n(ws: &mut WsClient, channel: &str) -> u64 {
    let p = tokio::time::timeout(Duration::from_secs(30), ws.next_publication(channel))
        .await
        .expect("a publication within 30 s");
    p["data"]["n"].as_u64().expect("n")
}

/// A JetStream stream capturing `pw<prefix>_<id>.>` and a dead-letter stream, named for one
/// test; events go to subject `pw<prefix>_<id>.orders`.
struct Nats {
    id: String,
    stream: String,
    subject: String,
    dl_stream: String,
    dl_subject: String,
    js: jetstream::Context,
}

impl Nats {
    /// Both streams created; a clear failure when NATS or JetStream is missing.
    async fn new(prefix: &str) -> Nats {
        let id = unique_name();
        let upper = prefix.to_uppercase();
        let source = Nats {
            stream: format!("PW{upper}_{id}"),
            subject: format!("pw{prefix}_{id}.orders"),
            dl_stream: format!("PW{upper}_{id}_DL"),
            dl_subject: format!("pw{prefix}_{id}_dl"),
            js: jetstream().await,
            id,
        };
        let subjects = vec![format!("pw{prefix}_{}.>", source.id)];
        create_stream(&source.js, &source.stream, subjects).await;
        let dl = vec![source.dl_subject.clone()];
        create_stream(&source.js, &source.dl_stream, dl).await;
        source
    }
}

impl Source for Nats {
    const ADDR: &'static str = "127.0.0.1:4222";
    /// The stream keeps what is written before the consumer exists.
    const KEEPS_MESSAGES_FOR_A_LATE_CONSUMER: bool = true;
    /// Not JSON.
    const POISON: u64 = 1;
    /// The stream sequence.
    type Receipt = u64;
    /// The poison message's stream sequence.
    type Poison = u64;

    /// In route mode every message goes to `<namespace>:nats-<id>`.
    fn consumer(
        &self,
        name: &str,
        addr: &str,
        namespace: &str,
        mode: Mode,
    ) -> (ConsumerConfig, String) {
        let channel = format!("{namespace}:nats-{}", self.id);
        let mut config = consumer(
            name,
            &self.stream,
            &self.subject,
            &channel,
            &self.dl_subject,
        );
        if let Some(s) = config.nats_jetstream.as_mut() {
            s.url = format!("nats://{addr}");
        }
        (with_mode(config, mode, &channel), channel)
    }

    /// Until the durable consumer `pushwire` exists on the stream.
    async fn wait_ready(&self) {
        wait_until(
            &format!("the durable consumer on {}", self.stream),
            Duration::from_secs(20),
            || async {
                let Ok(stream) = self.js.get_stream(&self.stream).await else {
                    return false;
                };
                stream.consumer_info("pushwire").await.is_ok()
            },
        )
        .await;
    }

    async fn produce(&self, body: &[u8], _key: &str) -> u64 {
        produce(&self.js, &self.subject, body.to_vec()).await
    }

    async fn produce_poison(&self) -> u64 {
        self.produce(b"not json {", "").await
    }

    /// The poison message is in the dead-letter stream, with why and where it came from.
    async fn assert_dead_lettered(&self, poison_seq: u64) {
        let dead = self
            .js
            .get_stream(&self.dl_stream)
            .await
            .expect("dead-letter stream")
            .get_raw_message(1)
            .await
            .expect("one dead-lettered message");
        assert_eq!(&dead.payload[..], b"not json {");
        let headers = dead.headers;
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        assert!(
            header("Pushwire-Dead-Letter-Reason").contains("not JSON"),
            "{headers:?}"
        );
        assert_eq!(header("Pushwire-Source-Sequence"), poison_seq.to_string());
        assert_eq!(header("Pushwire-Source-Subject"), self.subject);
    }

    async fn cleanup(&self) {
        for s in [&self.stream, &self.dl_stream] {
            let _ = self.js.delete_stream(s).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_events_reach_a_python_subscriber_in_order_and_poison_is_dead_lettered() {
    let source = Nats::new("t").await;
    ordered::events_in_order_and_poison_dead_lettered(&source, Mode::Route).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_down_at_start_and_mid_stream_is_retried_while_the_node_serves() {
    let source = Nats::new("l").await;
    let mut late = late::down_at_start_then_up(&source, Mode::Route).await;
    let (ws, channel) = (&mut late.ws, &late.channel);

    // An outage mid-stream: events written meanwhile arrive after it, in order, once.
    late.broker.close().await;
    for n in 6..=10 {
        produce(&source.js, &source.subject, event(n)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    late.broker.open().await;
    for n in 6..=10 {
        assert_eq!(next_n(ws, channel).await, n);
    }
    assert!(
        ws.silent_for(Duration::from_millis(500)).await,
        "no duplicates"
    );
    late.server.stop().await;
    source.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_node_killed_mid_stream_delivers_every_event_exactly_once() {
    let source = Nats::new("k").await;
    kill::killed_mid_burst_delivers_every_event_once(&source, Mode::Route).await;
}

/// Queue → subscriber throughput (memory engine): `PUSHWIRE_CONSUMER_BENCH_N` events are
/// stored in the stream first, then the consumer starts. Release mode:
/// `cargo nextest run --release -p pushwire-server --test consumers -E 'test(/^nats::/)' --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release mode"]
async fn throughput_nats_jetstream() {
    let (id, n) = (unique_name(), bench_n());
    let (stream, subject) = (format!("PWB_{id}"), format!("pwb_{id}.orders"));
    let channel = format!("chat:nats-bench-{id}");
    let js = jetstream().await;
    create_stream(&js, &stream, vec![format!("pwb_{id}.>")]).await;
    let mut acks = Vec::new();
    for n in 1..=n {
        acks.push(
            js.publish(subject.clone(), event(n).into())
                .await
                .expect("publish"),
        );
        if acks.len() >= 1000 {
            for a in acks.drain(..) {
                a.await.expect("stream ack");
            }
        }
    }
    for a in acks {
        a.await.expect("stream ack");
    }
    let server = TestServer::start_with(|c| c.client.queue_max_size = 64 << 20).await;
    let config = consumer("bench", &stream, &subject, &channel, "");
    measure_throughput(&server, &channel, config, n).await;
    server.stop().await;
    let _ = js.delete_stream(&stream).await;
}
