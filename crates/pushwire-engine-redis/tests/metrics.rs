//! The engine's counters ([`pushwire_engine_redis::RedisMetrics`]) count what their contracts
//! say: accepted publications (not suppressed duplicates), failed publishes, history reads and
//! their failures (an epoch mismatch is not one), failed presence operations, and PUB/SUB
//! messages received. Failures are made by giving a channel's keys the wrong Redis type.

mod common;

use std::time::Duration;

use common::*;
use pushwire_core::engine::{Broker, EngineError, HistoryQuery, PresenceManager, PublishOptions};
use pushwire_engine_redis::keys::Keys;
use pushwire_engine_redis::RedisMetrics;
use pushwire_protocol::StreamPosition;

fn query(since: Option<StreamPosition>) -> HistoryQuery {
    HistoryQuery {
        since,
        limit: 10,
        reverse: false,
        meta_ttl: Duration::from_secs(3600),
    }
}

/// Makes `key` a plain string, so scripts that use it as a hash or sorted set fail.
async fn break_key(key: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("not a hash")
        .query_async(&mut redis().await)
        .await
        .unwrap();
}

#[tokio::test]
async fn counters_follow_successes_and_failures() {
    let cfg = config();
    let (broker, rec, engine) = broker(&cfg).await;
    let m = engine.metrics();
    let get = RedisMetrics::get;
    assert_eq!(get(&m.pubsub_connected), 1, "up after connect");

    broker.subscribe("ok").await.unwrap();
    let keyed = PublishOptions {
        idempotency_key: Some("once".into()),
        ..history(10)
    };
    broker.publish("ok", publication(1), &keyed).await.unwrap();
    let dup = broker.publish("ok", publication(1), &keyed).await.unwrap();
    assert!(dup.suppressed);
    broker
        .publish("ok", publication(2), &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(rec.wait_for("ok", 2).await.len(), 2);
    assert_eq!(get(&m.publications), 2, "the duplicate is not counted");
    assert_eq!(get(&m.pubsub_messages), 2);

    let page = broker.history("ok", query(None)).await.unwrap();
    let stale = StreamPosition {
        offset: 0,
        epoch: format!("not-{}", page.position.epoch),
    };
    assert!(matches!(
        broker.history("ok", query(Some(stale))).await,
        Err(EngineError::EpochMismatch)
    ));
    assert_eq!(
        (get(&m.history_reads), get(&m.history_errors)),
        (2, 0),
        "an epoch mismatch is an answer, not an error"
    );

    let keys = Keys::new(&cfg.prefix);
    break_key(&keys.meta("bad")).await;
    assert!(broker
        .publish("bad", publication(1), &history(10))
        .await
        .is_err());
    assert!(broker.history("bad", query(None)).await.is_err());
    assert_eq!(get(&m.publish_errors), 1);
    assert_eq!(get(&m.publications), 2);
    assert_eq!((get(&m.history_reads), get(&m.history_errors)), (3, 1));

    let presence = engine.presence();
    presence.add("ok", info("u", "c1")).await.unwrap();
    presence.presence("ok").await.unwrap();
    assert_eq!(get(&m.presence_errors), 0);
    break_key(&keys.presence_expire("bad")).await;
    assert!(presence.presence("bad").await.is_err());
    assert!(presence.stats("bad").await.is_err());
    assert!(presence.add("bad", info("u", "c2")).await.is_err());
    assert_eq!(get(&m.presence_errors), 3);

    assert_eq!(get(&m.pubsub_reconnects), 0);
    assert_eq!(get(&m.pubsub_connected), 1);
    cleanup(&cfg).await;
}
