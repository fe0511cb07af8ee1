//! The server's configuration: loaded once at start, layered, validated, then read-only.
//!
//! Layers, later wins: built-in defaults → TOML, JSON or YAML file (`--config`) →
//! `CENTRIFUGO_*` environment (Centrifugo v6's names, [`centrifugo::env`]) → `PUSHWIRE_*`
//! environment (`__` between key segments: `PUSHWIRE_HTTP_SERVER__PORT=9000` sets
//! `http_server.port`, `PUSHWIRE_CLIENT__ALLOWED_ORIGINS='["https://a.example"]'` sets a list)
//! → command-line flags. Centrifugo v6 keys are translated ([`centrifugo`]). Unknown keys and
//! bad values stop start-up with the key named (`config.unknown_keys = "warn"` lets unknown
//! keys through with one warning each).

pub mod admin;
mod broker;
pub mod centrifugo;
mod engine;
mod grpc_api;
mod lifecycle;
mod listen;
mod load;
mod template;

pub use broker::{BrokerConfig, BrokerKind};
pub use engine::{EngineConfig, EngineKind};
pub use grpc_api::GrpcApiConfig;
pub use lifecycle::{LifecycleConfig, SinkConfig, SinkKind};
pub use listen::TlsConfig;
pub use load::{analyze, finish, load, load_with_warnings, Analysis, Loaded, Overrides};
pub use template::STARTER_CONFIG;

use std::time::Duration;

use pushwire_core::config::{
    ChannelConfig, ClientConfig, ClusterConfig, ConfigError, NodeConfig, ProxyConfig, RpcConfig,
};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `http_server.*`: the listener.
    pub http_server: HttpServerConfig,
    /// `http_api.*`: the server API.
    pub http_api: HttpApiConfig,
    /// `grpc_api.*`: the gRPC server API (off by default).
    pub grpc_api: GrpcApiConfig,
    /// `client.*`: connections.
    pub client: ClientConfig,
    /// `channel.*`: namespaces.
    pub channel: ChannelConfig,
    /// `websocket.*`: the WebSocket transport.
    pub websocket: WebsocketConfig,
    /// `log.*`: logging.
    pub log: LogConfig,
    /// `shutdown.*`: graceful stop.
    pub shutdown: ShutdownConfig,
    /// `node.*`: identity.
    pub node: NodeSection,
    /// `long_poll.*`: long-polling and polling endpoints.
    pub long_poll: LongPollConfig,
    /// `admin.*`: the admin web page (off by default).
    pub admin: admin::AdminConfig,
    /// `engine.*`: memory, embedded or Redis.
    pub engine: EngineConfig,
    /// `broker.*`: a standalone broker (NATS) in place of the engine's.
    pub broker: BrokerConfig,
    /// `consumers`: message queues consumed into channels (docs/consumers.md).
    pub consumers: Vec<pushwire_consumers::ConsumerConfig>,
    /// `lifecycle.*`: lifecycle events and their sinks.
    pub lifecycle: LifecycleConfig,
    /// `rpc.*`: the RPC proxy and method namespaces (docs/proxies.md).
    pub rpc: RpcConfig,
    /// `proxies`: named proxy definitions (docs/proxies.md).
    pub proxies: Vec<ProxyConfig>,
    /// `config.*`: how the configuration itself is read.
    pub config: ConfigSection,
}

/// `config.*`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigSection {
    /// `error` (default): a key that is neither a Centrifugo v6 key nor a pushwire key stops
    /// start-up naming it; `warn`: it is ignored with one warning (Centrifugo's behaviour).
    pub unknown_keys: UnknownKeys,
}

/// What an unknown configuration key does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownKeys {
    /// Start-up error naming the key.
    #[default]
    Error,
    /// One warning per key; the key is ignored.
    Warn,
}

/// `long_poll.*`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LongPollConfig {
    /// How long a long-poll is held when the request does not say.
    #[serde(with = "humantime_serde")]
    pub default_timeout: Duration,
    /// Longest hold a request may ask for.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// Long-polls held at once per token (or per address without a token); 429 beyond.
    pub max_concurrent_per_client: usize,
}

impl Default for LongPollConfig {
    fn default() -> Self {
        LongPollConfig {
            default_timeout: Duration::from_secs(25),
            max_timeout: Duration::from_secs(60),
            max_concurrent_per_client: 4,
        }
    }
}

/// `http_server.*`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Address to bind; loopback by default.
    pub address: String,
    /// Port to bind; 0 picks a free port.
    pub port: u16,
    /// Most TCP connections served at once; a connection beyond it gets HTTP 503 and is closed.
    pub max_connections: usize,
    /// `http_server.tls.*`: HTTPS (HTTP/1.1 and HTTP/2 by ALPN).
    pub tls: TlsConfig,
    /// A new connection must finish its TLS handshake (without TLS: send its first bytes)
    /// within this delay, else it is closed.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// HTTP/1 request headers must arrive in full within this delay (it is also the idle
    /// limit of a keep-alive connection between requests), else the connection is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) in bytes: HTTP/1 answers 431 beyond
    /// it, HTTP/2 refuses the stream.
    pub max_header_size: usize,
    /// Streams one HTTP/2 connection may have open at once.
    pub http2_max_concurrent_streams: u32,
    /// An HTTP/2 connection with no request in flight (a streaming response counts until it
    /// ends) for this long is shut down with GOAWAY. HTTP/1 has `header_read_timeout`.
    #[serde(with = "humantime_serde")]
    pub http2_idle_timeout: Duration,
    /// A connection whose peer accepts no byte for this long while the server has bytes for it
    /// (its socket's send buffer stays full) is closed: a stalled HTTP-streaming or SSE reader
    /// frees its socket and `max_connections` permit. WebSocket writes also have
    /// `websocket.write_timeout`.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// A request body must arrive in full within this delay from the request head, else the
    /// answer is 408 and the connection closes (every endpoint: `/api`, `/emulation`, the
    /// connection endpoints).
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Connection attempts per second one IP may make on the connection endpoints (0 =
    /// unlimited); HTTP 429 beyond it.
    pub connect_rate_per_ip: u32,
    /// Connection attempts one IP may make in a burst.
    pub connect_burst_per_ip: u32,
    /// Connection attempts per second the whole node accepts (0 = unlimited); HTTP 503 with
    /// `Retry-After: 1` beyond it, so a reconnect storm is absorbed instead of melting the node.
    pub connect_rate_per_node: u32,
    /// Connection attempts the node accepts in a burst.
    pub connect_burst_per_node: u32,
    /// IPs whose connect rate is tracked at once; IPs beyond it share one bucket.
    pub connect_rate_max_ips: usize,
    /// Largest request body of the connection endpoints and `/emulation` in bytes; 413 beyond.
    pub connection_body_size_limit: usize,
    /// Listen queue length of the listening sockets (connections the kernel holds before they
    /// are accepted; capped by `net.core.somaxconn`). A connect storm beyond it loses SYNs,
    /// which clients retry after 1 s.
    pub listen_backlog: u32,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client for
    /// the per-IP limits and logs. Empty (the default): the TCP peer is the client and the
    /// header is ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            address: "127.0.0.1".into(),
            port: 8000,
            max_connections: 100_000,
            tls: TlsConfig::default(),
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_header_size: 16 * 1024,
            http2_max_concurrent_streams: 128,
            http2_idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            connect_rate_per_ip: 100,
            connect_burst_per_ip: 500,
            connect_rate_per_node: 0,
            connect_burst_per_node: 2000,
            connect_rate_max_ips: 100_000,
            connection_body_size_limit: 65536,
            listen_backlog: 4096,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `http_api.*`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpApiConfig {
    /// API key expected in `X-API-Key` or `Authorization: apikey <key>`. Empty refuses every
    /// call unless `insecure`.
    pub key: String,
    /// No key check (for development behind a trusted network only).
    pub insecure: bool,
    /// Largest request body in bytes (413 beyond it).
    pub max_body_size: usize,
    /// `""`: errors are HTTP 200 with `{"error":…}`; `transport`: HTTP statuses with the bare
    /// error (a request can also ask with `X-Centrifugo-Error-Mode: transport`).
    pub error_mode: ApiErrorMode,
    /// Address of a separate listener for the server API; empty (the default) serves the API
    /// on the main listener.
    pub address: String,
    /// Port of the separate API listener (0 picks a free port); needs `address`.
    pub port: u16,
    /// Commands one `batch` (or one legacy `/api` body) may hold; more is refused with 106.
    pub batch_max_commands: usize,
    /// Once a batch's replies pass this many bytes, its remaining commands answer 106 instead
    /// of running (a batch of `history limit -1` calls cannot build a reply of hundreds of MB).
    pub batch_max_reply_size: usize,
}

/// How the server API reports errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum ApiErrorMode {
    /// HTTP 200 with `{"error":{…}}`.
    #[default]
    #[serde(rename = "")]
    Body,
    /// HTTP status per error code, the bare error object as body.
    #[serde(rename = "transport")]
    Transport,
}

impl Default for HttpApiConfig {
    fn default() -> Self {
        HttpApiConfig {
            key: String::new(),
            insecure: false,
            max_body_size: 1024 * 1024,
            error_mode: ApiErrorMode::Body,
            address: String::new(),
            port: 0,
            batch_max_commands: pushwire_core::config::ApiLimits::default().batch_max_commands,
            batch_max_reply_size: pushwire_core::config::ApiLimits::default().batch_max_reply_size,
        }
    }
}

/// `websocket.*`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebsocketConfig {
    /// Largest incoming message in bytes; beyond it the connection closes with 1009.
    pub message_size_limit: usize,
    /// Read buffer per connection in bytes.
    pub read_buffer_size: usize,
    /// Write buffer per connection in bytes (data is flushed when it is reached).
    pub write_buffer_size: usize,
    /// A write that takes longer closes the connection (3008 if the queue overflowed
    /// meanwhile, else 3009).
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// permessage-deflate (RFC 7692): offered to clients that ask for it (off by default).
    /// Negotiated without context takeover in either direction, so no compression context
    /// stays in an idle connection.
    pub compression: bool,
    /// Compression level, 0 (stored) to 9 (smallest); 1 is the fastest that compresses.
    pub compression_level: u32,
    /// Messages to the client shorter than this many bytes are sent uncompressed.
    pub compression_min_size: usize,
    /// Largest client message once inflated, in bytes; past it the connection closes with
    /// 1009 (inflating stops there). 0: ten times `message_size_limit` (Centrifugo's rule).
    /// `message_size_limit` still bounds the compressed bytes on the wire.
    pub decompressed_message_size_limit: usize,
}

impl WebsocketConfig {
    /// The bound on an inflated client message (`decompressed_message_size_limit`, or ten
    /// times `message_size_limit` when it is 0).
    pub fn decompressed_limit(&self) -> usize {
        match self.decompressed_message_size_limit {
            0 => self.message_size_limit.saturating_mul(10),
            n => n,
        }
    }
}

impl Default for WebsocketConfig {
    fn default() -> Self {
        WebsocketConfig {
            message_size_limit: 65536,
            read_buffer_size: 512,
            write_buffer_size: 4096,
            write_timeout: Duration::from_secs(1),
            compression: false,
            compression_level: 1,
            compression_min_size: 0,
            decompressed_message_size_limit: 0,
        }
    }
}

/// `log.*`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter directive.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `shutdown.*`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Longest time a graceful stop may take before the process exits anyway.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Spreads the 3001 disconnects of a graceful stop over this period (0 = all at once), so
    /// clients reconnect to the other nodes gradually instead of in one storm. Must be shorter
    /// than `timeout`. A second SIGTERM/SIGINT ends the process at once.
    #[serde(with = "humantime_serde")]
    pub drain_period: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            timeout: Duration::from_secs(10),
            drain_period: Duration::ZERO,
        }
    }
}

/// `node.*`: identity, and the control plane between nodes (meanings and defaults:
/// [`ClusterConfig`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// Node name shown in `info`; defaults to the host name.
    pub name: String,
    /// How often this node announces itself to the others.
    #[serde(with = "humantime_serde")]
    pub info_interval: Duration,
    /// A node not heard from for this long is gone from `info` and surveys.
    #[serde(with = "humantime_serde")]
    pub info_ttl: Duration,
    /// How long a survey or a forwarded `/emulation` request waits for answers.
    #[serde(with = "humantime_serde")]
    pub survey_timeout: Duration,
    /// Received control messages waiting to be handled, at most.
    pub control_queue_size: usize,
    /// Requests from other nodes handled at once, at most.
    pub max_requests_in_flight: usize,
    /// Memory budget of the process in bytes (0 = off): from 90 % of it (RSS) new connections
    /// get HTTP 503 with `Retry-After` until RSS is back under 80 %; existing clients and the
    /// API keep their service.
    pub memory_budget: u64,
}

impl Default for NodeSection {
    fn default() -> Self {
        let c = ClusterConfig::default();
        NodeSection {
            name: String::new(),
            info_interval: c.info_interval,
            info_ttl: c.info_ttl,
            survey_timeout: c.survey_timeout,
            control_queue_size: c.control_queue_size,
            max_requests_in_flight: c.max_requests_in_flight,
            memory_budget: 0,
        }
    }
}

impl NodeSection {
    /// The control plane's settings.
    pub fn cluster(&self) -> ClusterConfig {
        ClusterConfig {
            info_interval: self.info_interval,
            info_ttl: self.info_ttl,
            survey_timeout: self.survey_timeout,
            control_queue_size: self.control_queue_size,
            max_requests_in_flight: self.max_requests_in_flight,
        }
    }
}

impl ServerConfig {
    /// Checks value relations; names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.node_config().validate()?;
        self.admin.validate()?;
        self.engine.validate()?;
        self.broker.validate()?;
        if self.broker.enabled && self.engine.kind == EngineKind::Embedded {
            return Err(ConfigError::new(
                "broker.enabled",
                "a standalone broker needs engine.type = \"memory\" or \"redis\"",
            ));
        }
        self.lifecycle.validate()?;
        self.http_server.validate()?;
        self.http_api.validate_listener()?;
        if self.shutdown.drain_period >= self.shutdown.timeout {
            return Err(ConfigError::new(
                "shutdown.drain_period",
                "must be shorter than shutdown.timeout",
            ));
        }
        self.grpc_api.validate()?;
        if self.websocket.message_size_limit < 1024 {
            return Err(ConfigError::new(
                "websocket.message_size_limit",
                "must be at least 1024 bytes",
            ));
        }
        if self.websocket.compression_level > 9 {
            return Err(ConfigError::new(
                "websocket.compression_level",
                "must be 0 (stored) to 9 (smallest)",
            ));
        }
        if self.websocket.decompressed_message_size_limit != 0
            && self.websocket.decompressed_message_size_limit < self.websocket.message_size_limit
        {
            return Err(ConfigError::new(
                "websocket.decompressed_message_size_limit",
                "must be 0 (ten times message_size_limit) or at least websocket.message_size_limit",
            ));
        }
        if self.websocket.read_buffer_size < 512 {
            return Err(ConfigError::new(
                "websocket.read_buffer_size",
                "must be at least 512 bytes",
            ));
        }
        if self.long_poll.default_timeout > self.long_poll.max_timeout {
            return Err(ConfigError::new(
                "long_poll.default_timeout",
                "must not exceed long_poll.max_timeout",
            ));
        }
        if self.long_poll.max_concurrent_per_client == 0 {
            return Err(ConfigError::new(
                "long_poll.max_concurrent_per_client",
                "must be > 0",
            ));
        }
        if self.websocket.write_timeout.is_zero() {
            return Err(ConfigError::new("websocket.write_timeout", "must be > 0"));
        }
        if self.http_api.max_body_size < 1024 {
            return Err(ConfigError::new(
                "http_api.max_body_size",
                "must be at least 1024 bytes",
            ));
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(ConfigError::new(
                "log.level",
                format!("{:?} is not a log level or filter", self.log.level),
            ));
        }
        Ok(())
    }

    /// The core's part of the configuration.
    pub fn node_config(&self) -> NodeConfig {
        NodeConfig {
            client: self.client.clone(),
            channel: self.channel.clone(),
            cluster: self.node.cluster(),
            lifecycle: self.lifecycle.settings(),
            rpc: self.rpc.clone(),
            proxies: self.proxies.clone(),
            api: pushwire_core::config::ApiLimits {
                batch_max_commands: self.http_api.batch_max_commands,
                batch_max_reply_size: self.http_api.batch_max_reply_size,
            },
        }
    }
}
