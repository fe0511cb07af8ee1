//! Client-side subscriptions: options, the handle, and the position kept for recovery.
//!
//! A subscription remembers the stream `offset` (advanced by every publication) and `epoch`
//! (from the subscribe reply). Once a reply said `recoverable`, every later subscribe (after a
//! reconnect, or an unsubscribe push with a code >= 2500) asks the server to recover from that
//! position; the [`crate::Event::Subscribed`] that follows says whether it `recovered`.

use std::sync::Arc;

use bytes::Bytes;
use pushwire_protocol::{HistoryResult, PresenceResult, PresenceStatsResult};

pub use crate::ops::SubscriptionOptions;

use crate::codec::SubscribeReq;
use crate::error::ClientError;
use crate::ops::HistoryOptions;
use crate::shared::Shared;
use crate::state::SubState;

/// A handle on one channel's subscription. Create it with
/// [`crate::Client::new_subscription`]; events for it arrive on the client's event stream.
///
/// ```no_run
/// # async fn run() -> Result<(), pushwire_client::ClientError> {
/// use pushwire_client::{Client, ClientConfig, SubscriptionOptions};
///
/// let (client, _events) = Client::new(ClientConfig::new("ws://127.0.0.1:8000/connection/websocket"))?;
/// client.connect();
/// let sub = client.new_subscription("chat:index", SubscriptionOptions::default())?;
/// sub.subscribe().await?;
/// sub.publish(br#"{"text":"hi"}"#.to_vec()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Subscription {
    channel: String,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .finish()
    }
}

impl Subscription {
    pub(crate) fn new(channel: String, shared: Arc<Shared>) -> Self {
        Subscription { channel, shared }
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The subscription's current state.
    pub fn state(&self) -> SubState {
        self.shared
            .sub_states
            .lock()
            .get(&self.channel)
            .copied()
            .unwrap_or(SubState::Unsubscribed)
    }

    /// Starts subscribing: now when connected, otherwise as soon as the client connects.
    /// Returns once the request is queued; the outcome arrives as events.
    pub async fn subscribe(&self) -> Result<(), ClientError> {
        self.shared
            .op(crate::ops::Op::Subscribe {
                channel: self.channel.clone(),
                opts: SubscriptionOptions::default(),
            })
            .await
    }

    /// Unsubscribes (the position is kept, so a later `subscribe` recovers).
    pub async fn unsubscribe(&self) -> Result<(), ClientError> {
        self.shared
            .op(crate::ops::Op::Unsubscribe {
                channel: self.channel.clone(),
            })
            .await
    }

    /// Publishes into this channel. See [`crate::Client::publish`].
    pub async fn publish(&self, data: impl Into<Bytes>) -> Result<(), ClientError> {
        self.shared.publish(&self.channel, data.into()).await
    }

    /// Reads this channel's history. See [`crate::Client::history`].
    pub async fn history(&self, opts: HistoryOptions) -> Result<HistoryResult, ClientError> {
        self.shared.history(&self.channel, opts).await
    }

    /// Who is subscribed. See [`crate::Client::presence`].
    pub async fn presence(&self) -> Result<PresenceResult, ClientError> {
        self.shared.presence(&self.channel).await
    }

    /// Presence counts. See [`crate::Client::presence_stats`].
    pub async fn presence_stats(&self) -> Result<PresenceStatsResult, ClientError> {
        self.shared.presence_stats(&self.channel).await
    }
}

/// The connection task's record of one subscription.
#[derive(Debug)]
pub(crate) struct SubEntry {
    pub opts: SubscriptionOptions,
    pub state: SubState,
    /// Whether the user wants it subscribed.
    pub wanted: bool,
    pub offset: u64,
    pub epoch: String,
    /// The last reply said `recoverable`: recover on the next subscribe.
    pub recover: bool,
    /// Failed attempts since the last success (resubscribe backoff).
    pub attempt: u32,
    /// When to retry after a retryable subscribe error.
    pub retry_at: Option<tokio::time::Instant>,
}

impl SubEntry {
    pub(crate) fn new(opts: SubscriptionOptions) -> Self {
        let (offset, epoch, recover) = match &opts.since {
            Some((o, e)) => (*o, e.clone(), true),
            None => (0, String::new(), false),
        };
        SubEntry {
            opts,
            state: SubState::Unsubscribed,
            wanted: false,
            offset,
            epoch,
            recover,
            attempt: 0,
            retry_at: None,
        }
    }

    /// The subscribe request, with recovery fields when a position is known.
    pub(crate) fn request(&self, channel: &str) -> SubscribeReq {
        SubscribeReq {
            channel: channel.to_owned(),
            token: self.opts.token.clone().unwrap_or_default(),
            recover: self.recover,
            epoch: if self.recover {
                self.epoch.clone()
            } else {
                String::new()
            },
            offset: if self.recover { self.offset } else { 0 },
            data: self
                .opts
                .data
                .clone()
                .map(pushwire_protocol::RawJson)
                .unwrap_or_default(),
            positioned: self.opts.positioned,
            recoverable: self.opts.recoverable,
            join_leave: self.opts.join_leave,
        }
    }
}
