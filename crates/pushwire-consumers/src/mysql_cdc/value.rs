//! Binlog values as JSON.

use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value;
use serde_json::Value as Json;

/// A binlog column value as JSON: integers and floats as numbers, text and DECIMAL as strings,
/// dates as `YYYY-MM-DD HH:MM:SS[.ffffff]`, times as `[-]HH:MM:SS[.ffffff]`, JSON columns
/// (MySQL's binary JSON) as JSON.
pub(super) fn json(v: &BinlogValue<'_>) -> Json {
    match v {
        BinlogValue::Value(v) => plain(v),
        other => match Value::try_from(other.clone()) {
            Ok(Value::Bytes(b)) => serde_json::from_slice(&b)
                .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&b).into_owned())),
            Ok(v) => plain(&v),
            Err(e) => Json::String(format!("<undecodable: {e}>")),
        },
    }
}

fn plain(v: &Value) -> Json {
    match v {
        Value::NULL => Json::Null,
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(f64::from(*f))
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Double(d) => serde_json::Number::from_f64(*d)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Value::Date(y, mo, d, h, mi, s, us) => {
            let mut t = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
            if *us > 0 {
                t += &format!(".{us:06}");
            }
            Json::String(t)
        }
        Value::Time(neg, days, h, mi, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let mut t = format!("{}{hours:02}:{mi:02}:{s:02}", if *neg { "-" } else { "" });
            if *us > 0 {
                t += &format!(".{us:06}");
            }
            Json::String(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let j = |v: Value| json(&BinlogValue::Value(v));
        assert_eq!(j(Value::Int(-3)), serde_json::json!(-3));
        assert_eq!(j(Value::UInt(3)), serde_json::json!(3));
        assert_eq!(
            j(Value::Bytes(b"12.50".to_vec())),
            serde_json::json!("12.50")
        );
        assert_eq!(j(Value::NULL), Json::Null);
        assert_eq!(
            j(Value::Date(2026, 1, 2, 3, 4, 5, 0)),
            serde_json::json!("2026-01-02 03:04:05")
        );
        assert_eq!(
            j(Value::Time(true, 1, 2, 3, 4, 5)),
            serde_json::json!("-26:03:04.000005")
        );
    }
}
