//! The Redis Streams source against a real Redis (127.0.0.1:6379) and an in-memory node:
//! pending entries of this consumer from a previous run come first, and an entry deleted
//! while pending does not wedge it.

mod common;

use std::time::Duration;

use common::{history, node, unique};
use pushwire_consumers::redis_stream::{self, RedisStreamSettings};
use pushwire_consumers::ConsumerType;
use serde_json::json;
use tokio_util::sync::CancellationToken;

async fn conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379")
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is not reachable at 127.0.0.1:6379: start it")
}

async fn xadd(c: &mut redis::aio::MultiplexedConnection, stream: &str, n: u64) -> String {
    let body = json!({"n": n});
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("payload")
        .arg(body.to_string())
        .query_async(c)
        .await
        .expect("XADD")
}

#[tokio::test(flavor = "multi_thread")]
async fn own_pending_entries_first_and_a_deleted_pending_entry_is_skipped() {
    common::logs();
    let stream = format!("rs-pending-{}", unique());
    let mut c = conn().await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("pushwire")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut c)
        .await
        .expect("XGROUP CREATE");
    let first = xadd(&mut c, &stream, 1).await;
    xadd(&mut c, &stream, 2).await;
    // A previous run of consumer "n1" read both and died; entry 1 was deleted since.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("pushwire")
        .arg("n1")
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut c)
        .await
        .expect("XREADGROUP");
    let _: i64 = redis::cmd("XDEL")
        .arg(&stream)
        .arg(&first)
        .query_async(&mut c)
        .await
        .expect("XDEL");
    xadd(&mut c, &stream, 3).await;

    let node = node();
    let settings = RedisStreamSettings {
        streams: vec![stream.clone()],
        consumer_name: "n1".into(),
        block: Duration::from_millis(100),
        ..Default::default()
    };
    let processor = common::route(&node, ConsumerType::RedisStream, "ev:rs", "");
    let metrics = processor.metrics().clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(redis_stream::run(
        "rs".into(),
        settings,
        processor,
        stop.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while history(&node, "ev:rs").await.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "entries 2 and 3 not published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        history(&node, "ev:rs").await,
        vec![json!({"n": 2}), json!({"n": 3})]
    );
    let dead_lettered = metrics
        .dead_lettered
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dead_lettered, 0, "a deleted entry is not poison");
    stop.cancel();
    task.await.expect("source task");
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("pushwire")
        .query_async(&mut c)
        .await
        .expect("XPENDING");
    assert_eq!(pending.count(), 0, "the deleted entry was acknowledged");
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut c)
        .await
        .expect("DEL");
}
