//! The PostgreSQL consumers end to end. CDC (`postgresql_cdc`): 10,000 row changes over 3
//! tables reach one centrifuge-python subscriber per table channel once each, in commit
//! order, with the node SIGKILLed in the middle of a big transaction and restarted
//! (wal_level = logical: scripts/start-postgresql-logical.sh). Outbox: rows inserted with
//! `tokio-postgres` reach a real centrifuge-python subscriber in order and are deleted once published; poison rows move to
//! the dead-letter table while later rows still flow; PostgreSQL down at start is retried
//! while the node serves; a node killed (SIGKILL) mid-stream and restarted delivers every
//! event exactly once from the client's point of view (Redis engine).
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres, database test), Redis on
//! 127.0.0.1:6379 and the SDKs (`scripts/setup-sdks.sh`).

use crate::consumers_common;

use std::time::Duration;

use consumers_common::workload::{Workload, CDC_BIG_TXN, CDC_CHANGES};
use consumers_common::*;
use pushwire_consumers::postgresql_cdc::{ColumnFilter, PostgresCdcSettings};
use pushwire_consumers::postgresql_outbox::PostgresOutboxSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::node_process::{run_python_at, NodeProcess};
use pushwire_test_support::sdk::{run_in, sdk_dir};
use pushwire_test_support::{TestServer, WsClient};
use serde_json::json;
use tokio_postgres::{Client, NoTls};

const PG_ADDR: &str = "127.0.0.1:5432";

fn dsn(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user=postgres dbname=test")
}

async fn pg() -> Client {
    require_service(PG_ADDR, "PostgreSQL").await;
    let (client, connection) = tokio_postgres::connect(&dsn(5432), NoTls)
        .await
        .expect("connect to PostgreSQL (user postgres, db test)");
    tokio::spawn(connection);
    client
}

/// Inserts an outbox row (`method`, `payload`), as a producer's transaction would.
async fn insert(pg: &Client, table: &str, method: &str, payload: &serde_json::Value) {
    pg.execute(
        &format!("INSERT INTO {table} (method, payload) VALUES ($1, $2::text::jsonb)"),
        &[&method, &payload.to_string()],
    )
    .await
    .expect("insert outbox row");
}

fn publish_payload(channel: &str, n: u64) -> serde_json::Value {
    json!({"channel": channel, "data": {"n": n}})
}

/// A postgresql_outbox consumer `name` on `table`.
fn consumer(name: &str, port: u16, table: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(name, ConsumerType::PostgresqlOutbox);
    c.postgresql_outbox = Some(PostgresOutboxSettings {
        dsn: dsn(port),
        table: table.into(),
        poll_interval: Duration::from_millis(500),
        ..Default::default()
    });
    c.retry_backoff_min = Duration::from_millis(50);
    c.retry_backoff_max = Duration::from_millis(500);
    c
}

/// Waits until the consumer created `table`.
async fn wait_table(pg: &Client, table: &str) {
    wait_until(
        &format!("table {table} exists"),
        Duration::from_secs(20),
        || async {
            pg.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
                .await
                .is_ok_and(|r| r.get::<_, bool>(0))
        },
    )
    .await;
}

async fn count(pg: &Client, table: &str) -> i64 {
    pg.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0)
}

async fn cleanup(pg: &Client, table: &str) {
    let _ = pg
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_dead_letter; DROP FUNCTION IF EXISTS {table}_notify();"
        ))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_outbox_rows_reach_a_python_subscriber_in_order_and_poison_is_dead_lettered() {
    let id = unique();
    let table = format!("outbox_{id}");
    let channel = format!("chat:pg-{id}");
    let pg = pg().await;
    let server =
        TestServer::start_with(|c| c.consumers = vec![consumer("outbox", 5432, &table)]).await;
    wait_table(&pg, &table).await;

    const N: u64 = 40;
    let (dir, count_arg) = (sdk_dir(), N.to_string());
    let python = dir.join(".venv/bin/python");
    let args = ["python/consume_ordered.py", &channel, &count_arg, "30"];
    let sdk = run_in(&python, &dir, &args, &server);
    let produce_all = async {
        wait_subscribed(&channel, |b| server.api("presence_stats", b)).await;
        for n in 1..=N {
            insert(&pg, &table, "publish", &publish_payload(&channel, n)).await;
            if n == 10 {
                insert(&pg, &table, "publish", &json!({"data": {"n": 0}})).await;
                insert(&pg, &table, "explode", &json!({})).await;
            }
        }
    };
    let (run, ()) = tokio::join!(sdk, produce_all);
    assert_eq!(
        ns(&run.result()),
        (1..=N).collect::<Vec<_>>(),
        "rows in order"
    );

    // Processed rows are deleted; the two poison rows moved with why.
    wait_until("the outbox is empty", Duration::from_secs(5), || async {
        count(&pg, &table).await == 0
    })
    .await;
    let dead = pg
        .query(
            &format!("SELECT method, error FROM {table}_dead_letter ORDER BY id"),
            &[],
        )
        .await
        .expect("dead letters");
    let dead: Vec<(String, String)> = dead.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].0, "publish");
    // The API's own answer: a publish without a channel is a bad request (107).
    assert!(dead[0].1.contains("bad request (107)"), "{dead:?}");
    assert_eq!(dead[1].0, "explode");
    assert!(dead[1].1.contains("method not found (104)"), "{dead:?}");

    let labels = "{consumer=\"outbox\",type=\"postgresql_outbox\"}";
    let scrape = Scrape::of(&server).await;
    let metric = |m: &str| scrape.count(&format!("pushwire_consumer_{m}{labels}"));
    assert_eq!(metric("published_total"), N);
    assert_eq!(metric("dead_lettered_total"), 2);
    server.stop().await;
    cleanup(&pg, &table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_down_at_start_is_retried_with_backoff_while_the_node_serves() {
    let id = unique();
    let table = format!("outbox_late_{id}");
    let channel = format!("chat:pglate-{id}");
    let pg = pg().await;
    let mut broker = LateBroker::new(PG_ADDR);
    let server =
        TestServer::start_with(|c| c.consumers = vec![consumer("late", broker.port, &table)]).await;

    tokio::time::sleep(Duration::from_millis(800)).await;
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(
        reply.get("error").is_none(),
        "subscribe while PostgreSQL is down: {reply}"
    );
    server.publish(&channel, json!({"n": 0})).await;
    let labels = "{consumer=\"late\",type=\"postgresql_outbox\"}";
    assert_eq!(
        Scrape::of(&server)
            .await
            .get(&format!("pushwire_consumer_lag{labels}")),
        -1.0
    );

    broker.open().await;
    wait_table(&pg, &table).await;
    for n in 1..=5 {
        insert(&pg, &table, "publish", &publish_payload(&channel, n)).await;
    }
    for n in 0..=5u64 {
        let p = ws.next_publication(&channel).await;
        assert_eq!(p["data"]["n"], json!(n), "{p}");
    }
    server.stop().await;
    cleanup(&pg, &table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_node_killed_mid_stream_delivers_every_event_exactly_once() {
    let id = unique();
    let table = format!("outbox_kill_{id}");
    let channel = format!("big:pg-kill-{id}");
    let pg = pg().await;
    let mut config = redis_engine_config(&id);
    config.consumers = vec![consumer("outbox", 5432, &table)];
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;
    wait_table(&pg, &table).await;

    let (ws, http) = (node.ws_url(), node.http_url());
    let count_arg = KILL_N.to_string();
    let args = ["python/consume_ordered.py", &channel, &count_arg, "40"];
    let sdk = run_python_at(&args, &ws, &http);
    let produce_all = async {
        wait_subscribed(&channel, |b| node.api("presence_stats", b)).await;
        let mut row_ids = vec![0i64];
        for n in 1..=KILL_N {
            let row = pg
                .query_one(
                    &format!("INSERT INTO {table} (method, payload) VALUES ('publish', $1::text::jsonb) RETURNING id"),
                    &[&publish_payload(&channel, n).to_string()],
                )
                .await
                .expect("insert outbox row");
            row_ids.push(row.get(0));
            if n == KILL_AT {
                tokio::time::sleep(Duration::from_millis(30)).await;
                node.kill().await;
                // Rows the dead node had already published come back with their ids, as
                // after a crash between publish and the deleting commit.
                for r in REDELIVER_FROM..=KILL_AT {
                    pg.execute(
                        &format!("INSERT INTO {table} (id, method, payload) VALUES ($1, 'publish', $2::text::jsonb)"),
                        &[&row_ids[r as usize], &publish_payload(&channel, r).to_string()],
                    )
                    .await
                    .expect("re-insert a processed row");
                }
            }
            if n == RESTART_AT {
                node.restart().await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (run, ()) = tokio::join!(sdk, produce_all);
    let result = run.result();
    assert_eq!(
        ns(&result),
        (1..=KILL_N).collect::<Vec<_>>(),
        "every event exactly once, in order\n{}",
        node.log()
    );
    assert!(
        result["resubscribes"].as_u64().unwrap_or(0) >= 1,
        "the SDK reconnected to the restarted node and recovered: {result}"
    );
    let labels = "{consumer=\"outbox\",type=\"postgresql_outbox\"}";
    let dups = metric_at(
        &node.http_url(),
        &format!("pushwire_consumer_duplicates_total{labels}"),
    )
    .await;
    assert!(
        dups > KILL_AT - REDELIVER_FROM,
        "redeliveries suppressed by the idempotency key: {dups}"
    );
    drop(node);
    cleanup(&pg, &table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_outbox_over_tls_verifies_the_server_and_delivers() {
    let pg = pg().await;
    let ssl: String = pg.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "PostgreSQL must serve TLS (ssl = on, Debian's default)"
    );
    // The server's own certificate (Debian: the snakeoil one, for `localhost`) as the root.
    let cert: String = pg
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    let id = unique();
    let table = format!("outbox_{id}");
    let channel = format!("chat:pgtls-{id}");
    let app = format!("pushwire-tls-{id}");
    let server = TestServer::start().await;
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(r["subscribe"].is_object(), "{r}");

    let mut c = consumer("pgtls", 5432, &table);
    let s = c.postgresql_outbox.as_mut().unwrap();
    s.dsn = format!(
        "host=localhost port=5432 user=postgres dbname=test sslmode=require application_name={app}"
    );
    s.tls_ca_pem_file = cert;
    let stop = tokio_util::sync::CancellationToken::new();
    let consumers = pushwire_consumers::start(
        server.node().clone(),
        pushwire_server::api::consumer::ConsumerApi::shared(server.node().clone()),
        &[c],
        stop,
    );
    wait_table(&pg, &table).await;
    insert(&pg, &table, "publish", &publish_payload(&channel, 1)).await;
    assert_eq!(ws.next_publication(&channel).await["data"], json!({"n": 1}));
    let ssl: bool = pg
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the consumer's session is encrypted");
    consumers.stop().await;
    cleanup(&pg, &table).await;
    server.stop().await;
}

// ---- postgresql_cdc: logical replication (pgoutput) -------------------------------------

/// The 3 tables of a CDC run.
fn cdc_tables(id: &str) -> Vec<String> {
    (1..=3).map(|t| format!("cdc_t{t}_{id}")).collect()
}

/// A postgresql_cdc consumer over `tables`: each table's changes to `big:cdc-<table>`, tagged
/// with their op.
fn cdc_consumer(id: &str, tables: &[String]) -> ConsumerConfig {
    let mut c = ConsumerConfig::new("cdc", ConsumerType::PostgresqlCdc);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: "big:cdc-{table}".into(),
        tag_field: "op".into(),
        skip_history: false,
    };
    c.postgresql_cdc = Some(PostgresCdcSettings {
        dsn: dsn(5432),
        slot: format!("cdc_{id}"),
        publication: format!("cdc_{id}"),
        tables: tables.to_vec(),
        poll_interval: Duration::from_millis(20),
        ..Default::default()
    });
    c
}

/// Waits until the consumer created its slot (changes before it are not captured).
async fn wait_slot(pg: &Client, slot: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while pg
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("read slots")
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot {slot} never created"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drops the slot (retrying while the killed node's session lingers), publication, tables.
async fn cdc_cleanup(pg: &Client, id: &str, tables: &[String]) {
    for _ in 0..50 {
        let dropped = pg
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&format!("cdc_{id}")],
            )
            .await;
        if dropped.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = pg
        .batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS cdc_{id}; DROP TABLE IF EXISTS {}",
            tables.join(", ")
        ))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_routes_every_change_once_in_commit_order_across_a_sigkill() {
    let id = unique();
    let pg = pg().await;
    let tables = cdc_tables(&id);
    for t in &tables {
        pg.batch_execute(&format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, n bigint NOT NULL, note text)"
        ))
        .await
        .expect("create table");
    }
    let mut config = redis_engine_config(&id);
    config.consumers = vec![cdc_consumer(&id, &tables)];
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;
    wait_slot(&pg, &format!("cdc_{id}")).await;

    // The whole workload is decided up front: the subscribers need their counts.
    let mut w = Workload::new(false);
    let mut txns = Vec::new();
    let mut planned = 0;
    let before_kill = CDC_CHANGES * 3 / 10;
    while planned < before_kill {
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
    let channels: Vec<String> = tables.iter().map(|t| format!("big:cdc-{t}")).collect();
    let counts: Vec<String> = w.expected.iter().map(|e| e.len().to_string()).collect();
    let args: Vec<[&str; 4]> = (0..3)
        .map(|i| {
            [
                "python/consume_changes.py",
                channels[i].as_str(),
                counts[i].as_str(),
                "150",
            ]
        })
        .collect();
    let runs = futures_util::future::join_all(args.iter().map(|a| run_python_at(a, &ws, &http)));
    let labels = "{consumer=\"cdc\",type=\"postgresql_cdc\"}";
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
                        "big transaction not routed"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                node.kill().await;
            }
            if i == restart_at {
                node.restart().await;
            }
            pg.batch_execute(sql).await.expect("transaction");
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
            "the SDK reconnected to the restarted node and recovered: {}",
            result["resubscribes"]
        );
    }
    let dups = metric_at(
        &node.http_url(),
        &format!("pushwire_consumer_duplicates_total{labels}"),
    )
    .await;
    println!("CDC: {CDC_CHANGES} changes (kill mid {CDC_BIG_TXN}-row transaction {big_at}) delivered in {elapsed:?}; {dups} re-read changes suppressed");
    assert!(
        dups > 0,
        "the re-read part of the big transaction was suppressed by its LSN key"
    );
    drop(node);
    cdc_cleanup(&pg, &id, &tables).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_missing_slot_is_named_and_retried_then_columns_are_filtered() {
    let id = unique();
    let pg = pg().await;
    let table = format!("cdc_f_{id}");
    pg.batch_execute(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, status text, secret text); \
         CREATE PUBLICATION cdc_{id} FOR TABLE {table}"
    ))
    .await
    .expect("table and publication");
    let mut c = cdc_consumer(&id, std::slice::from_ref(&table));
    c.route.channel = "chat:cdc-{table}-{row.id}".into();
    c.retry_backoff_max = Duration::from_millis(300);
    if let Some(s) = c.postgresql_cdc.as_mut() {
        s.create_slot = false;
        s.columns.insert(
            table.clone(),
            ColumnFilter {
                allow: Vec::new(),
                deny: vec!["secret".into()],
            },
        );
    }
    let mut conf = config();
    conf.consumers = vec![c];
    let node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), conf).await;
    wait_until(
        "the missing slot named in the log",
        Duration::from_secs(10),
        || {
            let log = node.log();
            async move { log.contains("postgresql_cdc.slot") && log.contains("does not exist") }
        },
    )
    .await;
    // The node serves meanwhile; once the slot exists the consumer picks it up by itself.
    let channel = format!("chat:cdc-{table}-7");
    let (mut ws, _) = WsClient::connected(&node.ws_url(), None).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    pg.query_one(
        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')::text",
        &[&format!("cdc_{id}")],
    )
    .await
    .expect("create slot");
    pg.batch_execute(&format!(
        "INSERT INTO {table} VALUES (7, 'new', 'pw'); UPDATE {table} SET status = 'paid' WHERE id = 7"
    ))
    .await
    .expect("changes");
    let p = ws.next_publication(&channel).await;
    assert_eq!(
        (
            &p["data"]["op"],
            &p["data"]["row"],
            &p["data"]["table"],
            &p["tags"]
        ),
        (
            &json!("insert"),
            &json!({"id": 7, "status": "new"}),
            &json!(table),
            &json!({"op": "insert"})
        ),
        "{p}"
    );
    assert_eq!(p["data"]["schema"], json!("public"));
    assert!(
        p["data"]["lsn"].as_str().is_some_and(|l| l.contains('/')),
        "{p}"
    );
    let p = ws.next_publication(&channel).await;
    assert_eq!(
        (&p["data"]["op"], &p["data"]["row"]),
        (&json!("update"), &json!({"id": 7, "status": "paid"})),
        "{p}"
    );
    drop(node);
    cdc_cleanup(&pg, &id, &[table]).await;
}
