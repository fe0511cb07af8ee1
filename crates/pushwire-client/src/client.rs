//! The public handle: connect, disconnect, close, subscriptions, and typed calls.
//!
//! The handle is cheap to clone. All protocol work happens in one connection task (see
//! `driver`); the handle talks to it through a bounded queue of operations and a watch of the
//! wanted state. Dropping every handle (and every [`Subscription`]) stops the task.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use pushwire_protocol::{HistoryResult, PresenceResult, PresenceStatsResult, Protocol};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::codec;
use crate::config::ClientConfig;
use crate::driver::Driver;
use crate::error::ClientError;
use crate::event::EventStream;
use crate::ops::{HistoryOptions, Intent, Status, SubscriptionOptions, Want};
use crate::shared::Shared;
use crate::state::State;
use crate::subscription::Subscription;

/// A pushwire (Centrifugo protocol v2) client.
///
/// ```no_run
/// # async fn run() -> Result<(), pushwire_client::ClientError> {
/// use std::time::Duration;
/// use futures_util::StreamExt;
/// use pushwire_client::{Client, ClientConfig, Event, HistoryOptions, SubscriptionOptions};
///
/// let config = ClientConfig::new("ws://127.0.0.1:8000/connection/websocket").token("<jwt>");
/// let (client, mut events) = Client::new(config)?;
/// client.connect();
/// client.ready(Duration::from_secs(5)).await?;
///
/// let sub = client.new_subscription("chat:index", SubscriptionOptions::default())?;
/// sub.subscribe().await?;
/// client.publish("chat:index", br#"{"text":"hello"}"#.to_vec()).await?;
/// let history = client.history("chat:index", HistoryOptions { limit: 10, ..Default::default() }).await?;
/// println!("{} publications, top offset {}", history.publications.len(), history.offset);
///
/// while let Some(event) = events.next().await {
///     match event {
///         Event::Subscribed { channel, was_recovering: true, recovered: false, .. } => {
///             println!("{channel}: missed publications could not be recovered; reload");
///         }
///         Event::Publication { channel, publication } => println!("{channel} {}", publication.offset),
///         _ => {}
///     }
/// }
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state())
            .finish()
    }
}

impl Client {
    /// Validates `config` and starts the connection task (disconnected until
    /// [`Client::connect`]). Must be called inside a Tokio runtime.
    ///
    /// Errors: [`ClientError::Config`] or [`ClientError::InvalidUrl`] naming what is wrong.
    pub fn new(config: ClientConfig) -> Result<(Client, EventStream), ClientError> {
        let validated = config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClientError::Config {
            key: "runtime",
            message: "Client::new must be called inside a Tokio runtime".into(),
        })?;
        let (ops_tx, ops_rx) = mpsc::channel(config.command_queue_capacity);
        let (events_tx, events_rx) = mpsc::channel(config.event_queue_capacity);
        let (intent_tx, intent_rx) = watch::channel(Intent {
            want: Want::Disconnected,
            generation: 0,
        });
        let status = Arc::new(
            watch::channel(Status {
                state: State::Disconnected,
                error: None,
            })
            .0,
        );
        let sub_states = Arc::new(Mutex::new(HashMap::new()));
        let cancel = CancellationToken::new();
        let protocol = config.protocol;
        let timeout = config.timeout;
        let mut http = reqwest::Client::builder();
        if let Some(tls) = &validated.tls {
            http = http.use_preconfigured_tls((**tls).clone());
        }
        let http = http.build().map_err(|e| ClientError::Config {
            key: "http",
            message: e.to_string(),
        })?;
        let driver = Driver::new(
            config,
            http,
            validated,
            ops_rx,
            intent_rx,
            events_tx,
            status.clone(),
            sub_states.clone(),
            cancel.clone(),
        );
        let task = runtime.spawn(driver.run());
        let shared = Arc::new(Shared {
            ops: ops_tx,
            intent: intent_tx,
            status,
            sub_states,
            sub_opts: Mutex::new(HashMap::new()),
            protocol,
            timeout,
            task: Mutex::new(Some(task)),
            cancel: cancel.clone(),
            _stop: cancel.drop_guard(),
        });
        Ok((Client { shared }, EventStream::new(events_rx)))
    }

    /// Starts connecting (and keeps reconnecting with backoff until connected, a terminal
    /// disconnect, [`Client::disconnect`] or [`Client::close`]).
    pub fn connect(&self) {
        self.shared.status.send_modify(|s| {
            if s.state == State::Disconnected {
                s.state = State::Connecting;
                s.error = None;
            }
        });
        self.shared.set_want(Want::Connected);
    }

    /// Disconnects; subscriptions are kept and resubscribed by a later [`Client::connect`].
    pub fn disconnect(&self) {
        self.shared.set_want(Want::Disconnected);
    }

    /// Closes for good: the connection is closed cleanly (WebSocket close 1000), pending calls
    /// fail with [`ClientError::Closed`], and the event stream ends.
    pub async fn close(&self) {
        self.shared.set_want(Want::Closed);
        let task = self.shared.task.lock().take();
        if let Some(task) = task {
            // A task stuck on a full event queue nobody reads is stopped after 3 s.
            if tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .is_err()
            {
                self.shared.cancel.cancel();
            }
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.status.borrow().state
    }

    /// Waits until connected. Fails with the terminal error when the client ends up
    /// disconnected (e.g. [`ClientError::Disconnected`] with 3500 for an invalid token),
    /// [`ClientError::Closed`], or [`ClientError::Timeout`] after `timeout`.
    pub async fn ready(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut rx = self.shared.status.subscribe();
        let wait = async {
            loop {
                {
                    let s = rx.borrow_and_update();
                    match s.state {
                        State::Connected => return Ok(()),
                        State::Closed => return Err(ClientError::Closed),
                        State::Disconnected => {
                            return Err(s.error.clone().unwrap_or(ClientError::NotConnected))
                        }
                        State::Connecting => {}
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(ClientError::Closed);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(ClientError::Timeout))
    }

    /// A subscription handle for `channel` (not subscribed yet: call
    /// [`Subscription::subscribe`]). One handle per channel:
    /// [`ClientError::DuplicateSubscription`] for a second one.
    pub fn new_subscription(
        &self,
        channel: &str,
        opts: SubscriptionOptions,
    ) -> Result<Subscription, ClientError> {
        let mut subs = self.shared.sub_opts.lock();
        if subs.contains_key(channel) {
            return Err(ClientError::DuplicateSubscription(channel.to_owned()));
        }
        if let (Some(d), Protocol::Json) = (&opts.data, self.shared.protocol) {
            codec::check_data(Protocol::Json, d)?;
        }
        subs.insert(channel.to_owned(), opts);
        Ok(Subscription::new(channel.to_owned(), self.shared.clone()))
    }

    /// Channels with a subscription handle.
    pub fn subscriptions(&self) -> HashSet<String> {
        self.shared.sub_opts.lock().keys().cloned().collect()
    }

    /// Publishes `data` (one JSON value with the JSON protocol) into `channel`.
    /// Calls made while connecting wait for the connection (up to the timeout).
    pub async fn publish(&self, channel: &str, data: impl Into<Bytes>) -> Result<(), ClientError> {
        self.shared.publish(channel, data.into()).await
    }

    /// Reads `channel`'s history (the namespace must keep history).
    pub async fn history(
        &self,
        channel: &str,
        opts: HistoryOptions,
    ) -> Result<HistoryResult, ClientError> {
        self.shared.history(channel, opts).await
    }

    /// Who is subscribed to `channel` (client id → info).
    pub async fn presence(&self, channel: &str) -> Result<PresenceResult, ClientError> {
        self.shared.presence(channel).await
    }

    /// Number of clients and distinct users subscribed to `channel`.
    pub async fn presence_stats(&self, channel: &str) -> Result<PresenceStatsResult, ClientError> {
        self.shared.presence_stats(channel).await
    }
}
