//! [`HistoryStore`]: where a [`crate::NatsBroker`] keeps channel history, since NATS core
//! keeps none. The server plugs in the Redis engine's streams.

use async_trait::async_trait;
use pushwire_core::engine::{
    EngineError, HistoryPage, HistoryQuery, PublishOptions, PublishOutcome,
};
use pushwire_protocol::Publication;

/// Channel streams without fan-out: `store` appends (checking idempotency key and version
/// like `Broker::publish`) and returns the position, but sends the publication nowhere.
#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// Stores `publication` as `Broker::publish` would, without delivering it.
    async fn store(
        &self,
        channel: &str,
        publication: &Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError>;

    /// As `Broker::history`.
    async fn history(&self, channel: &str, query: HistoryQuery)
        -> Result<HistoryPage, EngineError>;

    /// As `Broker::remove_history`.
    async fn remove_history(&self, channel: &str) -> Result<(), EngineError>;
}
