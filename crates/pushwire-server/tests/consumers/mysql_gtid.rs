//! The MySQL / MariaDB CDC consumer's GTID position (`mysql_cdc.position = "gtid"`) against
//! MariaDB (`scripts/start-mariadb-binlog.sh`):
//! - 4,000 row changes over 3 tables in transactions, one of them 1,500 changes big, with the
//!   node SIGKILLed in the middle of the big one and restarted: one centrifuge-python
//!   subscriber per table gets every change once, in commit order; the re-read part is
//!   suppressed by the GTID idempotency keys; the position file ends at the server's
//!   `gtid_binlog_pos` (the restart resumed exactly);
//! - a node in `position = "file"` mode keeps `<file> <offset>`; a node started afterwards in
//!   the default mode on the same file converts it to GTIDs (`BINLOG_GTID_POS`) and resumes
//!   exactly there: what the first node did is not published again, what came after is.
//!
//! Needs MariaDB on 127.0.0.1:3306 (root without password, database `test`, row-based binlog),
//! Redis on 127.0.0.1:6379 and the SDKs.

use crate::consumers_common;

use std::time::Duration;

use consumers_common::cdc;
use consumers_common::workload::Plan;
use consumers_common::*;
use mysql_async::prelude::Queryable;
use pushwire_consumers::mysql_cdc::{MysqlCdcSettings, PositionMode};
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::node_process::NodeProcess;
use serde_json::json;

const MARIADB_ADDR: &str = "127.0.0.1:3306";
const URL: &str = "mysql://root@127.0.0.1:3306/test";
/// Changes in the kill test.
const CHANGES: usize = 4_000;
/// Of which one transaction this big, during which the node is killed.
const BIG_TXN: usize = 1_500;

async fn db() -> mysql_async::Conn {
    require_service(MARIADB_ADDR, "MariaDB").await;
    mysql_async::Conn::new(mysql_async::Opts::from_url(URL).expect("url"))
        .await
        .expect("connect to MariaDB (root, database test)")
}

fn consumer(
    channel: &str,
    tables: &[String],
    position_file: &std::path::Path,
    position: PositionMode,
    server_id: u32,
) -> ConsumerConfig {
    let mut c = ConsumerConfig::new("mycdc", ConsumerType::MysqlCdc);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: channel.into(),
        tag_field: "op".into(),
        skip_history: false,
    };
    c.mysql_cdc = Some(MysqlCdcSettings {
        url: URL.into(),
        server_id,
        position_file: position_file.display().to_string(),
        position,
        tables: tables.iter().map(|t| format!("test.{t}")).collect(),
        ..Default::default()
    });
    c
}

async fn create_tables(db: &mut mysql_async::Conn, tables: &[String]) {
    for t in tables {
        db.query_drop(format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, n bigint NOT NULL, note text) ENGINE=InnoDB"
        ))
        .await
        .expect("create table");
    }
}

/// The kept position once it exists.
async fn kept(path: &std::path::Path) -> String {
    wait_until("the binlog position kept", Duration::from_secs(20), || {
        let exists = path.exists();
        async move { exists }
    })
    .await;
    std::fs::read_to_string(path).expect("position file")
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_cdc_gtid_position_resumes_exactly_across_a_sigkill() {
    let id = unique();
    let mut db = db().await;
    let tables: Vec<String> = (1..=3).map(|t| format!("gtid_t{t}_{id}")).collect();
    create_tables(&mut db, &tables).await;
    let dir = std::env::temp_dir().join(format!("pushwire-mygtid-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let position_file = dir.join("position");
    let mut config = redis_engine_config(&id);
    config.consumers = vec![consumer(
        "big:gtid-{table}",
        &tables,
        &position_file,
        PositionMode::Gtid,
        61_000 + (std::process::id() % 4000),
    )];
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;
    let first = kept(&position_file).await;
    assert!(first.starts_with("gtid "), "a GTID position: {first:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut plan = Plan::new(true, &tables);
    plan.small_until(CHANGES / 4);
    let before_big = plan.planned;
    let big_at = plan.push(BIG_TXN);
    let restart_at = plan.txns.len() + 20;
    plan.small_until_exactly(CHANGES);

    let channels: Vec<String> = tables.iter().map(|t| format!("big:gtid-{t}")).collect();
    let counts = plan.counts();
    let runs = cdc::change_subscribers(&node, &channels, &counts, "45");
    let labels = "{consumer=\"mycdc\",type=\"mysql_cdc\"}";
    let produce_all = async {
        for ch in &channels {
            wait_subscribed(ch, |b| node.api("presence_stats", b)).await;
        }
        for (i, sql) in plan.txns.iter().enumerate() {
            db.query_drop(sql).await.expect("transaction");
            if i == big_at {
                // Killed in the middle of the big transaction: its GTID is not kept yet.
                let published = format!("pushwire_consumer_published_total{labels}");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while metric_at(&node.http_url(), &published).await < (before_big + 300) as u64 {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "big transaction not routed\n{}",
                        node.log()
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                node.kill().await;
                let at_kill = std::fs::read_to_string(&position_file).expect("position");
                assert!(at_kill.starts_with("gtid "), "{at_kill:?}");
            }
            if i == restart_at {
                node.restart().await;
            }
        }
    };
    let (results, ()) = tokio::join!(runs, produce_all);
    for (i, run) in results.into_iter().enumerate() {
        let result = run.result();
        let got = result["changes"].as_array().expect("changes").clone();
        assert_eq!(
            got.len(),
            plan.workload.expected[i].len(),
            "table {i}: every change once\n{}",
            node.log()
        );
        assert_eq!(got, plan.workload.expected[i], "table {i}: in commit order");
    }
    let dups = metric_at(
        &node.http_url(),
        &format!("pushwire_consumer_duplicates_total{labels}"),
    )
    .await;
    assert!(
        dups > 0,
        "the re-read part of the big transaction was suppressed by its GTID key"
    );
    // The restarted node resumed from GTIDs and caught up: the kept position includes the
    // GTID of this test's last transaction (other suites may write to the server meanwhile, so
    // the position may be further on, never behind).
    let last: String = db
        .query_first("SELECT @@last_gtid")
        .await
        .expect("last_gtid")
        .unwrap_or_default();
    let (domain, seq) = gtid_parts(&last);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let file = std::fs::read_to_string(&position_file).expect("position");
        let kept = file
            .trim()
            .strip_prefix("gtid ")
            .unwrap_or_default()
            .split(',')
            .map(gtid_parts)
            .find(|(d, _)| *d == domain);
        if kept.is_some_and(|(_, s)| s >= seq) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "position file never reached this test's last transaction {last}: {file:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        node.log().contains("position=gtid "),
        "connected from a GTID position\n{}",
        node.log()
    );
    println!("MYSQL CDC GTID: {CHANGES} changes, node killed mid {BIG_TXN}-change transaction, {dups} re-read changes suppressed");
    drop(node);
    for t in &tables {
        let _ = db.query_drop(format!("DROP TABLE {t}")).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// (domain, sequence number) of a `domain-server-seq` GTID.
fn gtid_parts(gtid: &str) -> (u64, u64) {
    let parts: Vec<u64> = gtid
        .trim()
        .split('-')
        .map(|p| p.parse().expect("GTID number"))
        .collect();
    assert_eq!(parts.len(), 3, "GTID {gtid:?}");
    (parts[0], parts[2])
}

/// The binlog position after everything committed so far (`SHOW MASTER STATUS`).
async fn master_position(db: &mut mysql_async::Conn) -> (String, u64) {
    let row: mysql_async::Row = db
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("SHOW MASTER STATUS")
        .expect("binlog on");
    (row.get(0).expect("file"), row.get(1).expect("position"))
}

/// The `n`s in `channel`'s history.
async fn history_ns(node: &NodeProcess, channel: &str) -> Vec<u64> {
    let (_, h) = node
        .api("history", json!({"channel": channel, "limit": -1}))
        .await;
    h["result"]["publications"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["data"]["row"]["n"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_cdc_file_position_converts_to_gtid_and_resumes_there() {
    let id = unique();
    let mut db = db().await;
    let tables = vec![format!("conv_{id}")];
    create_tables(&mut db, &tables).await;
    let dir = std::env::temp_dir().join(format!("pushwire-myconv-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let position_file = dir.join("position");
    let channel = format!("big:conv-{id}");
    let server_id = 62_000 + (std::process::id() % 3000);
    let mut config = redis_engine_config(&id);
    config.consumers = vec![consumer(
        &channel,
        &tables,
        &position_file,
        PositionMode::File,
        server_id,
    )];
    let node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config.clone()).await;
    let first = kept(&position_file).await;
    assert!(!first.starts_with("gtid"), "a file position: {first:?}");
    let t = &tables[0];
    for n in 1..=3 {
        db.query_drop(format!("INSERT INTO {t} VALUES ({n}, {n}, 'a')"))
            .await
            .expect("insert");
    }
    wait_until("rows 1-3 routed", Duration::from_secs(20), || {
        let node = &node;
        let channel = channel.clone();
        async move { history_ns(node, &channel).await.len() == 3 }
    })
    .await;
    // Kept past row 3's transaction, still as file and offset (so the node is not stopped
    // between publishing row 3 and keeping the position past it).
    let (file, offset) = master_position(&mut db).await;
    wait_until("position past row 3", Duration::from_secs(10), || {
        let now = std::fs::read_to_string(&position_file).unwrap_or_default();
        let past = now
            .trim()
            .rsplit_once(' ')
            .filter(|(f, _)| !f.starts_with("gtid"))
            .is_some_and(|(f, o)| {
                f > file.as_str() || (f == file && o.parse::<u64>().is_ok_and(|o| o >= offset))
            });
        async move { past }
    })
    .await;
    drop(node);
    for n in 4..=6 {
        db.query_drop(format!("INSERT INTO {t} VALUES ({n}, {n}, 'b')"))
            .await
            .expect("insert");
    }
    // The default mode on MariaDB is GTIDs: the file position is converted.
    if let Some(s) = config.consumers[0].mysql_cdc.as_mut() {
        s.position = PositionMode::Auto;
    }
    let node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;
    wait_until("rows 4-6 routed", Duration::from_secs(20), || {
        let node = &node;
        let channel = channel.clone();
        async move { history_ns(node, &channel).await.len() >= 6 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        history_ns(&node, &channel).await,
        vec![1, 2, 3, 4, 5, 6],
        "resumed exactly where the file position was: nothing again, nothing lost\n{}",
        node.log()
    );
    assert!(node.log().contains("converted to GTIDs"), "{}", node.log());
    let now = std::fs::read_to_string(&position_file).expect("position");
    assert!(
        now.starts_with("gtid "),
        "kept as GTIDs from now on: {now:?}"
    );
    drop(node);
    let _ = db.query_drop(format!("DROP TABLE {t}")).await;
    let _ = std::fs::remove_dir_all(&dir);
}
