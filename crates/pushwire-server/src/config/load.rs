//! Layered loading: defaults → file → environment → flags.
//!
//! The file (TOML, JSON or YAML by extension) and the environment (`CENTRIFUGO_*` by
//! Centrifugo v6's rules, then `PUSHWIRE_*`, which wins) are merged into one tree, the
//! Centrifugo keys in it are translated ([`super::centrifugo`]), then the tree is read into the
//! typed [`ServerConfig`]. A key that neither Centrifugo nor pushwire knows is an error naming
//! it, or one warning under `config.unknown_keys = "warn"`.

use std::collections::HashMap;
use std::path::Path;

use figment::providers::{Format, Json, Serialized, Toml, Yaml};
use figment::Figment;
use serde_json::Value;

use super::centrifugo::{self, catalogue::Catalogue, Report, Status};
use super::{ServerConfig, UnknownKeys};

/// Values given on the command line; `None` leaves the lower layers in place.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--address`.
    pub address: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--log-format`.
    pub log_format: Option<String>,
}

/// A configuration read with everything learnt on the way.
#[derive(Debug)]
pub struct Analysis {
    /// What happened to each key of the file and the environment.
    pub report: Report,
    /// The typed configuration (unknown keys left out), or why it cannot be had.
    pub config: Result<ServerConfig, String>,
    /// `config.unknown_keys` as read.
    pub unknown_keys: UnknownKeys,
}

/// A loaded configuration and the warnings to log once logging is set up.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: ServerConfig,
    /// One line per ignored key that was set, and per unknown key let through.
    pub warnings: Vec<String>,
}

/// Loads and validates the configuration. `path` may be TOML, JSON or YAML (by extension;
/// TOML otherwise). Errors name the key at fault. Warnings are dropped: see
/// [`load_with_warnings`].
pub fn load(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<ServerConfig> {
    load_with_warnings(path, overrides).map(|l| l.config)
}

/// [`load`], keeping the warnings (ignored Centrifugo keys, unknown keys under `warn`).
pub fn load_with_warnings(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Loaded> {
    let vars: HashMap<String, String> = std::env::vars().collect();
    finish(analyze(path, overrides, &vars)?)
}

/// Turns an [`Analysis`] into a configuration, or into one error listing every refused key,
/// every unknown key (unless `config.unknown_keys = "warn"`) and every bad value.
pub fn finish(a: Analysis) -> anyhow::Result<Loaded> {
    let mut errors: Vec<String> = a
        .report
        .refusals()
        .map(|l| match &l.status {
            Status::Unsupported(why) => format!("{}: not supported by pushwire: {why}", l.key),
            Status::Invalid(why) => format!("{}: {why}", l.key),
            _ => unreachable!("refusals"),
        })
        .collect();
    if a.unknown_keys == UnknownKeys::Error {
        for l in &a.report.lines {
            if let Status::Unknown(hint) = &l.status {
                errors.push(format!(
                    "{}: unknown key, neither a Centrifugo v6 nor a pushwire key{hint} \
                     (config.unknown_keys = \"warn\" starts anyway)",
                    l.key
                ));
            }
        }
    }
    if let Err(e) = &a.config {
        errors.push(e.clone());
    }
    if !errors.is_empty() {
        anyhow::bail!("invalid configuration: {}", errors.join("; "));
    }
    let config = a.config.expect("checked");
    config.validate()?;
    Ok(Loaded {
        config,
        warnings: a.report.warnings(),
    })
}

/// Reads a configuration file into a tree, by extension.
pub(super) fn read_tree(path: &Path) -> anyhow::Result<Value> {
    if !path.exists() {
        anyhow::bail!("configuration file {} does not exist", path.display());
    }
    let fig = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Figment::from(Json::file_exact(path)),
        Some("yaml" | "yml") => Figment::from(Yaml::file_exact(path)),
        _ => Figment::from(Toml::file_exact(path)),
    };
    let tree: Value = fig
        .extract()
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(tree)
}

/// Merges `top` into `base`: objects key by key, anything else replaced.
fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Reads the file and the environment `vars`, translates Centrifugo keys and reads the typed
/// configuration, collecting everything instead of stopping at the first problem. Fails only
/// when the file cannot be read or is a Centrifugo v5 file.
pub fn analyze(
    path: Option<&Path>,
    overrides: &Overrides,
    vars: &HashMap<String, String>,
) -> anyhow::Result<Analysis> {
    let mut tree = match path {
        Some(p) => read_tree(p)?,
        None => Value::Object(Default::default()),
    };
    if !tree.is_object() {
        anyhow::bail!("the configuration must be a table of keys");
    }
    let mut report = centrifugo::prepare(&mut tree, vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    // `PUSHWIRE_*` variables may name Centrifugo keys too; they get the same translation.
    let mut pushwire_env = pushwire_env_tree(vars);
    let mut env_report = Report::default();
    centrifugo::walk::translate(&mut pushwire_env, &mut env_report, Default::default());
    for mut line in env_report.lines {
        if !matches!(line.status, Status::Supported | Status::Pushwire) {
            line.key = format!("{} (from PUSHWIRE_*)", line.key);
            report.lines.push(line);
        }
    }
    merge(&mut tree, pushwire_env);
    let unknown_keys = match tree.pointer("/config/unknown_keys").and_then(Value::as_str) {
        Some("warn") => UnknownKeys::Warn,
        _ => UnknownKeys::Error,
    };
    let mut config = Err("too many configuration errors to list".to_string());
    for _ in 0..1000 {
        match extract(&tree, overrides) {
            Ok(c) => {
                config = Ok(c);
                break;
            }
            Err(e) => {
                let mut unknown = Vec::new();
                let mut stringify = Vec::new();
                let mut listify = Vec::new();
                // Every error but unknown keys, for when no repair applies.
                let mut described = Vec::new();
                let mut other = Vec::new();
                for err in *e {
                    if let Some(path) = unknown_field(&err) {
                        unknown.push(path);
                        continue;
                    }
                    described.push(describe_ref(&err));
                    if let Some((path, text)) = scalar_for_string(&err) {
                        stringify.push((path, text));
                    } else if string_for_list(&err) {
                        listify.push(err.path.clone());
                    } else {
                        other.push(describe_ref(&err));
                    }
                }
                // A number or boolean where a string is expected (an API key `12345` from
                // the environment): read it as the string it was written as.
                let mut fixed = false;
                for (path, text) in stringify {
                    let value = if text.is_empty() {
                        // A one-element list where pushwire wants one value
                        // (`consumers[].redis_stream.address: ["host:6379"]`).
                        match get_path(&tree, &path) {
                            Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                                a[0].clone()
                            }
                            _ => continue,
                        }
                    } else {
                        Value::String(text)
                    };
                    fixed |= set_path(&mut tree, &path, value);
                }
                for path in &listify {
                    if let Some(Value::String(s)) = get_path(&tree, path).cloned() {
                        fixed |= set_path(&mut tree, path, Value::Array(vec![Value::String(s)]));
                    }
                }
                if fixed && unknown.is_empty() {
                    continue;
                }
                if unknown.is_empty() {
                    config = Err(if other.is_empty() { described } else { other }.join("; "));
                    break;
                }
                for path in unknown {
                    if !remove_path(&mut tree, &path) {
                        config = Err(format!("{}: unknown key", path.join(".")));
                        return Ok(Analysis {
                            report,
                            config,
                            unknown_keys,
                        });
                    }
                    mark_unknown(&mut report, &path);
                }
            }
        }
    }
    Ok(Analysis {
        report,
        config,
        unknown_keys,
    })
}

/// `PUSHWIRE_*` variables as a tree: `__` between key segments, values read as figment's
/// environment provider reads them (`9000` a number, `[…]` a list).
fn pushwire_env_tree(vars: &HashMap<String, String>) -> Value {
    let mut root = Value::Object(Default::default());
    for (k, raw) in vars {
        let Some(rest) = k.strip_prefix("PUSHWIRE_") else {
            continue;
        };
        let parsed: figment::value::Value = raw.parse().expect("infallible");
        let Ok(v) = serde_json::to_value(&parsed) else {
            continue;
        };
        let mut cur = &mut root;
        let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        for (i, p) in parts.iter().enumerate() {
            let Value::Object(m) = cur else { break };
            if i + 1 == parts.len() {
                m.insert(p.clone(), v.clone());
                break;
            }
            cur = m
                .entry(p.clone())
                .or_insert_with(|| Value::Object(Default::default()));
        }
    }
    root
}

fn extract(tree: &Value, overrides: &Overrides) -> Result<ServerConfig, Box<figment::Error>> {
    let mut fig = Figment::from(Serialized::defaults(ServerConfig::default()))
        .merge(Serialized::defaults(tree));
    if let Some(a) = &overrides.address {
        fig = fig.merge(Serialized::default("http_server.address", a));
    }
    if let Some(p) = overrides.port {
        fig = fig.merge(Serialized::default("http_server.port", p));
    }
    if let Some(l) = &overrides.log_level {
        fig = fig.merge(Serialized::default("log.level", l));
    }
    if let Some(f) = &overrides.log_format {
        fig = fig.merge(Serialized::default("log.format", f));
    }
    fig.extract().map_err(Box::new)
}

/// The full path of an unknown key, if that is what `err` is about. Serde names it as
/// `UnknownField` (the path may or may not end with it), or, inside a flattened struct such as
/// a namespace's options, as a message "unknown field `NAME`".
fn unknown_field(err: &figment::Error) -> Option<Vec<String>> {
    let field = match &err.kind {
        figment::error::Kind::UnknownField(field, _) => field.clone(),
        figment::error::Kind::Message(m) => m
            .strip_prefix("unknown field `")?
            .split('`')
            .next()?
            .to_string(),
        _ => return None,
    };
    let mut path = err.path.clone();
    if path.last() != Some(&field) {
        path.push(field);
    }
    Some(path)
}

/// The path and text of a number or boolean given where a string is expected (an empty text
/// for a list, which is unwrapped when it holds one string).
fn scalar_for_string(err: &figment::Error) -> Option<(Vec<String>, String)> {
    use figment::error::{Actual, Kind};
    let Kind::InvalidType(actual, expected) = &err.kind else {
        return None;
    };
    if !expected.contains("string") {
        return None;
    }
    let text = match actual {
        Actual::Seq => return Some((err.path.clone(), String::new())),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        Actual::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some((err.path.clone(), text))
}

/// Whether `err` is a single string given where a list is expected (Centrifugo reads
/// `"allowed_origins": "*"` as a one-element list).
fn string_for_list(err: &figment::Error) -> bool {
    use figment::error::{Actual, Kind};
    matches!(&err.kind, Kind::InvalidType(Actual::Str(_), exp) if exp.contains("sequence"))
}

/// The value at `path`, if any.
fn get_path<'a>(tree: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = tree;
    for p in path {
        cur = match cur {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Replaces the value at `path` (which must exist); false if it is not there.
fn set_path(tree: &mut Value, path: &[String], v: Value) -> bool {
    let mut cur = tree;
    for p in path {
        cur = match cur {
            Value::Object(m) => match m.get_mut(p) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    if *cur == v {
        return false;
    }
    *cur = v;
    true
}

/// Removes the key at `path` (indices for list elements); false if it is not there.
fn remove_path(tree: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = tree;
    for p in parents {
        cur = match cur {
            Value::Object(m) => match m.get_mut(p) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    cur.as_object_mut().and_then(|m| m.remove(last)).is_some()
}

/// Turns the report line of an unknown key into [`Status::Unknown`] with a spelling hint.
fn mark_unknown(report: &mut Report, path: &[String]) {
    let mut concrete = String::new();
    let mut pattern = String::new();
    for p in path {
        if p.parse::<usize>().is_ok() {
            concrete.push_str(&format!("[{p}]"));
            pattern.push_str("[]");
        } else {
            if !concrete.is_empty() {
                concrete.push('.');
                pattern.push('.');
            }
            concrete.push_str(p);
            pattern.push_str(p);
        }
    }
    let hint = Catalogue::get()
        .closest(&pattern)
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default();
    let cat = Catalogue::get();
    let pending = cat.lookup(&pattern).filter(|e| e.pending()).or_else(|| {
        let below = format!("{pattern}.");
        cat.entries()
            .iter()
            .find(|e| e.pending() && e.key.starts_with(&below))
    });
    let status = match pending {
        Some(e) => Status::Unsupported(format!(
            "implemented on another branch ({}), not in this build",
            e.note
        )),
        _ => Status::Unknown(hint),
    };
    match report.lines.iter_mut().find(|l| l.key == concrete) {
        Some(l) => l.status = status,
        None => report.push(concrete, status, true),
    }
}

fn describe_ref(e: &figment::Error) -> String {
    let key = e.path.join(".");
    if key.is_empty() {
        format!("{}", e.kind)
    } else {
        format!("{key}: {}", e.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(ext: &str, text: &str) -> tempfile_lite::TempPath {
        let p = tempfile_lite::TempPath::new(ext);
        std::fs::File::create(&p.0)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    mod tempfile_lite {
        pub(super) struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub(super) fn new(ext: &str) -> Self {
                let n: u64 = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64;
                TempPath(std::env::temp_dir().join(format!("pushwire-cfg-{n}.{ext}")))
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_are_valid() {
        let c = load(None, &Overrides::default()).unwrap();
        assert_eq!(c.http_server.address, "127.0.0.1");
        assert_eq!(c.http_server.port, 8000);
    }

    #[test]
    fn file_values_and_flags() {
        let f = file(
            "toml",
            r#"
            [client]
            ping_interval = "10s"
            pong_timeout = "4s"
            [[channel.namespaces]]
            name = "chat"
            presence = true
            history_size = 10
            history_ttl = "60s"
            "#,
        );
        let c = load(
            Some(&f.0),
            &Overrides {
                port: Some(9100),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.client.ping_interval.as_secs(), 10);
        assert_eq!(c.channel.namespaces[0].name, "chat");
        assert!(c.channel.namespaces[0].options.presence);
        assert_eq!(c.http_server.port, 9100);
    }

    #[test]
    fn unknown_key_named() {
        let f = file("toml", "[client]\nping_intervall = \"10s\"\n");
        let e = load(Some(&f.0), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ping_intervall"), "{e}");
        let f = file(
            "json",
            r#"{"channel":{"namespaces":[{"name":"chat","presense":true}]}}"#,
        );
        let e = load(Some(&f.0), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("presense"), "{e}");
    }

    #[test]
    fn bad_value_named() {
        let f = file("toml", "[client]\nping_interval = \"soon\"\n");
        let e = load(Some(&f.0), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("client.ping_interval"), "{e}");
        let f = file("toml", "[channel.without_namespace]\nhistory_size = 5\n");
        let e = load(Some(&f.0), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("channel.without_namespace.history_size"), "{e}");
    }
}
