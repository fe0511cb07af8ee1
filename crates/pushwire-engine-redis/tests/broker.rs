//! The Redis broker against a real Redis: offsets, epochs, history reads, idempotency and
//! history across broker instances (= node restarts), ordering across two nodes.

mod common;

use std::time::Duration;

use common::*;
use pushwire_core::engine::{Broker, EngineError, HistoryQuery, PublishOptions};
use pushwire_protocol::StreamPosition;

fn query(since: Option<StreamPosition>, limit: usize, reverse: bool) -> HistoryQuery {
    HistoryQuery {
        since,
        limit,
        reverse,
        meta_ttl: Duration::from_secs(3600),
    }
}

fn ns(page: &pushwire_core::engine::HistoryPage) -> Vec<u64> {
    page.publications.iter().map(n_of).collect()
}

#[tokio::test]
async fn offsets_epoch_and_history_reads() {
    let cfg = config();
    let (b, rec, _e) = broker(&cfg).await;
    b.subscribe("ch").await.unwrap();
    let mut epoch = String::new();
    for i in 1..=5u64 {
        let out = b.publish("ch", publication(i), &history(3)).await.unwrap();
        let pos = out.position.expect("history channel has a position");
        assert!(!out.suppressed);
        assert_eq!(pos.offset, i);
        if i == 1 {
            epoch = pos.epoch.clone();
            assert_eq!(epoch.len(), 8);
        }
        assert_eq!(pos.epoch, epoch, "one epoch per stream");
    }
    assert_eq!(rec.wait_for("ch", 5).await, vec![1, 2, 3, 4, 5]);

    // Trimmed to the size: 3, 4, 5 remain, each with its offset.
    let page = b.history("ch", query(None, 10, false)).await.unwrap();
    assert_eq!(ns(&page), vec![3, 4, 5]);
    let offsets: Vec<u64> = page.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![3, 4, 5]);
    assert_eq!(
        page.position,
        StreamPosition {
            offset: 5,
            epoch: epoch.clone()
        }
    );

    let since = |offset| {
        Some(StreamPosition {
            offset,
            epoch: epoch.clone(),
        })
    };
    let page = b.history("ch", query(since(3), 10, false)).await.unwrap();
    assert_eq!(ns(&page), vec![4, 5]);
    let page = b.history("ch", query(since(3), 1, false)).await.unwrap();
    assert_eq!(ns(&page), vec![4]);
    let page = b.history("ch", query(None, 10, true)).await.unwrap();
    assert_eq!(ns(&page), vec![5, 4, 3]);
    let page = b.history("ch", query(since(5), 1, true)).await.unwrap();
    assert_eq!(ns(&page), vec![4]);
    let page = b.history("ch", query(since(0), 10, true)).await.unwrap();
    assert!(page.publications.is_empty());
    let page = b.history("ch", query(None, 0, false)).await.unwrap();
    assert!(page.publications.is_empty());
    assert_eq!(page.position.offset, 5);
    // An empty epoch in `since` means "any".
    let any = Some(StreamPosition {
        offset: 4,
        epoch: String::new(),
    });
    assert_eq!(
        ns(&b.history("ch", query(any, 10, false)).await.unwrap()),
        vec![5]
    );
    let other = Some(StreamPosition {
        offset: 1,
        epoch: "other".into(),
    });
    assert_eq!(
        b.history("ch", query(other, 10, false)).await.unwrap_err(),
        EngineError::EpochMismatch
    );

    // A read of a new channel creates its position; publications continue that epoch.
    let fresh = b.history("new", query(None, 10, false)).await.unwrap();
    assert_eq!(fresh.position.offset, 0);
    let out = b.publish("new", publication(1), &history(3)).await.unwrap();
    assert_eq!(
        out.position.unwrap(),
        StreamPosition {
            offset: 1,
            epoch: fresh.position.epoch
        }
    );
    cleanup(&cfg).await;
}

#[tokio::test]
async fn idempotency_key_suppresses_duplicates_across_restarts() {
    let cfg = config();
    let keyed = |key: &str| PublishOptions {
        idempotency_key: Some(key.into()),
        ..history(10)
    };
    let (a, _rec_a, engine_a) = broker(&cfg).await;
    let first = a
        .publish("ch", publication(1), &keyed("m-1"))
        .await
        .unwrap();
    let pos = first.position.clone().unwrap();
    assert_eq!(pos.offset, 1);
    drop((a, engine_a));

    // A new broker (a restarted node) listening on the channel.
    let (b, rec_b, _e) = broker(&cfg).await;
    b.subscribe("ch").await.unwrap();
    let dup = b
        .publish("ch", publication(1), &keyed("m-1"))
        .await
        .unwrap();
    assert!(dup.suppressed);
    assert_eq!(
        dup.position,
        Some(pos.clone()),
        "the earlier publication's position"
    );
    let next = b
        .publish("ch", publication(2), &keyed("m-2"))
        .await
        .unwrap();
    assert!(!next.suppressed);
    assert_eq!(next.position.unwrap().offset, 2);
    // Same key on another channel is another message.
    let other = b
        .publish("other", publication(1), &keyed("m-1"))
        .await
        .unwrap();
    assert!(!other.suppressed);
    assert_eq!(
        rec_b.wait_for("ch", 1).await,
        vec![2],
        "the duplicate never reached the node"
    );
    assert!(rec_b.offsets("ch") == vec![2]);
    let page = b.history("ch", query(None, 10, false)).await.unwrap();
    assert_eq!(ns(&page), vec![1, 2]);

    // Without history the key still suppresses; there is no position.
    let plain = PublishOptions {
        idempotency_key: Some("x".into()),
        ..Default::default()
    };
    b.subscribe("nohist").await.unwrap();
    let out = b.publish("nohist", publication(7), &plain).await.unwrap();
    assert_eq!((out.position, out.suppressed), (None, false));
    let out = b.publish("nohist", publication(7), &plain).await.unwrap();
    assert_eq!((out.position, out.suppressed), (None, true));
    let got = rec_b.wait_for("nohist", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got, vec![0]);
    assert_eq!(rec_b.offsets("nohist").len(), 1);
    cleanup(&cfg).await;
}

#[tokio::test]
async fn history_and_epoch_survive_a_restart() {
    let cfg = config();
    let (a, _rec, engine_a) = broker(&cfg).await;
    for i in 1..=3 {
        a.publish("ch", publication(i), &history(10)).await.unwrap();
    }
    let before = a.history("ch", query(None, 10, false)).await.unwrap();
    engine_a.stop(Duration::from_secs(1)).await;
    drop(a);

    let (b, _rec, _e) = broker(&cfg).await;
    let after = b.history("ch", query(None, 10, false)).await.unwrap();
    assert_eq!(ns(&after), vec![1, 2, 3]);
    assert_eq!(after.position, before.position);
    let out = b.publish("ch", publication(4), &history(10)).await.unwrap();
    assert_eq!(
        out.position.unwrap(),
        StreamPosition {
            offset: 4,
            epoch: before.position.epoch
        }
    );
    cleanup(&cfg).await;
}

#[tokio::test]
async fn remove_history_keeps_position_and_epoch() {
    let cfg = config();
    let (b, _rec, _e) = broker(&cfg).await;
    for i in 1..=3 {
        b.publish("ch", publication(i), &history(10)).await.unwrap();
    }
    let before = b
        .history("ch", query(None, 0, false))
        .await
        .unwrap()
        .position;
    b.remove_history("ch").await.unwrap();
    let page = b.history("ch", query(None, 10, false)).await.unwrap();
    assert!(page.publications.is_empty());
    assert_eq!(page.position, before);
    let out = b.publish("ch", publication(4), &history(10)).await.unwrap();
    assert_eq!(
        out.position.unwrap(),
        StreamPosition {
            offset: 4,
            epoch: before.epoch
        }
    );
    cleanup(&cfg).await;
}

#[tokio::test]
async fn stale_versions_are_dropped() {
    let cfg = config();
    let (b, rec, _e) = broker(&cfg).await;
    b.subscribe("ch").await.unwrap();
    let v = |version: u64, epoch: &str| PublishOptions {
        version,
        version_epoch: epoch.into(),
        ..history(10)
    };
    assert!(
        !b.publish("ch", publication(1), &v(2, ""))
            .await
            .unwrap()
            .suppressed
    );
    let stale = b.publish("ch", publication(2), &v(2, "")).await.unwrap();
    assert!(stale.suppressed);
    assert_eq!(stale.position.unwrap().offset, 1, "the current top");
    assert!(
        b.publish("ch", publication(3), &v(1, ""))
            .await
            .unwrap()
            .suppressed
    );
    assert!(
        !b.publish("ch", publication(4), &v(1, "new"))
            .await
            .unwrap()
            .suppressed
    );
    // Versions above 2^53 compare exactly.
    let big = 1u64 << 60;
    assert!(
        !b.publish("ch", publication(5), &v(big + 1, "new"))
            .await
            .unwrap()
            .suppressed
    );
    assert!(
        b.publish("ch", publication(6), &v(big, "new"))
            .await
            .unwrap()
            .suppressed
    );
    assert!(
        !b.publish("ch", publication(7), &v(big + 2, "new"))
            .await
            .unwrap()
            .suppressed
    );
    rec.wait_for("ch", 4).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got: Vec<u64> = rec
        .publications
        .lock()
        .iter()
        .map(|(_, p)| n_of(p))
        .collect();
    assert_eq!(got, vec![1, 4, 5, 7]);
    cleanup(&cfg).await;
}

#[tokio::test]
async fn two_nodes_receive_every_publication_in_offset_order() {
    let cfg = config();
    let (a, rec_a, _ea) = broker(&cfg).await;
    let (b, rec_b, _eb) = broker(&cfg).await;
    a.subscribe("ch").await.unwrap();
    b.subscribe("ch").await.unwrap();
    const PER_NODE: u64 = 150;
    let mut tasks = Vec::new();
    for (node, broker) in [(0u64, a.clone()), (1, b.clone())] {
        for worker in 0..3u64 {
            let broker = broker.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_NODE / 3 {
                    let n = node * 1000 + worker * 100 + i;
                    broker
                        .publish("ch", publication(n), &history(1000))
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let expected: Vec<u64> = (1..=2 * PER_NODE).collect();
    assert_eq!(rec_a.wait_for("ch", expected.len()).await, expected);
    assert_eq!(rec_b.wait_for("ch", expected.len()).await, expected);
    // Both saw the same publication at each offset, and history agrees.
    let seen_a: Vec<u64> = rec_a
        .publications
        .lock()
        .iter()
        .map(|(_, p)| n_of(p))
        .collect();
    let seen_b: Vec<u64> = rec_b
        .publications
        .lock()
        .iter()
        .map(|(_, p)| n_of(p))
        .collect();
    assert_eq!(seen_a, seen_b);
    let page = a.history("ch", query(None, 1000, false)).await.unwrap();
    assert_eq!(ns(&page), seen_a);
    cleanup(&cfg).await;
}

async fn numsub(channel: &str) -> i64 {
    let r: (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut redis().await)
        .await
        .unwrap();
    r.1
}

#[tokio::test]
async fn subscriptions_are_counted_and_joins_delivered() {
    let cfg = config();
    let (a, rec_a, _ea) = broker(&cfg).await;
    let (b, _rec_b, _eb) = broker(&cfg).await;
    let channel = format!("{}.pub.ch", cfg.prefix);
    a.subscribe("ch").await.unwrap();
    a.subscribe("ch").await.unwrap();
    assert_eq!(numsub(&channel).await, 1);
    a.unsubscribe("ch").await.unwrap();
    b.publish_join_leave("ch", info("u", "c1"), true)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            rec_a.join_leaves.lock().len() == 1
        })
        .await,
        "one of two subscribers left: still subscribed"
    );
    let (ch, who, join) = rec_a.join_leaves.lock()[0].clone();
    assert_eq!((ch.as_str(), who.client.as_str(), join), ("ch", "c1", true));
    assert_eq!(numsub(&channel).await, 1);
    a.unsubscribe("ch").await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            numsub(&channel).await == 0
        })
        .await,
        "unsubscribed from Redis after the last one"
    );
    cleanup(&cfg).await;
}

#[tokio::test]
async fn unreachable_redis_fails_start_naming_the_address() {
    let cfg = pushwire_engine_redis::RedisConfig {
        address: "redis://127.0.0.1:1".into(),
        connect_timeout: Duration::from_millis(300),
        ..config()
    };
    let err = pushwire_engine_redis::RedisEngine::connect(&cfg)
        .await
        .expect_err("nothing listens on port 1");
    let msg = err.to_string();
    assert!(msg.contains("engine.redis.address"), "{msg}");
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
}
