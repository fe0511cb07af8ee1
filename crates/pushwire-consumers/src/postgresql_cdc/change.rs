//! Row changes as change events:
//! `{"op":"insert|update|delete","schema":…,"table":…,"row":{…},"old":{…}|null,"lsn":…,
//! "commit_time":…}`. `row` is the new row (the old one for a delete); `old` is the old key or
//! row of an update when PostgreSQL sent it (a changed key, or `REPLICA IDENTITY FULL`).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Map, Value as Json};

use super::pgoutput::{Lsn, Relation, Tuple, Value};
use super::settings::ColumnFilter;

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_SECS: u64 = 946_684_800;

/// The kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// INSERT.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
}

impl Op {
    /// `insert`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// One row change, ready to become an event.
#[derive(Debug)]
pub struct Change<'a> {
    /// What happened.
    pub op: Op,
    /// The table.
    pub relation: &'a Relation,
    /// New row (old row for a delete).
    pub row: &'a Tuple,
    /// Old key / row of an update.
    pub old: Option<&'a Tuple>,
    /// LSN of the change record.
    pub lsn: Lsn,
    /// Commit time, microseconds since 2000-01-01 UTC.
    pub commit_time: i64,
}

impl Change<'_> {
    /// The change event (column values typed by their OID, see [`typed`]), with `filter`
    /// applied to `row` and `old`.
    pub fn event(&self, filter: Option<&ColumnFilter>) -> Json {
        json!({
            "op": self.op.as_str(),
            "schema": self.relation.schema,
            "table": self.relation.table,
            "row": object(self.relation, self.row, filter),
            "old": self.old.map(|o| object(self.relation, o, filter)),
            "lsn": self.lsn.to_string(),
            "commit_time": commit_time(self.commit_time),
        })
    }
}

/// RFC 3339 UTC with microseconds.
pub fn commit_time(micros_since_2000: i64) -> String {
    let t = if micros_since_2000 >= 0 {
        UNIX_EPOCH
            + Duration::from_secs(PG_EPOCH_SECS)
            + Duration::from_micros(micros_since_2000 as u64)
    } else {
        UNIX_EPOCH + Duration::from_secs(PG_EPOCH_SECS)
            - Duration::from_micros(micros_since_2000.unsigned_abs())
    };
    humantime::format_rfc3339_micros(t).to_string()
}

/// The columns of `tuple` by name; unchanged TOAST values (not sent) are left out.
fn object(rel: &Relation, tuple: &Tuple, filter: Option<&ColumnFilter>) -> Json {
    let mut m = Map::new();
    for (col, v) in rel.columns.iter().zip(tuple) {
        if filter.is_some_and(|f| !f.keeps(&col.name)) {
            continue;
        }
        let value = match v {
            Value::Unchanged => continue,
            // A key-only old tuple sends NULL for non-key columns: they stay null.
            Value::Null => Json::Null,
            Value::Text(t) => typed(col.type_oid, t),
        };
        m.insert(col.name.clone(), value);
    }
    Json::Object(m)
}

/// A text-format value as JSON: booleans, integers, floats and `json`/`jsonb` as such;
/// `numeric` and everything else as strings (no precision lost).
pub fn typed(type_oid: u32, text: &str) -> Json {
    match type_oid {
        16 => Json::Bool(text == "t"),
        20 | 21 | 23 | 26 => text
            .parse::<i64>()
            .map(Json::from)
            .unwrap_or_else(|_| Json::String(text.to_owned())),
        700 | 701 => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(text.to_owned())),
        114 | 3802 => serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_owned())),
        _ => Json::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::pgoutput::Column;
    use super::*;

    #[test]
    fn events_are_typed_filtered_and_timed() {
        let rel = Relation {
            id: 1,
            schema: "public".into(),
            table: "orders".into(),
            columns: [
                ("id", 20),
                ("paid", 16),
                ("total", 1700),
                ("meta", 3802),
                ("secret", 25),
                ("big", 25),
            ]
            .into_iter()
            .map(|(n, t)| Column {
                name: n.into(),
                type_oid: t,
            })
            .collect(),
        };
        let row = vec![
            Value::Text("7".into()),
            Value::Text("t".into()),
            Value::Text("12.50".into()),
            Value::Text(r#"{"a": [1]}"#.into()),
            Value::Text("pw".into()),
            Value::Unchanged,
        ];
        let old = vec![
            Value::Text("7".into()),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ];
        let filter = ColumnFilter {
            allow: Vec::new(),
            deny: vec!["secret".into()],
        };
        let c = Change {
            op: Op::Update,
            relation: &rel,
            row: &row,
            old: Some(&old),
            lsn: Lsn(0x1_0000_00a0),
            commit_time: 1_000_000,
        };
        assert_eq!(
            c.event(Some(&filter)),
            json!({
                "op": "update", "schema": "public", "table": "orders",
                "row": {"id": 7, "paid": true, "total": "12.50", "meta": {"a": [1]}},
                "old": {"id": 7, "paid": null, "total": null, "meta": null, "big": null},
                "lsn": "1/A0",
                "commit_time": "2000-01-01T00:00:01.000000Z",
            })
        );
        assert_eq!(typed(701, "NaN"), json!("NaN"));
        assert_eq!(typed(23, "-5"), json!(-5));
    }
}
