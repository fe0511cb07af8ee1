//! The PostgreSQL outbox consumer end to end: rows inserted with `tokio-postgres` reach a real
//! centrifuge-python subscriber in order and are deleted once published; poison rows move to
//! the dead-letter table while later rows still flow; PostgreSQL down at start is retried
//! while the node serves; a node killed (SIGKILL) mid-stream and restarted delivers every
//! event exactly once from the client's point of view (Redis engine).
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres, database test), Redis on
//! 127.0.0.1:6379 and the SDKs (`scripts/setup-sdks.sh`).

mod consumers_common;

use std::time::Duration;

use consumers_common::*;
use pushwire_consumers::postgresql_outbox::PostgresOutboxSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType};
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
    assert!(dead[0].1.contains("channel"), "{dead:?}");
    assert_eq!(dead[1].0, "explode");
    assert!(dead[1].1.contains("unknown method"), "{dead:?}");

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
        pushwire_server::api::consumer::ConsumerApi::new(server.node().clone()),
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
