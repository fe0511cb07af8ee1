//! What survives closing and reopening the store: epochs, offsets, publications, size and TTL
//! trimming, meta TTL, idempotency keys, versions; and what a crash under each fsync policy
//! does to the epochs at the next start.

mod common;

use std::time::Duration;

use common::*;
use pushwire_core::engine::{Broker, PublishOptions};
use pushwire_engine_embedded::{EmbeddedConfig, FsyncPolicy};
use pushwire_protocol::StreamPosition;

#[tokio::test]
async fn epochs_offsets_and_publications_survive_a_restart() {
    let dir = TempDir::new();
    let (broker, rec) = open(&dir.config());
    for n in 1..=10 {
        let out = broker
            .publish("a", publication(n), &history(100))
            .await
            .unwrap();
        assert_eq!(out.position.unwrap().offset, n);
    }
    assert_eq!(rec.offsets("a"), (1..=10).collect::<Vec<_>>());
    let before = read(&broker, "a", None).await;
    drop(broker);

    let (broker, rec) = open(&dir.config());
    assert!(!broker.recovered_from_crash(), "closed cleanly");
    let after = read(&broker, "a", None).await;
    assert_eq!(after.position, before.position, "same epoch and top");
    assert_eq!(pairs(&after), (1..=10).map(|n| (n, n)).collect::<Vec<_>>());
    let since = StreamPosition {
        offset: 7,
        epoch: before.position.epoch.clone(),
    };
    assert_eq!(
        pairs(&read(&broker, "a", Some(since)).await),
        vec![(8, 8), (9, 9), (10, 10)]
    );
    let out = broker
        .publish("a", publication(11), &history(100))
        .await
        .unwrap();
    assert_eq!(
        out.position.unwrap(),
        StreamPosition {
            offset: 11,
            epoch: before.position.epoch
        }
    );
    assert_eq!(rec.offsets("a"), vec![11]);
}

#[tokio::test]
async fn size_trimming_survives_a_restart() {
    let dir = TempDir::new();
    let (broker, _rec) = open(&dir.config());
    for n in 1..=12 {
        broker
            .publish("s", publication(n), &history(5))
            .await
            .unwrap();
    }
    assert_eq!(
        pairs(&read(&broker, "s", None).await),
        (8..=12).map(|n| (n, n)).collect::<Vec<_>>()
    );
    drop(broker);
    let (broker, _rec) = open(&dir.config());
    assert_eq!(
        pairs(&read(&broker, "s", None).await),
        (8..=12).map(|n| (n, n)).collect::<Vec<_>>()
    );
    broker
        .publish("s", publication(13), &history(5))
        .await
        .unwrap();
    assert_eq!(
        pairs(&read(&broker, "s", None).await),
        (9..=13).map(|n| (n, n)).collect::<Vec<_>>()
    );
    // A smaller size trims everything above it at the next publish.
    broker
        .publish("s", publication(14), &history(2))
        .await
        .unwrap();
    assert_eq!(
        pairs(&read(&broker, "s", None).await),
        vec![(13, 13), (14, 14)]
    );
}

#[tokio::test]
async fn ttl_expiry_counts_across_a_restart_and_the_sweep_forgets_idle_streams() {
    let dir = TempDir::new();
    let short = PublishOptions {
        history_size: 10,
        history_ttl: Duration::from_millis(500),
        history_meta_ttl: Duration::from_millis(900),
        ..Default::default()
    };
    let (broker, _rec) = open(&dir.config());
    for n in 1..=3 {
        broker.publish("t", publication(n), &short).await.unwrap();
    }
    broker
        .publish("keep", publication(1), &history(10))
        .await
        .unwrap();
    let epoch = read(&broker, "t", None).await.position.epoch;
    drop(broker);
    tokio::time::sleep(Duration::from_millis(600)).await;

    let (broker, _rec) = open(&dir.config());
    let page = read(&broker, "t", None).await;
    assert!(
        page.publications.is_empty(),
        "expired while the node was down"
    );
    assert_eq!(
        page.position,
        StreamPosition {
            offset: 3,
            epoch: epoch.clone()
        }
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    broker.sweep().await.unwrap();
    let metrics = broker.metrics_handle();
    assert_eq!(
        pushwire_engine_embedded::EmbeddedMetrics::get(&metrics.streams),
        1,
        "the idle stream is forgotten, the other kept"
    );
    let fresh = read(&broker, "t", None).await.position;
    assert_ne!(
        fresh.epoch, epoch,
        "a forgotten stream starts over with a new epoch"
    );
    assert_eq!(fresh.offset, 0);
}

#[tokio::test]
async fn idempotency_keys_and_versions_hold_across_a_restart_within_their_window() {
    let dir = TempDir::new();
    let config = EmbeddedConfig {
        idempotency_window: Duration::from_secs(1),
        ..dir.config()
    };
    let keyed = |key: &str| PublishOptions {
        idempotency_key: Some(key.into()),
        ..history(10)
    };
    let (broker, _rec) = open(&config);
    let first = broker
        .publish("i", publication(1), &keyed("k1"))
        .await
        .unwrap();
    let versioned = PublishOptions {
        version: 5,
        version_epoch: "v".into(),
        ..history(10)
    };
    broker
        .publish("v", publication(5), &versioned)
        .await
        .unwrap();
    let nohistory = PublishOptions {
        idempotency_key: Some("k2".into()),
        ..Default::default()
    };
    broker
        .publish("n", publication(1), &nohistory)
        .await
        .unwrap();
    drop(broker);

    let (broker, rec) = open(&config);
    let again = broker
        .publish("i", publication(1), &keyed("k1"))
        .await
        .unwrap();
    assert!(again.suppressed, "the key is remembered after a restart");
    assert_eq!(
        again.position, first.position,
        "with the first publication's position"
    );
    assert!(
        broker
            .publish("n", publication(1), &nohistory)
            .await
            .unwrap()
            .suppressed
    );
    let stale = PublishOptions {
        version: 4,
        ..versioned.clone()
    };
    let out = broker.publish("v", publication(4), &stale).await.unwrap();
    assert!(out.suppressed, "the version is remembered");
    assert_eq!(out.position.unwrap().offset, 1);
    assert!(
        rec.publications.lock().is_empty(),
        "nothing suppressed is delivered"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    broker.sweep().await.unwrap();
    let later = broker
        .publish("i", publication(2), &keyed("k1"))
        .await
        .unwrap();
    assert!(!later.suppressed, "the window is over");
    assert_eq!(later.position.unwrap().offset, 2);
}

/// Writes the open marker a crashed run leaves behind, as that run's policy.
fn fake_crash(dir: &TempDir, policy: FsyncPolicy) {
    const STATE: redb::TableDefinition<'static, &str, &[u8]> = redb::TableDefinition::new("state");
    let db = redb::Database::open(dir.file()).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(STATE)
        .unwrap()
        .insert("open", policy.name().as_bytes())
        .unwrap();
    txn.commit().unwrap();
}

#[tokio::test]
async fn a_crash_keeps_epochs_under_always_and_renews_them_under_interval_or_never() {
    let dir = TempDir::new();
    let (broker, _rec) = open(&dir.config());
    broker
        .publish("c", publication(1), &history(10))
        .await
        .unwrap();
    let epoch = read(&broker, "c", None).await.position.epoch;
    drop(broker);

    fake_crash(&dir, FsyncPolicy::Always);
    let (broker, _rec) = open(&dir.config());
    assert!(broker.recovered_from_crash());
    assert_eq!(broker.rotated_epochs(), 0);
    assert_eq!(read(&broker, "c", None).await.position.epoch, epoch);
    drop(broker);

    for policy in [FsyncPolicy::Interval, FsyncPolicy::Never] {
        fake_crash(&dir, policy);
        let (broker, _rec) = open(&dir.config());
        assert!(broker.recovered_from_crash());
        assert_eq!(broker.rotated_epochs(), 1);
        let page = read(&broker, "c", None).await;
        assert_ne!(
            page.position.epoch, epoch,
            "{policy:?}: a client can not recover across a crash that may have lost publications"
        );
        assert_eq!(page.position.offset, 1);
        assert_eq!(pairs(&page), vec![(1, 1)], "what was durable is kept");
        drop(broker);
    }
}

#[tokio::test]
async fn interval_and_never_publish_and_close_durably() {
    for policy in [FsyncPolicy::Interval, FsyncPolicy::Never] {
        let dir = TempDir::new();
        let config = EmbeddedConfig {
            fsync: policy,
            fsync_interval: Duration::from_millis(20),
            ..dir.config()
        };
        let (broker, rec) = open(&config);
        for n in 1..=50 {
            broker
                .publish("p", publication(n), &history(100))
                .await
                .unwrap();
        }
        assert_eq!(rec.offsets("p").len(), 50);
        let position = read(&broker, "p", None).await.position;
        drop(broker);
        let (broker, _rec) = open(&config);
        assert!(!broker.recovered_from_crash());
        let page = read(&broker, "p", None).await;
        assert_eq!(page.position, position, "{policy:?}");
        assert_eq!(page.publications.len(), 50);
    }
}

#[tokio::test]
async fn concurrent_publishers_get_consecutive_offsets_delivered_in_order() {
    let dir = TempDir::new();
    let (broker, rec) = open(&dir.config());
    let broker = std::sync::Arc::new(broker);
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let broker = broker.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50u64 {
                broker
                    .publish("x", publication(t * 1000 + i), &history(1000))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(rec.offsets("x"), (1..=400).collect::<Vec<_>>());
    assert_eq!(read(&broker, "x", None).await.publications.len(), 400);
}
