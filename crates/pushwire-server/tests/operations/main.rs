//! Running the node: logs, metrics, lifecycle, lifecycle events, listen backlog, expiry.
//!
//! One test binary per area (each links the whole server once); every file below is one
//! topic. Run one area with `cargo nextest run -p pushwire-server --test operations`.

mod expiry;
mod lifecycle;
mod lifecycle_events;
mod listen_backlog;
mod logs;
mod metrics_workload;
mod observe;
mod sink_hang;
