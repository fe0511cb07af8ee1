//! The PostgreSQL consumers end to end. CDC (`postgresql_cdc`): 10,000 row changes over 3
//! tables reach one centrifuge-python subscriber per table channel once each, in commit
//! order, with the node SIGKILLed in the middle of a big transaction and restarted
//! (wal_level = logical: scripts/start-postgresql-logical.sh); a missing slot is named and
//! retried, then columns are filtered. Outbox (`postgresql_outbox`), the shared scenarios
//! (`consumers_common`) over [`Outbox`]: rows inserted with `tokio-postgres` reach a real
//! centrifuge-python subscriber in order and are deleted once published, poison rows move to
//! the dead-letter table while later rows still flow; API commands other than publish act on
//! connections; PostgreSQL down at start is retried while the node serves; a node killed
//! (SIGKILL) mid-stream and restarted delivers every event exactly once from the client's
//! point of view (Redis engine). Here only: the outbox over TLS verifies the server.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres, database test), Redis on
//! 127.0.0.1:6379 and the SDKs (`scripts/setup-sdks.sh`).

use crate::consumers_common;

use std::time::Duration;

use consumers_common::cdc::ChangeSource;
use consumers_common::source::{Redelivering, Sent, Source};
use consumers_common::*;
use pushwire_consumers::postgresql_cdc::{ColumnFilter, PostgresCdcSettings};
use pushwire_consumers::postgresql_outbox::PostgresOutboxSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::node_process::NodeProcess;
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

/// An outbox table of the local PostgreSQL named for one test (the consumer creates it).
struct Outbox {
    id: String,
    table: String,
    pg: Client,
}

impl Outbox {
    /// Table `outbox_<prefix>_<unique>`; a clear failure when PostgreSQL is down.
    async fn new(prefix: &str) -> Outbox {
        let id = unique();
        Outbox {
            table: format!("outbox_{prefix}_{id}"),
            id,
            pg: pg().await,
        }
    }
}

/// The `method` and `payload` of an API command body.
fn command_parts(body: &[u8]) -> (String, serde_json::Value) {
    let c: serde_json::Value = serde_json::from_slice(body).expect("an API command");
    let method = c["method"].as_str().expect("method").to_owned();
    (method, c["payload"].clone())
}

impl Source for Outbox {
    const ADDR: &'static str = PG_ADDR;
    /// A publish without a channel, an unknown method.
    const POISON: u64 = 2;
    /// The row id.
    type Receipt = i64;
    type Poison = ();

    /// Rows are API commands: command mode only.
    fn consumer(
        &self,
        name: &str,
        addr: &str,
        namespace: &str,
        mode: Mode,
    ) -> (ConsumerConfig, String) {
        assert_eq!(mode, Mode::ApiCommand, "outbox rows are API commands");
        let port = addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
        let config = consumer(name, port.expect("host:port"), &self.table);
        (config, format!("{namespace}:pg-{}", self.id))
    }

    async fn wait_ready(&self) {
        wait_table(&self.pg, &self.table).await;
    }

    /// One row (`method`, `payload`), as a producer's transaction would insert it.
    async fn produce(&self, body: &[u8], _key: &str) -> i64 {
        let (method, payload) = command_parts(body);
        self.pg
            .query_one(
                &format!(
                    "INSERT INTO {} (method, payload) VALUES ($1, $2::text::jsonb) RETURNING id",
                    self.table
                ),
                &[&method, &payload.to_string()],
            )
            .await
            .expect("insert outbox row")
            .get(0)
    }

    async fn produce_poison(&self) {
        insert(&self.pg, &self.table, "publish", &json!({"data": {"n": 0}})).await;
        insert(&self.pg, &self.table, "explode", &json!({})).await;
    }

    /// Processed rows are deleted; the two poison rows moved to `<table>_dead_letter` with
    /// the API's own answer.
    async fn assert_dead_lettered(&self, (): ()) {
        let (pg, table) = (&self.pg, &self.table);
        wait_until("the outbox is empty", Duration::from_secs(5), || async {
            count(pg, table).await == 0
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
        // A publish without a channel is a bad request (107).
        assert!(dead[0].1.contains("bad request (107)"), "{dead:?}");
        assert_eq!(dead[1].0, "explode");
        assert!(dead[1].1.contains("method not found (104)"), "{dead:?}");
    }

    async fn cleanup(&self) {
        cleanup(&self.pg, &self.table).await;
    }
}

impl Redelivering for Outbox {
    /// Rows the dead node had already published come back with their ids, as after a crash
    /// between publish and the deleting commit. A row the dead node had not deleted yet (a
    /// loaded machine: it was killed before getting that far) is still there and is left as
    /// it is.
    async fn redeliver(&self, sent: &[Sent<i64>], from: usize) {
        for s in &sent[from..] {
            let (method, payload) = command_parts(&s.body);
            self.pg
                .execute(
                    &format!(
                        "INSERT INTO {} (id, method, payload) VALUES ($1, $2, $3::text::jsonb) \
                         ON CONFLICT (id) DO NOTHING",
                        self.table
                    ),
                    &[&s.receipt, &method, &payload.to_string()],
                )
                .await
                .expect("re-insert a processed row");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_outbox_rows_reach_a_python_subscriber_in_order_and_poison_is_dead_lettered() {
    let source = Outbox::new("ordered").await;
    ordered::events_in_order_and_poison_dead_lettered(&source, Mode::ApiCommand).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_outbox_api_commands_other_than_publish_act_on_connections() {
    let source = Outbox::new("cmd").await;
    commands::api_commands_other_than_publish_act_on_connections(&source).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_down_at_start_is_retried_with_backoff_while_the_node_serves() {
    let source = Outbox::new("late").await;
    late::down_at_start_is_retried_while_the_node_serves(&source, Mode::ApiCommand).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_node_killed_mid_stream_delivers_every_event_exactly_once() {
    let source = Outbox::new("kill").await;
    kill::killed_node_delivers_every_event_once(&source, Mode::ApiCommand).await;
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

/// Three tables and a `postgresql_cdc` consumer over them (slot and publication `cdc_<id>`).
struct LogicalReplication {
    id: String,
    tables: Vec<String>,
    pg: Client,
}

impl LogicalReplication {
    /// The tables, created.
    async fn new() -> LogicalReplication {
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
        LogicalReplication { id, tables, pg }
    }
}

impl ChangeSource for LogicalReplication {
    const NAME: &'static str = "CDC";
    const FULL_DELETES: bool = false;
    const SDK_TIMEOUT_S: &'static str = "150";

    fn tables(&self) -> &[String] {
        &self.tables
    }

    fn consumer(&self) -> ConsumerConfig {
        cdc_consumer(&self.id, &self.tables)
    }

    fn channel(&self, table: &str) -> String {
        format!("big:cdc-{table}")
    }

    async fn wait_ready(&self) {
        wait_slot(&self.pg, &format!("cdc_{}", self.id)).await;
    }

    async fn execute(&self, sql: &str) {
        self.pg.batch_execute(sql).await.expect("transaction");
    }

    async fn cleanup(&self) {
        cdc_cleanup(&self.pg, &self.id, &self.tables).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_routes_every_change_once_in_commit_order_across_a_sigkill() {
    let source = LogicalReplication::new().await;
    cdc::every_change_once_in_commit_order_across_a_sigkill(&source).await;
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
