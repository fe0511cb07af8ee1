//! Engines: where publications, history and presence live.
//!
//! [`Broker`] and [`PresenceManager`] are the contracts every backend implements (memory here;
//! Redis and NATS in their own crates). The node delivers what a broker receives through a
//! [`BrokerEventHandler`] (the hub).

mod broker;
mod memory_broker;
mod memory_presence;
mod presence;
mod stream;

pub use broker::{
    Broker, BrokerEventHandler, EngineError, HistoryPage, HistoryQuery, PublishOptions,
    PublishOutcome,
};
pub use memory_broker::MemoryBroker;
pub use memory_presence::MemoryPresence;
pub use presence::{PresenceManager, PresenceStats};
