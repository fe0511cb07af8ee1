//! The binlog read loop.
//!
//! Registers as a replica and streams the binlog from the kept position. Row events between a
//! transaction's start (MariaDB GTID event, or BEGIN) and its XID (or COMMIT) become change
//! events, published one at a time with the idempotency key `mycdc:gtid:<domain-server-seq>:<n-th
//! change>` (GTID mode) or `mycdc:<file>:<offset of the transaction's BEGIN>:<n-th change>`
//! (file mode); after the XID, once every change is in history, the position past it (the GTID
//! state with this transaction, or the file offset) is written to `position_file`. A node
//! killed before that starts again at the transaction's start, and the keys suppress what was
//! already published.

use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt;
use mysql_async::binlog::events::EventData;
use mysql_async::binlog::row::BinlogRow;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use serde_json::{json, Map, Value as Json};
use tokio_util::sync::CancellationToken;

use super::gtid::{Gtid, GtidState, MARIADB_GTID_EVENT};
use super::value::json;
use super::{MysqlCdcSettings, PositionMode};
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
            processor.metrics().set_source_down(Some(e.to_string()));
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

/// A kept binlog position.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// File name and offset (one server only).
    File { file: String, offset: u64 },
    /// MariaDB GTID state: the last transaction done per replication domain.
    Gtid(GtidState),
}

/// The transaction (event group) being read.
struct Txn {
    /// Offset of its first event (file-mode key).
    begin: u64,
    /// Its GTID (GTID mode).
    gtid: Option<Gtid>,
    /// A standalone statement (DDL): the group ends after its query event.
    standalone: bool,
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
    let version: String = conn
        .query_first("SELECT @@version")
        .await
        .map_err(my("read version"))?
        .unwrap_or_default();
    let mariadb = version.contains("MariaDB");
    let gtid_mode = match (s.position, mariadb) {
        (PositionMode::Gtid, false) => {
            return Err(ConsumerError::config(
                key("position"),
                format!("GTID positions are MariaDB GTIDs; this server is MySQL {version}: use position = \"file\" (or \"auto\")"),
            ))
        }
        (PositionMode::Gtid, true) | (PositionMode::Auto, true) => true,
        _ => false,
    };
    let mut position = start_position(&mut conn, s, gtid_mode, &key).await?;
    let request = match &position {
        Position::Gtid(state) => {
            // A GTID-aware replica (capability 4: GTID events instead of fake BEGINs) that
            // resumes right after the transactions of `state`; file and offset are ignored.
            for q in [
                "SET @mariadb_slave_capability = 4".to_owned(),
                format!("SET @slave_connect_state = '{state}'"),
                "SET @slave_gtid_strict_mode = 0".to_owned(),
                "SET @slave_gtid_ignore_duplicates = 0".to_owned(),
            ] {
                conn.query_drop(q)
                    .await
                    .map_err(my("start GTID replication"))?;
            }
            BinlogStreamRequest::new(s.server_id)
                .with_filename(&b""[..])
                .with_pos(4u64)
        }
        Position::File { file, offset } => BinlogStreamRequest::new(s.server_id)
            .with_filename(file.as_bytes())
            .with_pos(*offset),
    };
    let start = match &position {
        Position::Gtid(state) => format!("gtid {state}"),
        Position::File { file, offset } => format!("{file} {offset}"),
    };
    let mut stream = conn.get_binlog_stream(request).await.map_err(|e| {
        ConsumerError::config(
            key("url"),
            format!("binlog dump (needs REPLICATION SLAVE): {e}"),
        )
    })?;
    backoff.reset();
    processor.metrics().set_source_down(None);
    tracing::info!(consumer = %name, position = %start, "mysql cdc consumer connected");
    let mut file = match &position {
        Position::File { file, .. } => file.clone(),
        Position::Gtid(_) => String::new(),
    };
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
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            let (gtid, standalone) = Gtid::from_event(event.data(), header.server_id())
                .ok_or_else(|| ConsumerError::Broker("short GTID event".into()))?;
            txn = Some(Txn {
                begin: end.saturating_sub(u64::from(header.event_size())),
                gtid: Some(gtid),
                standalone,
                changes: 0,
            });
            continue;
        }
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
                    if txn.is_none() {
                        txn = Some(Txn {
                            begin: end.saturating_sub(u64::from(header.event_size())),
                            gtid: None,
                            standalone: false,
                            changes: 0,
                        });
                    }
                } else if query.eq_ignore_ascii_case("COMMIT")
                    || txn.as_ref().is_some_and(|t| t.standalone)
                {
                    let done = txn.take();
                    commit(s, &key, &mut position, done.as_ref(), &file, end).await?;
                }
            }
            Some(EventData::XidEvent(_)) => {
                let done = txn.take();
                commit(s, &key, &mut position, done.as_ref(), &file, end).await?;
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
                    gtid: None,
                    standalone: false,
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
                        id: match &t.gtid {
                            Some(g) => format!("mycdc:gtid:{g}:{}", t.changes),
                            None => format!("mycdc:{file}:{}:{}", t.begin, t.changes),
                        },
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

/// Keeps the position past a committed transaction `done` (all its changes are done): the
/// GTID state with its GTID, or the file offset `end`.
async fn commit(
    s: &MysqlCdcSettings,
    key: &(dyn Fn(&str) -> String + Sync),
    position: &mut Position,
    done: Option<&Txn>,
    file: &str,
    end: u64,
) -> Result<(), ConsumerError> {
    match position {
        Position::Gtid(state) => match done.and_then(|t| t.gtid) {
            Some(g) => state.apply(g),
            None => return Ok(()),
        },
        Position::File { file: f, offset } => {
            file.clone_into(f);
            *offset = end;
        }
    }
    write_position(&s.position_file, position)
        .await
        .map_err(|e| ConsumerError::config(key("position_file"), e))
}

/// Where to start: the kept position, converted to the mode (a `<file> <offset>` file becomes
/// the GTID state at that offset, `BINLOG_GTID_POS`), or the server's current position (then
/// kept).
async fn start_position(
    conn: &mut Conn,
    s: &MysqlCdcSettings,
    gtid_mode: bool,
    key: &(dyn Fn(&str) -> String + Sync),
) -> Result<Position, ConsumerError> {
    let kept = read_position(&s.position_file).await?;
    let position = match (kept, gtid_mode) {
        (Some(Position::Gtid(state)), true) => return Ok(Position::Gtid(state)),
        (Some(p @ Position::File { .. }), false) => return Ok(p),
        (Some(Position::Gtid(state)), false) => {
            return Err(ConsumerError::config(
                key("position_file"),
                format!("{} holds a GTID position (gtid {state}); this server or position = \"file\" needs `<file> <offset>`", s.position_file),
            ))
        }
        (Some(Position::File { file, offset }), true) => {
            let list: Option<Option<String>> = conn
                .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.clone(), offset))
                .await
                .map_err(my("BINLOG_GTID_POS"))?;
            let list = list.flatten().ok_or_else(|| {
                ConsumerError::config(
                    key("position_file"),
                    format!("{} holds {file} {offset}, which the server cannot map to a GTID position (BINLOG_GTID_POS is NULL: file purged, or not at an event group boundary)", s.position_file),
                )
            })?;
            let state = GtidState::parse(&list).map_err(ConsumerError::Broker)?;
            tracing::info!(position_file = %s.position_file, %file, offset, gtid = %state, "mysql cdc position converted to GTIDs");
            Position::Gtid(state)
        }
        (None, true) => {
            let list: Option<String> = conn
                .query_first("SELECT @@gtid_binlog_pos")
                .await
                .map_err(my("read gtid_binlog_pos"))?;
            Position::Gtid(
                GtidState::parse(&list.unwrap_or_default()).map_err(ConsumerError::Broker)?,
            )
        }
        (None, false) => {
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
            Position::File {
                file: row.get(0).unwrap_or_default(),
                offset: row.get(1).unwrap_or(4),
            }
        }
    };
    write_position(&s.position_file, &position)
        .await
        .map_err(|e| ConsumerError::config(key("position_file"), e))?;
    Ok(position)
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
        Ok(text) => parse_position(&text)
            .map(Some)
            .map_err(|e| ConsumerError::Broker(format!("{path}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConsumerError::Broker(format!("{path}: {e}"))),
    }
}

/// `gtid <domain-server-seq,…>` or `<file> <offset>`.
fn parse_position(text: &str) -> Result<Position, String> {
    let text = text.trim();
    if let Some(list) = text.strip_prefix("gtid")
        && (list.is_empty() || list.starts_with(' '))
    {
        return GtidState::parse(list.trim()).map(Position::Gtid);
    }
    let (file, offset) = text
        .rsplit_once(' ')
        .ok_or("not `<file> <offset>` nor `gtid <list>`")?;
    let offset = offset.parse().map_err(|_| "bad offset")?;
    Ok(Position::File {
        file: file.to_owned(),
        offset,
    })
}

fn format_position(p: &Position) -> String {
    match p {
        Position::File { file, offset } => format!("{file} {offset}\n"),
        Position::Gtid(state) => format!("gtid {state}\n"),
    }
}

async fn write_position(path: &str, p: &Position) -> Result<(), String> {
    let tmp = format!("{path}.tmp");
    tokio::fs::write(&tmp, format_position(p))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_files_round_trip_in_both_modes() {
        for text in [
            "gtid 0-1-100,1-2-7\n",
            "gtid \n",
            "mariadb-bin.000003 1234\n",
        ] {
            let p = parse_position(text).expect(text);
            assert_eq!(format_position(&p), text);
        }
        assert_eq!(
            parse_position("gtid 0-1-5").expect("gtid"),
            Position::Gtid(GtidState::parse("0-1-5").expect("list"))
        );
        assert!(parse_position("mariadb-bin.000003").is_err());
        assert!(parse_position("gtid 0-1").is_err());
        // A binlog file whose name starts with "gtid" is still a file position.
        assert!(matches!(
            parse_position("gtidlog.000001 4").expect("file"),
            Position::File { .. }
        ));
    }
}
