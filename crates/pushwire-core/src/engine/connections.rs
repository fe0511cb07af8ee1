//! The per-user connection count contract: `client.user_connection_limit` counted across every
//! node of the engine.

use async_trait::async_trait;

use super::EngineError;

/// Counts each user's live connections where every node sees them (memory: this node;
/// Redis: shared, with entries of a crashed node expiring). Anonymous connections (empty
/// user) are never counted.
#[async_trait]
pub trait UserConnections: Send + Sync + 'static {
    /// Adds connection `client` of `user` unless the user already holds `limit` connections
    /// (`limit == 0`: no limit). `Ok(false)` = refused, nothing added.
    async fn try_add(&self, user: &str, client: &str, limit: usize) -> Result<bool, EngineError>;
    /// Removes connection `client` of `user` (no-op when absent).
    async fn remove(&self, user: &str, client: &str) -> Result<(), EngineError>;
}
