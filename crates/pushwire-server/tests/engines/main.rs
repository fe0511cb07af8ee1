//! Engines across nodes: Redis (single, Cluster, TLS, metrics), embedded, the control plane.
//!
//! One test binary per area (each links the whole server once); every file below is one
//! topic. Run one area with `cargo nextest run -p pushwire-server --test engines`.

/// The channel-test helpers the Redis engine tests share.
#[path = "../channels/common.rs"]
mod common;

mod cluster;
mod embedded;
mod metrics_redis;
mod redis;
mod redis_cluster;
mod redis_cluster_slot_move;
mod redis_common;
mod redis_hang;
mod redis_tls;
mod redis_tls_topologies;
