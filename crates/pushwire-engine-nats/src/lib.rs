//! pushwire's NATS broker (`broker.type = "nats"`, as Centrifugo v6 names it): publications,
//! joins, leaves and control messages between nodes over NATS core PUB/SUB, at most once.
//! NATS keeps no history: with a [`HistoryStore`] (the Redis engine's streams, when
//! `engine.type = "redis"`) publications with history are stored there first and fanned out
//! over NATS with their offset; without one, only fan-out works and history is refused.
//!
//! Layout: [`config`] (`broker.nats.*`), [`broker`] ([`NatsBroker`]), [`history`] (the
//! [`HistoryStore`] a broker can keep history in), [`subjects`] (subject names), [`codec`]
//! (message bytes), [`error`].
//!
//! docs/engines.md describes semantics and failure behaviour.

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

pub mod broker;
pub mod codec;
pub mod config;
pub mod error;
pub mod history;
pub mod subjects;

pub use broker::NatsBroker;
pub use config::NatsBrokerConfig;
pub use error::StartError;
pub use history::HistoryStore;
