//! The PostgreSQL outbox poll loop.

use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::PostgresOutboxSettings;
use crate::backoff::Backoff;
use crate::config::Mode;
use crate::error::ConsumerError;
use crate::message::Message;
use crate::metrics::ConsumerMetrics;
use crate::processor::{Outcome, Processor};

/// Timeout of connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the outbox size is counted for the `lag` gauge.
const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// Polls the outbox until `shutdown`. Per partition, under a transaction-scoped advisory lock
/// (one node per partition at a time, so `id` order holds across nodes), takes up to
/// `batch_size` rows in `id` order with `FOR UPDATE SKIP LOCKED`, processes them, moves poison
/// rows to the dead-letter table and deletes the processed rows in the same transaction. A
/// `Retry` retries the row in place with backoff. Woken by `LISTEN` notifications, with
/// `poll_interval` as the fallback. Reconnects with backoff on errors; never panics.
pub async fn run(
    name: String,
    settings: PostgresOutboxSettings,
    processor: Processor,
    shutdown: CancellationToken,
) {
    let mut backoff = processor.backoff();
    let sql = Sql::new(&settings);
    while !shutdown.is_cancelled() {
        let result = session(&settings, &sql, &processor, &shutdown, &mut backoff).await;
        if shutdown.is_cancelled() {
            break;
        }
        let delay = backoff.next_delay();
        if let Err(e) = result {
            tracing::warn!(consumer = %name, error = %e, ?delay, "postgresql outbox unavailable; reconnecting");
            processor.metrics().set_source_down(Some(e.to_string()));
        }
        processor.metrics().set_lag(-1);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!(consumer = %name, "postgresql outbox consumer stopped");
}

fn pg(what: &'static str) -> impl Fn(tokio_postgres::Error) -> ConsumerError {
    move |e| ConsumerError::Broker(format!("{what}: {e}"))
}

/// The statements, built once from validated identifiers.
struct Sql {
    create: String,
    lock: &'static str,
    select: String,
    dead_letter: String,
    delete: String,
    count: String,
    listen: String,
    table: String,
}

impl Sql {
    fn new(s: &PostgresOutboxSettings) -> Sql {
        let t = &s.table;
        let dl = s.dead_letter_table();
        let base = t.replace('.', "_");
        let short = t.rsplit('.').next().unwrap_or(t);
        let chan = s.notify_channel();
        Sql {
            create: format!(
                "SELECT pg_advisory_xact_lock(hashtext('pushwire_outbox_ddl'));
                 CREATE TABLE IF NOT EXISTS {t} (
                   id bigserial PRIMARY KEY,
                   method text NOT NULL DEFAULT 'publish',
                   payload jsonb NOT NULL,
                   partition integer NOT NULL DEFAULT 0,
                   created_at timestamptz NOT NULL DEFAULT now());
                 CREATE INDEX IF NOT EXISTS {short}_partition_id_idx ON {t} (partition, id);
                 CREATE TABLE IF NOT EXISTS {dl} (
                   id bigint PRIMARY KEY,
                   method text NOT NULL,
                   payload jsonb NOT NULL,
                   partition integer NOT NULL,
                   created_at timestamptz NOT NULL,
                   error text NOT NULL,
                   failed_at timestamptz NOT NULL DEFAULT now());
                 CREATE OR REPLACE FUNCTION {base}_notify() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN PERFORM pg_notify('{chan}', ''); RETURN NULL; END $$;
                 DROP TRIGGER IF EXISTS {short}_notify ON {t};
                 CREATE TRIGGER {short}_notify AFTER INSERT ON {t}
                   FOR EACH STATEMENT EXECUTE FUNCTION {base}_notify();"
            ),
            lock: "SELECT pg_try_advisory_xact_lock(hashtext($1), $2)",
            select: format!(
                "SELECT id, method, payload::text FROM {t} WHERE partition = $1 \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED"
            ),
            dead_letter: format!(
                "INSERT INTO {dl} (id, method, payload, partition, created_at, error) \
                 SELECT id, method, payload, partition, created_at, $2 FROM {t} WHERE id = $1 \
                 ON CONFLICT (id) DO NOTHING"
            ),
            delete: format!("DELETE FROM {t} WHERE id = ANY($1)"),
            count: format!("SELECT count(*) FROM {t}"),
            listen: format!("LISTEN {chan}"),
            table: t.clone(),
        }
    }
}

/// One connection: set up, then poll until shutdown or an error.
async fn session(
    s: &PostgresOutboxSettings,
    sql: &Sql,
    processor: &Processor,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), ConsumerError> {
    let super::connect::Connected {
        mut client,
        driver,
        wake,
    } = super::connect::connect(s, CONNECT_TIMEOUT).await?;
    let result = poll(&mut client, s, sql, processor, shutdown, backoff, &wake).await;
    driver.abort();
    result
}

async fn poll(
    client: &mut Client,
    s: &PostgresOutboxSettings,
    sql: &Sql,
    processor: &Processor,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
    wake: &Notify,
) -> Result<(), ConsumerError> {
    if s.create_tables {
        let tx = client.transaction().await.map_err(pg("begin"))?;
        tx.batch_execute(&sql.create)
            .await
            .map_err(pg("create tables"))?;
        tx.commit().await.map_err(pg("commit"))?;
    }
    client
        .batch_execute(&sql.listen)
        .await
        .map_err(pg("LISTEN"))?;
    tracing::info!(consumer = %processor.name(), table = %s.table, "postgresql outbox consumer connected");
    backoff.reset();
    processor.metrics().set_source_down(None);
    let mut last_lag = Instant::now() - LAG_INTERVAL;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = processor.ready() => {}
        }
        if last_lag.elapsed() >= LAG_INTERVAL {
            last_lag = Instant::now();
            let n: i64 = client
                .query_one(&sql.count, &[])
                .await
                .map_err(pg("count"))?
                .get(0);
            processor.metrics().set_lag(n);
        }
        let mut more = false;
        for partition in 0..s.num_partitions as i32 {
            match batch(client, s, sql, processor, shutdown, partition).await? {
                Batch::Stopped => return Ok(()),
                Batch::Full => more = true,
                Batch::Partial => {}
            }
        }
        if client.is_closed() {
            return Err(ConsumerError::Connection("connection closed".into()));
        }
        if !more {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = wake.notified() => {}
                _ = tokio::time::sleep(s.poll_interval) => {}
            }
        }
    }
}

/// How a batch ended.
enum Batch {
    /// Took `batch_size` rows: there may be more.
    Full,
    /// Took fewer (or the partition was locked by another node).
    Partial,
    /// Shutdown while retrying a row; what was done is committed.
    Stopped,
}

async fn batch(
    client: &mut Client,
    s: &PostgresOutboxSettings,
    sql: &Sql,
    processor: &Processor,
    shutdown: &CancellationToken,
    partition: i32,
) -> Result<Batch, ConsumerError> {
    let tx = client.transaction().await.map_err(pg("begin"))?;
    let locked: bool = tx
        .query_one(sql.lock, &[&sql.table, &partition])
        .await
        .map_err(pg("advisory lock"))?
        .get(0);
    if !locked {
        return Ok(Batch::Partial);
    }
    let rows = tx
        .query(&sql.select, &[&partition, &i64::from(s.batch_size)])
        .await
        .map_err(pg("select"))?;
    let full = rows.len() >= s.batch_size as usize;
    let mut done: Vec<i64> = Vec::with_capacity(rows.len());
    let mut stopped = false;
    'rows: for row in &rows {
        let id: i64 = row.get(0);
        let method: String = row.get(1);
        let payload: String = row.get(2);
        let msg = message(s, processor.mode(), id, partition, &method, &payload);
        tokio::select! {
            _ = shutdown.cancelled() => { stopped = true; break 'rows; }
            _ = processor.ready() => {}
        }
        let mut retry = processor.backoff();
        loop {
            match processor.process(&msg).await {
                Outcome::Done => break,
                Outcome::Poison(why) => {
                    tx.execute(&sql.dead_letter, &[&id, &why])
                        .await
                        .map_err(pg("dead letter"))?;
                    ConsumerMetrics::inc(&processor.metrics().dead_lettered);
                    break;
                }
                Outcome::Retry(_) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => { stopped = true; break 'rows; }
                        _ = tokio::time::sleep(retry.next_delay()) => {}
                    }
                }
            }
        }
        done.push(id);
    }
    if !done.is_empty() {
        tx.execute(&sql.delete, &[&done])
            .await
            .map_err(pg("delete"))?;
    }
    tx.commit().await.map_err(pg("commit"))?;
    Ok(if stopped {
        Batch::Stopped
    } else if full {
        Batch::Full
    } else {
        Batch::Partial
    })
}

/// The message of a row: id `postgresql_outbox:<table>:<row id>`, subject the `method`
/// column; in `api_command` mode the body is `{"method": method, "payload": payload}`, in
/// `route` mode the payload itself.
fn message(
    s: &PostgresOutboxSettings,
    mode: Mode,
    id: i64,
    partition: i32,
    method: &str,
    payload: &str,
) -> Message {
    let body = match mode {
        Mode::ApiCommand => {
            let method = serde_json::Value::String(method.to_owned());
            format!("{{\"method\":{method},\"payload\":{payload}}}")
        }
        Mode::Route | Mode::Debezium => payload.to_owned(),
    };
    Message {
        id: format!("postgresql_outbox:{}:{id}", s.table),
        subject: method.to_owned(),
        headers: vec![
            ("method".into(), method.to_owned()),
            ("partition".into(), partition.to_string()),
        ],
        body: bytes::Bytes::from(body),
    }
}
