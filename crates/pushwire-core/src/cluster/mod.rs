//! The control plane: what makes several nodes on one engine behave as one server.
//!
//! Messages ([`pushwire_protocol::control`], versioned protobuf envelopes) travel through the
//! engine's [`Broker::publish_control`](crate::engine::Broker::publish_control) — to every node
//! or to one node by uid — and arrive through the broker's handler into this node's bounded
//! control queue; `Node::run_cluster` handles them:
//!
//! - **announcements**: every `node.info_interval` each node sends its [`NodeInfo`]
//!   (uid, name, version, counts, uptime); [`Peers`] forgets a node silent for
//!   `node.info_ttl`, and a node that stops gracefully says so at once (`Leave`);
//! - **user operations**: `disconnect`, `unsubscribe`, `subscribe` and `refresh` of the server
//!   API are published to every node, then applied by each to its own connections;
//! - **requests**: a survey asks every live node (`channels`) and gathers the answers until all
//!   arrived or `node.survey_timeout` passed (a partial result is logged and counted); a
//!   forwarded `/emulation` body asks the one node that owns the session.
//!
//! Undecodable messages and unknown versions are counted, logged once per interval and
//! dropped; a full control queue drops and counts too. Nothing here blocks the broker.

mod codec;
mod convert;
mod peers;
mod pending;
mod throttle;

pub use codec::{decode, encode, ControlDecodeError};
pub use convert::{position_from_pb, position_to_pb};
pub use peers::Peers;
pub use pending::{Answer, Awaiting, Pending};
pub use throttle::LogThrottle;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::config::ClusterConfig;
use crate::node::NodeInfo;

/// Control-plane counters (`pushwire_cluster_*` in `/metrics`).
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Control messages received (all kinds, own broadcasts included).
    pub received: AtomicU64,
    /// Control messages published by this node.
    pub sent: AtomicU64,
    /// Control messages that could not be published (engine down).
    pub send_errors: AtomicU64,
    /// Received messages dropped as undecodable or of an unknown version.
    pub invalid: AtomicU64,
    /// Received messages dropped because the control queue was full.
    pub dropped: AtomicU64,
    /// Requests from other nodes dropped because `node.max_requests_in_flight` were running.
    pub requests_rejected: AtomicU64,
    /// Surveys this node ran.
    pub surveys: AtomicU64,
    /// Surveys that ended before every live node answered.
    pub surveys_partial: AtomicU64,
    /// `/emulation` bodies forwarded to the owning node.
    pub emulation_forwarded: AtomicU64,
    /// Forwarded `/emulation` bodies that got no answer (node gone or engine down).
    pub emulation_forward_failed: AtomicU64,
}

impl ClusterMetrics {
    /// Adds one.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// This node's side of the control plane: the other nodes, the requests in flight, the
/// queue of received messages and the counters.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    peers: Peers,
    pending: Pending,
    inbox: mpsc::Sender<Bytes>,
    inbox_rx: Mutex<Option<mpsc::Receiver<Bytes>>>,
    metrics: ClusterMetrics,
    /// One line per interval for dropped (invalid or overflowing) messages.
    pub(crate) drop_log: LogThrottle,
    /// One line per interval for failed publishes of control messages.
    pub(crate) send_log: LogThrottle,
    /// One line per interval for partial surveys.
    pub(crate) survey_log: LogThrottle,
}

/// How often a recurring control-plane problem is logged at most.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Cluster {
    /// A control plane with `config` (validated).
    pub fn new(config: ClusterConfig) -> Cluster {
        let (tx, rx) = mpsc::channel(config.control_queue_size);
        Cluster {
            peers: Peers::new(config.info_ttl),
            config,
            pending: Pending::default(),
            inbox: tx,
            inbox_rx: Mutex::new(Some(rx)),
            metrics: ClusterMetrics::default(),
            drop_log: LogThrottle::new(LOG_INTERVAL),
            send_log: LogThrottle::new(LOG_INTERVAL),
            survey_log: LogThrottle::new(LOG_INTERVAL),
        }
    }

    /// Queues received control bytes for the node's control loop; never blocks. A full queue
    /// drops the message (counted, logged once per interval).
    pub fn receive(&self, data: &[u8]) {
        ClusterMetrics::inc(&self.metrics.received);
        // Closed: the control loop has stopped (the node is shutting down); nothing to do.
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.inbox.try_send(Bytes::copy_from_slice(data))
        {
            ClusterMetrics::inc(&self.metrics.dropped);
            if let Some(more) = self.drop_log.allow() {
                tracing::warn!(
                    suppressed = more,
                    queue = self.config.control_queue_size,
                    "control queue full: control message dropped"
                );
            }
        }
    }

    /// The receiving end of the control queue; `Some` once (for the control loop).
    pub(crate) fn take_inbox(&self) -> Option<mpsc::Receiver<Bytes>> {
        self.inbox_rx.lock().take()
    }

    /// Settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The other live nodes.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Requests in flight.
    pub fn pending(&self) -> &Pending {
        &self.pending
    }

    /// Counters.
    pub fn metrics(&self) -> &ClusterMetrics {
        &self.metrics
    }

    /// The live nodes other than this one.
    pub fn peer_infos(&self) -> Vec<NodeInfo> {
        self.peers.live()
    }
}
