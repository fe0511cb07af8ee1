//! Shared by the crate's tests: an in-memory node with an `ev:` namespace.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pushwire_consumers::dispatch::BoxFuture;
use pushwire_consumers::{
    ApiDispatch, ApiFailure, ConsumerConfig, ConsumerType, Dispatched, Mode, Processor, RouteConfig,
};
use pushwire_core::config::{ChannelOptions, NamespaceConfig, NodeConfig};
use pushwire_core::Node;

/// A memory node with namespace `ev:` (history 1000 for 300 s, tags filter allowed).
pub fn node() -> Arc<Node> {
    let mut config = NodeConfig::default();
    config.channel.namespaces.push(NamespaceConfig {
        name: "ev".into(),
        options: ChannelOptions {
            history_size: 1000,
            history_ttl: Duration::from_secs(300),
            allow_tags_filter: true,
            ..Default::default()
        },
    });
    Node::new_memory(config, "test", None)
}

/// The server API is not part of this crate (its `api_command` tests are the server's
/// `tests/api/api.rs`): route-mode tests here get this, which answers 108 to any command.
pub struct NoApi;

impl ApiDispatch for NoApi {
    fn call<'a>(
        &'a self,
        _method: &'a str,
        _params: Option<&'a serde_json::value::RawValue>,
    ) -> BoxFuture<'a, Result<Dispatched, ApiFailure>> {
        Box::pin(async {
            Err(ApiFailure {
                code: 108,
                message: "not available".into(),
            })
        })
    }
}

/// A route-mode processor for `node` publishing to `channel`, tagging with `tag_field`.
pub fn route(node: &Arc<Node>, kind: ConsumerType, channel: &str, tag_field: &str) -> Processor {
    let mut c = ConsumerConfig::new("r", kind);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: channel.into(),
        tag_field: tag_field.into(),
        skip_history: false,
    };
    Processor::new(node.clone(), Arc::new(NoApi), &c).expect("route processor")
}

/// Publication data (as JSON values) in the history of `channel`.
pub async fn history(node: &Node, channel: &str) -> Vec<serde_json::Value> {
    node.history(channel, -1, None, false)
        .await
        .expect("history")
        .publications
        .iter()
        .map(|p| serde_json::from_slice(p.data.as_bytes()).expect("json data"))
        .collect()
}

/// A name no other run uses.
pub fn unique() -> String {
    pushwire_testkit::unique("")
}

/// Logs to the test output (RUST_LOG, default info).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_test_writer()
        .try_init();
}
