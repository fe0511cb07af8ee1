//! The state every handler shares. Its own module so the arrows point one way: handlers
//! (transports, API, admin, observe) depend on the state, the router in [`crate::app`]
//! depends on the handlers, and nothing depends back on the router.

use std::sync::Arc;

use pushwire_core::Node;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::limits::admission::Admission;
use crate::transport::origin::OriginPolicy;

/// State shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The node.
    pub node: Arc<Node>,
    /// Configuration, read-only after start.
    pub config: Arc<ServerConfig>,
    /// Origin policy of the connection endpoints.
    pub origins: Arc<OriginPolicy>,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Concurrent long-polls per client.
    pub polls: Arc<crate::transport::long_poll::PollLimiter>,
    /// Metrics of the running consumers, for `/metrics`.
    pub consumers: pushwire_consumers::MetricsRegistry,
    /// Lifecycle event sinks (none when `lifecycle.enabled` is off).
    pub lifecycle: Arc<crate::lifecycle::Sinks>,
    /// The proxies to the application backend, when configured (for `/metrics`).
    pub proxies: Option<Arc<crate::proxy::Proxies>>,
    /// Node-wide admission of new connections (memory budget, node connect rate).
    pub admission: Arc<Admission>,
}
