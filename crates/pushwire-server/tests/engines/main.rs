//! Engines across nodes: Redis (single, TLS, metrics), the embedded engine, the cluster control plane.
//!
//! One test binary per area (each links the whole server once); every file below is one
//! topic. Run one area with `cargo nextest run -p pushwire-server --test engines`.

mod cluster;
mod embedded;
mod metrics_redis;
mod redis;
mod redis_tls;
