//! Builds the node on the engine `engine.type` names.

use std::collections::HashSet;
use std::sync::Arc;

use pushwire_core::auth::TokenVerifier;
use pushwire_core::Node;
use pushwire_engine_redis::{RedisEngine, RedisMetrics};
use pushwire_protocol::Disconnect;

use crate::config::{EngineKind, ServerConfig};

/// A node built by [`build_node`], with what `/metrics` reads of its engine.
pub struct BuiltNode {
    /// The node.
    pub node: Arc<Node>,
    /// The Redis engine's counters (`pushwire_redis_*`); `None` on the memory engine.
    pub redis: Option<Arc<RedisMetrics>>,
}

/// A node on the configured engine. With `redis`, fails when Redis is unreachable (the error
/// names `engine.redis.address`), and wires the PUB/SUB resync: after the node's PUB/SUB
/// connection was lost and re-established, every client subscribed to one of the affected
/// channels is disconnected with 3010 (insufficient state), so its SDK reconnects and
/// recovers what it missed from history.
pub async fn build_node(
    config: &ServerConfig,
    name: String,
    verifier: Option<Arc<dyn TokenVerifier>>,
) -> anyhow::Result<BuiltNode> {
    match config.engine.kind {
        EngineKind::Memory => Ok(BuiltNode {
            node: Node::new_memory(config.node_config(), name, verifier),
            redis: None,
        }),
        EngineKind::Redis => {
            let engine = RedisEngine::connect(&config.engine.redis).await?;
            let node = Node::new(
                config.node_config(),
                name,
                engine.broker(),
                engine.presence(),
                verifier,
            );
            let weak = Arc::downgrade(&node);
            engine.on_resync(Arc::new(move |channels: &[String]| {
                if let Some(node) = weak.upgrade() {
                    resync(&node, channels);
                }
            }));
            tracing::info!(
                address = %config.engine.redis.address,
                prefix = %config.engine.redis.prefix,
                "redis engine connected"
            );
            Ok(BuiltNode {
                node,
                redis: Some(engine.metrics()),
            })
        }
    }
}

/// Disconnects (3010) the clients subscribed to any of `channels`.
fn resync(node: &Node, channels: &[String]) {
    let affected: HashSet<&str> = channels.iter().map(String::as_str).collect();
    let mut n = 0;
    for client in node.registry().all() {
        if client
            .channels()
            .iter()
            .any(|c| affected.contains(c.as_str()))
        {
            client.disconnect(Disconnect::INSUFFICIENT_STATE);
            n += 1;
        }
    }
    tracing::warn!(
        clients = n,
        "redis pub/sub reconnected: clients disconnected to recover"
    );
}
