//! pushwire's embedded engine: one node whose channel streams — publications with offsets in
//! an epoch, top offset, versions, history size/TTL and meta TTL, idempotency keys — live in a
//! crash-safe single-file store ([redb](https://www.redb.org): pure Rust, ACID, copy-on-write
//! B-trees with checksums, file lock) and survive restarts and `kill -9`. Presence and per-user
//! connection counts stay in memory. It implements `pushwire_core::engine::Broker` with the
//! same contract as the memory and Redis brokers.
//!
//! Layout:
//! - [`config`]: `engine.embedded.*` settings ([`FsyncPolicy`]) and their validation.
//! - [`engine`]: [`EmbeddedEngine`], the broker plus memory presence and connection counts.
//! - [`broker`]: [`EmbeddedBroker`], the `Broker` implementation and its sweep task.
//! - `writer` (private): the writer thread (batching, group commit, delivery after commit).
//! - `store` (private): the tables and the operations inside one transaction.
//! - `open` (private): directory, lock, corruption detection, crash handling at start.
//! - `shared` (private): state shared by broker and writer; reopening after a full disk.
//! - [`codec`]: stored bytes; [`metrics`]: [`EmbeddedMetrics`]; [`error`]: error enums.
//!
//! docs/engines.md describes durability, space bounds and failure behaviour.

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

pub mod broker;
pub mod codec;
pub mod config;
pub mod engine;
pub mod error;
pub mod metrics;
mod open;
mod shared;
mod store;
mod writer;

pub use broker::EmbeddedBroker;
pub use config::{EmbeddedConfig, FsyncPolicy, OnCorruption};
pub use engine::EmbeddedEngine;
pub use error::{OpenError, StoreError};
pub use metrics::EmbeddedMetrics;
pub use open::{data_file, FILE_NAME};
