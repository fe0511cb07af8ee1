//! Recognises Centrifugo v5 configuration files (flat keys) so they fail with a pointer to
//! Centrifugo's own v5 → v6 migration instead of a list of unknown keys.
//!
//! Centrifugo v6 does not read v5 files either (it would start with every key ignored), and a
//! guessed translation of security settings is not something to do silently in production: a
//! v5 file is always an error, whatever `config.unknown_keys` says.

use serde_json::Value;

/// Common v5 keys and their v6 paths (shown in the error as examples).
const V5_KEYS: &[(&str, &str)] = &[
    ("token_hmac_secret_key", "client.token.hmac_secret_key"),
    ("token_rsa_public_key", "client.token.rsa_public_key"),
    ("token_ecdsa_public_key", "client.token.ecdsa_public_key"),
    (
        "token_jwks_public_endpoint",
        "client.token.jwks_public_endpoint",
    ),
    ("token_audience", "client.token.audience"),
    ("token_issuer", "client.token.issuer"),
    ("api_key", "http_api.key"),
    ("api_insecure", "http_api.insecure"),
    ("admin_password", "admin.password"),
    ("admin_secret", "admin.secret"),
    ("admin_insecure", "admin.insecure"),
    ("allowed_origins", "client.allowed_origins"),
    ("namespaces", "channel.namespaces"),
    ("client_insecure", "client.insecure"),
    (
        "allow_anonymous_connect_without_token",
        "client.allow_anonymous_connect_without_token",
    ),
    ("client_channel_limit", "client.channel_limit"),
    ("client_queue_max_size", "client.queue_max_size"),
    ("redis_address", "engine.redis.address"),
    ("redis_prefix", "engine.redis.prefix"),
    ("presence", "channel.without_namespace.presence"),
    ("join_leave", "channel.without_namespace.join_leave"),
    ("history_size", "channel.without_namespace.history_size"),
    ("history_ttl", "channel.without_namespace.history_ttl"),
    ("force_recovery", "channel.without_namespace.force_recovery"),
    (
        "allow_subscribe_for_client",
        "channel.without_namespace.allow_subscribe_for_client",
    ),
    (
        "allow_publish_for_subscriber",
        "channel.without_namespace.allow_publish_for_subscriber",
    ),
    (
        "allow_publish_for_client",
        "channel.without_namespace.allow_publish_for_client",
    ),
    ("proxy_connect_endpoint", "client.proxy.connect.endpoint"),
    ("proxy_rpc_endpoint", "rpc.proxy.endpoint"),
    ("port", "http_server.port"),
    ("address", "http_server.address"),
    ("internal_port", "http_server.internal_port"),
    ("log_level", "log.level"),
    ("tls_cert", "http_server.tls.cert_pem"),
    ("tls_key", "http_server.tls.key_pem"),
    ("websocket_compression", "websocket.compression"),
    (
        "websocket_compression_min_size",
        "websocket.compression_min_size",
    ),
    ("websocket_compression_level", "websocket.compression_level"),
    (
        "websocket_message_size_limit",
        "websocket.message_size_limit",
    ),
    ("ping_interval", "client.ping_interval"),
    (
        "user_subscribe_to_personal",
        "client.subscribe_to_user_personal_channel.enabled",
    ),
];

/// v6 sections that v5 had as booleans or strings (`"admin": true`, `"engine": "redis"`).
const V5_SCALAR_SECTIONS: &[(&str, &str)] = &[
    ("admin", "admin.enabled"),
    ("prometheus", "prometheus.enabled"),
    ("health", "health.enabled"),
    ("swagger", "swagger.enabled"),
    ("debug", "debug.enabled"),
    ("engine", "engine.type"),
    ("uni_websocket", "uni_websocket.enabled"),
    ("uni_sse", "uni_sse.enabled"),
    ("sse", "sse.enabled"),
    ("http_stream", "http_stream.enabled"),
];

/// `Some(error text)` when the top level of `root` is shaped like a Centrifugo v5 file.
pub fn detect(root: &Value) -> Option<String> {
    let top = root.as_object()?;
    let mut found: Vec<String> = Vec::new();
    for (k, v6) in V5_KEYS {
        if top.contains_key(*k) {
            found.push(format!("`{k}` (v6: `{v6}`)"));
        }
    }
    for (k, v6) in V5_SCALAR_SECTIONS {
        if matches!(top.get(*k), Some(Value::Bool(_) | Value::String(_))) {
            found.push(format!("`{k}` as a value (v6: `{v6}`)"));
        }
    }
    if found.is_empty() {
        return None;
    }
    found.truncate(6);
    Some(format!(
        "this looks like a Centrifugo v5 configuration: {} … Neither Centrifugo v6 nor \
         pushwire reads v5 keys. Convert the file with Centrifugo's v5 → v6 migration guide and \
         its configuration converter (https://centrifugal.dev/docs/getting-started/migration_v6), \
         then check it with `pushwire checkconfig --centrifugo FILE`",
        found.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v5_files_are_named_and_v6_files_pass() {
        let e = detect(&json!({"token_hmac_secret_key": "s", "admin": true})).unwrap();
        assert!(e.contains("client.token.hmac_secret_key"), "{e}");
        assert!(e.contains("admin.enabled"), "{e}");
        assert!(e.contains("migration_v6"), "{e}");
        let e = detect(&json!({"websocket_compression_level": 3})).unwrap();
        assert!(e.contains("websocket.compression_level"), "{e}");
        assert!(detect(
            &json!({"client": {"token": {"hmac_secret_key": "s"}}, "admin": {"enabled": true}})
        )
        .is_none());
    }
}
