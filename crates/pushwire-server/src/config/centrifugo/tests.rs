//! The corpus of real Centrifugo v6 files (tests/fixtures/centrifugo, sources in its README)
//! against their expected reports, typos, environment equivalence and the catalogue's
//! agreement with pushwire's own schema.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::catalogue::{Catalogue, Class};
use crate::config::{analyze, finish, Overrides, ServerConfig};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/centrifugo")
}

fn vars(list: &[(&str, &str)]) -> HashMap<String, String> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Whether a report line or an error is about a key implemented on another branch (its
/// outcome changes when that branch is merged, so goldens leave it out).
fn pending(text: &str) -> bool {
    Catalogue::get()
        .entries()
        .iter()
        .filter(|e| e.pending())
        .any(|e| {
            let plain = e.key.replace("[]", "");
            text.starts_with(&plain) || text.contains("another branch")
        })
}

/// The report and the start-up outcome of one file, as `checkconfig --centrifugo` shows them.
fn render(path: &Path, env: &HashMap<String, String>) -> String {
    let a = match analyze(Some(path), &Overrides::default(), env) {
        Ok(a) => a,
        Err(e) => return format!("not read: {e:#}\n"),
    };
    let mut out = String::new();
    for line in a.report.to_string().lines() {
        if !pending(line.trim_start()) {
            out.push_str(line);
            out.push('\n');
        }
    }
    match finish(a) {
        Ok(l) => {
            out.push_str("start: ok\n");
            for w in l.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
        }
        Err(e) => {
            let e = format!("{e:#}");
            let e = e.trim_start_matches("invalid configuration: ");
            for part in e.split("; ").filter(|p| !pending(p)) {
                out.push_str(&format!("start: refused: {part}\n"));
            }
        }
    }
    out
}

#[test]
fn corpus_reports_match_their_goldens() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("json" | "yaml" | "toml")
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 14, "{files:?}");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for f in files {
        let got = render(&f, &HashMap::new());
        let golden = f.with_extension(format!(
            "{}.report",
            f.extension().unwrap().to_str().unwrap()
        ));
        if update {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "== {}\n--- want\n{want}--- got\n{got}",
                f.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_yaml_and_toml_of_one_config_read_alike() {
    let lines = |ext: &str| {
        let a = analyze(
            Some(&fixtures().join(format!("centrifugo-testdata.{ext}"))),
            &Overrides::default(),
            &HashMap::new(),
        )
        .unwrap();
        let mut v: Vec<String> = a
            .report
            .lines
            .iter()
            .map(|l| format!("{} {:?}", l.key, l.status))
            .collect();
        v.sort();
        v
    };
    let json = lines("json");
    assert_eq!(json, lines("yaml"));
    let toml = lines("toml");
    // The TOML copy has no kafka `tls.cert_pem`; everything else is the same file.
    let without = |v: &Vec<String>| -> Vec<String> {
        v.iter()
            .filter(|l| !l.contains("cert_pem"))
            .cloned()
            .collect()
    };
    assert_eq!(without(&json), without(&toml));
}

#[test]
fn typos_fail_naming_the_key_and_start_with_one_warning_each_under_warn() {
    let f = fixtures().join("build-tools-grpc-proxies.json");
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    let e = format!("{:#}", finish(a).unwrap_err());
    assert!(e.contains("token: unknown key"), "{e}");
    assert!(
        e.contains("channel.namespaces[1].allow_subcribe_for_anonymous: unknown key"),
        "{e}"
    );
    assert!(
        e.contains("did you mean channel.namespaces[].allow_subscribe_for_anonymous?"),
        "{e}"
    );

    let env = vars(&[("PUSHWIRE_CONFIG__UNKNOWN_KEYS", "warn")]);
    let a = analyze(Some(&f), &Overrides::default(), &env).unwrap();
    let loaded = finish(a).unwrap();
    let unknown: Vec<&String> = loaded
        .warnings
        .iter()
        .filter(|w| w.contains("unknown key"))
        .collect();
    assert_eq!(unknown.len(), 2, "{:?}", loaded.warnings);
    assert!(unknown[0].starts_with("channel.namespaces[1].allow_subcribe_for_anonymous"));
    assert!(unknown[1].starts_with("token:"));
    // The rest of the file still applies.
    assert_eq!(loaded.config.http_api.key, "test");
    assert!(
        loaded.config.channel.namespaces[1]
            .options
            .allow_publish_for_anonymous
    );
}

#[test]
fn issue_typos_allowed_origin_and_hmac_secret() {
    let dir = std::env::temp_dir().join(format!("pushwire-typos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("config.json");
    std::fs::write(
        &f,
        r#"{"client": {"allowed_origin": ["https://a.example"], "token": {"hmac_secret": "s"}}}"#,
    )
    .unwrap();
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    let e = format!("{:#}", finish(a).unwrap_err());
    assert!(e.contains("client.allowed_origin: unknown key"), "{e}");
    assert!(e.contains("did you mean client.allowed_origins?"), "{e}");
    assert!(e.contains("client.token.hmac_secret: unknown key"), "{e}");
    assert!(
        e.contains("did you mean client.token.hmac_secret_key?"),
        "{e}"
    );
    std::fs::write(
        &f,
        r#"{"config": {"unknown_keys": "warn"}, "client": {"allowed_origin": ["x"]}}"#,
    )
    .unwrap();
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    let l = finish(a).unwrap();
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(l.warnings[0].starts_with("client.allowed_origin: unknown key"));
    std::fs::remove_dir_all(&dir).ok();
}

fn effective(path: Option<&Path>, env: &HashMap<String, String>) -> Value {
    let a = analyze(path, &Overrides::default(), env).unwrap();
    let c: ServerConfig = finish(a).unwrap().config;
    serde_json::to_value(&c).unwrap()
}

#[test]
fn centrifugo_env_gives_the_same_effective_config_as_the_file() {
    let file = effective(Some(&fixtures().join("underchat.json")), &HashMap::new());
    let env = effective(
        None,
        &vars(&[
            (
                "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY",
                "i9SHlNxpzB1GDU5K0dqzXPpn8eQBs1jKl4yHSWfSpghyvhqP8m",
            ),
            ("CENTRIFUGO_CLIENT_ALLOWED_ORIGINS", "*"),
            (
                "CENTRIFUGO_HTTP_API_KEY",
                "lxnxSiQMf3ps1kHNGs7GPvI9P2B2SlXdBwWVSIUe0KZvFY2rGF",
            ),
            ("CENTRIFUGO_ADMIN_ENABLED", "true"),
            ("CENTRIFUGO_ADMIN_PASSWORD", "yPrRLcptvlWumy6eT5OO2QM6a"),
            (
                "CENTRIFUGO_ADMIN_SECRET",
                "rlkoqZMDkiZF11JjmL6IumG3v1WDINYnBR5en4dU22FOjya5ft",
            ),
            (
                "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_PUBLISH_FOR_CLIENT",
                "true",
            ),
            (
                "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_SUBSCRIBE_FOR_CLIENT",
                "true",
            ),
            ("CENTRIFUGO_CHANNEL_NAMESPACES", r#"[{"name": "worker"}]"#),
            (
                "CENTRIFUGO_CHANNEL_NAMESPACES_WORKER_ALLOW_USER_LIMITED_CHANNELS",
                "true",
            ),
            (
                "CENTRIFUGO_CHANNEL_NAMESPACES_WORKER_ALLOW_SUBSCRIBE_FOR_CLIENT",
                "true",
            ),
            (
                "CENTRIFUGO_CHANNEL_NAMESPACES_WORKER_ALLOW_PUBLISH_FOR_CLIENT",
                "true",
            ),
            ("CENTRIFUGO_CHANNEL_NAMESPACES_WORKER_PRESENCE", "true"),
        ]),
    );
    assert_eq!(file, env);
    assert_ne!(
        file,
        effective(None, &HashMap::new()),
        "the file changes something"
    );
}

#[test]
fn pushwire_env_wins_over_centrifugo_env_and_both_over_the_file() {
    let c = effective(
        Some(&fixtures().join("trailfed.json")),
        &vars(&[
            ("CENTRIFUGO_HTTP_API_KEY", "from-centrifugo-env"),
            ("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "c"),
            ("PUSHWIRE_CLIENT__TOKEN__HMAC_SECRET_KEY", "p"),
            ("CENTRIFUGO_HTTP_SERVER_PORT", "9123"),
            ("CENTRIFUGO_CLIENT_PING_INTERVAL", "1m30s"),
        ]),
    );
    assert_eq!(c["http_api"]["key"], json!("from-centrifugo-env"));
    assert_eq!(c["client"]["token"]["hmac_secret_key"], json!("p"));
    assert_eq!(c["http_server"]["port"], json!(9123));
    assert_eq!(c["client"]["ping_interval"], json!("1m 30s"));
    assert_eq!(c["channel"]["namespaces"][1]["name"], json!("moderation"));
}

#[test]
fn unknown_centrifugo_env_vars_are_named() {
    let env = vars(&[("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET", "s")]);
    let a = analyze(None, &Overrides::default(), &env).unwrap();
    let e = format!("{:#}", finish(a).unwrap_err());
    assert!(
        e.contains("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET: unknown key"),
        "{e}"
    );
    assert!(
        e.contains("did you mean CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY?"),
        "{e}"
    );
}

#[test]
fn lenient_values_as_centrifugo_reads_them() {
    let dir = std::env::temp_dir().join(format!("pushwire-lenient-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("config.json");
    std::fs::write(
        &f,
        r#"{
          "http_server": {"port": "8123"},
          "log": {"level": "fatal"},
          "client": {"ping_interval": "1m", "pong_timeout": 5000000000, "channel_limit": "64"},
          "engine": {"type": "redis", "redis": {"address": ["127.0.0.1:6379"], "password": "pw", "db": 3, "io_timeout": "2s"}},
          "proxies": [{"name": "p", "endpoint": "http://127.0.0.1:1/x",
                       "http": {"static_headers": [{"key": "Authorization", "value": "Bearer ${CENTRIFUGO_VAR_TOKEN}"}]}}]
        }"#,
    )
    .unwrap();
    let c = effective(Some(&f), &vars(&[("CENTRIFUGO_VAR_TOKEN", "t0k")]));
    assert_eq!(c["http_server"]["port"], json!(8123));
    assert_eq!(c["log"]["level"], json!("error"));
    assert_eq!(c["client"]["ping_interval"], json!("1m"));
    assert_eq!(c["client"]["pong_timeout"], json!("5s"));
    assert_eq!(c["client"]["channel_limit"], json!(64));
    assert_eq!(
        c["engine"]["redis"]["address"],
        json!("redis://:pw@127.0.0.1:6379/3")
    );
    assert_eq!(c["engine"]["redis"]["command_timeout"], json!("2s"));
    assert_eq!(
        c["proxies"][0]["http"]["static_headers"]["Authorization"],
        json!("Bearer t0k")
    );
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    let e = format!("{:#}", finish(a).unwrap_err());
    assert!(e.contains("CENTRIFUGO_VAR_TOKEN is not set"), "{e}");
    assert!(e.contains("proxies[0].http.static_headers"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn v5_files_point_at_the_migration() {
    for f in ["v5-social-forge.json", "v5-golive.yaml"] {
        let e = format!(
            "{:#}",
            analyze(
                Some(&fixtures().join(f)),
                &Overrides::default(),
                &HashMap::new()
            )
            .unwrap_err()
        );
        assert!(e.contains("Centrifugo v5 configuration"), "{f}: {e}");
        assert!(e.contains("client.token.hmac_secret_key"), "{f}: {e}");
        assert!(e.contains("migration_v6"), "{f}: {e}");
    }
}

/// Sample value for a key of this Go type, to see whether pushwire's schema accepts the key.
fn sample(go_type: &str) -> Value {
    match go_type {
        "bool" => json!(true),
        t if t.starts_with("int") || t.starts_with("uint") || t.starts_with("float") => json!(1),
        "Duration" | "time.Duration" => json!("1s"),
        t if t.starts_with("[]") => json!([]),
        "MapStringString" | "StringKeyValues" => json!({}),
        t if t.starts_with("map[") => json!({}),
        _ => json!("x"),
    }
}

/// A tree holding `key` (catalogue form) set to `v`, with what a list element needs.
fn tree_with(key: &str, v: &Value) -> Value {
    let mut root = json!({});
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = &mut root;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if let Some(list) = p.strip_suffix("[]") {
            let mut elem = json!({});
            if matches!(list, "namespaces" | "proxies") {
                elem = json!({"name": "x"});
            }
            if list == "consumers" {
                elem = json!({"name": "x", "type": parts[i + 1], "enabled": false});
            }
            cur[list] = json!([elem]);
            cur = &mut cur[list][0];
        } else if last {
            cur[*p] = v.clone();
        } else {
            if cur.get(*p).is_none() {
                cur[*p] = json!({});
            }
            cur = &mut cur[*p];
        }
    }
    root
}

/// Every key the catalogue calls implemented (and every rename target) is accepted by
/// pushwire's typed configuration, unless it waits for another branch.
#[test]
fn implemented_keys_exist_in_pushwire() {
    let mut missing = Vec::new();
    for e in Catalogue::get().entries() {
        let key = match e.class {
            Class::Same if !e.pending() && !e.is_object_list() => e.key.to_string(),
            Class::Map(to) if to.contains('.') => to.to_string(),
            Class::Map(to) => format!("{}.{to}", e.key.rsplit_once('.').unwrap().0),
            _ => continue,
        };
        if key.starts_with("consumers[].") {
            continue; // consumer sections need a full source to deserialize; see below.
        }
        let tree = tree_with(&key, &sample(e.go_type));
        let fig = figment::Figment::from(figment::providers::Serialized::defaults(
            ServerConfig::default(),
        ))
        .merge(figment::providers::Serialized::defaults(&tree));
        if let Err(err) = fig.extract::<ServerConfig>() {
            let unknown = err
                .into_iter()
                .any(|e| matches!(e.kind, figment::error::Kind::UnknownField(..)));
            if unknown {
                missing.push(format!("{} ({key})", e.key));
            }
        }
    }
    assert!(missing.is_empty(), "not accepted by pushwire: {missing:#?}");
}

/// Pushwire keys that Centrifugo also has are classed as implemented or translated, never
/// dropped or refused (that would throw away a pushwire setting).
#[test]
fn pushwire_keys_are_not_dropped_as_centrifugo_ones() {
    fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(v, &p, out);
                }
            }
            Value::Array(a) if a.first().is_some_and(Value::is_object) => {
                leaves(&a[0], &format!("{prefix}[]"), out)
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut c = ServerConfig::default();
    c.channel.namespaces.push(Default::default());
    c.rpc.namespaces.push(Default::default());
    c.proxies.push(Default::default());
    let mut keys = Vec::new();
    leaves(&serde_json::to_value(&c).unwrap(), "", &mut keys);
    let mut wrong = Vec::new();
    for k in keys {
        let k = k.replace("namespaces[].options.", "namespaces[].");
        if let Some(e) = Catalogue::get().lookup(&k)
            && matches!(
                e.class,
                Class::Ignore | Class::Refuse | Class::Covered | Class::Map(_)
            )
        {
            wrong.push(k);
        }
    }
    assert!(
        wrong.is_empty(),
        "pushwire keys classed as dropped: {wrong:?}"
    );
}

/// A pushwire configuration written out by pushwire (as test nodes and `--print-effective`
/// do) reads back as the same configuration: translation leaves pushwire's own keys alone.
#[test]
fn pushwire_written_config_reads_back_unchanged() {
    let mut c = ServerConfig::default();
    c.client.token.hmac_secret_key = "s".into();
    c.client.allowed_origins = vec!["https://a.example".into()];
    c.channel.namespaces.push(namespace("chat"));
    c.engine.kind = crate::config::EngineKind::Redis;
    c.engine.redis.address = "redis://127.0.0.1:6379".into();
    let want = serde_json::to_value(&c).unwrap();
    let dir = std::env::temp_dir().join(format!("pushwire-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("config.json");
    std::fs::write(&f, serde_json::to_string_pretty(&c).unwrap()).unwrap();
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    assert!(a.report.warnings().is_empty(), "{:?}", a.report.warnings());
    assert_eq!(effective(Some(&f), &HashMap::new()), want);
    std::fs::remove_dir_all(&dir).ok();
}

fn namespace(name: &str) -> pushwire_core::config::NamespaceConfig {
    let mut ns = pushwire_core::config::NamespaceConfig {
        name: name.into(),
        ..Default::default()
    };
    ns.options.presence = true;
    ns.options.history_size = 10;
    ns.options.history_ttl = std::time::Duration::from_secs(300);
    ns
}

/// YAML files get the same errors naming the key path as TOML and JSON.
#[test]
fn yaml_errors_name_the_key_path() {
    let dir = std::env::temp_dir().join(format!("pushwire-yaml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("config.yml");
    std::fs::write(&f, "client:\n  ping_interval: soon\n").unwrap();
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    let e = format!("{:#}", finish(a).unwrap_err());
    assert!(e.contains("client.ping_interval"), "{e}");
    std::fs::write(
        &f,
        "channel:\n  namespaces:\n    - name: chat\n      presense: true\n",
    )
    .unwrap();
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    let e = format!("{:#}", finish(a).unwrap_err());
    assert!(
        e.contains("channel.namespaces[0].presense: unknown key"),
        "{e}"
    );
    assert!(
        e.contains("did you mean channel.namespaces[].presence?"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Numbers where strings are expected (an API key `12345` from the environment, as Centrifugo's
/// weak decoding takes it) are read as the strings they were written as.
#[test]
fn numbers_given_for_strings_are_read_as_strings() {
    let c = effective(
        None,
        &vars(&[
            ("PUSHWIRE_HTTP_API__KEY", "12345"),
            ("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "67890"),
            ("PUSHWIRE_ADMIN__PASSWORD", "true"),
        ]),
    );
    assert_eq!(c["http_api"]["key"], json!("12345"));
    assert_eq!(c["client"]["token"]["hmac_secret_key"], json!("67890"));
    assert_eq!(c["admin"]["password"], json!("true"));
}

/// One string where a list is expected, and a one-element list where one value is expected,
/// are read as Centrifugo's weak decoding reads them; a real type error still names the key.
#[test]
fn single_values_and_one_element_lists() {
    let c = effective(
        None,
        &vars(&[
            ("PUSHWIRE_CLIENT__ALLOWED_ORIGINS", "https://one.example"),
            ("PUSHWIRE_HTTP_API__KEY", "[\"k\"]"),
        ]),
    );
    assert_eq!(
        c["client"]["allowed_origins"],
        json!(["https://one.example"])
    );
    assert_eq!(c["http_api"]["key"], json!("k"));
    let a = analyze(
        None,
        &Overrides::default(),
        &vars(&[("PUSHWIRE_HTTP_API__KEY", "[\"a\", \"b\"]")]),
    )
    .unwrap();
    let e = format!("{:#}", finish(a).unwrap_err());
    assert!(e.contains("http_api.key"), "{e}");
}

/// `PUSHWIRE_*` variables naming Centrifugo keys get the same treatment as the file.
#[test]
fn pushwire_env_naming_centrifugo_keys_is_translated_too() {
    let a = analyze(
        None,
        &Overrides::default(),
        &vars(&[("PUSHWIRE_UNI_GRPC__ENABLED", "true")]),
    )
    .unwrap();
    let e = format!("{:#}", finish(a).unwrap_err());
    assert!(e.contains("uni_grpc.enabled (from PUSHWIRE_*)"), "{e}");
    let c = effective(None, &vars(&[("PUSHWIRE_ENGINE__REDIS__IO_TIMEOUT", "3s")]));
    assert_eq!(c["engine"]["redis"]["command_timeout"], json!("3s"));
}

/// TLS certificates given as file paths move to pushwire's `*_pem_file` keys; inline PEM is
/// refused naming the key.
#[test]
fn tls_pem_paths_are_mapped_and_inline_pem_refused() {
    let dir = std::env::temp_dir().join(format!("pushwire-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("config.json");
    std::fs::write(
        &f,
        r#"{"http_server": {"tls": {"enabled": true, "cert_pem": "/etc/tls/cert.pem", "key_pem": "/etc/tls/key.pem"}}}"#,
    )
    .unwrap();
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    let c = a.config.unwrap();
    assert_eq!(
        c.http_server.tls.cert_pem_file,
        std::path::PathBuf::from("/etc/tls/cert.pem")
    );
    assert_eq!(
        c.http_server.tls.key_pem_file,
        std::path::PathBuf::from("/etc/tls/key.pem")
    );
    std::fs::write(
        &f,
        r#"{"http_server": {"tls": {"enabled": true, "cert_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}}}"#,
    )
    .unwrap();
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    let e = format!("{:#}", finish(a).unwrap_err());
    assert!(
        e.contains("http_server.tls.cert_pem: inline PEM is not supported"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `engine.redis.sentinel_tls.enabled` is pushwire's own key; its `server_ca_pem` path moves
/// to `server_ca_pem_file`; `insecure_skip_verify` is refused. `engine.redis.tls.enabled`
/// turns the address into `rediss://` (the master's TLS under Sentinel).
#[test]
fn redis_sentinel_tls_keys_are_mapped() {
    let dir = std::env::temp_dir().join(format!("pushwire-stls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("config.json");
    std::fs::write(
        &f,
        r#"{"engine": {"type": "redis", "redis": {"address": "127.0.0.1:6379", "tls": {"enabled": true}, "sentinel_address": ["127.0.0.1:26379"], "sentinel_master_name": "m", "sentinel_tls": {"enabled": true, "server_ca_pem": "/etc/tls/ca.pem"}}}}"#,
    )
    .unwrap();
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    let c = a.config.unwrap();
    assert!(c.engine.redis.sentinel_tls.enabled);
    assert_eq!(c.engine.redis.address.urls(), ["rediss://127.0.0.1:6379"]);
    assert_eq!(
        c.engine.redis.sentinel_tls.server_ca_pem_file,
        "/etc/tls/ca.pem"
    );
    std::fs::write(
        &f,
        r#"{"engine": {"type": "redis", "redis": {"sentinel_address": ["127.0.0.1:26379"], "sentinel_master_name": "m", "sentinel_tls": {"enabled": true, "insecure_skip_verify": true}}}}"#,
    )
    .unwrap();
    let a = analyze(Some(&f), &Overrides::default(), &HashMap::new()).unwrap();
    let e = format!("{:#}", finish(a).unwrap_err());
    assert!(
        e.contains("engine.redis.sentinel_tls.insecure_skip_verify"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
