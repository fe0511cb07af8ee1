//! `broker.type = "nats"`: the node's engine with its broker replaced by a [`NatsBroker`];
//! with the Redis engine, history stays in Redis ([`RedisHistory`]).

use std::sync::Arc;

use async_trait::async_trait;
use pushwire_core::engine::{
    Broker, Engine, EngineError, HistoryPage, HistoryQuery, PublishOptions, PublishOutcome,
};
use pushwire_engine_nats::{HistoryStore, NatsBroker, NatsBrokerConfig};
use pushwire_engine_redis::RedisBroker;
use pushwire_protocol::Publication;

/// The Redis engine's streams as the NATS broker's history: stored by the same publish
/// script (idempotency, version, offset), without Redis PUB/SUB.
#[derive(Debug)]
pub struct RedisHistory(pub Arc<RedisBroker>);

#[async_trait]
impl HistoryStore for RedisHistory {
    async fn store(
        &self,
        channel: &str,
        publication: &Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        self.0.store(channel, publication, options).await
    }

    async fn history(
        &self,
        channel: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage, EngineError> {
        self.0.history(channel, query).await
    }

    async fn remove_history(&self, channel: &str) -> Result<(), EngineError> {
        self.0.remove_history(channel).await
    }
}

/// `engine` with its broker replaced by NATS (connected now; the error names
/// `broker.nats.url` when NATS is unreachable). `history` keeps channel history, if any.
pub async fn on_nats(
    mut engine: Engine,
    config: &NatsBrokerConfig,
    history: Option<Arc<dyn HistoryStore>>,
) -> anyhow::Result<Engine> {
    let broker = NatsBroker::connect(config, history).await?;
    tracing::info!(url = %config.url, prefix = %config.prefix, "nats broker connected");
    engine.broker = Arc::new(broker);
    Ok(engine)
}
