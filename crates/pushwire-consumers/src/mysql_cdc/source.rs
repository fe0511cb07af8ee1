//! The binlog read loop.
//!
//! Registers as a replica and streams the binlog from the kept position. Row events between a
//! transaction's BEGIN and its XID (or COMMIT) become change events, published one at a time
//! with the idempotency key `mycdc:<file>:<offset of the transaction's BEGIN>:<n-th change>`;
//! after the XID, once every change is in history, the position past it is written to
//! `position_file`. A node killed before that starts again at the transaction's BEGIN, and the
//! keys suppress what was already published.

use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt;
use mysql_async::binlog::events::EventData;
use mysql_async::binlog::row::BinlogRow;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use serde_json::{json, Map, Value as Json};
use tokio_util::sync::CancellationToken;

use super::value::json;
use super::MysqlCdcSettings;
use crate::backoff::Backoff;
use crate::error::ConsumerError;
use crate::message::Message;
use crate::metrics::ConsumerMetrics;
use crate::postgresql_cdc::ColumnFilter;
use crate::processor::{Outcome, Processor};

/// Timeout of connecting and of the start-up queries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the binlog until `shutdown`, reconnecting with backoff on errors (logged with the key
/// at fault: binlog off or not ROW, no replication privilege, server down…). Never panics.
pub async fn run(
    name: String,
    settings: MysqlCdcSettings,
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
            tracing::warn!(consumer = %name, error = %e, ?delay, "mysql cdc unavailable; retrying");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!(consumer = %name, "mysql cdc consumer stopped");
}

fn my(what: &'static str) -> impl Fn(mysql_async::Error) -> ConsumerError {
    move |e| ConsumerError::Broker(format!("{what}: {e}"))
}

/// A binlog position.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    file: String,
    offset: u64,
}

/// The transaction being read.
struct Txn {
    begin: u64,
    changes: u32,
}

async fn session(
    name: &str,
    s: &MysqlCdcSettings,
    processor: &Processor,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), ConsumerError> {
    let key = |field: &str| format!("consumers[name={name}].mysql_cdc.{field}");
    let opts =
        Opts::from_url(&s.url).map_err(|e| ConsumerError::config(key("url"), e.to_string()))?;
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts))
        .await
        .map_err(|_| ConsumerError::Connection("connect: timed out".into()))?
        .map_err(|e| ConsumerError::Connection(e.to_string()))?;
    let (log_bin, format): (String, String) = conn
        .query_first("SELECT CAST(@@log_bin AS CHAR), @@binlog_format")
        .await
        .map_err(my("read binlog settings"))?
        .unwrap_or_default();
    let on = log_bin == "1" || log_bin.eq_ignore_ascii_case("ON");
    if !on || !format.eq_ignore_ascii_case("ROW") {
        return Err(ConsumerError::config(
            key("url"),
            format!("the server's binary log is not row-based (log_bin = {log_bin}, binlog_format = {format}): set log_bin and binlog_format = ROW"),
        ));
    }
    let checksum: Option<String> = conn
        .query_first("SELECT @@binlog_checksum")
        .await
        .map_err(my("read binlog_checksum"))?;
    let checksums = checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
    let position = match read_position(&s.position_file).await? {
        Some(p) => p,
        None => {
            let row: Option<mysql_async::Row> =
                conn.query_first("SHOW MASTER STATUS").await.map_err(|e| {
                    ConsumerError::config(
                        key("url"),
                        format!("SHOW MASTER STATUS (needs REPLICATION CLIENT): {e}"),
                    )
                })?;
            let row = row.ok_or_else(|| {
                ConsumerError::config(
                    key("url"),
                    "SHOW MASTER STATUS is empty: the binary log is off",
                )
            })?;
            let file: String = row.get(0).unwrap_or_default();
            let offset: u64 = row.get(1).unwrap_or(4);
            let p = Position { file, offset };
            write_position(&s.position_file, &p)
                .await
                .map_err(|e| ConsumerError::config(key("position_file"), e))?;
            p
        }
    };
    let request = BinlogStreamRequest::new(s.server_id)
        .with_filename(position.file.as_bytes())
        .with_pos(position.offset);
    let mut stream = conn.get_binlog_stream(request).await.map_err(|e| {
        ConsumerError::config(
            key("url"),
            format!("binlog dump (needs REPLICATION SLAVE): {e}"),
        )
    })?;
    backoff.reset();
    tracing::info!(consumer = %name, file = %position.file, offset = position.offset, "mysql cdc consumer connected");
    let mut file = position.file.clone();
    let mut txn: Option<Txn> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            e = stream.next() => e,
        };
        let Some(event) = event else {
            return Err(ConsumerError::Connection("binlog stream ended".into()));
        };
        let event = event.map_err(my("binlog stream"))?;
        let header = event.header();
        let end = u64::from(header.log_pos());
        let data = event
            .read_data()
            .map_err(|e| ConsumerError::Broker(format!("binlog event: {e}")))?;
        match data {
            Some(EventData::RotateEvent(r)) => {
                // The name runs to the end of the event, so with binlog checksums on it ends
                // with the event's 4 checksum bytes: drop them.
                let raw = r.name_raw();
                let whole = raw.len() + 19 + 8 == header.event_size() as usize;
                let name = if checksums && whole && raw.len() > 4 {
                    &raw[..raw.len() - 4]
                } else {
                    raw
                };
                file = String::from_utf8_lossy(name).into_owned();
            }
            Some(EventData::QueryEvent(q)) => {
                let query = q.query();
                if query.eq_ignore_ascii_case("BEGIN") {
                    txn = Some(Txn {
                        begin: end.saturating_sub(u64::from(header.event_size())),
                        changes: 0,
                    });
                } else if query.eq_ignore_ascii_case("COMMIT") {
                    txn = None;
                    commit(s, &key, &file, end).await?;
                }
            }
            Some(EventData::XidEvent(_)) => {
                txn = None;
                commit(s, &key, &file, end).await?;
            }
            Some(EventData::RowsEvent(rows)) => {
                let Some(tme) = stream.get_tme(rows.table_id()) else {
                    return Err(ConsumerError::Broker(
                        "rows event before its table map".into(),
                    ));
                };
                let db = tme.database_name().into_owned();
                let table = tme.table_name().into_owned();
                let db_table = format!("{db}.{table}");
                if !s.routes(&db_table) {
                    continue;
                }
                let t = txn.get_or_insert(Txn {
                    begin: end.saturating_sub(u64::from(header.event_size())),
                    changes: 0,
                });
                let filter = s.columns.get(&db_table);
                let commit_time = humantime::format_rfc3339_seconds(
                    UNIX_EPOCH + Duration::from_secs(u64::from(header.timestamp())),
                )
                .to_string();
                for row in rows.rows(tme) {
                    let (before, after) =
                        row.map_err(|e| ConsumerError::Broker(format!("rows event: {e}")))?;
                    let (op, row, old) = match (before, after) {
                        (None, Some(a)) => ("insert", a, None),
                        (Some(b), Some(a)) => ("update", a, Some(b)),
                        (Some(b), None) => ("delete", b, None),
                        (None, None) => continue,
                    };
                    t.changes += 1;
                    let event = json!({
                        "op": op,
                        "schema": db,
                        "table": table,
                        "row": object(&row, filter),
                        "old": old.as_ref().map(|o| object(o, filter)),
                        "lsn": format!("{file}:{end}"),
                        "commit_time": commit_time,
                    });
                    let msg = Message {
                        id: format!("mycdc:{file}:{}:{}", t.begin, t.changes),
                        subject: db_table.clone(),
                        headers: vec![
                            ("op".into(), op.into()),
                            ("schema".into(), db.clone()),
                            ("table".into(), table.clone()),
                        ],
                        body: event.to_string().into_bytes().into(),
                    };
                    if !apply(processor, &msg, shutdown).await {
                        return Ok(());
                    }
                }
            }
            _ => {}
        }
    }
}

/// Keeps the position past a committed transaction (all its changes are done).
async fn commit(
    s: &MysqlCdcSettings,
    key: &(dyn Fn(&str) -> String + Sync),
    file: &str,
    end: u64,
) -> Result<(), ConsumerError> {
    let p = Position {
        file: file.to_owned(),
        offset: end,
    };
    write_position(&s.position_file, &p)
        .await
        .map_err(|e| ConsumerError::config(key("position_file"), e))
}

/// The row's columns by name (names come from `binlog_row_metadata = FULL`; without them
/// `col_<n>`), filtered.
fn object(row: &BinlogRow, filter: Option<&ColumnFilter>) -> Json {
    let mut m = Map::new();
    for (i, col) in row.columns_ref().iter().enumerate() {
        let name = col.name_str();
        let name = if name.is_empty() {
            format!("col_{i}")
        } else {
            name.into_owned()
        };
        if filter.is_some_and(|f| !f.keeps(&name)) {
            continue;
        }
        if let Some(v) = row.as_ref(i) {
            m.insert(name, json(v));
        }
    }
    Json::Object(m)
}

async fn read_position(path: &str) -> Result<Option<Position>, ConsumerError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => {
            let (file, offset) = text
                .trim()
                .rsplit_once(' ')
                .ok_or_else(|| ConsumerError::Broker(format!("{path}: not `<file> <offset>`")))?;
            let offset = offset
                .parse()
                .map_err(|_| ConsumerError::Broker(format!("{path}: bad offset")))?;
            Ok(Some(Position {
                file: file.to_owned(),
                offset,
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConsumerError::Broker(format!("{path}: {e}"))),
    }
}

async fn write_position(path: &str, p: &Position) -> Result<(), String> {
    let tmp = format!("{path}.tmp");
    tokio::fs::write(&tmp, format!("{} {}\n", p.file, p.offset))
        .await
        .map_err(|e| format!("{tmp}: {e}"))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| format!("{path}: {e}"))
}

/// Applies one change until done or dead-lettered (transient failures retried with backoff);
/// false when shut down first.
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
