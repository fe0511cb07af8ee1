//! Builds the node on the engine `engine.type` names.

use std::sync::Arc;

use pushwire_core::auth::TokenVerifier;
use pushwire_core::engine::Engine;
use pushwire_core::Node;
use pushwire_engine_embedded::EmbeddedEngine;
use pushwire_engine_redis::RedisEngine;

use crate::config::{EngineKind, ServerConfig};
use crate::nats_broker::RedisHistory;

/// A node on the configured engine (with `broker.enabled`, its broker replaced by the
/// standalone one; the error names `broker.nats.url` when NATS is unreachable). With `redis`, fails when Redis is unreachable (the error
/// names `engine.redis.address`); with `embedded`, when the data file is locked by another
/// process, corrupted or truncated (the error names the file). The engine tells the node's hub itself which channels lost
/// continuity after a PUB/SUB reconnect (their subscribers get 3010 and recover), and reports
/// its own figures for `/metrics` through the broker.
pub async fn build_node(
    config: &ServerConfig,
    name: String,
    verifier: Option<Arc<dyn TokenVerifier>>,
) -> anyhow::Result<Arc<Node>> {
    let nats = config.broker.enabled.then_some(&config.broker.nats);
    match config.engine.kind {
        EngineKind::Memory => match nats {
            None => Ok(Node::new_memory(config.node_config(), name, verifier)),
            Some(nats) => {
                let engine = crate::nats_broker::on_nats(Engine::memory(), nats, None).await?;
                Ok(Node::new(config.node_config(), name, engine, verifier))
            }
        },
        EngineKind::Redis => {
            let redis = RedisEngine::connect(&config.engine.redis).await?;
            let engine = match nats {
                None => redis.engine(),
                Some(nats) => {
                    let history = Arc::new(RedisHistory(redis.broker()));
                    crate::nats_broker::on_nats(redis.engine(), nats, Some(history)).await?
                }
            };
            let node = Node::new(config.node_config(), name, engine, verifier);
            tracing::info!(
                address = %config.engine.redis.address,
                prefix = %config.engine.redis.prefix,
                "redis engine connected"
            );
            Ok(node)
        }
        EngineKind::Embedded => {
            let settings = &config.engine.embedded;
            let engine = EmbeddedEngine::open(settings)?;
            let broker = engine.broker();
            if let Some(aside) = broker.moved_aside() {
                tracing::error!(
                    file = %broker.file().display(),
                    moved_to = %aside.display(),
                    "embedded store: the data file was corrupted; moved aside, streams start over"
                );
            }
            if broker.recovered_from_crash() {
                tracing::warn!(
                    file = %broker.file().display(),
                    renewed_epochs = broker.rotated_epochs(),
                    "embedded store: the previous run did not stop cleanly"
                );
            }
            tracing::info!(
                file = %broker.file().display(),
                fsync = settings.fsync.name(),
                "embedded engine opened"
            );
            Ok(Node::new(
                config.node_config(),
                name,
                engine.engine(),
                verifier,
            ))
        }
    }
}
