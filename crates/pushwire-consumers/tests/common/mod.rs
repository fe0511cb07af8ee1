//! Shared by the crate's tests: an in-memory node with an `ev:` namespace.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pushwire_consumers::{ConsumerConfig, ConsumerType, Processor};
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

/// A processor in `api_command` mode for `node`.
pub fn processor(node: &Arc<Node>) -> Processor {
    Processor::new(
        node.clone(),
        &ConsumerConfig::new("t", ConsumerType::Rabbitmq),
    )
    .expect("processor")
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
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{:x}{:x}", std::process::id(), nanos & 0xff_ffff_ffff)
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
