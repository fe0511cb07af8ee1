//! Proxy definitions: `client.proxy.connect` / `refresh` / `send`, `channel.proxy.subscribe` /
//! `publish` / `sub_refresh`, `rpc.proxy`, and the named ones under `proxies`.
//!
//! Key names follow Centrifugo v6. The core only reads these as data (which proxy a call goes
//! to, which request headers a client keeps); the server turns each definition into an HTTP
//! client.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Which event a proxy call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// `client.proxy.connect`.
    Connect,
    /// `client.proxy.refresh`.
    Refresh,
    /// `channel.proxy.subscribe`.
    Subscribe,
    /// `channel.proxy.publish`.
    Publish,
    /// `channel.proxy.sub_refresh`.
    SubRefresh,
    /// `rpc.proxy`.
    Rpc,
    /// `client.proxy.send` (pushwire extension: one-way client messages).
    Send,
}

impl ProxyKind {
    /// Every kind.
    pub const ALL: [ProxyKind; 7] = [
        ProxyKind::Connect,
        ProxyKind::Refresh,
        ProxyKind::Subscribe,
        ProxyKind::Publish,
        ProxyKind::SubRefresh,
        ProxyKind::Rpc,
        ProxyKind::Send,
    ];

    /// Lower-case name, also the name of the kind's default proxy in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyKind::Connect => "connect",
            ProxyKind::Refresh => "refresh",
            ProxyKind::Subscribe => "subscribe",
            ProxyKind::Publish => "publish",
            ProxyKind::SubRefresh => "sub_refresh",
            ProxyKind::Rpc => "rpc",
            ProxyKind::Send => "send",
        }
    }

    /// Config key of the kind's default proxy.
    pub fn key(self) -> &'static str {
        match self {
            ProxyKind::Connect => "client.proxy.connect",
            ProxyKind::Refresh => "client.proxy.refresh",
            ProxyKind::Send => "client.proxy.send",
            ProxyKind::Subscribe => "channel.proxy.subscribe",
            ProxyKind::Publish => "channel.proxy.publish",
            ProxyKind::SubRefresh => "channel.proxy.sub_refresh",
            ProxyKind::Rpc => "rpc.proxy",
        }
    }
}

/// `http.tls` / `grpc.tls` of a proxy: TLS to the backend (Centrifugo v6 `TLSConfig`, client
/// side). A PEM value is a file path, the PEM text itself, or the PEM text in base64.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyTlsConfig {
    /// Use these settings (`https://` endpoints, or TLS for `grpc://`).
    pub enabled: bool,
    /// Client certificate chain for mutual TLS (with `key_pem`).
    pub cert_pem: String,
    /// Private key of `cert_pem`.
    pub key_pem: String,
    /// Root certificates the backend's certificate must chain to; empty = the system roots.
    pub server_ca_pem: String,
    /// No verification of the backend's certificate (testing only).
    pub insecure_skip_verify: bool,
    /// Name the backend's certificate is verified against (and the gRPC SNI) instead of the
    /// endpoint's host.
    pub server_name: String,
}

impl ProxyTlsConfig {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if self.cert_pem.is_empty() != self.key_pem.is_empty() {
            let missing = if self.cert_pem.is_empty() {
                "cert_pem"
            } else {
                "key_pem"
            };
            return Err(ConfigError::new(
                format!("{key}.{missing}"),
                "cert_pem and key_pem go together",
            ));
        }
        Ok(())
    }
}

/// `http.*` of a proxy.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyHttpConfig {
    /// `http.tls`: TLS settings for an `https://` endpoint (without them: system roots).
    pub tls: ProxyTlsConfig,
    /// Headers added to every request; forwarded client headers win over them.
    pub static_headers: BTreeMap<String, String>,
    /// HTTP statuses answered as an error or a disconnect instead of a failure (100).
    pub status_to_code_transforms: Vec<StatusTransform>,
}

/// One `http.status_to_code_transforms` entry: a backend status that means an answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusTransform {
    /// The HTTP status it applies to.
    pub status_code: u16,
    /// Answer with this error (used when its code is set).
    pub to_error: TransformError,
    /// Else close the connection with this disconnect (used when its code is set).
    pub to_disconnect: TransformDisconnect,
}

/// `to_error` of a status transform.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformError {
    /// Error code (0 = unset).
    pub code: u32,
    /// Error message.
    pub message: String,
    /// Whether the SDK may retry.
    pub temporary: bool,
}

/// `to_disconnect` of a status transform.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformDisconnect {
    /// Disconnect code (0 = unset).
    pub code: u32,
    /// Disconnect reason.
    pub reason: String,
}

/// `grpc.*` of a proxy.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyGrpcConfig {
    /// `grpc.tls`: TLS to the gRPC backend (without it: plain-text HTTP/2).
    pub tls: ProxyTlsConfig,
    /// Metadata added to every call; forwarded client headers win over it.
    pub static_metadata: BTreeMap<String, String>,
}

/// `circuit_breaker.*` of a proxy, and `engine.redis.circuit_breaker.*` (pushwire extensions).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the breaker; 0 turns it off. A proxy counts timeouts,
    /// connection errors, non-200 answers and bad bodies; the Redis engine timeouts and
    /// connection errors (not Redis' error replies).
    pub failures: u32,
    /// How long an open breaker fails every call at once before one trial call goes through.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failures: 5,
            open_for: Duration::from_secs(2),
        }
    }
}

/// One proxy definition (Centrifugo's `Proxy` plus pushwire's protection keys).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Name, under `proxies` only; namespaces refer to it with `*_proxy_name`.
    pub name: String,
    /// `client.proxy.connect` / `refresh` / `send` only: turns the proxy on.
    pub enabled: bool,
    /// `http://` or `https://` URL the JSON request is POSTed to, or `grpc://host:port` for
    /// Centrifugo's gRPC proxy service (HTTP/2, over TLS with `grpc.tls`).
    pub endpoint: String,
    /// Deadline of one call, waiting for a free slot included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Request headers of the client's HTTP connection forwarded to the backend
    /// (case-insensitive; `Cookie` forwards the cookies).
    pub http_headers: Vec<String>,
    /// Headers taken from the client's connect command (`headers`, sent by SDKs that emulate
    /// headers, e.g. centrifuge-js's `headers` option) and forwarded (case-insensitive). Their
    /// values are client-controlled; a real HTTP header of the same name wins.
    pub emulated_headers: Vec<String>,
    /// Send the connection's `meta` (from the connect proxy or token) with every request
    /// but connect.
    pub include_connection_meta: bool,
    /// Send payloads as `b64data` instead of raw JSON `data`.
    pub binary_encoding: bool,
    /// `http.static_headers`.
    pub http: ProxyHttpConfig,
    /// `grpc.static_metadata`.
    pub grpc: ProxyGrpcConfig,
    /// Calls in flight to this proxy at once; further calls wait for a slot within `timeout`,
    /// then fail with 100 (counted as rejected).
    pub max_in_flight: usize,
    /// Largest response body in bytes; a larger one is a failure.
    pub max_response_size: usize,
    /// Fails calls at once while the backend is down.
    pub circuit_breaker: CircuitBreakerConfig,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            name: String::new(),
            enabled: false,
            endpoint: String::new(),
            timeout: Duration::from_secs(1),
            http_headers: Vec::new(),
            emulated_headers: Vec::new(),
            include_connection_meta: false,
            binary_encoding: false,
            http: ProxyHttpConfig::default(),
            grpc: ProxyGrpcConfig::default(),
            max_in_flight: 64,
            max_response_size: 1024 * 1024,
            circuit_breaker: CircuitBreakerConfig::default(),
        }
    }
}

impl ProxyConfig {
    /// Checks the endpoint scheme and the limits; `key` is the definition's key.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let e = &self.endpoint;
        if e.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.endpoint"),
                "must be set for a proxy in use",
            ));
        }
        if !(e.starts_with("http://") || e.starts_with("https://") || e.starts_with("grpc://")) {
            return Err(ConfigError::new(
                format!("{key}.endpoint"),
                format!("{e:?} is not an http://, https:// or grpc:// URL"),
            ));
        }
        if self.http.tls.enabled && !e.starts_with("https://") {
            return Err(ConfigError::new(
                format!("{key}.http.tls.enabled"),
                "needs an https:// endpoint",
            ));
        }
        if self.grpc.tls.enabled && !e.starts_with("grpc://") {
            return Err(ConfigError::new(
                format!("{key}.grpc.tls.enabled"),
                "needs a grpc:// endpoint",
            ));
        }
        self.http.tls.validate(&format!("{key}.http.tls"))?;
        self.grpc.tls.validate(&format!("{key}.grpc.tls"))?;
        for (i, t) in self.http.status_to_code_transforms.iter().enumerate() {
            if t.to_error.code == 0 && t.to_disconnect.code == 0 {
                return Err(ConfigError::new(
                    format!("{key}.http.status_to_code_transforms[{i}]"),
                    "needs to_error.code or to_disconnect.code",
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(format!("{key}.timeout"), "must be > 0"));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::new(
                format!("{key}.max_in_flight"),
                "must be > 0",
            ));
        }
        if self.max_response_size < 64 {
            return Err(ConfigError::new(
                format!("{key}.max_response_size"),
                "must be at least 64 bytes",
            ));
        }
        Ok(())
    }
}

/// `client.proxy.*`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientProxyConfig {
    /// Connect without a token goes to the backend.
    pub connect: ProxyConfig,
    /// Expiring connections are extended (or ended) by the backend.
    pub refresh: ProxyConfig,
    /// Client `send` messages go to the backend (pushwire extension).
    pub send: ProxyConfig,
}

/// `channel.proxy.*`: the default (`"default"`) proxy of each channel event.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelProxyConfig {
    /// Subscribe decisions.
    pub subscribe: ProxyConfig,
    /// Publish decisions and rewrites.
    pub publish: ProxyConfig,
    /// Extension of expiring subscriptions.
    pub sub_refresh: ProxyConfig,
}

/// RPC options of a method namespace.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcOptions {
    /// Methods of this namespace go to the RPC proxy.
    pub proxy_enabled: bool,
    /// Named proxy (under `proxies`) to use; empty or `default` is `rpc.proxy`.
    pub proxy_name: String,
}

/// `rpc.namespaces[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcNamespace {
    /// Namespace name: methods `name:method` use it.
    pub name: String,
    /// See [`RpcOptions::proxy_enabled`].
    pub proxy_enabled: bool,
    /// See [`RpcOptions::proxy_name`].
    pub proxy_name: String,
}

/// `rpc.*`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// The default RPC proxy.
    pub proxy: ProxyConfig,
    /// Options of methods without a namespace.
    pub without_namespace: RpcOptions,
    /// Method namespaces.
    pub namespaces: Vec<RpcNamespace>,
    /// Separator between the namespace and the method.
    pub namespace_boundary: String,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            proxy: ProxyConfig::default(),
            without_namespace: RpcOptions::default(),
            namespaces: Vec::new(),
            namespace_boundary: ":".into(),
        }
    }
}

impl RpcConfig {
    /// The options of `method`: its namespace's, or `without_namespace` when it has none;
    /// `None` for an unknown namespace (the client gets 104).
    pub fn options(&self, method: &str) -> Option<RpcOptions> {
        match method.split_once(self.namespace_boundary.as_str()) {
            Some((ns, _)) => self
                .namespaces
                .iter()
                .find(|n| n.name == ns)
                .map(|n| RpcOptions {
                    proxy_enabled: n.proxy_enabled,
                    proxy_name: n.proxy_name.clone(),
                }),
            None => Some(self.without_namespace.clone()),
        }
    }
}

/// Whether `name` refers to the kind's default proxy.
pub fn is_default_name(name: &str) -> bool {
    name.is_empty() || name == "default"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_scheme_is_checked_naming_the_key() {
        let mut p = ProxyConfig {
            endpoint: "ftp://x".into(),
            ..Default::default()
        };
        assert_eq!(
            p.validate("client.proxy.connect").unwrap_err().key,
            "client.proxy.connect.endpoint"
        );
        p.endpoint = "grpc://127.0.0.1:1".into();
        p.validate("k").unwrap();
        p.endpoint = "tcp://127.0.0.1:1".into();
        assert!(p.validate("k").is_err());
        p.endpoint = "https://backend/connect".into();
        p.validate("k").unwrap();
    }

    #[test]
    fn tls_settings_match_the_endpoint_and_name_their_key() {
        let mut p = ProxyConfig {
            endpoint: "http://backend/connect".into(),
            ..Default::default()
        };
        p.http.tls.enabled = true;
        assert_eq!(
            p.validate("rpc.proxy").unwrap_err().key,
            "rpc.proxy.http.tls.enabled"
        );
        p.endpoint = "https://backend/connect".into();
        p.validate("rpc.proxy").unwrap();
        p.http.tls.cert_pem = "/etc/cert.pem".into();
        assert_eq!(
            p.validate("rpc.proxy").unwrap_err().key,
            "rpc.proxy.http.tls.key_pem"
        );
        p.http.tls = ProxyTlsConfig::default();
        p.grpc.tls.enabled = true;
        assert_eq!(
            p.validate("rpc.proxy").unwrap_err().key,
            "rpc.proxy.grpc.tls.enabled"
        );
        p.endpoint = "grpc://backend:1".into();
        p.validate("rpc.proxy").unwrap();
    }

    #[test]
    fn rpc_methods_resolve_to_their_namespace() {
        let c = RpcConfig {
            without_namespace: RpcOptions {
                proxy_enabled: true,
                proxy_name: String::new(),
            },
            namespaces: vec![RpcNamespace {
                name: "admin".into(),
                proxy_enabled: false,
                proxy_name: "x".into(),
            }],
            ..Default::default()
        };
        assert!(c.options("getUser").unwrap().proxy_enabled);
        assert!(!c.options("admin:kick").unwrap().proxy_enabled);
        assert!(c.options("nope:kick").is_none());
    }
}
