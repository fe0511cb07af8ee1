//! Values as Centrifugo's loader reads them: numbers and booleans given as strings, Go
//! durations (`"1m30s"`, `"1.5h"`, or a number of nanoseconds), and "is this the default?".

use serde_json::Value;

/// Converts `v` to what a key of Go type `go_type` holds, as Centrifugo's weakly typed
/// decoding does. Leaves values it does not understand alone (the typed load then names the
/// key). Returns an error text for a duration that cannot be read.
pub fn coerce(go_type: &str, v: &mut Value) -> Result<(), String> {
    let base = go_type.trim_start_matches('*');
    match base {
        "int" | "int8" | "int16" | "int32" | "int64" | "uint" | "uint8" | "uint16" | "uint32"
        | "uint64" => {
            if let Value::String(s) = v {
                let t = s.trim();
                if let Ok(n) = t.parse::<i64>() {
                    *v = Value::from(n);
                } else if let Ok(n) = t.parse::<u64>() {
                    *v = Value::from(n);
                }
            }
        }
        "float32" | "float64" => {
            if let Value::String(s) = v
                && let Ok(n) = s.trim().parse::<f64>()
            {
                *v = Value::from(n);
            }
        }
        "bool" => {
            if let Value::String(s) = v {
                match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "t" => *v = Value::Bool(true),
                    "false" | "0" | "f" | "" => *v = Value::Bool(false),
                    _ => {}
                }
            }
        }
        "Duration" | "time.Duration" => match v {
            Value::Number(n) => {
                let ns = n.as_u64().ok_or("a duration must not be negative")?;
                *v = Value::String(format!("{ns}ns"));
            }
            Value::String(s) => {
                if let Some(ns) = go_duration_nanos(s) {
                    *v = Value::String(format!("{ns}ns"));
                }
                // Anything else may be a pushwire (humantime) spelling: left to the typed load.
            }
            _ => {}
        },
        _ => {}
    }
    Ok(())
}

/// Nanoseconds of a Go duration (`300ms`, `1.5h`, `2h45m`, `0`); `None` if it is not one.
pub fn go_duration_nanos(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * unit;
    }
    Some(total.round() as u64)
}

/// Whether `v` is what Centrifugo would use without the key (its `default` tag, or the
/// type's zero value when the tag is empty).
pub fn is_default(go_type: &str, default: &str, v: &Value) -> bool {
    let zero = match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    };
    if default.is_empty() || default == "[]" || default == "{}" {
        return zero;
    }
    if go_type.ends_with("Duration") {
        let want = go_duration_nanos(default);
        let got = match v {
            Value::String(s) => go_duration_nanos(s).or_else(|| {
                s.strip_suffix("ns")
                    .and_then(|n| n.parse().ok())
                    .map(|n: u64| n)
            }),
            Value::Number(n) => n.as_u64(),
            _ => None,
        };
        return want.is_some() && want == got;
    }
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() == 1 => match &a[0] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    text == default
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_become_numbers_and_booleans() {
        let mut v = json!("8000");
        coerce("int", &mut v).unwrap();
        assert_eq!(v, json!(8000));
        let mut v = json!("true");
        coerce("bool", &mut v).unwrap();
        assert_eq!(v, json!(true));
        let mut v = json!("eight");
        coerce("int", &mut v).unwrap();
        assert_eq!(v, json!("eight"), "left for the typed load to name");
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_nanos("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration_nanos("1.5h"), Some(5_400_000_000_000));
        assert_eq!(go_duration_nanos("300ms"), Some(300_000_000));
        assert_eq!(go_duration_nanos("0"), Some(0));
        assert_eq!(go_duration_nanos("5 minutes"), None);
        let mut v = json!(1_000_000_000u64);
        coerce("Duration", &mut v).unwrap();
        assert_eq!(v, json!("1000000000ns"));
        let mut v = json!("2h45m");
        coerce("Duration", &mut v).unwrap();
        assert_eq!(v, json!("9900000000000ns"));
    }

    #[test]
    fn defaults() {
        assert!(is_default("bool", "", &json!(false)));
        assert!(!is_default("bool", "", &json!(true)));
        assert!(is_default("Duration", "1s", &json!("1000ms")));
        assert!(is_default("Duration", "1s", &json!("1000000000ns")));
        assert!(is_default("string", "/health", &json!("/health")));
        assert!(!is_default("string", "/health", &json!("/hc")));
        assert!(is_default("int", "11000", &json!(11000)));
        assert!(is_default("MapStringString", "{}", &json!({})));
    }
}
