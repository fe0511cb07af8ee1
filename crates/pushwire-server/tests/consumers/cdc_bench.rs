//! Change streams end to end, commit → subscriber: PostgreSQL logical replication
//! (`postgresql_cdc`), the MariaDB binlog (`mysql_cdc`, GTID positions) and MQTT (`mqtt`,
//! 3.1.1 and 5). Each row (or MQTT message) carries the producer's wall clock in microseconds,
//! read just before its transaction's COMMIT (or the PUBLISH) is sent; a WebSocket subscriber in
//! the same process takes its receive time from the same clock, so the difference is the
//! commit → subscriber latency.
//!
//! Per source, two phases on an in-process node (memory engine), the consumer already running:
//! - **throughput**: `N` changes written as fast as the producer can, in transactions of 100
//!   rows (MQTT: QoS 1 publishes, 100 in flight); changes/s from the first commit to the last
//!   receive, and the latency percentiles under that load;
//! - **steady rate**: `RATE` single-row transactions (messages) per second for `SECONDS`; the
//!   latency percentiles at a rate the source keeps up with.
//!
//! PostgreSQL runs three ways: streamed (`read = "stream"`, the default) and polled (`read =
//! "peek"`) at `poll_interval` 100 ms and 10 ms, one after the other in the same run. Each
//! phase also reports this process's CPU time per change (node, subscriber and producer client
//! together: the same for every source but the consumer's read loop).
//!
//! Ignored by default; `scripts/bench-cdc.sh` runs it in release mode. Env:
//! `PUSHWIRE_CDC_BENCH_N` (20000), `PUSHWIRE_CDC_BENCH_RATE` (500), `PUSHWIRE_CDC_BENCH_SECONDS`
//! (10), `PUSHWIRE_CDC_BENCH_ONLY` (run only the sources whose label contains it, e.g.
//! `postgresql`). Needs PostgreSQL (wal_level = logical), MariaDB (row binlog) and Mosquitto on
//! 127.0.0.1 (`scripts/services.sh`).

use crate::consumers_common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consumers_common::*;
use mysql_async::prelude::Queryable;
use pushwire_consumers::mqtt::{MqttSettings, ProtocolVersion};
use pushwire_consumers::mysql_cdc::MysqlCdcSettings;
use pushwire_consumers::postgresql_cdc::{PostgresCdcSettings, ReadMode};
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::{TestServer, WsClient};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const PG_DSN: &str = "host=127.0.0.1 user=postgres dbname=test";
const MY_URL: &str = "mysql://root@127.0.0.1:3306/test";
/// Rows per transaction in the throughput phase.
const TXN_ROWS: u64 = 100;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Microseconds since the epoch.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64
}

/// What one phase measured.
struct Phase {
    changes: u64,
    elapsed: Duration,
    /// This process's CPU time over the phase.
    cpu: Duration,
    /// Commit → receive, microseconds, sorted.
    latencies: Vec<u64>,
}

impl Phase {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }

    fn line(&self, source: &str, phase: &str) -> String {
        format!(
            "CDC BENCH {source} {phase}: {} changes in {:.2} s = {:.0} changes/s; commit -> subscriber p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; process CPU {:.1} us/change",
            self.changes,
            self.elapsed.as_secs_f64(),
            self.changes as f64 / self.elapsed.as_secs_f64(),
            self.percentile(0.5),
            self.percentile(0.99),
            self.percentile(1.0),
            self.cpu_per_change_us(),
        )
    }

    fn cpu_per_change_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.changes as f64
    }
}

/// This process's user + system CPU time (`/proc/self/stat`, 100 ticks a second).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// A source under test: writes changes whose rows carry `ts`.
trait Producer: Send {
    /// One transaction (or MQTT burst) of the rows `ids`, each stamped with the time read just
    /// before the commit is sent.
    fn write(&mut self, ids: std::ops::Range<u64>) -> impl std::future::Future<Output = ()> + Send;
}

/// Reads `n` publications of rows other than the probe row 0 from `ws` on `channel`; `(id,
/// ts)` of each from `data` with `row_of`. Latencies sorted, and when the last arrived.
async fn receive(
    ws: &mut WsClient,
    channel: &str,
    n: u64,
    row_of: fn(&Value) -> (u64, u64),
) -> (Vec<u64>, Instant) {
    let mut latencies = Vec::with_capacity(n as usize);
    while (latencies.len() as u64) < n {
        let p = tokio::time::timeout(Duration::from_secs(60), ws.next_publication(channel))
            .await
            .unwrap_or_else(|_| panic!("stalled after {} of {n}", latencies.len()));
        let at = now_us();
        let (id, ts) = row_of(&p["data"]);
        if id != 0 {
            latencies.push(at.saturating_sub(ts));
        }
    }
    latencies.sort_unstable();
    (latencies, Instant::now())
}

/// Runs both phases against `producer` with the consumer `config` routing into `channel`.
async fn bench<P: Producer + 'static>(
    label: &str,
    config: ConsumerConfig,
    channel: &str,
    mut producer: P,
    row_of: fn(&Value) -> (u64, u64),
) -> (Phase, Phase) {
    let server = TestServer::start().await;
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    let stop = CancellationToken::new();
    let consumers = pushwire_consumers::start(
        server.node().clone(),
        pushwire_server::api::consumer::ConsumerApi::shared(server.node().clone()),
        &[config],
        stop.clone(),
    );
    // The probe row 0 (written again until it arrives): the consumer is connected, its slot /
    // position / subscription in place, and streaming. Later probe copies are skipped.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        producer.write(0..1).await;
        if tokio::time::timeout(Duration::from_millis(500), ws.next_publication(channel))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: the consumer never delivered"
        );
    }

    let n = env("PUSHWIRE_CDC_BENCH_N", 20_000);
    let started = Instant::now();
    let cpu = process_cpu();
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn(async move {
        let mut id = 1;
        while id <= n {
            let end = (id + TXN_ROWS).min(n + 1);
            producer.write(id..end).await;
            id = end;
        }
        let _ = tx.send(producer);
    });
    let (latencies, done) = receive(&mut ws, channel, n, row_of).await;
    writer.await.expect("writer");
    let throughput = Phase {
        changes: n,
        elapsed: done - started,
        cpu: process_cpu().saturating_sub(cpu),
        latencies,
    };
    println!("{}", throughput.line(label, "throughput"));

    let mut producer = rx.try_recv().expect("producer back");
    let rate = env("PUSHWIRE_CDC_BENCH_RATE", 500);
    let seconds = env("PUSHWIRE_CDC_BENCH_SECONDS", 10);
    let total = rate * seconds;
    let tick = Duration::from_secs_f64(1.0 / rate as f64);
    let base = n + 1;
    let started = Instant::now();
    let cpu = process_cpu();
    let writer = tokio::spawn(async move {
        let mut next = tokio::time::Instant::now();
        for i in 0..total {
            producer.write(base + i..base + i + 1).await;
            next += tick;
            tokio::time::sleep_until(next).await;
        }
    });
    let (latencies, done) = receive(&mut ws, channel, total, row_of).await;
    writer.await.expect("writer");
    let steady = Phase {
        changes: total,
        elapsed: done - started,
        cpu: process_cpu().saturating_sub(cpu),
        latencies,
    };
    println!("{}", steady.line(label, &format!("steady {rate}/s")));
    consumers.stop().await;
    server.stop().await;
    (throughput, steady)
}

fn route(channel: &str) -> RouteConfig {
    RouteConfig {
        channel: channel.into(),
        tag_field: String::new(),
        skip_history: false,
    }
}

struct Pg {
    client: tokio_postgres::Client,
    table: String,
}

impl Producer for Pg {
    async fn write(&mut self, ids: std::ops::Range<u64>) {
        let ts = now_us();
        let values: Vec<String> = ids.map(|i| format!("({i}, {ts})")).collect();
        self.client
            .batch_execute(&format!(
                "BEGIN; INSERT INTO {} (id, ts) VALUES {} ON CONFLICT (id) DO UPDATE SET ts = excluded.ts; COMMIT",
                self.table,
                values.join(",")
            ))
            .await
            .expect("insert");
    }
}

/// `(row.id, row.ts)` of a change event.
fn row(d: &Value) -> (u64, u64) {
    (
        d["row"]["id"].as_u64().expect("row.id"),
        d["row"]["ts"].as_u64().expect("row.ts"),
    )
}

async fn postgresql(read: ReadMode, poll_interval: Duration) -> (Phase, Phase) {
    require_service("127.0.0.1:5432", "PostgreSQL").await;
    let id = unique();
    let (client, conn) = tokio_postgres::connect(PG_DSN, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    let table = format!("bench_pg_{id}");
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, ts bigint NOT NULL)"
        ))
        .await
        .expect("create table");
    let slot = format!("bench_{id}");
    let mut c = ConsumerConfig::new("pgbench", ConsumerType::PostgresqlCdc);
    c.mode = Mode::Route;
    c.route = route("cdcbench");
    c.postgresql_cdc = Some(PostgresCdcSettings {
        dsn: PG_DSN.into(),
        slot: slot.clone(),
        publication: slot.clone(),
        create_slot: true,
        tables: vec![table.clone()],
        read,
        poll_interval,
        ..Default::default()
    });
    let label = match read {
        ReadMode::Stream => "postgresql_cdc (stream)".to_owned(),
        ReadMode::Peek => format!("postgresql_cdc (peek, poll_interval {poll_interval:?})"),
    };
    let (cleanup, conn) = tokio_postgres::connect(PG_DSN, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let figures = bench(
        &label,
        c,
        "cdcbench",
        Pg {
            client,
            table: table.clone(),
        },
        row,
    )
    .await;
    let _ = cleanup
        .batch_execute(&format!(
            "SELECT pg_drop_replication_slot('{slot}'); DROP PUBLICATION IF EXISTS {slot}; DROP TABLE {table}"
        ))
        .await;
    figures
}

struct My {
    conn: mysql_async::Conn,
    table: String,
}

impl Producer for My {
    async fn write(&mut self, ids: std::ops::Range<u64>) {
        let ts = now_us();
        let values: Vec<String> = ids.map(|i| format!("({i}, {ts})")).collect();
        self.conn
            .query_drop(format!(
                "BEGIN; INSERT INTO {} (id, ts) VALUES {} ON DUPLICATE KEY UPDATE ts = VALUES(ts); COMMIT",
                self.table,
                values.join(",")
            ))
            .await
            .expect("insert");
    }
}

async fn mariadb() -> (Phase, Phase) {
    require_service("127.0.0.1:3306", "MariaDB").await;
    let id = unique();
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(MY_URL).expect("url"))
        .await
        .expect("connect to MariaDB");
    let table = format!("bench_my_{id}");
    conn.query_drop(format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, ts bigint NOT NULL) ENGINE=InnoDB"
    ))
    .await
    .expect("create table");
    let dir = std::env::temp_dir().join(format!("pushwire-cdcbench-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut c = ConsumerConfig::new("mybench", ConsumerType::MysqlCdc);
    c.mode = Mode::Route;
    c.route = route("cdcbench");
    c.mysql_cdc = Some(MysqlCdcSettings {
        url: MY_URL.into(),
        server_id: 63_000 + (std::process::id() % 2000),
        position_file: dir.join("position").display().to_string(),
        tables: vec![format!("test.{table}")],
        ..Default::default()
    });
    let figures = bench(
        "mysql_cdc (MariaDB, GTID position)",
        c,
        "cdcbench",
        My {
            conn,
            table: table.clone(),
        },
        row,
    )
    .await;
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(MY_URL).expect("url"))
        .await
        .expect("connect");
    let _ = conn.query_drop(format!("DROP TABLE {table}")).await;
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

struct Mqtt {
    client: rumqttc::AsyncClient,
    topic: String,
}

impl Producer for Mqtt {
    async fn write(&mut self, ids: std::ops::Range<u64>) {
        for i in ids {
            let body = json!({"id": i, "ts": now_us()}).to_string();
            self.client
                .publish(&self.topic, rumqttc::QoS::AtLeastOnce, false, body)
                .await
                .expect("publish");
        }
    }
}

async fn mqtt(version: ProtocolVersion) -> (Phase, Phase) {
    require_service("127.0.0.1:1883", "Mosquitto").await;
    let id = unique();
    let topic = format!("bench/{id}/t");
    let mut c = ConsumerConfig::new("mqttbench", ConsumerType::Mqtt);
    c.mode = Mode::Route;
    c.route = route("cdcbench");
    c.mqtt = Some(MqttSettings {
        url: "mqtt://127.0.0.1:1883".into(),
        protocol_version: version,
        client_id: format!("bench-node-{id}"),
        topics: vec![topic.clone()],
        clean_session: true,
        ..Default::default()
    });
    let mut o = rumqttc::MqttOptions::new(format!("bench-dev-{id}"), "127.0.0.1", 1883);
    o.set_keep_alive(Duration::from_secs(10)).set_inflight(100);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 1000);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let label = match version {
        ProtocolVersion::V311 => "mqtt 3.1.1 (QoS 1)",
        ProtocolVersion::V5 => "mqtt 5 (QoS 1)",
    };
    bench(label, c, "cdcbench", Mqtt { client, topic }, |d| {
        (d["id"].as_u64().expect("id"), d["ts"].as_u64().expect("ts"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: scripts/bench-cdc.sh (release mode)"]
async fn cdc_commit_to_subscriber() {
    let only = std::env::var("PUSHWIRE_CDC_BENCH_ONLY").unwrap_or_default();
    let sources = [
        "postgresql_cdc, read = stream (default)",
        "postgresql_cdc, read = peek, poll_interval 100ms",
        "postgresql_cdc, read = peek, poll_interval 10ms",
        "mysql_cdc (MariaDB, GTID)",
        "mqtt 3.1.1",
        "mqtt 5",
    ];
    let mut lines = Vec::new();
    for (i, name) in sources.into_iter().enumerate() {
        if !name.contains(only.as_str()) {
            continue;
        }
        let (t, s) = match i {
            0 => postgresql(ReadMode::Stream, Duration::from_millis(100)).await,
            1 => postgresql(ReadMode::Peek, Duration::from_millis(100)).await,
            2 => postgresql(ReadMode::Peek, Duration::from_millis(10)).await,
            3 => mariadb().await,
            4 => mqtt(ProtocolVersion::V311).await,
            _ => mqtt(ProtocolVersion::V5).await,
        };
        lines.push(format!(
            "| {name} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} / {:.0} |",
            t.changes as f64 / t.elapsed.as_secs_f64(),
            t.percentile(0.5),
            t.percentile(0.99),
            s.percentile(0.5),
            s.percentile(0.99),
            t.cpu_per_change_us(),
            s.cpu_per_change_us(),
        ));
    }
    let rate = env("PUSHWIRE_CDC_BENCH_RATE", 500);
    println!("CDC TABLE | source | changes/s (throughput) | p50 / p99 ms under that load | p50 / p99 ms at {rate}/s | process CPU us/change (throughput / steady) |");
    for l in lines {
        println!("CDC TABLE {l}");
    }
}
