//! Shared by the Redis engine tests: a real Redis at 127.0.0.1:6379 (missing = failure), a
//! unique key prefix per test, cleanup, and a handler that records deliveries.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pushwire_core::engine::{Broker, BrokerEventHandler, PublishOptions};
use pushwire_engine_redis::{RedisBroker, RedisConfig, RedisEngine, RedisPresence};
use pushwire_protocol::{ClientInfo, Publication, RawJson};

/// Where the tests expect Redis.
pub const REDIS: &str = "redis://127.0.0.1:6379";

/// The three shards of the client-side sharding tests (scripts/start-redis-topologies.sh
/// starts the two besides 6379).
pub const SHARDS: [&str; 3] = [REDIS, "redis://127.0.0.1:6391", "redis://127.0.0.1:6392"];

/// A config on the three [`SHARDS`] with a unique prefix.
pub fn sharded_config() -> RedisConfig {
    RedisConfig {
        address: SHARDS
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into(),
        ..config()
    }
}

/// The Redis Cluster of scripts/start-redis-topologies.sh: three masters and three replicas.
pub const CLUSTER: [&str; 6] = [
    "127.0.0.1:7001",
    "127.0.0.1:7002",
    "127.0.0.1:7003",
    "127.0.0.1:7004",
    "127.0.0.1:7005",
    "127.0.0.1:7006",
];

/// A config on the Redis Cluster ([`CLUSTER`], the first three as seeds) with a unique prefix.
pub fn cluster_config() -> RedisConfig {
    RedisConfig {
        cluster_address: CLUSTER[..3].iter().map(|s| (*s).to_owned()).collect(),
        ..config()
    }
}

/// Connections to every node of the cluster that answers (masters and replicas).
pub async fn cluster_nodes() -> Vec<redis::aio::MultiplexedConnection> {
    let mut all = Vec::new();
    for node in CLUSTER {
        let client = redis::Client::open(format!("redis://{node}")).unwrap();
        if let Ok(Ok(c)) = tokio::time::timeout(
            Duration::from_secs(1),
            client.get_multiplexed_async_connection(),
        )
        .await
        {
            all.push(c);
        }
    }
    assert!(
        !all.is_empty(),
        "these tests need the Redis Cluster on 7001-7006 (scripts/start-redis-topologies.sh)"
    );
    all
}

/// Key on the main Redis held by a test that kills a cluster master (the writer).
pub const CLUSTER_KILL_LOCK: &str = "pushwire-test-cluster-failover-lock";
/// Key on the main Redis counting tests that use the cluster and must not see a master
/// killed under them (the readers).
pub const CLUSTER_READERS: &str = "pushwire-test-cluster-readers";

/// Keeps the cluster for one test, across test binaries: readers share it, the writer (a
/// test that kills a master) has it alone. Released on drop.
pub struct ClusterGuard {
    writer: bool,
}

fn sync_redis() -> redis::Connection {
    redis::Client::open(REDIS)
        .unwrap()
        .get_connection()
        .unwrap_or_else(|e| panic!("these tests need a real Redis at {REDIS}: {e}"))
}

/// Waits until no test is killing a master, then counts this test as a reader.
pub async fn cluster_reader() -> ClusterGuard {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut conn = redis().await;
    loop {
        let locked: bool = redis::cmd("EXISTS")
            .arg(CLUSTER_KILL_LOCK)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !locked {
            let _: i64 = redis::cmd("INCR")
                .arg(CLUSTER_READERS)
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: i64 = redis::cmd("PEXPIRE")
                .arg(CLUSTER_READERS)
                .arg(300_000)
                .query_async(&mut conn)
                .await
                .unwrap();
            let locked: bool = redis::cmd("EXISTS")
                .arg(CLUSTER_KILL_LOCK)
                .query_async(&mut conn)
                .await
                .unwrap();
            if !locked {
                return ClusterGuard { writer: false };
            }
            let _: i64 = redis::cmd("DECR")
                .arg(CLUSTER_READERS)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "cluster reader lock");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Takes the cluster alone (to kill a master): waits for the lock, then for the readers to
/// finish (at most 120 s: a crashed reader's count expires).
pub async fn cluster_writer() -> ClusterGuard {
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let mut conn = redis().await;
    loop {
        let got: Option<String> = redis::cmd("SET")
            .arg(CLUSTER_KILL_LOCK)
            .arg(uuid::Uuid::new_v4().to_string())
            .arg("NX")
            .arg("PX")
            .arg(180_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if got.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "cluster writer lock");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let readers_deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let readers: Option<i64> = redis::cmd("GET")
            .arg(CLUSTER_READERS)
            .query_async(&mut conn)
            .await
            .unwrap();
        if readers.unwrap_or(0) <= 0 || std::time::Instant::now() > readers_deadline {
            return ClusterGuard { writer: true };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let mut conn = sync_redis();
        if self.writer {
            let _: redis::RedisResult<i64> =
                redis::cmd("DEL").arg(CLUSTER_KILL_LOCK).query(&mut conn);
        } else {
            let _: redis::RedisResult<i64> =
                redis::cmd("DECR").arg(CLUSTER_READERS).query(&mut conn);
        }
    }
}

/// A plain connection to the Redis at `url` (missing = failure).
pub async fn redis_at(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| {
            panic!("these tests need a real Redis at {url} (scripts/services.sh starts it): {e}")
        })
}

/// A config with a unique prefix.
pub fn config() -> RedisConfig {
    RedisConfig {
        address: REDIS.into(),
        prefix: format!("pwtest.{}", uuid::Uuid::new_v4().simple()),
        ..Default::default()
    }
}

/// Connects, or fails the test saying Redis is needed.
pub async fn engine(config: &RedisConfig) -> RedisEngine {
    match RedisEngine::connect(config).await {
        Ok(e) => e,
        Err(e) => panic!(
            "these tests need a real Redis at {REDIS} (start it with `redis-server --daemonize \
             yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`): {e}"
        ),
    }
}

/// A broker with a recording handler; the engine is returned to keep presence alive.
pub async fn broker(config: &RedisConfig) -> (Arc<RedisBroker>, Arc<Recorder>, RedisEngine) {
    let engine = engine(config).await;
    let broker = engine.broker();
    let rec = Arc::new(Recorder {
        node_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    });
    broker.set_handler(&rec.node_id, rec.clone());
    wait_control_subscribed(config, &rec.node_id).await;
    (broker, rec, engine)
}

/// Waits until the node's control channel is subscribed in Redis (pinned asynchronously by
/// `set_handler`): a control message published before that would not reach the node.
pub async fn wait_control_subscribed(config: &RedisConfig, node_id: &str) {
    let name = format!("{}.node.{node_id}", config.prefix);
    let mut conns = if config.cluster_address.is_empty() {
        vec![redis().await]
    } else {
        cluster_nodes().await
    };
    for _ in 0..200 {
        let mut n = 0;
        for conn in &mut conns {
            let (_, k): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&name)
                .query_async(conn)
                .await
                .unwrap();
            n += k;
        }
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("control channel {name} never subscribed");
}

/// The presence manager of a new engine.
pub async fn presence(config: &RedisConfig) -> (Arc<RedisPresence>, RedisEngine) {
    let engine = engine(config).await;
    (engine.presence(), engine)
}

/// A plain connection for inspecting Redis.
pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("these tests need a real Redis at {REDIS}: {e}"))
}

/// Deletes every key under the config's prefix, on every shard (every cluster master).
pub async fn cleanup(config: &RedisConfig) {
    if !config.cluster_address.is_empty() {
        for mut conn in cluster_nodes().await {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}.*", config.prefix))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            for k in keys {
                // Replicas refuse (MOVED): their master deletes it.
                let _: Result<i64, _> = redis::cmd("DEL").arg(&k).query_async(&mut conn).await;
            }
        }
        return;
    }
    for url in config.address.urls() {
        let conn = &mut redis_at(url).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}.*", config.prefix))
            .query_async(conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(conn)
                .await
                .unwrap();
        }
    }
}

/// Keys left under the config's prefix, on every shard.
pub async fn keys(config: &RedisConfig) -> Vec<String> {
    let mut all = Vec::new();
    for url in config.address.urls() {
        all.extend(keys_at(config, url).await);
    }
    all
}

/// Keys under the config's prefix on the Redis at `url`.
pub async fn keys_at(config: &RedisConfig, url: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{}.*", config.prefix))
        .query_async(&mut redis_at(url).await)
        .await
        .unwrap()
}

/// History on: 10 kept, 300 s, meta 1 h.
pub fn history(size: usize) -> PublishOptions {
    PublishOptions {
        history_size: size,
        history_ttl: Duration::from_secs(300),
        history_meta_ttl: Duration::from_secs(3600),
        ..Default::default()
    }
}

/// A publication with JSON `{"n":n}`.
pub fn publication(n: u64) -> Publication {
    Publication {
        data: RawJson::from_json_str(&format!("{{\"n\":{n}}}")).unwrap(),
        ..Default::default()
    }
}

/// The `n` of a publication made by [`publication`].
pub fn n_of(p: &Publication) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(p.data.as_bytes()).unwrap();
    v["n"].as_u64().unwrap()
}

/// A client info.
pub fn info(user: &str, client: &str) -> ClientInfo {
    ClientInfo {
        user: user.into(),
        client: client.into(),
        ..Default::default()
    }
}

/// What a node's handler received.
#[derive(Default)]
pub struct Recorder {
    /// The node id the handler was registered with.
    pub node_id: String,
    /// Control messages, in arrival order.
    pub controls: Mutex<Vec<Vec<u8>>>,
    /// Channel lists of each resync, sorted.
    pub resyncs: Mutex<Vec<Vec<String>>>,
    /// Publications by channel, in arrival order.
    pub publications: Mutex<Vec<(String, Publication)>>,
    /// Joins and leaves by channel.
    pub join_leaves: Mutex<Vec<(String, ClientInfo, bool)>>,
}

impl BrokerEventHandler for Recorder {
    fn on_publication(&self, channel: &str, publication: &Publication) {
        self.publications
            .lock()
            .push((channel.to_owned(), publication.clone()));
    }

    fn on_join_leave(&self, channel: &str, info: &ClientInfo, join: bool) {
        self.join_leaves
            .lock()
            .push((channel.to_owned(), info.clone(), join));
    }

    fn on_control(&self, data: &[u8]) {
        self.controls.lock().push(data.to_vec());
    }

    fn on_resync(&self, channels: &[String]) {
        let mut channels = channels.to_vec();
        channels.sort();
        self.resyncs.lock().push(channels);
    }
}

impl Recorder {
    /// Waits up to 5 s until `n` control messages arrived; returns them.
    pub async fn wait_controls(&self, n: usize) -> Vec<Vec<u8>> {
        self.wait_controls_for(n, Duration::from_secs(5)).await
    }

    /// Waits up to `within` until `n` control messages arrived; returns them.
    pub async fn wait_controls_for(&self, n: usize, within: Duration) -> Vec<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.controls.lock().clone();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Offsets received in `channel`, in arrival order.
    pub fn offsets(&self, channel: &str) -> Vec<u64> {
        self.publications
            .lock()
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, p)| p.offset)
            .collect()
    }

    /// Waits up to 5 s until `channel` received `n` publications; returns their offsets.
    pub async fn wait_for(&self, channel: &str, n: usize) -> Vec<u64> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.offsets(channel);
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Polls until a condition holds or time is up (the one implementation, from the testkit).
#[allow(unused_imports)] // Not every test file that includes `common` waits for something.
pub use pushwire_testkit::poll_until as eventually;

/// Ids of the PUB/SUB connections subscribed to exactly `subs` channels.
pub async fn pubsub_clients(subs: usize) -> Vec<String> {
    pubsub_clients_at(REDIS, subs).await
}

/// Ids of the PUB/SUB connections to the Redis at `url` subscribed to exactly `subs` channels.
pub async fn pubsub_clients_at(url: &str, subs: usize) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis_at(url).await)
        .await
        .unwrap();
    list.lines()
        .filter(|l| l.split(' ').any(|f| f == format!("sub={subs}")))
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

/// Kills the one PUB/SUB connection subscribed to exactly `subs` channels (tests pick an
/// unusual count so the connection is identified); fails if there is not exactly one.
pub async fn kill_pubsub_connection(subs: usize) {
    kill_pubsub_connection_at(REDIS, subs).await
}

/// [`kill_pubsub_connection`] on the Redis at `url`.
pub async fn kill_pubsub_connection_at(url: &str, subs: usize) {
    let ids = pubsub_clients_at(url, subs).await;
    assert_eq!(
        ids.len(),
        1,
        "expected one pub/sub connection with sub={subs}: {ids:?}"
    );
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ids[0])
        .query_async(&mut redis_at(url).await)
        .await
        .unwrap();
}
