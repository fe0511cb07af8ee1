//! The pushwire node: everything between a decoded command and an encoded message.
//!
//! No HTTP and no broker client here: transports feed [`client::Client`] frames and write what
//! its [`outbox::Outbox`] yields; backends implement [`engine::Broker`] and
//! [`engine::PresenceManager`].
//!
//! Layout:
//! - [`config`]: typed `client.*` / `channel.*` configuration and its validation.
//! - [`namespace`]: channel names → namespaces, private and user-limited channels.
//! - [`node`]: the node and the operations shared by the server API and clients.
//! - [`cluster`]: the control plane between nodes (node registry, user operations on every
//!   node, surveys, forwarded emulation), carried by the broker.
//! - [`client`]: one connection's protocol state machine (connect, subscribe, recovery, ...).
//! - [`hub`]: channel → local subscribers, encode-once fan-out, recovery buffering.
//! - [`batch`]: namespace batching of publications (max size, max delay, latest only).
//! - [`encoding`]: protocol × envelope, and encode-once caches.
//! - [`delta`]: Fossil delta compression toward subscribers that negotiated it.
//! - `memo` (private): the "not computed yet / computed, nothing / computed" cache cell of the
//!   encode-once caches.
//! - [`outbox`]: the per-connection queue bounded in bytes.
//! - [`engine`]: broker and presence contracts and the in-memory engine.
//! - [`filter`]: tags filters.
//! - [`lifecycle`]: lifecycle events (connect, disconnect, subscribe, occupancy, node_lost,
//!   snapshots) recorded without blocking and numbered per node.
//! - [`auth`]: credentials and the token verifier contract.
//! - [`proxy`]: the application backend contract (connect, refresh, subscribe, publish,
//!   sub_refresh, rpc, send proxies); the server implements it over HTTP.
//! - [`registry`], [`sessions`], [`metrics`]: live clients, emulated sessions by id, counters.
//! - [`glob`]: channel name patterns (`channels`).
//! - [`breaker`]: the circuit breaker shared by the proxies and the Redis engine.

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

pub mod auth;
pub mod batch;
pub mod breaker;
pub mod cause;
pub mod client;
pub mod cluster;
pub mod config;
pub mod delta;
pub mod encoding;
pub mod engine;
pub mod filter;
pub mod glob;
pub mod hub;
pub mod lifecycle;
mod memo;
pub mod metrics;
pub mod namespace;
pub mod node;
pub mod outbox;
pub mod proxy;
pub mod registry;
pub mod sessions;

pub use client::{Client, Polled, TransportInfo};
pub use node::Node;
pub use pushwire_protocol::TransportKind;
