//! Shared scenario for the change-capture sources (`postgresql_cdc` in `postgres.rs`,
//! `mysql_cdc` in `mysql.rs`): every row change reaches its table's subscriber once, in commit
//! order, across a node killed in the middle of a big transaction.

use std::time::Duration;

use pushwire_consumers::ConsumerConfig;
use pushwire_test_support::node_process::{run_python_at, NodeProcess};

use super::source::labels;
use super::workload::{Workload, CDC_BIG_TXN, CDC_CHANGES};
use super::{metric_at, redis_engine_config, unique, wait_subscribed};

/// A database whose row changes a CDC consumer routes, with three tables created for one test.
#[allow(
    async_fn_in_trait,
    reason = "the scenario awaits these on the test's own task; nothing spawns them"
)]
pub trait ChangeSource {
    /// How the scenario's printout names the source (`CDC`, `MYSQL CDC`).
    const NAME: &'static str;
    /// A delete's change carries the whole old row (MySQL `binlog_row_image = FULL`), not only
    /// the key (PostgreSQL's default replica identity).
    const FULL_DELETES: bool;
    /// How long each subscriber script waits for its changes, in seconds.
    const SDK_TIMEOUT_S: &'static str;

    /// The three tables (`id bigint PRIMARY KEY, n bigint NOT NULL, note text`).
    fn tables(&self) -> &[String];
    /// The consumer: route mode, one channel per table, `tag_field = "op"`.
    fn consumer(&self) -> ConsumerConfig;
    /// The channel `table`'s changes land in.
    fn channel(&self, table: &str) -> String;
    /// Waits until the consumer captures changes (slot created, binlog position kept).
    async fn wait_ready(&self);
    /// Runs one transaction (a `BEGIN; …; COMMIT;` string).
    async fn execute(&self, sql: &str);
    /// Drops what the test created (slot, publication, tables, position file).
    async fn cleanup(&self);
}

/// 10,000 INSERT / UPDATE / DELETE changes over the three tables in transactions of 1-20
/// changes plus one of 3,000 (a deterministic [`Workload`]); once 200 changes of the big one
/// are published the node is SIGKILLed, and it is started again 70 % of the way through.
/// One centrifuge-python subscriber per table channel (`consume_changes.py`) gets its table's
/// changes once each, in commit order, having resubscribed; the re-read part of the big
/// transaction is counted as suppressed duplicates.
pub async fn every_change_once_in_commit_order_across_a_sigkill<S: ChangeSource>(source: &S) {
    let consumer = source.consumer();
    let labels = labels(&consumer);
    let mut config = redis_engine_config(&unique());
    config.consumers = vec![consumer];
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;
    source.wait_ready().await;

    // The whole workload is decided up front: the subscribers need their counts.
    let tables = source.tables();
    let mut w = Workload::new(S::FULL_DELETES);
    let mut txns = Vec::new();
    let mut planned = 0;
    while planned < CDC_CHANGES * 3 / 10 {
        let size = 1 + w.rand(20) as usize;
        txns.push(w.transaction(tables, size));
        planned += size;
    }
    let big_at = txns.len();
    let before_big = planned;
    txns.push(w.transaction(tables, CDC_BIG_TXN));
    planned += CDC_BIG_TXN;
    let while_dead = txns.len();
    while planned < CDC_CHANGES * 7 / 10 {
        let size = 1 + w.rand(20) as usize;
        txns.push(w.transaction(tables, size));
        planned += size;
    }
    let restart_at = txns.len();
    while planned < CDC_CHANGES {
        let size = (1 + w.rand(20) as usize).min(CDC_CHANGES - planned);
        txns.push(w.transaction(tables, size));
        planned += size;
    }

    let (ws, http) = (node.ws_url(), node.http_url());
    let channels: Vec<String> = tables.iter().map(|t| source.channel(t)).collect();
    let counts: Vec<String> = w.expected.iter().map(|e| e.len().to_string()).collect();
    let args: Vec<[&str; 4]> = (0..3)
        .map(|i| {
            [
                "python/consume_changes.py",
                channels[i].as_str(),
                counts[i].as_str(),
                S::SDK_TIMEOUT_S,
            ]
        })
        .collect();
    let runs = futures_util::future::join_all(args.iter().map(|a| run_python_at(a, &ws, &http)));
    let started = std::time::Instant::now();
    let produce_all = async {
        for ch in &channels {
            wait_subscribed(ch, |b| node.api("presence_stats", b)).await;
        }
        for (i, sql) in txns.iter().enumerate() {
            if i == while_dead {
                // Kill the node in the middle of the big transaction: part of it is published,
                // none of it confirmed; the restarted node reads it again.
                let published = format!("pushwire_consumer_published_total{labels}");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while metric_at(&node.http_url(), &published).await < (before_big + 200) as u64 {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "big transaction not routed\n{}",
                        node.log()
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                node.kill().await;
            }
            if i == restart_at {
                node.restart().await;
            }
            source.execute(sql).await;
        }
    };
    let (results, ()) = tokio::join!(runs, produce_all);
    let elapsed = started.elapsed();
    for (i, run) in results.into_iter().enumerate() {
        let result = run.result();
        let got = result["changes"].as_array().expect("changes").clone();
        assert_eq!(
            got.len(),
            w.expected[i].len(),
            "table {i}: every change once"
        );
        assert_eq!(
            got,
            w.expected[i],
            "table {i}: in commit order\n{}",
            node.log()
        );
        assert!(
            result["resubscribes"].as_u64().unwrap_or(0) >= 1,
            "table {i}: the SDK reconnected to the restarted node and recovered: {}",
            result["resubscribes"]
        );
    }
    let dups = metric_at(
        &node.http_url(),
        &format!("pushwire_consumer_duplicates_total{labels}"),
    )
    .await;
    println!(
        "{}: {CDC_CHANGES} changes (kill mid {CDC_BIG_TXN}-row transaction {big_at}) delivered in {elapsed:?}; {dups} re-read changes suppressed",
        S::NAME
    );
    assert!(
        dups > 0,
        "the re-read part of the big transaction was suppressed by its key"
    );
    drop(node);
    source.cleanup().await;
}
