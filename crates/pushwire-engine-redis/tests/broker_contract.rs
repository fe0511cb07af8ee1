//! One broker contract, run against every broker: the memory broker (one node), the embedded
//! broker (one node, a store in a fresh temporary directory), the Redis broker (real Redis
//! at 127.0.0.1:6379), the Redis broker sharded over three real Redis (6379, 6391, 6392), the
//! Redis broker on a real Redis Cluster (7001-7006, sharded PUB/SUB) and
//! the NATS broker (real NATS at 127.0.0.1:4222) with its history in Redis. Each case takes a fresh broker with a recording
//! handler; what it asserts is what `pushwire_core::engine::Broker` promises.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use pushwire_core::engine::{Broker, HistoryQuery, MemoryBroker, PublishOptions};
use pushwire_protocol::StreamPosition;

/// A broker under test, its handler, and whatever keeps it alive.
struct Subject {
    broker: Arc<dyn Broker>,
    rec: Arc<Recorder>,
    _keep: Option<pushwire_engine_redis::RedisEngine>,
    cfg: Option<pushwire_engine_redis::RedisConfig>,
    dir: Option<std::path::PathBuf>,
    /// Held while the subject runs on the Redis Cluster (no master is killed meanwhile).
    _cluster: Option<ClusterGuard>,
}

impl Subject {
    async fn memory() -> Subject {
        let broker = Arc::new(MemoryBroker::new());
        let rec = Arc::new(Recorder {
            node_id: "memory-node".into(),
            ..Default::default()
        });
        broker.set_handler(&rec.node_id, rec.clone());
        Subject {
            broker,
            rec,
            _keep: None,
            cfg: None,
            dir: None,
            _cluster: None,
        }
    }

    async fn embedded() -> Subject {
        let dir = std::env::temp_dir().join(format!("pw-contract-{}", uuid::Uuid::new_v4()));
        let config = pushwire_engine_embedded::EmbeddedConfig::at(dir.to_string_lossy());
        let broker = Arc::new(pushwire_engine_embedded::EmbeddedBroker::open(&config).unwrap());
        let rec = Arc::new(Recorder {
            node_id: "embedded-node".into(),
            ..Default::default()
        });
        broker.set_handler(&rec.node_id, rec.clone());
        Subject {
            broker,
            rec,
            _keep: None,
            cfg: None,
            dir: Some(dir),
            _cluster: None,
        }
    }

    async fn redis() -> Subject {
        Subject::redis_with(config()).await
    }

    /// The Redis broker sharded over three Redis (client-side consistent hashing).
    async fn redis_sharded() -> Subject {
        Subject::redis_with(sharded_config()).await
    }

    /// The Redis broker on the Redis Cluster of 7001-7006 (hash-tagged keys, sharded PUB/SUB).
    async fn redis_cluster() -> Subject {
        let guard = cluster_reader().await;
        Subject {
            _cluster: Some(guard),
            ..Subject::redis_with(cluster_config()).await
        }
    }

    /// The NATS broker (real NATS at 127.0.0.1:4222) keeping history in the Redis engine's
    /// streams, as the server runs `broker.type = "nats"` on `engine.type = "redis"`.
    async fn nats_on_redis() -> Subject {
        let cfg = config();
        let engine = engine(&cfg).await;
        let nats = pushwire_engine_nats::NatsBrokerConfig {
            prefix: cfg.prefix.clone(),
            ..Default::default()
        };
        let history: Arc<dyn pushwire_engine_nats::HistoryStore> =
            Arc::new(RedisHistory(engine.broker()));
        let broker = Arc::new(
            pushwire_engine_nats::NatsBroker::connect(&nats, Some(history))
                .await
                .unwrap_or_else(|e| panic!("these tests need a real NATS at {}: {e}", nats.url)),
        );
        let rec = Arc::new(Recorder {
            node_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        });
        broker.set_handler(&rec.node_id, rec.clone());
        // The control subjects are subscribed in the background: wait for a round trip.
        for _ in 0..200 {
            broker
                .publish_control(Bytes::from_static(b"probe"), Some(&rec.node_id))
                .await
                .unwrap();
            if !rec
                .wait_controls_for(1, std::time::Duration::from_millis(20))
                .await
                .is_empty()
            {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        rec.controls.lock().clear();
        Subject {
            broker,
            rec,
            _keep: Some(engine),
            cfg: Some(cfg),
            dir: None,
            _cluster: None,
        }
    }

    async fn redis_with(cfg: pushwire_engine_redis::RedisConfig) -> Subject {
        let (broker, rec, engine) = broker(&cfg).await;
        Subject {
            broker,
            rec,
            _keep: Some(engine),
            cfg: Some(cfg),
            dir: None,
            _cluster: None,
        }
    }

    async fn done(self) {
        if let Some(cfg) = &self.cfg {
            cleanup(cfg).await;
        }
        if let Some(dir) = self.dir {
            // The store closes (and releases its lock) when the broker is dropped.
            drop(self.broker);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn each(case: impl AsyncFn(&Subject)) {
    for subject in [
        Subject::memory().await,
        Subject::embedded().await,
        Subject::redis().await,
        Subject::redis_sharded().await,
        Subject::redis_cluster().await,
        Subject::nats_on_redis().await,
    ] {
        case(&subject).await;
        subject.done().await;
    }
}

/// The Redis engine's streams as the NATS broker's history (what the server plugs in).
struct RedisHistory(Arc<pushwire_engine_redis::RedisBroker>);

#[async_trait::async_trait]
impl pushwire_engine_nats::HistoryStore for RedisHistory {
    async fn store(
        &self,
        channel: &str,
        publication: &pushwire_protocol::Publication,
        options: &PublishOptions,
    ) -> Result<pushwire_core::engine::PublishOutcome, pushwire_core::engine::EngineError> {
        self.0.store(channel, publication, options).await
    }

    async fn history(
        &self,
        channel: &str,
        query: HistoryQuery,
    ) -> Result<pushwire_core::engine::HistoryPage, pushwire_core::engine::EngineError> {
        self.0.history(channel, query).await
    }

    async fn remove_history(
        &self,
        channel: &str,
    ) -> Result<(), pushwire_core::engine::EngineError> {
        self.0.remove_history(channel).await
    }
}

fn query(since: Option<StreamPosition>, limit: usize) -> HistoryQuery {
    HistoryQuery {
        since,
        limit,
        reverse: false,
        meta_ttl: std::time::Duration::from_secs(60),
    }
}

#[tokio::test]
async fn publications_get_consecutive_offsets_and_arrive_in_offset_order() {
    each(async |s: &Subject| {
        s.broker.subscribe("c").await.unwrap();
        for n in 1..=20 {
            let out = s
                .broker
                .publish("c", publication(n), &history(100))
                .await
                .unwrap();
            assert_eq!(out.position.unwrap().offset, n);
        }
        assert_eq!(s.rec.wait_for("c", 20).await, (1..=20).collect::<Vec<_>>());
        let page = s.broker.history("c", query(None, 100)).await.unwrap();
        assert_eq!(page.position.offset, 20);
        let ns: Vec<u64> = page.publications.iter().map(n_of).collect();
        assert_eq!(ns, (1..=20).collect::<Vec<_>>());
        let since = StreamPosition {
            offset: 15,
            epoch: page.position.epoch.clone(),
        };
        let tail = s
            .broker
            .history("c", query(Some(since), 100))
            .await
            .unwrap();
        assert_eq!(tail.publications.len(), 5);
        let wrong = StreamPosition {
            offset: 1,
            epoch: "other".into(),
        };
        assert!(s.broker.history("c", query(Some(wrong), 10)).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn an_idempotency_key_suppresses_the_duplicate() {
    each(async |s: &Subject| {
        let options = PublishOptions {
            idempotency_key: Some("k1".into()),
            ..history(10)
        };
        let first = s
            .broker
            .publish("c", publication(1), &options)
            .await
            .unwrap();
        let again = s
            .broker
            .publish("c", publication(1), &options)
            .await
            .unwrap();
        assert!(!first.suppressed);
        assert!(again.suppressed);
        assert_eq!(again.position, first.position);
    })
    .await;
}

#[tokio::test]
async fn a_control_broadcast_reaches_the_sender_too_in_order() {
    each(async |s: &Subject| {
        let sent: Vec<Vec<u8>> = (0..10).map(|i| format!("m{i}").into_bytes()).collect();
        for m in &sent {
            s.broker
                .publish_control(Bytes::from(m.clone()), None)
                .await
                .unwrap();
        }
        assert_eq!(s.rec.wait_controls(10).await, sent);
    })
    .await;
}

#[tokio::test]
async fn a_control_message_to_this_node_reaches_it() {
    each(async |s: &Subject| {
        s.broker
            .publish_control(Bytes::from_static(b"direct"), Some(&s.rec.node_id))
            .await
            .unwrap();
        assert_eq!(s.rec.wait_controls(1).await, vec![b"direct".to_vec()]);
        assert!(
            s.rec.publications.lock().is_empty(),
            "control messages are not publications"
        );
    })
    .await;
}

/// Redis only (the memory broker has one node): a message to one node reaches that node and
/// no other; a broadcast reaches all.
#[tokio::test]
async fn redis_control_messages_reach_the_addressed_node_only() {
    let cfg = config();
    let (a, rec_a, _ea) = broker(&cfg).await;
    let (_b, rec_b, _eb) = broker(&cfg).await;
    let (_c, rec_c, _ec) = broker(&cfg).await;
    a.publish_control(Bytes::from_static(b"to-b"), Some(&rec_b.node_id))
        .await
        .unwrap();
    a.publish_control(Bytes::from_static(b"all"), None)
        .await
        .unwrap();
    assert_eq!(
        rec_b.wait_controls(2).await,
        vec![b"to-b".to_vec(), b"all".to_vec()]
    );
    assert_eq!(rec_c.wait_controls(1).await, vec![b"all".to_vec()]);
    assert_eq!(rec_a.wait_controls(1).await, vec![b"all".to_vec()]);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(rec_c.controls.lock().len(), 1, "c never got b's message");
    cleanup(&cfg).await;
}

fn reverse(since: Option<StreamPosition>, limit: usize) -> HistoryQuery {
    HistoryQuery {
        reverse: true,
        ..query(since, limit)
    }
}

fn ns(page: &pushwire_core::engine::HistoryPage) -> Vec<u64> {
    page.publications.iter().map(n_of).collect()
}

#[tokio::test]
async fn history_is_trimmed_to_its_size_and_read_forward_backward_and_from_a_position() {
    each(async |s: &Subject| {
        for n in 1..=5 {
            s.broker
                .publish("t", publication(n), &history(3))
                .await
                .unwrap();
        }
        let page = s.broker.history("t", query(None, 10)).await.unwrap();
        assert_eq!(ns(&page), vec![3, 4, 5]);
        let offsets: Vec<u64> = page.publications.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, vec![3, 4, 5]);
        let epoch = page.position.epoch.clone();
        let at = |offset| {
            Some(StreamPosition {
                offset,
                epoch: epoch.clone(),
            })
        };
        let b = &s.broker;
        assert_eq!(
            ns(&b.history("t", query(at(3), 10)).await.unwrap()),
            vec![4, 5]
        );
        assert_eq!(ns(&b.history("t", query(at(3), 1)).await.unwrap()), vec![4]);
        assert_eq!(
            ns(&b.history("t", reverse(None, 10)).await.unwrap()),
            vec![5, 4, 3]
        );
        assert_eq!(
            ns(&b.history("t", reverse(at(5), 1)).await.unwrap()),
            vec![4]
        );
        assert!(b
            .history("t", reverse(at(0), 10))
            .await
            .unwrap()
            .publications
            .is_empty());
        let top = b.history("t", query(None, 0)).await.unwrap();
        assert!(top.publications.is_empty());
        assert_eq!(top.position.offset, 5);
        let any = Some(StreamPosition {
            offset: 4,
            epoch: String::new(),
        });
        assert_eq!(
            ns(&b.history("t", query(any, 10)).await.unwrap()),
            vec![5],
            "empty epoch: any"
        );

        // A read of a new channel creates its position; publications continue that epoch.
        let fresh = b.history("new", query(None, 10)).await.unwrap();
        assert_eq!(fresh.position.offset, 0);
        let out = b.publish("new", publication(1), &history(3)).await.unwrap();
        assert_eq!(
            out.position.unwrap(),
            StreamPosition {
                offset: 1,
                epoch: fresh.position.epoch
            }
        );
    })
    .await;
}

#[tokio::test]
async fn remove_history_keeps_the_position_and_epoch() {
    each(async |s: &Subject| {
        for n in 1..=3 {
            s.broker
                .publish("r", publication(n), &history(10))
                .await
                .unwrap();
        }
        let before = s
            .broker
            .history("r", query(None, 0))
            .await
            .unwrap()
            .position;
        s.broker.remove_history("r").await.unwrap();
        let page = s.broker.history("r", query(None, 10)).await.unwrap();
        assert!(page.publications.is_empty());
        assert_eq!(page.position, before);
        let out = s
            .broker
            .publish("r", publication(4), &history(10))
            .await
            .unwrap();
        assert_eq!(
            out.position.unwrap(),
            StreamPosition {
                offset: 4,
                epoch: before.epoch
            }
        );
    })
    .await;
}

#[tokio::test]
async fn stale_versions_are_dropped_and_a_new_version_epoch_resets() {
    each(async |s: &Subject| {
        s.broker.subscribe("v").await.unwrap();
        let v = |version: u64, epoch: &str| PublishOptions {
            version,
            version_epoch: epoch.into(),
            ..history(10)
        };
        let publish = async |n: u64, o: PublishOptions| {
            s.broker.publish("v", publication(n), &o).await.unwrap()
        };
        assert!(!publish(1, v(2, "")).await.suppressed);
        let stale = publish(2, v(2, "")).await;
        assert!(stale.suppressed);
        assert_eq!(stale.position.unwrap().offset, 1, "the current top");
        assert!(publish(3, v(1, "")).await.suppressed);
        assert!(!publish(4, v(1, "new")).await.suppressed);
        let big = 1u64 << 60;
        assert!(!publish(5, v(big + 1, "new")).await.suppressed);
        assert!(
            publish(6, v(big, "new")).await.suppressed,
            "exact above 2^53"
        );
        s.rec.wait_for("v", 3).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let got: Vec<u64> = s
            .rec
            .publications
            .lock()
            .iter()
            .map(|(_, p)| n_of(p))
            .collect();
        assert_eq!(
            got,
            vec![1, 4, 5],
            "only accepted publications are delivered"
        );
    })
    .await;
}

#[tokio::test]
async fn without_history_a_publication_is_delivered_without_offset_and_joins_are_delivered() {
    each(async |s: &Subject| {
        s.broker.subscribe("plain").await.unwrap();
        let out = s
            .broker
            .publish("plain", publication(1), &PublishOptions::default())
            .await
            .unwrap();
        assert_eq!(out.position, None);
        assert_eq!(s.rec.wait_for("plain", 1).await, vec![0]);
        s.broker
            .publish_join_leave("plain", info("u", "c1"), true)
            .await
            .unwrap();
        s.broker
            .publish_join_leave("plain", info("u", "c1"), false)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while s.rec.join_leaves.lock().len() < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let got: Vec<(String, bool)> = s
            .rec
            .join_leaves
            .lock()
            .iter()
            .map(|(ch, i, join)| (format!("{ch}/{}", i.client), *join))
            .collect();
        assert_eq!(
            got,
            vec![
                ("plain/c1".to_owned(), true),
                ("plain/c1".to_owned(), false)
            ]
        );
    })
    .await;
}

/// Client-side sharding: 1,000 channels spread over all three Redis exactly as
/// `consistent_index` says (keys and PUB/SUB subscriptions on the channel's shard, nowhere
/// else), and a second node on the same list receives every publication of every channel.
#[tokio::test]
async fn sharded_channels_land_on_all_three_redis_and_reach_every_node() {
    use pushwire_core::engine::PresenceManager;
    use pushwire_engine_redis::shard::consistent_index;

    let cfg = sharded_config();
    let (a, _rec_a, engine_a) = broker(&cfg).await;
    let (b, rec_b, _engine_b) = broker(&cfg).await;
    let channels: Vec<String> = (0..1000).map(|i| format!("shard:{i}")).collect();
    for c in &channels {
        b.subscribe(c).await.unwrap();
    }
    for c in &channels {
        let out = a.publish(c, publication(7), &history(10)).await.unwrap();
        assert_eq!(out.position.unwrap().offset, 1);
    }
    engine_a
        .presence()
        .add("shard:1", info("u", "c1"))
        .await
        .unwrap();
    assert!(
        eventually(std::time::Duration::from_secs(10), || async {
            rec_b.publications.lock().len() >= channels.len()
        })
        .await,
        "node b received {} of {} publications",
        rec_b.publications.lock().len(),
        channels.len()
    );
    let mut per_shard = [0usize; 3];
    for (i, url) in SHARDS.iter().enumerate() {
        let streams: Vec<String> = keys_at(&cfg, url)
            .await
            .into_iter()
            .filter_map(|k| {
                k.strip_prefix(&format!("{}.stream.", cfg.prefix))
                    .map(str::to_owned)
            })
            .collect();
        for c in &streams {
            assert_eq!(consistent_index(c, 3), i, "{c} stored on shard {i}");
        }
        per_shard[i] = streams.len();
        // The node's PUB/SUB subscriptions on this shard are exactly its channels.
        let subscribed: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg(format!("{}.pub.*", cfg.prefix))
            .query_async(&mut redis_at(url).await)
            .await
            .unwrap();
        assert_eq!(subscribed.len(), streams.len(), "shard {i}");
    }
    assert_eq!(per_shard.iter().sum::<usize>(), channels.len());
    assert!(
        per_shard.iter().all(|n| *n > 250),
        "all three shards hold channels: {per_shard:?}"
    );
    let presence_shard = consistent_index("shard:1", 3);
    let presence_keys = keys_at(&cfg, SHARDS[presence_shard]).await;
    assert!(presence_keys
        .iter()
        .any(|k| k == &format!("{}.presence.data.shard:1", cfg.prefix)));
    // History reads go to the channel's shard too.
    for c in channels.iter().take(30) {
        let page = b.history(c, query(None, 10)).await.unwrap();
        assert_eq!(page.publications.len(), 1, "{c}");
    }
    cleanup(&cfg).await;
}
