//! The MySQL / MariaDB CDC consumer end to end against MariaDB (row-based binlog:
//! `scripts/start-mariadb-binlog.sh`): 10,000 INSERT / UPDATE / DELETE row changes over 3
//! tables in transactions reach one centrifuge-python subscriber per table channel once each,
//! in commit order, with the node SIGKILLed in the middle of a big transaction and restarted
//! (the binlog position file was not advanced past it, so it is read again and its changes
//! are suppressed by their idempotency keys).
//!
//! Needs MariaDB on 127.0.0.1:3306 (root without password, database `test`), Redis on
//! 127.0.0.1:6379 and the SDKs.

use crate::consumers_common;

use std::time::Duration;

use consumers_common::workload::{Workload, CDC_BIG_TXN, CDC_CHANGES};
use consumers_common::*;
use mysql_async::prelude::Queryable;
use pushwire_consumers::mysql_cdc::MysqlCdcSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::node_process::{run_python_at, NodeProcess};

const MARIADB_ADDR: &str = "127.0.0.1:3306";
const URL: &str = "mysql://root@127.0.0.1:3306/test";

async fn db() -> mysql_async::Conn {
    require_service(MARIADB_ADDR, "MariaDB").await;
    mysql_async::Conn::new(mysql_async::Opts::from_url(URL).expect("url"))
        .await
        .expect("connect to MariaDB (root, database test)")
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_cdc_routes_every_change_once_in_commit_order_across_a_sigkill() {
    let id = unique();
    let mut db = db().await;
    let tables: Vec<String> = (1..=3).map(|t| format!("cdc_t{t}_{id}")).collect();
    for t in &tables {
        db.query_drop(format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, n bigint NOT NULL, note text) ENGINE=InnoDB"
        ))
        .await
        .expect("create table");
    }
    let dir = std::env::temp_dir().join(format!("pushwire-mycdc-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let position_file = dir.join("position");
    let mut c = ConsumerConfig::new("mycdc", ConsumerType::MysqlCdc);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: "big:mycdc-{table}".into(),
        tag_field: "op".into(),
        skip_history: false,
    };
    c.mysql_cdc = Some(MysqlCdcSettings {
        url: URL.into(),
        server_id: 60_000 + (std::process::id() % 5000),
        position_file: position_file.display().to_string(),
        tables: tables.iter().map(|t| format!("test.{t}")).collect(),
        ..Default::default()
    });
    let mut config = redis_engine_config(&id);
    config.consumers = vec![c];
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;
    wait_until("the binlog position kept", Duration::from_secs(20), || {
        let exists = position_file.exists();
        async move { exists }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut w = Workload::new(true);
    let mut txns = Vec::new();
    let mut planned = 0;
    while planned < CDC_CHANGES * 3 / 10 {
        let size = 1 + w.rand(20) as usize;
        txns.push(w.transaction(&tables, size));
        planned += size;
    }
    let big_at = txns.len();
    let before_big = planned;
    txns.push(w.transaction(&tables, CDC_BIG_TXN));
    planned += CDC_BIG_TXN;
    let while_dead = txns.len();
    while planned < CDC_CHANGES * 7 / 10 {
        let size = 1 + w.rand(20) as usize;
        txns.push(w.transaction(&tables, size));
        planned += size;
    }
    let restart_at = txns.len();
    while planned < CDC_CHANGES {
        let size = (1 + w.rand(20) as usize).min(CDC_CHANGES - planned);
        txns.push(w.transaction(&tables, size));
        planned += size;
    }

    let (ws, http) = (node.ws_url(), node.http_url());
    let channels: Vec<String> = tables.iter().map(|t| format!("big:mycdc-{t}")).collect();
    let counts: Vec<String> = w.expected.iter().map(|e| e.len().to_string()).collect();
    let args: Vec<[&str; 4]> = (0..3)
        .map(|i| {
            [
                "python/consume_changes.py",
                channels[i].as_str(),
                counts[i].as_str(),
                "45",
            ]
        })
        .collect();
    let runs = futures_util::future::join_all(args.iter().map(|a| run_python_at(a, &ws, &http)));
    let labels = "{consumer=\"mycdc\",type=\"mysql_cdc\"}";
    let started = std::time::Instant::now();
    let produce_all = async {
        for ch in &channels {
            wait_subscribed(ch, |b| node.api("presence_stats", b)).await;
        }
        for (i, sql) in txns.iter().enumerate() {
            if i == while_dead {
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
            db.query_drop(sql).await.expect("transaction");
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
            "table {i}: resubscribed"
        );
    }
    let dups = metric_at(
        &node.http_url(),
        &format!("pushwire_consumer_duplicates_total{labels}"),
    )
    .await;
    println!("MYSQL CDC: {CDC_CHANGES} changes (kill mid {CDC_BIG_TXN}-row transaction {big_at}) delivered in {elapsed:?}; {dups} re-read changes suppressed");
    assert!(
        dups > 0,
        "the re-read part of the big transaction was suppressed by its key"
    );
    drop(node);
    for t in &tables {
        let _ = db.query_drop(format!("DROP TABLE {t}")).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
