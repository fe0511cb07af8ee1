//! A pushwire server for tests.

use std::net::SocketAddr;
use std::time::Duration;

use pushwire_core::config::{ChannelOptions, NamespaceConfig};
use pushwire_server::app::ShutdownReport;
use pushwire_server::{RunningServer, ServerConfig};
use serde_json::Value;

/// API key of test servers.
pub const API_KEY: &str = "test-api-key";
/// HMAC secret of test servers.
pub const SECRET: &str = "test-secret";

/// The test configuration: port 0, API key [`API_KEY`], HMAC [`SECRET`], anonymous connects,
/// and these channels:
/// - no namespace: anyone subscribes and publishes (as subscriber), no history;
/// - `chat:`: history (100, 300s), recovery forced, presence, join/leave, subscribers publish,
///   read history and presence;
/// - `tags:`: like `chat:` plus `allow_tags_filter`;
/// - `secure:`: nothing allowed without a token;
/// - `small:`: history (3, 300s), recovery forced, subscribers publish and read history: a gap
///   of more than 3 publications cannot be recovered.
pub fn test_config() -> ServerConfig {
    let mut c = ServerConfig::default();
    c.http_server.port = 0;
    c.http_api.key = API_KEY.into();
    c.client.token.hmac_secret_key = SECRET.into();
    c.client.allow_anonymous_connect_without_token = true;
    c.client.allowed_origins = vec!["http://127.0.0.1:*".into(), "http://localhost:*".into()];
    c.shutdown.timeout = Duration::from_secs(3);
    let open = ChannelOptions {
        allow_subscribe_for_client: true,
        allow_subscribe_for_anonymous: true,
        allow_publish_for_subscriber: true,
        allow_publish_for_anonymous: true,
        ..Default::default()
    };
    c.channel.without_namespace = open.clone();
    let chat = ChannelOptions {
        history_size: 100,
        history_ttl: Duration::from_secs(300),
        force_recovery: true,
        presence: true,
        join_leave: true,
        force_push_join_leave: true,
        allow_history_for_subscriber: true,
        allow_history_for_anonymous: true,
        allow_presence_for_subscriber: true,
        allow_presence_for_anonymous: true,
        ..open.clone()
    };
    let tags = ChannelOptions {
        allow_tags_filter: true,
        ..chat.clone()
    };
    c.channel.namespaces = vec![
        NamespaceConfig {
            name: "chat".into(),
            options: chat,
        },
        NamespaceConfig {
            name: "tags".into(),
            options: tags,
        },
        NamespaceConfig {
            name: "secure".into(),
            options: ChannelOptions::default(),
        },
        NamespaceConfig {
            name: "small".into(),
            options: ChannelOptions {
                history_size: 3,
                history_ttl: Duration::from_secs(300),
                force_recovery: true,
                allow_history_for_subscriber: true,
                allow_history_for_anonymous: true,
                ..open
            },
        },
    ];
    c
}

/// Adds the `delta:` namespace to `c`: like `chat:` without presence (history 300, 300s,
/// recovery forced) and with `allowed_delta_types = ["fossil"]`.
pub fn add_delta_namespace(c: &mut ServerConfig) {
    let chat = c
        .channel
        .namespaces
        .iter()
        .find(|n| n.name == "chat")
        .map(|n| n.options.clone())
        .unwrap_or_default();
    c.channel.namespaces.push(NamespaceConfig {
        name: "delta".into(),
        options: ChannelOptions {
            history_size: 300,
            presence: false,
            join_leave: false,
            force_push_join_leave: false,
            allowed_delta_types: vec!["fossil".into()],
            ..chat
        },
    });
}

/// A running server on loopback.
#[derive(Debug)]
pub struct TestServer {
    /// Bound address.
    pub addr: SocketAddr,
    server: Option<RunningServer>,
    http: reqwest::Client,
}

impl TestServer {
    /// Starts a server with [`test_config`].
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with [`test_config`] changed by `f`.
    pub async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut c = test_config();
        f(&mut c);
        c.validate().expect("test config valid");
        let server = RunningServer::start(c).await.expect("server starts");
        TestServer {
            addr: server.addr,
            server: Some(server),
            http: reqwest::Client::new(),
        }
    }

    /// The node behind the server.
    pub fn node(&self) -> &std::sync::Arc<pushwire_core::Node> {
        &self.server.as_ref().expect("running").node
    }

    /// Address of the gRPC API listener, when `grpc_api.enabled`.
    pub fn grpc_api_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().and_then(|s| s.grpc_api_addr)
    }

    /// `ws://127.0.0.1:PORT/connection/websocket`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/connection/websocket", self.addr)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls `POST /api/<method>` with the API key; returns status and parsed body (`Null`
    /// when the body is empty or not JSON).
    pub async fn api(&self, method: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/{method}", self.http_url()))
            .header("X-API-Key", API_KEY)
            .json(&body)
            .send()
            .await
            .expect("api request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Publishes through the API and returns the `result` object (panics on an error).
    pub async fn publish(&self, channel: &str, data: Value) -> Value {
        let (status, body) = self
            .api(
                "publish",
                serde_json::json!({"channel": channel, "data": data}),
            )
            .await;
        assert_eq!(status, 200, "publish status");
        assert!(body.get("error").is_none(), "publish error: {body}");
        body["result"].clone()
    }

    /// Graceful stop.
    pub async fn stop(mut self) -> ShutdownReport {
        self.server.take().expect("running").shutdown().await
    }
}
