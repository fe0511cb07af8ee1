//! The PUB/SUB connection of a node: after Redis drops it, the broker reconnects,
//! resubscribes every channel (and its control channels), tells the node (`on_resync`), and
//! delivery resumes.

mod common;

use std::time::Duration;

use common::*;
use pushwire_core::engine::Broker;

#[tokio::test]
async fn reconnects_resubscribes_and_tells_the_handler_to_resync() {
    let cfg = pushwire_engine_redis::RedisConfig {
        reconnect_min_delay: Duration::from_millis(20),
        reconnect_max_delay: Duration::from_millis(200),
        ..config()
    };
    let (node, rec, _engine) = broker(&cfg).await;
    // 23 channels: an unusual count that identifies this node's PUB/SUB connection (plus its
    // two control channels).
    const CHANNELS: usize = 23;
    const SUBS: usize = CHANNELS + 2;
    let channels: Vec<String> = (0..CHANNELS).map(|i| format!("ch{i:02}")).collect();
    for c in &channels {
        node.subscribe(c).await.unwrap();
    }
    let (publisher, _, _pe) = broker(&cfg).await;
    publisher
        .publish("ch00", publication(1), &history(10))
        .await
        .unwrap();
    assert_eq!(rec.wait_for("ch00", 1).await, vec![1]);

    kill_pubsub_connection(SUBS).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            !rec.resyncs.lock().is_empty()
        })
        .await,
        "on_resync is called after the reconnect"
    );
    let mut expected = channels.clone();
    expected.sort();
    assert_eq!(
        rec.resyncs.lock()[0],
        expected,
        "every channel with subscribers"
    );
    assert_eq!(
        pubsub_clients(SUBS).await.len(),
        1,
        "resubscribed to all channels and the control channels"
    );
    // Control messages flow again too.
    node.publish_control(bytes::Bytes::from_static(b"after"), Some(&rec.node_id))
        .await
        .unwrap();
    assert_eq!(rec.wait_controls(1).await, vec![b"after".to_vec()]);

    // Delivery resumes on every channel, still in offset order; history has what was
    // published meanwhile.
    publisher
        .publish("ch00", publication(2), &history(10))
        .await
        .unwrap();
    publisher
        .publish("ch22", publication(1), &history(10))
        .await
        .unwrap();
    assert_eq!(rec.wait_for("ch00", 2).await, vec![1, 2]);
    assert_eq!(rec.wait_for("ch22", 1).await, vec![1]);
    cleanup(&cfg).await;
}

#[tokio::test]
async fn subscribe_waits_for_redis_so_nothing_published_after_it_is_missed() {
    let cfg = config();
    let (node, rec, _e) = broker(&cfg).await;
    let (publisher, _, _pe) = broker(&cfg).await;
    // Each round: subscribe a new channel, publish right after; the publication must arrive.
    for i in 0..50 {
        let ch = format!("c{i}");
        node.subscribe(&ch).await.unwrap();
        publisher
            .publish(&ch, publication(i), &history(10))
            .await
            .unwrap();
    }
    for i in 0..50 {
        assert_eq!(
            rec.wait_for(&format!("c{i}"), 1).await,
            vec![1],
            "channel c{i}"
        );
    }
    cleanup(&cfg).await;
}

/// Sharded over three Redis: losing one shard's PUB/SUB connection resyncs only the channels
/// of that shard; the other shards' channels keep their continuity.
#[tokio::test]
async fn a_lost_shard_connection_resyncs_only_that_shards_channels() {
    use pushwire_engine_redis::shard::consistent_index;
    let cfg = pushwire_engine_redis::RedisConfig {
        reconnect_min_delay: Duration::from_millis(20),
        reconnect_max_delay: Duration::from_millis(200),
        ..sharded_config()
    };
    let (node, rec, _engine) = broker(&cfg).await;
    // 29 channels on shard 1 (an unusual count that identifies this node's connection there).
    const SUBS: usize = 29;
    let all: Vec<String> = (0..200).map(|i| format!("sh{i}")).collect();
    let on_shard_1: Vec<String> = all
        .iter()
        .filter(|c| consistent_index(c, 3) == 1)
        .take(SUBS)
        .cloned()
        .collect();
    let elsewhere: Vec<String> = all
        .iter()
        .filter(|c| consistent_index(c, 3) != 1)
        .take(20)
        .cloned()
        .collect();
    for c in on_shard_1.iter().chain(&elsewhere) {
        node.subscribe(c).await.unwrap();
    }
    kill_pubsub_connection_at(SHARDS[1], SUBS).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            !rec.resyncs.lock().is_empty()
        })
        .await,
        "on_resync is called after the shard's reconnect"
    );
    let mut expected = on_shard_1.clone();
    expected.sort();
    assert_eq!(rec.resyncs.lock().clone(), vec![expected]);
    let (publisher, _, _pe) = broker(&cfg).await;
    for c in on_shard_1.iter().chain(&elsewhere) {
        publisher
            .publish(c, publication(1), &history(10))
            .await
            .unwrap();
    }
    for c in on_shard_1.iter().chain(&elsewhere) {
        assert_eq!(rec.wait_for(c, 1).await, vec![1], "{c}");
    }
    cleanup(&cfg).await;
}
