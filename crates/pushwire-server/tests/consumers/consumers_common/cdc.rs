//! Shared scenario for the change-capture sources (`postgresql_cdc` in `postgres.rs`,
//! `mysql_cdc` in `mysql.rs`): every row change reaches its table's subscriber once, in commit
//! order, across a node killed in the middle of a big transaction.

use std::time::Duration;

use pushwire_consumers::ConsumerConfig;
use pushwire_test_support::node_process::{run_python_at, NodeProcess};

use super::source::labels;
use super::workload::{Plan, CDC_BIG_TXN, CDC_CHANGES};
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

/// One centrifuge-python subscriber per channel (`consume_changes.py`), waiting for
/// `counts[i]` changes for at most `timeout_s` seconds each, run against `node` (lazily: they
/// start when the returned future is first polled).
pub fn change_subscribers<'a>(
    node: &NodeProcess,
    channels: &'a [String],
    counts: &'a [String],
    timeout_s: &'a str,
) -> impl std::future::Future<Output = Vec<pushwire_test_support::sdk::SdkRun>> + 'a {
    let (ws, http) = (node.ws_url(), node.http_url());
    let args: Vec<[&str; 4]> = channels
        .iter()
        .zip(counts)
        .map(|(c, n)| {
            [
                "python/consume_changes.py",
                c.as_str(),
                n.as_str(),
                timeout_s,
            ]
        })
        .collect();
    async move {
        let runs = args.iter().map(|a| run_python_at(a, &ws, &http));
        futures_util::future::join_all(runs).await
    }
}

/// 10,000 INSERT / UPDATE / DELETE changes over the three tables in transactions of 1-20
/// changes plus one of 3,000 (a deterministic [`Plan`]); once 200 changes of the big one
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
    let mut plan = Plan::new(S::FULL_DELETES, source.tables());
    plan.small_until(CDC_CHANGES * 3 / 10);
    let before_big = plan.planned;
    let big_at = plan.push(CDC_BIG_TXN);
    let while_dead = big_at + 1;
    plan.small_until(CDC_CHANGES * 7 / 10);
    let restart_at = plan.txns.len();
    plan.small_until_exactly(CDC_CHANGES);

    let channels: Vec<String> = source.tables().iter().map(|t| source.channel(t)).collect();
    let counts = plan.counts();
    let runs = change_subscribers(&node, &channels, &counts, S::SDK_TIMEOUT_S);
    let started = std::time::Instant::now();
    let produce_all = async {
        for ch in &channels {
            wait_subscribed(ch, |b| node.api("presence_stats", b)).await;
        }
        for (i, sql) in plan.txns.iter().enumerate() {
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
    let expected = &plan.workload.expected;
    let elapsed = started.elapsed();
    for (i, run) in results.into_iter().enumerate() {
        let result = run.result();
        let got = result["changes"].as_array().expect("changes").clone();
        assert_eq!(got.len(), expected[i].len(), "table {i}: every change once");
        assert_eq!(
            got,
            expected[i],
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
