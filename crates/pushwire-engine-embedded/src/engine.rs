//! [`EmbeddedEngine`]: the embedded broker with in-memory presence and connection counts.

use std::sync::Arc;

use pushwire_core::engine::{Engine, MemoryOccupancy, MemoryPresence, MemoryUserConnections};

use crate::broker::EmbeddedBroker;
use crate::config::EmbeddedConfig;
use crate::error::OpenError;

/// A single-node engine whose streams survive restarts: the [`EmbeddedBroker`] on disk, and
/// presence, per-user connection counts and channel occupancy in memory (they describe live
/// connections, which do not survive a restart either).
pub struct EmbeddedEngine {
    broker: Arc<EmbeddedBroker>,
    presence: Arc<MemoryPresence>,
    connections: Arc<MemoryUserConnections>,
    occupancy: Arc<MemoryOccupancy>,
}

impl std::fmt::Debug for EmbeddedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedEngine")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl EmbeddedEngine {
    /// Opens the store in `config.path` (see [`EmbeddedBroker::open`]). Call inside a Tokio
    /// runtime.
    pub fn open(config: &EmbeddedConfig) -> Result<EmbeddedEngine, OpenError> {
        Ok(EmbeddedEngine {
            broker: Arc::new(EmbeddedBroker::open(config)?),
            presence: Arc::new(MemoryPresence::new()),
            connections: Arc::new(MemoryUserConnections::default()),
            occupancy: Arc::new(MemoryOccupancy::default()),
        })
    }

    /// The broker.
    pub fn broker(&self) -> Arc<EmbeddedBroker> {
        self.broker.clone()
    }

    /// The broker, presence and connection counts as the core's [`Engine`], for `Node::new`.
    /// The store stays open while any holder of the broker lives.
    pub fn engine(&self) -> Engine {
        Engine {
            broker: self.broker.clone(),
            presence: self.presence.clone(),
            connections: self.connections.clone(),
            occupancy: self.occupancy.clone(),
        }
    }
}
