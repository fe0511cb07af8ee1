//! Publications per second through the brokers between nodes, same payload and load for each:
//! one Redis, three Redis shards (6379, 6391, 6392), the Redis Cluster of 7001-7006 (three
//! masters, sharded PUB/SUB), NATS alone, NATS with history in Redis.
//! Two engines in this process: a publishing node (`CONCURRENCY` tasks publishing in a loop
//! over `CHANNELS` channels) and a subscribing node (subscribed to all of them, counting
//! deliveries). Each mode runs `SECONDS` seconds.
//!
//! `cargo run --release -p pushwire-engine-redis --example bench_brokers [SECONDS]`
//! (needs scripts/services.sh: Redis 6379, 6391, 6392, the cluster on 7001-7006 and NATS 4222).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pushwire_core::engine::{
    Broker, BrokerEventHandler, EngineError, HistoryPage, HistoryQuery, PublishOptions,
    PublishOutcome,
};
use pushwire_engine_nats::{HistoryStore, NatsBroker, NatsBrokerConfig};
use pushwire_engine_redis::{RedisBroker, RedisConfig, RedisEngine};
use pushwire_protocol::{ClientInfo, Publication, RawJson};

const CONCURRENCY: usize = 64;
const CHANNELS: usize = 1000;

#[derive(Default)]
struct Count(AtomicU64);

impl BrokerEventHandler for Count {
    fn on_publication(&self, _: &str, _: &Publication) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn on_join_leave(&self, _: &str, _: &ClientInfo, _: bool) {}
    fn on_control(&self, _: &[u8]) {}
    fn on_resync(&self, _: &[String]) {}
}

struct RedisHistory(Arc<RedisBroker>);

#[async_trait]
impl HistoryStore for RedisHistory {
    async fn store(
        &self,
        channel: &str,
        publication: &Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        self.0.store(channel, publication, options).await
    }
    async fn history(&self, c: &str, q: HistoryQuery) -> Result<HistoryPage, EngineError> {
        self.0.history(c, q).await
    }
    async fn remove_history(&self, c: &str) -> Result<(), EngineError> {
        self.0.remove_history(c).await
    }
}

fn prefix() -> String {
    format!(
        "pwbench.{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

fn redis_config(prefix: &str, shards: bool) -> RedisConfig {
    let address = if shards {
        vec![
            "redis://127.0.0.1:6379".to_owned(),
            "redis://127.0.0.1:6391".to_owned(),
            "redis://127.0.0.1:6392".to_owned(),
        ]
        .into()
    } else {
        "redis://127.0.0.1:6379".into()
    };
    RedisConfig {
        address,
        prefix: prefix.to_owned(),
        ..Default::default()
    }
}

/// A broker for one node of `mode`, and what keeps it alive.
async fn node(mode: &str, prefix: &str) -> (Arc<dyn Broker>, Option<RedisEngine>) {
    let nats = NatsBrokerConfig {
        prefix: prefix.to_owned(),
        ..Default::default()
    };
    match mode {
        "redis-cluster" => {
            let config = RedisConfig {
                cluster_address: vec![
                    "127.0.0.1:7001".to_owned(),
                    "127.0.0.1:7002".to_owned(),
                    "127.0.0.1:7003".to_owned(),
                ],
                ..redis_config(prefix, false)
            };
            let e = RedisEngine::connect(&config).await.expect("redis cluster");
            (e.broker(), Some(e))
        }
        "redis" | "redis-3-shards" => {
            let e = RedisEngine::connect(&redis_config(prefix, mode != "redis"))
                .await
                .expect("redis");
            (e.broker(), Some(e))
        }
        "nats" => (
            Arc::new(NatsBroker::connect(&nats, None).await.expect("nats")),
            None,
        ),
        _ => {
            let e = RedisEngine::connect(&redis_config(prefix, false))
                .await
                .expect("redis");
            let history: Arc<dyn HistoryStore> = Arc::new(RedisHistory(e.broker()));
            let b = NatsBroker::connect(&nats, Some(history))
                .await
                .expect("nats");
            (Arc::new(b), Some(e))
        }
    }
}

async fn run(mode: &str, history: bool, seconds: u64) {
    let prefix = prefix();
    let (publisher, _keep_publisher) = node(mode, &prefix).await;
    let (subscriber, _keep_subscriber) = node(mode, &prefix).await;
    let count = Arc::new(Count::default());
    subscriber.set_handler("bench-sub", count.clone());
    publisher.set_handler("bench-pub", Arc::new(Count::default()));
    let channels: Vec<String> = (0..CHANNELS).map(|i| format!("bench:{i}")).collect();
    for c in &channels {
        subscriber.subscribe(c).await.expect("subscribe");
    }
    let options = if history {
        PublishOptions {
            history_size: 100,
            history_ttl: Duration::from_secs(60),
            history_meta_ttl: Duration::from_secs(600),
            ..Default::default()
        }
    } else {
        PublishOptions::default()
    };
    let data = RawJson::from_json_str(r#"{"text":"a benchmark payload of about one hundred bytes, the same for every broker mode"}"#)
        .expect("json");
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..CONCURRENCY {
        let (publisher, channels, options, data, acked) = (
            publisher.clone(),
            channels.clone(),
            options.clone(),
            data.clone(),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while Instant::now() < deadline {
                let p = Publication {
                    data: data.clone(),
                    ..Default::default()
                };
                if publisher
                    .publish(&channels[i % CHANNELS], p, &options)
                    .await
                    .is_ok()
                {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                i += CONCURRENCY;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = acked.load(Ordering::Relaxed);
    // Let deliveries in flight arrive.
    let mut last = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count.0.load(Ordering::Relaxed);
        if now >= sent || now == last {
            break;
        }
        last = now;
    }
    let delivered = count.0.load(Ordering::Relaxed);
    println!(
        "| {mode} | {} | {:.0} | {delivered} of {sent} |",
        if history { "100" } else { "off" },
        sent as f64 / elapsed,
    );
    for url in [
        "redis://127.0.0.1:6379",
        "redis://127.0.0.1:6391",
        "redis://127.0.0.1:6392",
        "redis://127.0.0.1:7001",
        "redis://127.0.0.1:7002",
        "redis://127.0.0.1:7003",
        "redis://127.0.0.1:7004",
        "redis://127.0.0.1:7005",
        "redis://127.0.0.1:7006",
    ] {
        let Ok(mut c) = redis::Client::open(url)
            .expect("url")
            .get_multiplexed_async_connection()
            .await
        else {
            continue;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}.*"))
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        if url.contains(":700") {
            // Cluster keys live in different slots: one DEL each (replicas refuse).
            for k in keys {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(k).query_async(&mut c).await;
            }
            continue;
        }
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(chunk).query_async(&mut c).await;
        }
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("| broker | history | publications/s acknowledged | delivered to the other node |");
    println!("|---|---|---|---|");
    for (mode, history) in [
        ("redis", false),
        ("redis-3-shards", false),
        ("redis-cluster", false),
        ("nats", false),
        ("redis", true),
        ("redis-3-shards", true),
        ("redis-cluster", true),
        ("nats+redis-history", true),
    ] {
        run(mode, history, seconds).await;
    }
}
