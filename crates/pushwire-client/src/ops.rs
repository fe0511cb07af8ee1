//! The types the handles and the connection task share: what the application wants
//! ([`Want`], [`Intent`]), what the task reports ([`Status`]), the operations queued to it
//! ([`Op`]), and the public option types of calls and subscriptions. Their own module so that
//! `client`, `subscription` and `driver` all depend on it and not on each other.

use bytes::Bytes;
use pushwire_protocol::Reply;
use tokio::sync::oneshot;

use crate::codec::Body;
use crate::error::ClientError;
use crate::state::State;

/// What the application wants the connection to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Connected,
    Disconnected,
    Closed,
}

/// The wanted state, with a generation so that `connect()` after a terminal disconnect is seen
/// as a change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Intent {
    pub want: Want,
    pub generation: u64,
}

/// The current state and the terminal error that caused `Disconnected`, if any.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub state: State,
    pub error: Option<ClientError>,
}

/// Operations for the connection task.
#[derive(Debug)]
pub(crate) enum Op {
    Subscribe {
        channel: String,
        opts: SubscriptionOptions,
    },
    Unsubscribe {
        channel: String,
    },
    Call {
        body: Body,
        reply: oneshot::Sender<Result<Reply, ClientError>>,
    },
}

/// History query options.
#[derive(Debug, Clone, Default)]
pub struct HistoryOptions {
    /// 0 = position only, -1 = everything (capped by the server), N = at most N.
    pub limit: i32,
    /// Publications strictly after this `(offset, epoch)` (before it with `reverse`).
    pub since: Option<(u64, String)>,
    /// Newest first.
    pub reverse: bool,
}

/// Subscribe options. All off by default; namespaces may force recovery and positioning.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionOptions {
    /// Subscription token (private channels).
    pub token: Option<String>,
    /// Custom subscribe data (raw JSON with the JSON protocol).
    pub data: Option<Bytes>,
    /// Ask for positioning.
    pub positioned: bool,
    /// Ask for recovery.
    pub recoverable: bool,
    /// Ask for join/leave pushes.
    pub join_leave: bool,
    /// Recover from this position on the first subscribe: `(offset, epoch)`.
    pub since: Option<(u64, String)>,
}
