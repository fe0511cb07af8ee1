//! The PostgreSQL CDC read loop.
//!
//! Changes are read from the slot with `pg_logical_slot_peek_binary_changes` (the `pgoutput`
//! plugin, whole transactions per read) over an ordinary connection, so no replication
//! protocol client is needed; the slot is confirmed with `pg_replication_slot_advance` to the
//! end of the last transaction whose every change is in channel history (or dead-lettered).
//! A node killed before that re-reads those changes: their idempotency keys
//! (`pgcdc:<slot>:<commit LSN>:<n-th change>`) suppress what was already published.

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::change::{Change, Op};
use super::pgoutput::{decode, Lsn, PgOutput, Relation};
use super::settings::{qualified, PostgresCdcSettings};
use crate::backoff::Backoff;
use crate::error::ConsumerError;
use crate::message::Message;
use crate::metrics::ConsumerMetrics;
use crate::postgresql_outbox::{connect, PostgresOutboxSettings};
use crate::processor::{Outcome, Processor};

/// Timeout of connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the slot until `shutdown`, reconnecting with backoff on errors (each logged once
/// per attempt with its cause: wal_level not logical, slot or publication missing, no
/// replication permission, connection refused…). Never panics.
pub async fn run(
    name: String,
    settings: PostgresCdcSettings,
    processor: Processor,
    shutdown: CancellationToken,
) {
    let mut backoff = processor.backoff();
    while !shutdown.is_cancelled() {
        let result = session(&name, &settings, &processor, &shutdown, &mut backoff).await;
        if shutdown.is_cancelled() {
            break;
        }
        let delay = backoff.next_delay();
        if let Err(e) = result {
            tracing::warn!(consumer = %name, error = %e, ?delay, "postgresql cdc unavailable; retrying");
            processor.metrics().set_source_down(Some(e.to_string()));
        }
        processor.metrics().set_lag(-1);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!(consumer = %name, "postgresql cdc consumer stopped");
}

fn pg(what: &'static str) -> impl Fn(tokio_postgres::Error) -> ConsumerError {
    move |e| ConsumerError::Broker(format!("{what}: {e}"))
}

/// The transaction being read.
struct Txn {
    final_lsn: Lsn,
    commit_time: i64,
    changes: u32,
}

async fn session(
    name: &str,
    s: &PostgresCdcSettings,
    processor: &Processor,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), ConsumerError> {
    let conn = connect::connect(
        &PostgresOutboxSettings {
            dsn: s.dsn.clone(),
            tls_ca_pem_file: s.tls_ca_pem_file.clone(),
            ..Default::default()
        },
        CONNECT_TIMEOUT,
    )
    .await?;
    let client = &conn.client;
    let result = async {
        prepare(name, client, s).await?;
        backoff.reset();
        processor.metrics().set_source_down(None);
        tracing::info!(consumer = %name, slot = %s.slot, publication = %s.publication, "postgresql cdc consumer connected");
        read(s, client, processor, shutdown).await
    }
    .await;
    conn.driver.abort();
    result
}

/// Checks wal_level, the publication and the slot; creates them when allowed.
async fn prepare(
    name: &str,
    client: &Client,
    s: &PostgresCdcSettings,
) -> Result<(), ConsumerError> {
    let key = |field: &str| format!("consumers[name={name}].postgresql_cdc.{field}");
    let level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(pg("show wal_level"))?
        .get(0);
    if level != "logical" {
        return Err(ConsumerError::config(
            key("dsn"),
            format!("the server's wal_level is {level}, not logical: set wal_level = logical and restart PostgreSQL"),
        ));
    }
    let publication = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&s.publication],
        )
        .await
        .map_err(pg("read pg_publication"))?;
    if publication.is_none() {
        if !s.create_slot || s.tables.is_empty() {
            return Err(ConsumerError::config(
                key("publication"),
                format!(
                    "publication {:?} does not exist (create it, or set tables with create_slot)",
                    s.publication
                ),
            ));
        }
        let tables: Vec<String> = s.tables.iter().map(|t| qualified(t)).collect();
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR TABLE {}",
                s.publication,
                tables.join(", ")
            ))
            .await
            .map_err(|e| {
                ConsumerError::config(
                    key("publication"),
                    format!("cannot create publication: {e}"),
                )
            })?;
        tracing::info!(consumer = %name, publication = %s.publication, "publication created");
    }
    let slot = client
        .query_opt(
            "SELECT plugin::text, database::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&s.slot],
        )
        .await
        .map_err(pg("read pg_replication_slots"))?;
    match slot {
        Some(row) => {
            let plugin: Option<String> = row.get(0);
            if plugin.as_deref() != Some("pgoutput") {
                return Err(ConsumerError::config(
                    key("slot"),
                    format!("slot {:?} uses plugin {plugin:?}, not pgoutput", s.slot),
                ));
            }
        }
        None if s.create_slot => {
            client
                .query_one(
                    "SELECT pg_create_logical_replication_slot($1, 'pgoutput')::text",
                    &[&s.slot],
                )
                .await
                .map_err(|e| ConsumerError::config(key("slot"), format!("cannot create slot (the role needs REPLICATION): {e}")))?;
            tracing::info!(consumer = %name, slot = %s.slot, "replication slot created");
        }
        None => {
            return Err(ConsumerError::config(
                key("slot"),
                format!("replication slot {:?} does not exist (create it with pgoutput, or set create_slot)", s.slot),
            ))
        }
    }
    Ok(())
}

/// Reads and applies transactions until `shutdown` or an error.
async fn read(
    s: &PostgresCdcSettings,
    client: &Client,
    processor: &Processor,
    shutdown: &CancellationToken,
) -> Result<(), ConsumerError> {
    let peek = client
        .prepare(
            "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
             'proto_version', '1', 'publication_names', $3)",
        )
        .await
        .map_err(pg("prepare peek"))?;
    let advance = client
        .prepare("SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)::text")
        .await
        .map_err(pg("prepare advance"))?;
    let lag = client
        .prepare(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint \
             FROM pg_replication_slots WHERE slot_name = $1",
        )
        .await
        .map_err(pg("prepare lag"))?;
    let batch = i32::try_from(s.batch_size).unwrap_or(i32::MAX);
    let mut relations: HashMap<u32, Relation> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = processor.ready() => {}
        }
        // A fresh decoding session sends relation descriptions again before their first use.
        relations.clear();
        let rows = client
            .query(&peek, &[&s.slot, &batch, &s.publication])
            .await
            .map_err(pg("read slot"))?;
        if let Ok(row) = client.query_one(&lag, &[&s.slot]).await {
            processor
                .metrics()
                .set_lag(row.get::<_, Option<i64>>(0).unwrap_or(-1));
        }
        if rows.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(s.poll_interval) => {}
            }
            continue;
        }
        let mut txn: Option<Txn> = None;
        let mut confirm: Option<Lsn> = None;
        for row in rows {
            let lsn: String = row.get(0);
            let lsn: Lsn = lsn.parse().map_err(ConsumerError::Broker)?;
            let data: &[u8] = row.get(1);
            let message = decode(data).map_err(|e| ConsumerError::Broker(e.to_string()))?;
            let (op, rel, new, old) = match message {
                PgOutput::Begin {
                    final_lsn,
                    commit_time,
                    ..
                } => {
                    txn = Some(Txn {
                        final_lsn,
                        commit_time,
                        changes: 0,
                    });
                    continue;
                }
                PgOutput::Commit { end_lsn, .. } => {
                    txn = None;
                    confirm = Some(end_lsn);
                    continue;
                }
                PgOutput::Relation(r) => {
                    relations.insert(r.id, r);
                    continue;
                }
                PgOutput::Insert { rel, new } => (Op::Insert, rel, new, None),
                PgOutput::Update { rel, old, new } => (Op::Update, rel, new, old),
                PgOutput::Delete { rel, old } => (Op::Delete, rel, old, None),
                PgOutput::Truncate { rels } => {
                    tracing::info!(relations = ?rels, "postgresql cdc: TRUNCATE is not routed");
                    continue;
                }
                PgOutput::Other(_) => continue,
            };
            let t = txn
                .as_mut()
                .ok_or_else(|| ConsumerError::Broker("change outside a transaction".into()))?;
            t.changes += 1;
            let relation = relations.get(&rel).ok_or_else(|| {
                ConsumerError::Broker(format!("change of relation {rel} before its description"))
            })?;
            let table = format!("{}.{}", relation.schema, relation.table);
            if !s.routes(&table) {
                continue;
            }
            let change = Change {
                op,
                relation,
                row: &new,
                old: old.as_ref(),
                lsn,
                commit_time: t.commit_time,
            };
            let msg = Message {
                id: format!("pgcdc:{}:{}:{}", s.slot, t.final_lsn, t.changes),
                subject: table.clone(),
                headers: vec![
                    ("op".into(), op.as_str().into()),
                    ("schema".into(), relation.schema.clone()),
                    ("table".into(), relation.table.clone()),
                ],
                body: change
                    .event(s.filter(&table))
                    .to_string()
                    .into_bytes()
                    .into(),
            };
            if !apply(processor, &msg, shutdown).await {
                return Ok(());
            }
        }
        if let Some(lsn) = confirm {
            client
                .query_one(&advance, &[&s.slot, &lsn.to_string()])
                .await
                .map_err(pg("confirm slot position"))?;
        }
    }
}

/// Applies one change until it is done or dead-lettered (retrying transient failures with
/// backoff); false when shut down first.
async fn apply(processor: &Processor, msg: &Message, shutdown: &CancellationToken) -> bool {
    let mut retry = processor.backoff();
    loop {
        match processor.process(msg).await {
            Outcome::Done => return true,
            Outcome::Poison(why) => {
                ConsumerMetrics::inc(&processor.metrics().dead_lettered);
                tracing::warn!(consumer = %processor.name(), id = %msg.id, reason = %why, "change dead-lettered (logged and skipped)");
                return true;
            }
            Outcome::Retry(_) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(retry.next_delay()) => {}
                }
            }
        }
    }
}
