//! The live numbers of a node as one JSON object, polled every second by the admin page.

use pushwire_core::metrics::{Metrics, TRANSPORTS};
use pushwire_core::Node;
use serde::Serialize;

use super::process::ProcessStats;

/// A node's figures at one instant. Counters are totals since start; the page derives rates
/// from consecutive samples.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStats {
    /// Node name.
    pub name: String,
    /// Node id.
    pub id: String,
    /// Server version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime: u64,
    /// Open connections, every transport, authenticated or not.
    pub connections: u64,
    /// Authenticated clients.
    pub clients: u64,
    /// Distinct users.
    pub users: u64,
    /// Channels with subscribers.
    pub channels: u64,
    /// Subscriptions.
    pub subscriptions: u64,
    /// Publications accepted (total).
    pub publications: u64,
    /// Messages written to connections (total).
    pub messages_delivered: u64,
    /// Client commands handled (total).
    pub commands: u64,
    /// Connections closed as slow (total).
    pub slow_disconnects: u64,
    /// Connections closed (total).
    pub disconnects: u64,
    /// Resident memory, bytes.
    pub resident_bytes: Option<u64>,
    /// CPU seconds used (total).
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The engine (`engine.type`): `memory`, `embedded` or `redis`.
    pub engine: &'static str,
    /// Size of the engine's data file (embedded engine only).
    pub engine_disk_bytes: Option<u64>,
}

impl NodeStats {
    /// Reads the figures of `node` (running on the engine named `engine`) and `process`.
    pub fn read(node: &Node, engine: &'static str, process: &ProcessStats) -> NodeStats {
        let engine_disk_bytes = node
            .broker()
            .metrics()
            .into_iter()
            .find(|m| m.name == "pushwire_embedded_disk_bytes")
            .map(|m| m.value);
        let m = node.metrics();
        let gauges = node.hub().gauges();
        let (clients, users) = node.registry().counts();
        NodeStats {
            name: node.name().to_owned(),
            id: node.id().to_owned(),
            version: pushwire_core::node::VERSION,
            uptime: node.uptime().as_secs(),
            connections: (0..TRANSPORTS.len()).map(|i| m.open_connections(i)).sum(),
            clients: clients as u64,
            users: users as u64,
            channels: gauges.num_channels(),
            subscriptions: (0..TRANSPORTS.len())
                .map(|i| gauges.subscriptions_of(i))
                .sum(),
            publications: Metrics::get(&m.publications),
            messages_delivered: m.messages_delivered(),
            commands: Metrics::get(&m.commands),
            slow_disconnects: Metrics::get(&m.slow_disconnects),
            disconnects: m.disconnects.total(),
            resident_bytes: process.resident_bytes,
            cpu_seconds: process.cpu_seconds,
            open_fds: process.open_fds,
            engine,
            engine_disk_bytes,
        }
    }
}
