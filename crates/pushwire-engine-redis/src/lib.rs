//! pushwire's Redis engine: channel history, epochs and idempotency keys kept in Redis (so
//! they survive a node restart), publications fanned out to every node over PUB/SUB, and
//! presence with TTL. It implements `pushwire_core::engine::{Broker, PresenceManager}`; the
//! design follows centrifugal/centrifuge's Redis broker (history stream + meta hash, one Lua
//! script per publish).
//!
//! Layout:
//! - [`config`]: `engine.redis.*` settings and their validation; [`address`]: one Redis URL
//!   or a list of them.
//! - `conn`, `sentinel` (private): how a shard's Redis is reached, at a fixed address or as
//!   the master Redis Sentinel names (followed across failovers).
//! - [`circuit`]: the circuit breaker of each shard's command connection
//!   (`engine.redis.circuit_breaker`) and [`circuit::CircuitOpen`], why a command was refused.
//! - [`shard`]: which Redis of the list holds a channel (consistent hashing, as Centrifugo).
//! - `cluster` (private): Redis Cluster mode, its command connection and sharded PUB/SUB;
//!   [`slots`]: hash slots and the partitions' hash tags.
//! - [`tls`]: `engine.redis.sentinel_tls` and the root certificates of every topology.
//! - [`engine`]: [`RedisEngine::connect`], which fails clearly when Redis is unreachable.
//! - [`broker`]: [`RedisBroker`] (publish, history, subscribe, control messages between
//!   nodes).
//! - `pubsub` (private): the node's PUB/SUB connection, reconnect and resubscribe.
//! - [`presence`]: [`RedisPresence`], presence with TTL.
//! - [`connections`]: [`RedisUserConnections`], per-user connection counts across nodes.
//! - [`occupancy`]: [`RedisOccupancy`], which nodes hold each channel (lifecycle events).
//! - [`metrics`]: [`RedisMetrics`], the engine's counters for `/metrics`.
//! - [`keys`]: the key layout; [`codec`]: stored and published bytes.
//! - `scripts` (private) with the Lua sources in `lua/`; `backoff` (private).
//!
//! docs/engines.md describes semantics, failure behaviour and configuration.

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

pub mod address;
mod backoff;
pub mod broker;
pub mod circuit;
mod cluster;
pub mod codec;
pub mod config;
mod conn;
pub mod connections;
pub mod engine;
mod error;
pub mod keys;
pub mod metrics;
pub mod occupancy;
pub mod presence;
mod pubsub;
mod refresh;
mod scripts;
mod sentinel;
mod sentinel_watch;
pub mod shard;
pub mod slots;
pub mod tls;

pub use address::RedisAddress;
pub use broker::RedisBroker;
pub use config::RedisConfig;
pub use connections::RedisUserConnections;
pub use engine::RedisEngine;
pub use error::StartError;
pub use metrics::RedisMetrics;
pub use occupancy::RedisOccupancy;
pub use presence::RedisPresence;
