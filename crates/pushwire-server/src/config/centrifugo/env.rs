//! `CENTRIFUGO_*` environment variables, read with Centrifugo v6's rules.
//!
//! Every key has a variable: `CENTRIFUGO_` + the key path upper-cased with `_` for `.`
//! (`client.token.hmac_secret_key` → `CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY`). Lists of
//! strings are space-separated (`CENTRIFUGO_CLIENT_ALLOWED_ORIGINS="https://a https://b"`; a JSON
//! array is accepted too); lists of objects and string maps are JSON
//! (`CENTRIFUGO_CHANNEL_NAMESPACES='[{"name":"chat","presence":true}]'`). An element of
//! `channel.namespaces`, `rpc.namespaces`, `proxies` or `consumers` that has a name also reads
//! `CENTRIFUGO_CHANNEL_NAMESPACES_<NAME>_<KEY>` (name upper-cased, `.` and `-` as `_`). Empty
//! values count as unset. `CENTRIFUGO_VAR_*` (for `${…}` expansion) and the variables
//! Kubernetes injects for a service named centrifugo are not configuration.

use std::collections::HashMap;

use serde_json::Value;

use super::catalogue::{Catalogue, Entry};

/// The variable name of a key path (catalogue form without `[]`).
pub fn var_name(prefix: &str, key: &str) -> String {
    format!("{prefix}_{}", key.replace('.', "_")).to_uppercase()
}

/// Centrifugo's `NameForEnv`.
fn name_for_env(name: &str) -> String {
    name.replace(['.', '-'], "_").to_uppercase()
}

/// Parses an environment value as Centrifugo would for this key's type.
fn parse(e: &Entry, raw: &str) -> Result<Value, String> {
    let json_typed = e.is_object_list()
        || matches!(e.go_type, "MapStringString" | "StringKeyValues")
        || e.go_type.starts_with("map[");
    if json_typed {
        return serde_json::from_str(raw).map_err(|err| format!("not valid JSON: {err}"));
    }
    if e.go_type == "[]string" {
        if raw.trim_start().starts_with('[')
            && let Ok(v) = serde_json::from_str::<Value>(raw)
        {
            return Ok(v);
        }
        return Ok(Value::Array(
            raw.split_whitespace()
                .map(|s| Value::String(s.into()))
                .collect(),
        ));
    }
    // Scalars stay strings: the walk converts them by the key's type.
    Ok(Value::String(raw.to_string()))
}

/// Sets `v` at a dotted path, replacing what is there.
fn set_path(root: &mut Value, path: &[&str], v: Value) {
    let mut cur = root;
    for (i, p) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let map = cur.as_object_mut().expect("object");
        if i + 1 == path.len() {
            map.insert((*p).to_string(), v);
            return;
        }
        cur = map
            .entry((*p).to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

/// What the environment did.
#[derive(Debug, Default)]
pub struct EnvOutcome {
    /// Variables applied, with the key path each one set.
    pub applied: Vec<(String, String)>,
    /// `CENTRIFUGO_*` variables that name no key.
    pub unknown: Vec<String>,
    /// Variables whose value could not be read, with why.
    pub invalid: Vec<(String, String)>,
}

/// Applies `CENTRIFUGO_*` variables of `vars` to `root` (they win over the file).
pub fn apply(root: &mut Value, vars: &HashMap<String, String>) -> EnvOutcome {
    let cat = Catalogue::get();
    let mut out = EnvOutcome::default();
    let mut used: Vec<&str> = Vec::new();
    for e in cat.entries().iter().filter(|e| !e.key.contains("[]")) {
        let name = var_name("CENTRIFUGO", e.key);
        let Some((k, raw)) = vars.get_key_value(&name) else {
            continue;
        };
        used.push(k);
        if raw.is_empty() {
            continue;
        }
        match parse(e, raw) {
            Ok(v) => {
                let path: Vec<&str> = e.key.split('.').collect();
                set_path(root, &path, v);
                out.applied.push((name, e.key.to_string()));
            }
            Err(why) => out.invalid.push((name, why)),
        }
    }
    for (list, prefix) in [
        ("channel.namespaces", "CENTRIFUGO_CHANNEL_NAMESPACES"),
        ("rpc.namespaces", "CENTRIFUGO_RPC_NAMESPACES"),
        ("proxies", "CENTRIFUGO_PROXIES"),
        ("consumers", "CENTRIFUGO_CONSUMERS"),
    ] {
        let pointer = format!("/{}", list.replace('.', "/"));
        let Some(Value::Array(items)) = root.pointer_mut(&pointer) else {
            continue;
        };
        let elem = format!("{list}[].");
        for (i, item) in items.iter_mut().enumerate() {
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                continue;
            };
            let item_prefix = format!("{prefix}_{}", name_for_env(name));
            for e in cat.entries() {
                let Some(sub) = e.key.strip_prefix(&elem) else {
                    continue;
                };
                if sub.contains("[]") {
                    continue;
                }
                let var = var_name(&item_prefix, sub);
                let Some((k, raw)) = vars.get_key_value(&var) else {
                    continue;
                };
                used.push(k);
                if raw.is_empty() {
                    continue;
                }
                match parse(e, raw) {
                    Ok(v) => {
                        let path: Vec<&str> = sub.split('.').collect();
                        set_path(item, &path, v);
                        out.applied.push((var, format!("{list}[{i}].{sub}")));
                    }
                    Err(why) => out.invalid.push((var, why)),
                }
            }
        }
    }
    let mut unknown: Vec<String> = vars
        .keys()
        .filter(|k| k.starts_with("CENTRIFUGO_"))
        .filter(|k| !used.contains(&k.as_str()))
        .filter(|k| !k.starts_with("CENTRIFUGO_VAR_") && !is_kubernetes_var(k))
        .cloned()
        .collect();
    unknown.sort();
    out.unknown = unknown;
    out
}

/// `^CENTRIFUGO(_[A-Z0-9_]+)?_(PORT|SERVICE_)`: what Kubernetes injects for a service named
/// centrifugo (only consulted for variables that name no key).
fn is_kubernetes_var(k: &str) -> bool {
    let rest = &k["CENTRIFUGO".len()..];
    rest.ends_with("_PORT")
        || rest.contains("_PORT_")
        || rest.contains("_SERVICE_")
        || rest.starts_with("_SERVICE")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(list: &[(&str, &str)]) -> HashMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_lists_and_namespaces() {
        let mut root = json!({"channel": {"namespaces": [{"name": "chat-room"}]}});
        let out = apply(
            &mut root,
            &vars(&[
                ("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "s"),
                ("CENTRIFUGO_CLIENT_ALLOWED_ORIGINS", "https://a https://b"),
                ("CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_ROOM_PRESENCE", "true"),
                ("CENTRIFUGO_HTTP_SERVER_PORT", "9000"),
                ("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET", "typo"),
                ("CENTRIFUGO_SERVICE_HOST", "10.0.0.1"),
                ("CENTRIFUGO_VAR_X", "x"),
            ]),
        );
        assert_eq!(root["client"]["token"]["hmac_secret_key"], json!("s"));
        assert_eq!(
            root["client"]["allowed_origins"],
            json!(["https://a", "https://b"])
        );
        assert_eq!(root["channel"]["namespaces"][0]["presence"], json!("true"));
        assert_eq!(root["http_server"]["port"], json!("9000"));
        assert_eq!(out.unknown, vec!["CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET"]);
    }

    #[test]
    fn namespaces_as_json() {
        let mut root = json!({});
        let out = apply(
            &mut root,
            &vars(&[(
                "CENTRIFUGO_CHANNEL_NAMESPACES",
                r#"[{"name":"chat","history_size":10}]"#,
            )]),
        );
        assert!(out.invalid.is_empty());
        assert_eq!(root["channel"]["namespaces"][0]["history_size"], json!(10));
        let out = apply(
            &mut root,
            &vars(&[("CENTRIFUGO_CHANNEL_NAMESPACES", "[oops")]),
        );
        assert_eq!(out.invalid[0].0, "CENTRIFUGO_CHANNEL_NAMESPACES");
    }
}
