//! Engines: where publications, history, presence and per-user connection counts live, and
//! what carries control messages between nodes.
//!
//! [`Broker`], [`PresenceManager`], [`UserConnections`] and [`ChannelOccupancy`] are the
//! contracts every backend implements (memory here; Redis in its own crate); an [`Engine`] bundles one of each. The
//! node receives what a broker delivers through a [`BrokerEventHandler`]; engines report
//! their own figures as [`EngineMetric`]s.

mod broker;
mod connections;
mod memory_broker;
mod memory_connections;
mod memory_occupancy;
mod memory_presence;
mod metrics;
mod occupancy;
mod presence;
mod stream;

use std::sync::Arc;

pub use broker::{
    Broker, BrokerEventHandler, EngineError, HistoryPage, HistoryQuery, PublishOptions,
    PublishOutcome,
};
pub use connections::UserConnections;
pub use memory_broker::MemoryBroker;
pub use memory_connections::MemoryUserConnections;
pub use memory_occupancy::MemoryOccupancy;
pub use memory_presence::MemoryPresence;
pub use metrics::{EngineMetric, EngineMetricKind};
pub use occupancy::ChannelOccupancy;
pub use presence::{PresenceManager, PresenceStats};

/// The backends a node runs on.
#[derive(Clone)]
pub struct Engine {
    /// Publications, history and control messages.
    pub broker: Arc<dyn Broker>,
    /// Presence entries.
    pub presence: Arc<dyn PresenceManager>,
    /// Per-user connection counts for `client.user_connection_limit`.
    pub connections: Arc<dyn UserConnections>,
    /// Which nodes hold subscribers of each channel (lifecycle `channel_occupied` /
    /// `channel_vacated`, `node_lost`).
    pub occupancy: Arc<dyn ChannelOccupancy>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// The embedded in-memory engine (one node). Call inside a Tokio runtime so the broker
    /// runs its own expiry sweeps.
    pub fn memory() -> Engine {
        Engine {
            broker: Arc::new(MemoryBroker::new()),
            presence: Arc::new(MemoryPresence::new()),
            connections: Arc::new(MemoryUserConnections::default()),
            occupancy: Arc::new(MemoryOccupancy::default()),
        }
    }
}
