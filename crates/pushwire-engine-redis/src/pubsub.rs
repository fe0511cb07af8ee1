//! The node's PUB/SUB connection to one Redis (one per shard): subscriptions counted per channel, messages handed to the
//! node in the order Redis sent them, reconnects with backoff that resubscribe everything.
//!
//! One task (the controller) owns the connection's sink and every subscription change; a
//! second task (the reader) hands incoming messages to the node's [`BrokerEventHandler`]. A
//! subscribe is answered only after Redis confirmed `SUBSCRIBE`, so a history read made after
//! it can not miss a publication: what is published later arrives here.
//!
//! The node's control channels (`<prefix>.control`, `<prefix>.node.<uid>`) are pinned: always
//! subscribed while the connection is up; their messages go to the handler's `on_control`.
//!
//! After a lost connection the controller reconnects (backoff with jitter, retried until the
//! engine is dropped), resubscribes every channel with subscribers and the pinned ones, then
//! calls the handler's `on_resync` with those channels: publications sent while the connection
//! was down were not received, and the hub closes their subscribers with 3010 so they
//! reconnect and recover from history. Subscribes asked for while disconnected fail.
//!
//! The engine's [`RedisMetrics`] count the messages received, the reconnects, and how many
//! shards' connections are up.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use pushwire_core::engine::{BrokerEventHandler, EngineError};
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::codec::{self, Message};
use crate::conn::ClientSource;
use crate::keys::Keys;
use crate::metrics::RedisMetrics;

/// The node's handler, set once at node start.
pub(crate) type SharedHandler = Arc<OnceLock<Arc<dyn BrokerEventHandler>>>;

/// Subscription changes queued to the controller at most.
const QUEUE: usize = 4096;
/// Subscription changes applied with one `SUBSCRIBE`/`UNSUBSCRIBE` round trip at most.
const BATCH: usize = 512;
/// How often an idle connection is checked with `PING`.
const PING_INTERVAL: Duration = Duration::from_secs(5);

/// A subscription change for a PUB/SUB controller (this one or the cluster's).
pub(crate) enum Command {
    /// One more subscriber interest in a channel; answered once Redis confirmed.
    Subscribe {
        channel: String,
        done: oneshot::Sender<Result<(), EngineError>>,
    },
    /// One less.
    Unsubscribe { channel: String },
    /// Subscribe to a raw PUB/SUB name for the connection's whole life (control channels).
    Pin { name: String },
}

/// Timeouts and delays of the PUB/SUB connection.
#[derive(Debug, Clone)]
pub(crate) struct PubSubSettings {
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub reconnect_min_delay: Duration,
    pub reconnect_max_delay: Duration,
}

/// Asks the controller for subscription changes.
#[derive(Debug, Clone)]
pub(crate) struct PubSubHandle {
    tx: mpsc::Sender<Command>,
}

fn stopped() -> EngineError {
    EngineError::backend("redis: engine stopped")
}

impl PubSubHandle {
    /// A handle on a controller that reads `tx`'s receiver.
    pub(crate) fn from_sender(tx: mpsc::Sender<Command>) -> PubSubHandle {
        PubSubHandle { tx }
    }

    /// Counts one more subscriber node-side interest in `channel`; returns once Redis
    /// confirmed the subscription (immediately if it already was).
    pub(crate) async fn subscribe(&self, channel: &str) -> Result<(), EngineError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Subscribe {
                channel: channel.to_owned(),
                done,
            })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Keeps the raw PUB/SUB name `name` subscribed for good (also after reconnects). Returns
    /// once queued; the subscription follows in order with other changes.
    pub(crate) fn pin(&self, name: String) -> Result<(), EngineError> {
        self.tx
            .try_send(Command::Pin { name })
            .map_err(|_| EngineError::backend("redis: pub/sub queue full or stopped"))
    }

    /// Counts one less; the Redis subscription ends when the count reaches zero.
    pub(crate) async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError> {
        self.tx
            .send(Command::Unsubscribe {
                channel: channel.to_owned(),
            })
            .await
            .map_err(|_| stopped())
    }
}

/// An open PUB/SUB connection, split into its command sink and its message stream.
pub(crate) type PubSubConnection = (PubSubSink, PubSubStream);

/// Opens a PUB/SUB connection within `timeout`.
pub(crate) async fn open(
    client: &redis::Client,
    timeout: Duration,
) -> Result<PubSubConnection, Option<redis::RedisError>> {
    match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
        Ok(Ok(p)) => Ok(p.split()),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

/// Who the controller reports to: the node's event handler and the metrics.
pub(crate) struct PubSubHooks {
    /// Receives the publications, joins, leaves, control messages and resyncs.
    pub handler: SharedHandler,
    /// The engine's counters.
    pub metrics: Arc<RedisMetrics>,
}

/// Starts the controller on an already open connection. It runs until every
/// [`PubSubHandle`] is dropped or `cancel` fires.
pub(crate) fn start(
    source: ClientSource,
    connection: (PubSubSink, PubSubStream),
    keys: Keys,
    hooks: PubSubHooks,
    settings: PubSubSettings,
    cancel: CancellationToken,
) -> (PubSubHandle, JoinHandle<()>) {
    let PubSubHooks { handler, metrics } = hooks;
    metrics.set_pubsub_connected(true);
    let (tx, rx) = mpsc::channel(QUEUE);
    let controller = Controller {
        switched: source.switched(),
        source,
        keys,
        handler,
        settings,
        metrics,
        cancel,
        rx,
        counts: HashMap::new(),
        pinned: Vec::new(),
    };
    let task = tokio::spawn(controller.run(connection));
    (PubSubHandle { tx }, task)
}

struct Controller {
    source: ClientSource,
    /// Master switches (Sentinel): the connection is left for the new master at once.
    switched: Option<tokio::sync::watch::Receiver<u64>>,
    keys: Keys,
    handler: SharedHandler,
    settings: PubSubSettings,
    metrics: Arc<RedisMetrics>,
    cancel: CancellationToken,
    rx: mpsc::Receiver<Command>,
    /// Subscribe minus unsubscribe calls per channel; subscribed in Redis while above zero.
    /// Counting (rather than a set) keeps a late unsubscribe of a previous subscriber from
    /// undoing a newer subscribe that overtook it.
    counts: HashMap<String, i64>,
    /// Raw PUB/SUB names subscribed for good (control channels).
    pinned: Vec<String>,
}

enum End {
    Stop,
    Lost,
}

impl Controller {
    async fn run(mut self, first: (PubSubSink, PubSubStream)) {
        let mut connection = Some(first);
        loop {
            let (mut sink, stream) = match connection.take() {
                Some(c) => c,
                None => match self.reconnect().await {
                    Some(c) => c,
                    None => return,
                },
            };
            let mut reader = tokio::spawn(read(
                stream,
                self.keys.clone(),
                self.handler.clone(),
                self.metrics.clone(),
            ));
            let end = self.serve(&mut sink, &mut reader).await;
            reader.abort();
            self.metrics.set_pubsub_connected(false);
            match end {
                End::Stop => return,
                End::Lost => tracing::warn!("redis pub/sub connection lost; reconnecting"),
            }
        }
    }

    /// Applies subscription changes until the connection is lost or the engine stops.
    async fn serve(&mut self, sink: &mut PubSubSink, reader: &mut JoinHandle<()>) -> End {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(rx) = &mut self.switched {
            rx.borrow_and_update();
        }
        loop {
            let switched = async {
                let changed = match &mut self.switched {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => false,
                };
                if !changed {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return End::Stop,
                _ = switched => {
                    tracing::warn!("redis master switched; moving pub/sub to the new master");
                    return End::Lost;
                }
                _ = &mut *reader => return End::Lost,
                _ = ping.tick() => {
                    let alive = tokio::time::timeout(
                        self.settings.command_timeout,
                        sink.ping::<redis::Value>(),
                    )
                    .await;
                    if !matches!(alive, Ok(Ok(_))) {
                        return End::Lost;
                    }
                }
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { return End::Stop };
                    if !self.apply_batch(cmd, sink).await {
                        return End::Lost;
                    }
                }
            }
        }
    }

    /// Applies `first` and whatever else is queued (up to [`BATCH`]) with at most one
    /// `SUBSCRIBE` and one `UNSUBSCRIBE`. Returns false if the connection failed.
    async fn apply_batch(&mut self, first: Command, sink: &mut PubSubSink) -> bool {
        let mut before: HashMap<String, i64> = HashMap::new();
        let mut waiters = Vec::new();
        let mut next = Some(first);
        let mut n = 0;
        let mut pins = Vec::new();
        while let Some(cmd) = next.take() {
            let (channel, delta) = match cmd {
                Command::Subscribe { channel, done } => {
                    waiters.push(done);
                    (channel, 1)
                }
                Command::Unsubscribe { channel } => (channel, -1),
                Command::Pin { name } => {
                    self.pinned.push(name.clone());
                    pins.push(name);
                    next = self.rx.try_recv().ok();
                    continue;
                }
            };
            let count = self.counts.entry(channel.clone()).or_insert(0);
            before.entry(channel.clone()).or_insert(*count);
            *count += delta;
            if *count == 0 {
                self.counts.remove(&channel);
            }
            n += 1;
            if n < BATCH {
                next = self.rx.try_recv().ok();
            }
        }
        let mut subscribe = pins;
        let mut unsubscribe = Vec::new();
        for (channel, was) in before {
            let now = self.counts.get(&channel).copied().unwrap_or(0);
            if was <= 0 && now > 0 {
                subscribe.push(self.keys.pubsub(&channel));
            } else if was > 0 && now <= 0 {
                unsubscribe.push(self.keys.pubsub(&channel));
            }
        }
        let timeout = self.settings.command_timeout;
        let mut result = Ok(());
        if !subscribe.is_empty() {
            result = match tokio::time::timeout(timeout, sink.subscribe(&subscribe)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(crate::error::backend(e)),
                Err(_) => Err(EngineError::backend("redis: SUBSCRIBE timed out")),
            };
        }
        if result.is_ok() && !unsubscribe.is_empty() {
            let r = tokio::time::timeout(timeout, sink.unsubscribe(&unsubscribe)).await;
            if !matches!(r, Ok(Ok(()))) {
                result = Err(EngineError::backend("redis: UNSUBSCRIBE failed"));
            }
        }
        let ok = result.is_ok();
        for w in waiters {
            let _ = w.send(result.clone());
        }
        ok
    }

    /// Reconnects with backoff until it succeeds (then resubscribes and calls the resync
    /// hook) or the engine stops. Subscribes asked for meanwhile fail; counts stay exact.
    async fn reconnect(&mut self) -> Option<(PubSubSink, PubSubStream)> {
        let mut backoff = Backoff::new(
            self.settings.reconnect_min_delay,
            self.settings.reconnect_max_delay,
        );
        loop {
            let delay = tokio::time::sleep(backoff.next_delay());
            tokio::pin!(delay);
            loop {
                tokio::select! {
                    _ = self.cancel.cancelled() => return None,
                    _ = &mut delay => break,
                    cmd = self.rx.recv() => match cmd {
                        None => return None,
                        Some(cmd) => self.apply_disconnected(cmd),
                    },
                }
            }
            let client = match self.source.client().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "redis pub/sub reconnect: no Redis to connect to");
                    continue;
                }
            };
            let (mut sink, stream) = match open(&client, self.settings.connect_timeout).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = ?e, "redis pub/sub reconnect failed");
                    continue;
                }
            };
            let channels: Vec<String> = self
                .counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(c, _)| c.clone())
                .collect();
            let mut ok = true;
            let mut all: Vec<String> = self.pinned.clone();
            all.extend(channels.iter().map(|c| self.keys.pubsub(c)));
            for names in all.chunks(BATCH) {
                let r = tokio::time::timeout(self.settings.command_timeout, sink.subscribe(names))
                    .await;
                if !matches!(r, Ok(Ok(()))) {
                    ok = false;
                    break;
                }
            }
            if !ok {
                tracing::warn!("redis pub/sub resubscribe failed; retrying");
                continue;
            }
            tracing::info!(
                channels = channels.len(),
                "redis pub/sub reconnected and resubscribed"
            );
            self.metrics.set_pubsub_connected(true);
            RedisMetrics::inc(&self.metrics.pubsub_reconnects);
            if let Some(handler) = self.handler.get() {
                handler.on_resync(&channels);
            }
            return Some((sink, stream));
        }
    }

    fn apply_disconnected(&mut self, cmd: Command) {
        let (channel, delta) = match cmd {
            Command::Pin { name } => {
                self.pinned.push(name);
                return;
            }
            Command::Subscribe { channel, done } => {
                let _ = done.send(Err(EngineError::backend("redis: pub/sub connection down")));
                (channel, 1)
            }
            Command::Unsubscribe { channel } => (channel, -1),
        };
        let count = self.counts.entry(channel.clone()).or_insert(0);
        *count += delta;
        if *count == 0 {
            self.counts.remove(&channel);
        }
    }
}

/// Hands every message to the node until the connection ends; counts each channel message
/// received (control messages are counted by the node's control plane).
async fn read(
    mut stream: PubSubStream,
    keys: Keys,
    handler: SharedHandler,
    metrics: Arc<RedisMetrics>,
) {
    while let Some(msg) = stream.next().await {
        let name = msg.get_channel_name();
        let Some(channel) = keys.channel_of(name) else {
            // Control messages are counted by the node's control plane.
            if let (true, Some(handler)) = (keys.is_control(name), handler.get()) {
                handler.on_control(msg.get_payload_bytes());
            }
            continue;
        };
        RedisMetrics::inc(&metrics.pubsub_messages);
        let Some(handler) = handler.get() else {
            continue;
        };
        match codec::decode_message(msg.get_payload_bytes()) {
            Ok(Message::Publication(p)) => handler.on_publication(channel, &p),
            Ok(Message::JoinLeave(info, join)) => handler.on_join_leave(channel, &info, join),
            Err(e) => tracing::warn!(channel, error = %e, "dropped a malformed pub/sub message"),
        }
    }
}
