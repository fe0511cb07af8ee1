//! Translations that a rename cannot express (`fn:NAME` in `keys.txt`), and the string maps
//! Centrifugo reads in two forms with `${CENTRIFUGO_VAR_…}` expansion.

use serde_json::{Map, Value};

use super::report::{Report, Status};
use super::walk::{place, Ctx};

/// Runs the translation `name` (`fn:NAME` or `fn:NAME=ARG`) on `map[key]`.
pub fn apply(
    name: &str,
    map: &mut Map<String, Value>,
    key: &str,
    ctx: &mut Ctx,
    set: bool,
) -> Result<Status, String> {
    let (name, arg) = name.split_once('=').unwrap_or((name, ""));
    match name {
        "pem_file" => pem_file(map, key, arg, ctx),
        "log_level" => log_level(map, key),
        "listen_address" => {
            if map.get(key) == Some(&Value::String(String::new())) {
                map.insert(key.into(), Value::String("0.0.0.0".into()));
                return Ok(Status::Mapped("\"\" (every interface) as 0.0.0.0".into()));
            }
            Ok(Status::Supported)
        }
        "redis_address" => redis_address(map, key),
        "redis_credential" => redis_credential(map, key, set),
        "publication_data_format" => {
            ctx.global_data_format = map.remove(key);
            Ok(Status::Mapped(
                "applied to channel.without_namespace and every namespace without its own".into(),
            ))
        }
        "consumer_type" => consumer_type(map, key),
        "redis_tls" => {
            let on = map.remove(key) == Some(Value::Bool(true));
            ctx.redis_tls |= on;
            Ok(if on {
                Status::Mapped("engine.redis.address switched to rediss://".into())
            } else {
                Status::Ignored("off".into())
            })
        }
        other => Err(format!("no translation named {other} (keys.txt)")),
    }
}

/// A PEM given as a file path moves to pushwire's `…_pem_file` key; inline PEM or base64 is
/// refused (pushwire reads certificates from files).
fn pem_file(
    map: &mut Map<String, Value>,
    key: &str,
    to: &str,
    ctx: &mut Ctx,
) -> Result<Status, String> {
    let v = map.remove(key).unwrap_or(Value::Null);
    let s = v.as_str().unwrap_or("").trim().to_string();
    if s.is_empty() {
        return Ok(Status::Ignored("empty".into()));
    }
    if s.contains("-----BEGIN") || !(s.contains('/') || s.contains('.')) {
        return Err(format!(
            "inline PEM is not supported: write it to a file and give its path as {to}"
        ));
    }
    place(map, to, Value::String(s), ctx);
    Ok(Status::Mapped(format!("as {to}")))
}

/// Centrifugo's levels are pushwire's, plus `fatal` (→ `error`) and `none` (→ `off`).
fn log_level(map: &mut Map<String, Value>, key: &str) -> Result<Status, String> {
    let Some(Value::String(level)) = map.get_mut(key) else {
        return Ok(Status::Supported);
    };
    let to = match level.to_ascii_lowercase().as_str() {
        "fatal" => "error",
        "none" => "off",
        _ => return Ok(Status::Supported),
    };
    *level = to.to_string();
    Ok(Status::Mapped(format!("as {to}")))
}

fn with_scheme(a: &str) -> String {
    if a.contains("://") {
        a.to_string()
    } else {
        format!("redis://{a}")
    }
}

/// `engine.redis.address`: a string, or a list (one element becomes a string; more stay a
/// list for the sharded engine); `host:port` gets the `redis://` scheme.
fn redis_address(map: &mut Map<String, Value>, key: &str) -> Result<Status, String> {
    let v = map.get_mut(key).expect("present");
    match v {
        Value::String(s) => *s = with_scheme(s),
        Value::Array(items) => {
            for it in items.iter_mut() {
                if let Value::String(s) = it {
                    *s = with_scheme(s);
                }
            }
            if items.len() == 1 {
                *v = items.remove(0);
                return Ok(Status::Mapped("one-element list as a string".into()));
            }
        }
        _ => {}
    }
    Ok(Status::Supported)
}

/// `engine.redis.db`, `user`, `password`: folded into every address as
/// `redis://user:password@host:port/db` (an address that already has them keeps its own).
fn redis_credential(map: &mut Map<String, Value>, key: &str, set: bool) -> Result<Status, String> {
    let v = map.remove(key).unwrap_or(Value::Null);
    if !set {
        return Ok(Status::Mapped("at its default".into()));
    }
    let text = match &v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let addr = map
        .entry("address")
        .or_insert_with(|| Value::String("redis://127.0.0.1:6379".into()));
    let fold = |a: &str| -> String {
        let a = with_scheme(a);
        let (scheme, rest) = a.split_once("://").expect("has a scheme");
        let (auth, hostpath) = match rest.rsplit_once('@') {
            Some((auth, h)) => (Some(auth.to_string()), h.to_string()),
            None => (None, rest.to_string()),
        };
        let (host, db) = match hostpath.split_once('/') {
            Some((h, d)) => (h.to_string(), Some(d.to_string())),
            None => (hostpath.clone(), None),
        };
        let (user, pass) = match auth.as_deref().map(|a| a.split_once(':')) {
            Some(Some((u, p))) => (u.to_string(), Some(p.to_string())),
            Some(None) => (auth.clone().unwrap_or_default(), None),
            None => (String::new(), None),
        };
        let (user, pass, db) = match key {
            "user" if user.is_empty() => (text.clone(), pass, db),
            "password" if pass.is_none() => (user, Some(text.clone()), db),
            "db" if db.as_deref().unwrap_or("").is_empty() => (user, pass, Some(text.clone())),
            _ => (user, pass, db),
        };
        let auth = match (user.is_empty(), &pass) {
            (true, None) => String::new(),
            (_, None) => format!("{user}@"),
            (_, Some(p)) => format!("{user}:{p}@"),
        };
        let db = db.map(|d| format!("/{d}")).unwrap_or_default();
        format!("{scheme}://{auth}{host}{db}")
    };
    match addr {
        Value::String(s) => *s = fold(s),
        Value::Array(items) => {
            for it in items.iter_mut() {
                if let Value::String(s) = it {
                    *s = fold(s);
                }
            }
        }
        _ => {}
    }
    Ok(Status::Mapped("folded into engine.redis.address".into()))
}

/// `engine.redis.tls.enabled = true`: every `redis://` URL of `engine.redis.address` becomes
/// `rediss://` (Cluster seeds given as `host:port` take that scheme; under Sentinel it is the
/// master's); without an address, Centrifugo's default `127.0.0.1:6379` over TLS.
pub fn apply_redis_tls(root: &mut Value) {
    let Some(redis) = root
        .pointer_mut("/engine/redis")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let addr = redis
        .entry("address")
        .or_insert_with(|| Value::String("redis://127.0.0.1:6379".into()));
    let tls = |s: &mut String| {
        if let Some(rest) = s.strip_prefix("redis://") {
            *s = format!("rediss://{rest}");
        }
    };
    match addr {
        Value::String(s) => tls(s),
        Value::Array(items) => items.iter_mut().for_each(|it| {
            if let Value::String(s) = it {
                tls(s);
            }
        }),
        _ => {}
    }
}

/// `consumers[].type`: `postgresql` reads the same outbox table as pushwire's
/// `postgresql_outbox` (its section moves too); types pushwire lacks are refused.
fn consumer_type(map: &mut Map<String, Value>, key: &str) -> Result<Status, String> {
    let t = map
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match t.as_str() {
        "postgresql" => {
            map.insert(key.into(), Value::String("postgresql_outbox".into()));
            if let Some(section) = map.remove("postgresql") {
                map.entry("postgresql_outbox").or_insert(section);
            }
            Ok(Status::Mapped("as postgresql_outbox".into()))
        }
        "google_pub_sub" | "aws_sqs" | "azure_service_bus" => Ok(Status::Unsupported(format!(
            "pushwire has no {t} consumer: its messages would not be delivered \
             (supported: kafka, nats_jetstream, redis_stream, postgresql)"
        ))),
        _ => Ok(Status::Supported),
    }
}

/// Whether a consumer is written for Centrifugo (some key of it was translated or dropped)
/// and is off there: Centrifugo runs a consumer only with `enabled: true`, pushwire's default
/// is on, so such a consumer is dropped rather than started.
pub fn centrifugo_consumer_disabled(obj: &Map<String, Value>, own: &Report) -> bool {
    let centrifugo_shaped = own
        .lines
        .iter()
        .any(|l| !matches!(l.status, Status::Supported | Status::Pushwire));
    centrifugo_shaped && obj.get("enabled") != Some(&Value::Bool(true))
}

/// `channel.publication_data_format` (global in Centrifugo) applied where pushwire reads it:
/// `channel.without_namespace` and each namespace that does not set its own.
pub fn apply_global_data_format(root: &mut Value, format: &Value) {
    let Some(channel) = root.get_mut("channel").and_then(Value::as_object_mut) else {
        return;
    };
    let wn = channel
        .entry("without_namespace")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(o) = wn {
        o.entry("publication_data_format")
            .or_insert_with(|| format.clone());
    }
    if let Some(Value::Array(nss)) = channel.get_mut("namespaces") {
        for ns in nss {
            if let Value::Object(o) = ns {
                o.entry("publication_data_format")
                    .or_insert_with(|| format.clone());
            }
        }
    }
}

/// A Centrifugo string map (`static_headers`, `static_metadata`, …): a map, or a list of
/// `{key, value}` entries (duplicate keys refused), with `${CENTRIFUGO_VAR_NAME}` expanded from
/// the environment (a missing variable is an error naming it).
pub fn string_map(v: &mut Value, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    if let Value::Array(items) = v {
        let mut m = Map::new();
        for (i, it) in items.iter().enumerate() {
            let k = it.get("key").and_then(Value::as_str);
            let val = it.get("value").and_then(Value::as_str);
            let (Some(k), Some(val)) = (k, val) else {
                return Err(format!("element {i} needs string `key` and `value`"));
            };
            if m.insert(k.to_string(), Value::String(val.to_string()))
                .is_some()
            {
                return Err(format!("duplicate key {k:?} at element {i}"));
            }
        }
        *v = Value::Object(m);
    }
    if let Value::Object(m) = v {
        for (k, val) in m.iter_mut() {
            if let Value::String(s) = val {
                *s = expand(s, env).map_err(|e| format!("{k}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Expands `${CENTRIFUGO_VAR_…}` references.
fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${CENTRIFUGO_VAR_") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + len];
        let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&rest[..start]);
        out.push_str(&value);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        (name == "CENTRIFUGO_VAR_TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn string_maps_from_lists_with_expansion() {
        let mut v = json!([{"key": "X-Auth", "value": "Bearer ${CENTRIFUGO_VAR_TOKEN}"}]);
        string_map(&mut v, &env).unwrap();
        assert_eq!(v, json!({"X-Auth": "Bearer s3cret"}));
        let mut v = json!({"X-A": "${CENTRIFUGO_VAR_MISSING}"});
        let e = string_map(&mut v, &env).unwrap_err();
        assert!(e.contains("CENTRIFUGO_VAR_MISSING"), "{e}");
        let mut v = json!([{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]);
        assert!(string_map(&mut v, &env).unwrap_err().contains("duplicate"));
    }

    #[test]
    fn redis_credentials_fold_into_the_address() {
        let mut m = json!({"address": "127.0.0.1:6379"})
            .as_object()
            .unwrap()
            .clone();
        m.insert("password".into(), json!("pw"));
        redis_credential(&mut m, "password", true).unwrap();
        m.insert("db".into(), json!(2));
        redis_credential(&mut m, "db", true).unwrap();
        assert_eq!(m["address"], json!("redis://:pw@127.0.0.1:6379/2"));
    }
}
