//! Builds the node on the engine `engine.type` names.

use std::sync::Arc;

use pushwire_core::auth::TokenVerifier;
use pushwire_core::Node;
use pushwire_engine_redis::RedisEngine;

use crate::config::{EngineKind, ServerConfig};

/// A node on the configured engine. With `redis`, fails when Redis is unreachable (the error
/// names `engine.redis.address`). The engine tells the node's hub itself which channels lost
/// continuity after a PUB/SUB reconnect (their subscribers get 3010 and recover), and reports
/// its own figures for `/metrics` through the broker.
pub async fn build_node(
    config: &ServerConfig,
    name: String,
    verifier: Option<Arc<dyn TokenVerifier>>,
) -> anyhow::Result<Arc<Node>> {
    match config.engine.kind {
        EngineKind::Memory => Ok(Node::new_memory(config.node_config(), name, verifier)),
        EngineKind::Redis => {
            let engine = RedisEngine::connect(&config.engine.redis).await?;
            let node = Node::new(config.node_config(), name, engine.engine(), verifier);
            tracing::info!(
                address = %config.engine.redis.address,
                prefix = %config.engine.redis.prefix,
                "redis engine connected"
            );
            Ok(node)
        }
    }
}
