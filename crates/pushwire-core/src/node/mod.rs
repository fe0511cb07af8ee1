//! The node: configuration, hub, engines and live clients, and the operations the server API
//! and the clients share (publish, history, presence, ...).

pub(crate) mod api;
mod cluster;

pub use api::{ConnectionSelector, NodeInfo, PublishParams};
pub use cluster::{ChannelsSurvey, EmulationOutcome};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pushwire_protocol::{ClientInfo, Disconnect, JoinLeave, Publication};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenVerifier;
use crate::cluster::Cluster;
use crate::config::NodeConfig;
use crate::engine::{Broker, BrokerEventHandler, Engine, PresenceManager, UserConnections};
use crate::hub::{ClientKey, Delivery, Hub};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::namespace::Namespaces;
use crate::proxy::ProxyBackend;
use crate::registry::Registry;
use crate::sessions::Sessions;

/// Server version reported to clients and in `info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The interval between two batches of a paced drain ([`Node::shutdown_paced`]).
pub const DRAIN_STEP: std::time::Duration = std::time::Duration::from_millis(50);

/// A pushwire node.
pub struct Node {
    config: NodeConfig,
    namespaces: Namespaces,
    hub: Arc<Hub>,
    engine: Engine,
    broker: Arc<dyn Broker>,
    cluster: Arc<Cluster>,
    verifier: Option<Arc<dyn TokenVerifier>>,
    proxy: std::sync::OnceLock<Arc<dyn ProxyBackend>>,
    forwarded_headers: Box<[String]>,
    emulated_headers: Box<[String]>,
    registry: Registry,
    /// Settings and the queued-bytes gauge every client's outbox shares.
    outboxes: Arc<crate::outbox::Outboxes>,
    sessions: Sessions,
    lifecycle: Lifecycle,
    metrics: Arc<Metrics>,
    id: String,
    name: String,
    started: Instant,
    next_key: AtomicU64,
    shutdown: CancellationToken,
    /// Background work the node's clients start (subscription release after expiry, proxy
    /// refreshes): owned here, so shutdown can wait for it instead of leaving it detached.
    tasks: tokio_util::task::TaskTracker,
    announce_locks: Box<[tokio::sync::Mutex<()>]>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What the broker delivers goes to the hub (publications, joins, leaves, resyncs) and to the
/// control plane (control messages).
struct HubHandler {
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    cluster: Arc<Cluster>,
    /// Namespaces that batch publications; `None` (the default) delivers each at once.
    batching: Option<(crate::batch::BatchPolicies, crate::batch::Account)>,
}

impl HubHandler {
    fn account(&self, d: Delivery) {
        Metrics::add(&self.metrics.messages_queued, d.queued as u64);
        Metrics::add(&self.metrics.slow_disconnects, d.overflowed as u64);
    }
}

impl BrokerEventHandler for HubHandler {
    fn on_publication(&self, channel: &str, publication: &Publication) {
        if let Some((policies, account)) = &self.batching
            && let Some(policy) = policies.for_channel(channel)
        {
            let d = self
                .hub
                .publish_batched(channel, publication, policy, account);
            self.account(d);
            return;
        }
        self.account(self.hub.publish(channel, publication));
    }

    fn on_join_leave(&self, channel: &str, info: &ClientInfo, join: bool) {
        let info = JoinLeave { info: info.clone() };
        self.account(self.hub.join_leave(channel, info, join));
    }

    fn on_control(&self, data: &[u8]) {
        self.cluster.receive(data);
    }

    fn on_resync(&self, channels: &[String]) {
        let n = self
            .hub
            .close_subscribers(channels, &Disconnect::INSUFFICIENT_STATE);
        tracing::warn!(
            channels = channels.len(),
            subscriptions = n,
            "broker lost continuity: subscribers disconnected (3010) to recover from history"
        );
    }
}

impl Node {
    /// A node with the embedded in-memory engine. `config` must have been validated. Call
    /// inside a Tokio runtime (the memory broker runs its own expiry sweeps).
    pub fn new_memory(
        config: NodeConfig,
        name: impl Into<String>,
        verifier: Option<Arc<dyn TokenVerifier>>,
    ) -> Arc<Node> {
        Self::new(config, name, Engine::memory(), verifier)
    }

    /// A node on `engine`. `config` must have been validated. The node registers itself as
    /// the broker's handler; run [`Node::run_cluster`] to take part in the cluster.
    pub fn new(
        config: NodeConfig,
        name: impl Into<String>,
        engine: Engine,
        verifier: Option<Arc<dyn TokenVerifier>>,
    ) -> Arc<Node> {
        let hub = Arc::new(Hub::new());
        let metrics = Arc::new(Metrics::default());
        let cluster = Arc::new(Cluster::new(config.cluster.clone()));
        let id = uuid::Uuid::new_v4().to_string();
        let lifecycle = Lifecycle::new(config.lifecycle.clone());
        engine.broker.set_handler(
            &id,
            Arc::new(HubHandler {
                hub: hub.clone(),
                metrics: metrics.clone(),
                cluster: cluster.clone(),
                batching: crate::batch::BatchPolicies::new(&config.channel).map(|p| {
                    let m = metrics.clone();
                    let account: crate::batch::Account = Arc::new(move |d: Delivery| {
                        Metrics::add(&m.messages_queued, d.queued as u64);
                        Metrics::add(&m.slow_disconnects, d.overflowed as u64);
                    });
                    (p, account)
                }),
            }),
        );
        let outboxes =
            crate::outbox::Outboxes::new(config.client.queue_max_size, config.client.write_delay);
        Arc::new(Node {
            namespaces: Namespaces::new(&config.channel),
            forwarded_headers: config.forwarded_headers().into(),
            emulated_headers: config.emulated_headers().into(),
            proxy: Default::default(),
            config,
            hub,
            broker: engine.broker.clone(),
            engine,
            cluster,
            verifier,
            registry: Registry::default(),
            outboxes,
            sessions: Sessions::default(),
            lifecycle,
            metrics,
            id,
            name: name.into(),
            started: Instant::now(),
            next_key: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            tasks: tokio_util::task::TaskTracker::new(),
            announce_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        })
    }

    /// Configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Channel name resolver.
    pub fn namespaces(&self) -> &Namespaces {
        &self.namespaces
    }

    /// The hub of this node.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// The engine the node runs on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Lifecycle events (connect, disconnect, subscribe, ...): where connections record.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Presence storage.
    pub fn presence(&self) -> &Arc<dyn PresenceManager> {
        &self.engine.presence
    }

    /// Per-user connection counts (`client.user_connection_limit` across nodes).
    pub fn user_connections(&self) -> &Arc<dyn UserConnections> {
        &self.engine.connections
    }

    /// The control plane between nodes.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Emulated sessions of this node by id (`/emulation`).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Token verifier, if token auth is configured.
    pub fn verifier(&self) -> Option<&Arc<dyn TokenVerifier>> {
        self.verifier.as_ref()
    }

    /// Sets the application backend the proxies call (once, before clients connect; later
    /// calls are ignored).
    pub fn set_proxy(&self, proxy: Arc<dyn ProxyBackend>) {
        let _ = self.proxy.set(proxy);
    }

    /// The application backend, when proxies are configured.
    pub fn proxy(&self) -> Option<&Arc<dyn ProxyBackend>> {
        self.proxy.get()
    }

    /// Lower-case names of the request headers clients keep for the proxies.
    pub fn forwarded_headers(&self) -> &[String] {
        &self.forwarded_headers
    }

    /// Lower-case names of the connect command `headers` clients keep for the proxies.
    pub fn emulated_headers(&self) -> &[String] {
        &self.emulated_headers
    }

    /// Live clients.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Unique id of this node process.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Human name of this node.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// A new client key, unique in this node.
    pub fn next_client_key(&self) -> ClientKey {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Serializes the presence/join/leave announcements of one connection (striped by client
    /// key), so the join and the leave of one subscription can not overtake each other.
    pub(crate) fn announce_lock(&self, key: ClientKey) -> &tokio::sync::Mutex<()> {
        &self.announce_locks[(key as usize) % self.announce_locks.len()]
    }

    /// Cancelled when the node shuts down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Runs `task` as background work owned by the node (see [`Node::tasks`]), not as a
    /// detached task.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// What the outboxes of this node's clients share, including the node-wide gauge of
    /// queued bytes ([`crate::outbox::Outboxes::queued_bytes`]).
    pub fn outboxes(&self) -> &Arc<crate::outbox::Outboxes> {
        &self.outboxes
    }

    /// The node's background work ([`Node::spawn`]); shutdown closes it and waits for it
    /// within its timeout.
    pub fn tasks(&self) -> &tokio_util::task::TaskTracker {
        &self.tasks
    }

    /// Starts shutdown: every client is told 3001 (shutdown, reconnect) and new connects are
    /// refused. Returns the number of clients notified.
    pub fn shutdown(&self) -> usize {
        self.shutdown.cancel();
        let clients = self.registry.all();
        for c in &clients {
            c.disconnect(pushwire_protocol::Disconnect::SHUTDOWN);
        }
        clients.len()
    }

    /// Like [`Node::shutdown`], but spreads the 3001 disconnects evenly over `period`
    /// (`shutdown.drain_period`) in steps of [`DRAIN_STEP`], so clients reconnect to other
    /// nodes gradually. New connects are refused from the start. Returns once every client
    /// present at the start has been told.
    pub async fn shutdown_paced(&self, period: std::time::Duration) -> usize {
        self.shutdown.cancel();
        let clients = self.registry.all();
        let steps = (period.as_millis() / DRAIN_STEP.as_millis()).max(1) as usize;
        let per_step = clients.len().div_ceil(steps).max(1);
        let started = tokio::time::Instant::now();
        for (i, batch) in clients.chunks(per_step).enumerate() {
            tokio::time::sleep_until(started + DRAIN_STEP * i as u32).await;
            for c in batch {
                c.disconnect(pushwire_protocol::Disconnect::SHUTDOWN);
            }
        }
        clients.len()
    }
}
