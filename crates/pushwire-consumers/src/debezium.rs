//! `debezium` mode: the body is a Debezium change envelope (`{"op","before","after","source",
//! "ts_ms"}`, alone or under `payload` when the converter includes schemas), turned into the
//! change event of the CDC sources (`{"op","schema","table","row","old","lsn","commit_time"}`,
//! see [`crate::postgresql_cdc::change`]) and then routed like `route` mode, so templates such
//! as `orders:{row.id}` and `tag_field = "op"` work the same for teams that already run
//! Debezium.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::message::Message;

/// What an envelope becomes.
#[derive(Debug, PartialEq)]
pub(crate) enum Converted {
    /// A change event to route.
    Change(Message),
    /// Nothing to route: a tombstone (empty or `null` body after a delete), a truncate or a
    /// schema change message.
    Skip,
}

/// Converts `msg`; the error says why the body is not an envelope (poison).
pub(crate) fn convert(msg: &Message) -> Result<Converted, String> {
    if msg.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Converted::Skip);
    }
    let v: Value =
        serde_json::from_slice(&msg.body).map_err(|e| format!("body is not JSON: {e}"))?;
    if v.is_null() {
        return Ok(Converted::Skip);
    }
    let envelope = match v.get("payload") {
        Some(p) if p.get("op").is_some() => p,
        _ => &v,
    };
    let op = envelope
        .get("op")
        .and_then(Value::as_str)
        .ok_or("not a Debezium envelope: no \"op\"")?;
    let before = envelope.get("before").filter(|b| !b.is_null());
    let after = envelope.get("after").filter(|a| !a.is_null());
    let (op, row, old) = match op {
        "c" | "r" => ("insert", after, None),
        "u" => ("update", after, before),
        "d" => ("delete", before, None),
        "t" | "m" => return Ok(Converted::Skip),
        other => return Err(format!("Debezium op {other:?} is not c, r, u, d, t or m")),
    };
    let row = row.ok_or_else(|| format!("Debezium {op} without its row image"))?;
    let source = envelope.get("source").cloned().unwrap_or(Value::Null);
    let text = |k: &str| source.get(k).and_then(Value::as_str).map(str::to_owned);
    let schema = text("schema").or_else(|| text("db")).unwrap_or_default();
    let table = text("table").ok_or("Debezium envelope without source.table")?;
    let lsn = match (source.get("lsn"), text("file"), source.get("pos")) {
        (Some(l), _, _) if !l.is_null() => l.to_string().trim_matches('"').to_owned(),
        (_, Some(f), Some(p)) => format!("{f}:{p}"),
        _ => String::new(),
    };
    let ts = source
        .get("ts_ms")
        .or_else(|| envelope.get("ts_ms"))
        .and_then(Value::as_u64)
        .map(|ms| {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        });
    let event = json!({
        "op": op,
        "schema": schema,
        "table": table,
        "row": row,
        "old": old,
        "lsn": lsn,
        "commit_time": ts,
    });
    let mut headers = msg.headers.clone();
    headers.push(("op".into(), op.into()));
    Ok(Converted::Change(Message {
        id: msg.id.clone(),
        subject: msg.subject.clone(),
        headers,
        body: event.to_string().into_bytes().into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(
        clippy::needless_pass_by_value,
        reason = "callers pass `json!` literals; a `&` at every call site buys nothing in a test"
    )]
    fn msg(body: Value) -> Message {
        Message {
            id: "k:1".into(),
            subject: "dbserver1.inventory.orders".into(),
            headers: Vec::new(),
            body: body.to_string().into_bytes().into(),
        }
    }

    fn event(c: Converted) -> Value {
        match c {
            Converted::Change(m) => serde_json::from_slice(&m.body).expect("json"),
            Converted::Skip => panic!("skipped"),
        }
    }

    #[test]
    fn envelopes_become_change_events() {
        let source = json!({"db": "inventory", "schema": "public", "table": "orders", "lsn": 24023128, "ts_ms": 1_700_000_000_000u64});
        let u = json!({"schema": {}, "payload": {"op": "u", "before": {"id": 7, "status": "new"}, "after": {"id": 7, "status": "paid"}, "source": source}});
        assert_eq!(
            event(convert(&msg(u)).unwrap()),
            json!({"op": "update", "schema": "public", "table": "orders",
                   "row": {"id": 7, "status": "paid"}, "old": {"id": 7, "status": "new"},
                   "lsn": "24023128", "commit_time": "2023-11-14T22:13:20.000Z"})
        );
        let mysql = json!({"op": "d", "before": {"id": 3}, "after": null,
                           "source": {"db": "shop", "table": "items", "file": "binlog.000003", "pos": 154}});
        let e = event(convert(&msg(mysql)).unwrap());
        assert_eq!(
            (&e["op"], &e["schema"], &e["row"], &e["lsn"], &e["old"]),
            (
                &json!("delete"),
                &json!("shop"),
                &json!({"id": 3}),
                &json!("binlog.000003:154"),
                &Value::Null
            )
        );
        let snapshot = json!({"op": "r", "after": {"id": 1}, "source": {"table": "t"}});
        assert_eq!(
            event(convert(&msg(snapshot)).unwrap())["op"],
            json!("insert")
        );
    }

    #[test]
    fn tombstones_skip_and_junk_is_poison() {
        let empty = Message::default();
        assert_eq!(convert(&empty).unwrap(), Converted::Skip);
        assert_eq!(convert(&msg(Value::Null)).unwrap(), Converted::Skip);
        assert_eq!(
            convert(&msg(json!({"op": "t", "source": {"table": "t"}}))).unwrap(),
            Converted::Skip
        );
        assert!(convert(&msg(json!({"id": 1}))).unwrap_err().contains("op"));
        assert!(convert(&msg(json!({"op": "c", "source": {"table": "t"}}))).is_err());
        assert!(convert(&msg(json!({"op": "c", "after": {"id": 1}})))
            .unwrap_err()
            .contains("source.table"));
        assert!(convert(&msg(json!({"op": "x"}))).is_err());
    }
}
