//! The broker contract.

use std::sync::Arc;
use std::time::Duration;

use crate::cause::ErrorCause;

use async_trait::async_trait;
use pushwire_protocol::{ClientInfo, Publication, StreamPosition};

/// A backend failure, or a position that does not exist in the stream.
#[derive(Debug, thiserror::Error, Clone)]
pub enum EngineError {
    /// `since.epoch` differs from the stream's epoch.
    #[error("epoch mismatch")]
    EpochMismatch,
    /// The backend failed: what the engine was doing, and the backend's own error when there
    /// is one (kept as the [`std::error::Error::source`], and shown after `what`).
    #[error("backend error: {what}{}", crate::cause::suffix(.cause))]
    Backend {
        /// What failed, in the engine's words (`redis: SUBSCRIBE timed out`).
        what: String,
        /// The backend's error, when the failure came from one.
        #[source]
        cause: Option<ErrorCause>,
    },
    /// The backend is known to be failing and the call was not tried: a circuit breaker is
    /// open (`redis circuit open`). Fails at once; `cause` says why the circuit opened (its
    /// last failure). Not logged per call: the engine logs the opening and the closing.
    #[error("backend unavailable: {what}{}", crate::cause::suffix(.cause))]
    Unavailable {
        /// What refused the call, in the engine's words (`redis circuit open`).
        what: String,
        /// Why the backend is held to be failing.
        #[source]
        cause: Option<ErrorCause>,
    },
}

impl EngineError {
    /// A backend failure described by `what` alone.
    pub fn backend(what: impl Into<String>) -> EngineError {
        EngineError::Backend {
            what: what.into(),
            cause: None,
        }
    }

    /// A backend failure while doing `what`, caused by the backend's error `cause`.
    pub fn caused(
        what: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> EngineError {
        EngineError::Backend {
            what: what.into(),
            cause: Some(Arc::new(cause)),
        }
    }

    /// Whether the call was refused without trying the backend ([`EngineError::Unavailable`]):
    /// callers do not log those one by one.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, EngineError::Unavailable { .. })
    }

    /// A call refused without trying the backend (`what`: `redis circuit open`), because
    /// of `cause`.
    pub fn unavailable(
        what: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> EngineError {
        EngineError::Unavailable {
            what: what.into(),
            cause: Some(Arc::new(cause)),
        }
    }
}

impl PartialEq for EngineError {
    /// Same variant and, for backend failures and refusals, the same text (causes compare by message).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (EngineError::EpochMismatch, EngineError::EpochMismatch) => true,
            (EngineError::Backend { .. }, EngineError::Backend { .. })
            | (EngineError::Unavailable { .. }, EngineError::Unavailable { .. }) => {
                self.to_string() == other.to_string()
            }
            _ => false,
        }
    }
}

impl Eq for EngineError {}

/// How a publication is stored.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Publications kept in the channel's stream; 0 = no history.
    pub history_size: usize,
    /// How long publications are kept.
    pub history_ttl: Duration,
    /// How long the stream position survives without publications.
    pub history_meta_ttl: Duration,
    /// Drops a publication whose key was seen on this channel in the last 5 minutes.
    pub idempotency_key: Option<String>,
    /// Drops a publication whose version is not above the last seen (history channels only).
    pub version: u64,
    /// Resets version tracking when it changes.
    pub version_epoch: String,
}

impl PublishOptions {
    /// Whether the publication goes to history.
    pub fn history(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }
}

/// What a publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Position of the publication; `None` when the channel keeps no history.
    pub position: Option<StreamPosition>,
    /// Dropped as a duplicate (idempotency key) or stale (version); `position` is the
    /// position of the earlier publication or the current top.
    pub suppressed: bool,
}

/// A history read.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Publications strictly after (or before, with `reverse`) this position.
    pub since: Option<StreamPosition>,
    /// At most this many publications; 0 returns only the position.
    pub limit: usize,
    /// Newest first.
    pub reverse: bool,
    /// Lifetime of the stream position, for a stream this read creates.
    pub meta_ttl: Duration,
}

/// A history answer.
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    /// Publications, each with its offset.
    pub publications: Vec<Publication>,
    /// Current top of the stream.
    pub position: StreamPosition,
}

/// Receives what the broker delivers to this node. Every method is called on the broker's
/// delivery path and must not block: queue the work and return.
pub trait BrokerEventHandler: Send + Sync + 'static {
    /// A publication for `channel`, in offset order per channel.
    fn on_publication(&self, channel: &str, publication: &Publication);
    /// A join (`join == true`) or leave in `channel`.
    fn on_join_leave(&self, channel: &str, info: &ClientInfo, join: bool);
    /// A control message published with [`Broker::publish_control`] by any node on this
    /// broker (this one included), as the bytes it was published with.
    fn on_control(&self, data: &[u8]);
    /// Publications of `channels` may have been missed (the broker lost and re-established
    /// its connection): their subscribers on this node must resync from history.
    fn on_resync(&self, channels: &[String]);
}

/// Moves publications and control messages between nodes and keeps channel streams.
///
/// Contract: `publish` appends to the channel's stream (assigning the next offset in the
/// current epoch) and delivers to every node's handler atomically per channel, so delivery
/// order equals offset order and the stream top always equals the last delivered offset.
/// `publish_control` reaches every node on the broker (the sender included) or the one node
/// it names, in the order one sender published. The broker owns its background work
/// (connections, expiry sweeps): dropping it stops that work.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Registers the node (its uid, the address of node-directed control messages) and its
    /// handler; called once before any other method.
    fn set_handler(&self, node_id: &str, handler: std::sync::Arc<dyn BrokerEventHandler>);
    /// Appends (when history is on) and delivers a publication.
    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError>;
    /// Delivers a join or leave (never stored).
    async fn publish_join_leave(
        &self,
        channel: &str,
        info: ClientInfo,
        join: bool,
    ) -> Result<(), EngineError>;
    /// This node now has subscribers in `channel`.
    async fn subscribe(&self, channel: &str) -> Result<(), EngineError>;
    /// This node no longer has subscribers in `channel`.
    async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError>;
    /// Reads the channel's stream.
    async fn history(&self, channel: &str, query: HistoryQuery)
        -> Result<HistoryPage, EngineError>;
    /// Removes publications but keeps the position and epoch.
    async fn remove_history(&self, channel: &str) -> Result<(), EngineError>;
    /// Sends a control message to every node (`to == None`, the sender included) or to the
    /// node with uid `to`. Returns once the broker accepted it; a node that is not there
    /// simply does not receive it.
    async fn publish_control(
        &self,
        data: bytes::Bytes,
        to: Option<&str>,
    ) -> Result<(), EngineError>;
    /// What of the engine works only partly right now (e.g. "redis pub/sub disconnected"),
    /// for `/health`; `None` (the default) when everything works.
    fn degraded(&self) -> Option<String> {
        None
    }
    /// The engine's own figures for `/metrics` (connections, errors, ...); none by default.
    fn metrics(&self) -> Vec<super::EngineMetric> {
        Vec::new()
    }
}
