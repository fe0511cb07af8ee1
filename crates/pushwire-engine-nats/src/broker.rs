//! [`NatsBroker`]: fan-out and control messages between nodes over NATS core PUB/SUB.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use parking_lot::Mutex;
use pushwire_core::engine::{
    Broker, BrokerEventHandler, EngineError, EngineMetric, HistoryPage, HistoryQuery,
    PublishOptions, PublishOutcome,
};
use pushwire_protocol::{ClientInfo, Publication};
use tokio::task::JoinHandle;

use crate::codec::{self, Message};
use crate::config::NatsBrokerConfig;
use crate::error::StartError;
use crate::history::HistoryStore;
use crate::subjects::Subjects;

/// Connection events queued to the broker's event task at most (older ones are dropped; only
/// the latest state matters).
const EVENTS: usize = 64;

type SharedHandler = Arc<OnceLock<Arc<dyn BrokerEventHandler>>>;

/// The broker's counters, rendered as the `pushwire_nats_*` families of `/metrics`.
#[derive(Debug, Default)]
pub struct NatsMetrics {
    /// Publications sent to NATS (after storing, when the channel keeps history).
    pub publications: AtomicU64,
    /// Publications that failed (history store or NATS).
    pub publish_errors: AtomicU64,
    /// Channel messages received from NATS.
    pub messages: AtomicU64,
    /// Times the connection was lost and re-established (subscribers resynced with 3010).
    pub reconnects: AtomicU64,
    /// 1 while connected to NATS.
    pub connected: AtomicU64,
}

struct Inner {
    client: async_nats::Client,
    subjects: Subjects,
    handler: SharedHandler,
    /// Channel → (subscriber count, forwarding task). Subscribed in NATS while present.
    subs: tokio::sync::Mutex<HashMap<String, (u64, JoinHandle<()>)>>,
    metrics: NatsMetrics,
    write_timeout: Duration,
    /// Unique per broker: the subjects of [`Inner::barrier`] round trips.
    barrier_prefix: String,
    barriers: AtomicU64,
}

impl Inner {
    /// Returns once the NATS server processed everything this connection sent before (a
    /// subscription made earlier is then in place): a message to a subject only this
    /// connection subscribes to comes back after them. `flush` alone only writes the socket.
    async fn barrier(&self) -> Result<(), EngineError> {
        let n = self.barriers.fetch_add(1, Ordering::Relaxed);
        let subject = format!("{}.{n}", self.barrier_prefix);
        let mut sub = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(backend)?;
        self.client
            .publish(subject, bytes::Bytes::new())
            .await
            .map_err(backend)?;
        match tokio::time::timeout(self.write_timeout, sub.next()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(backend("connection closed")),
            Err(_) => Err(backend("subscription not confirmed in time")),
        }
    }
}

/// A broker on NATS core shared by every node on the same NATS and `broker.nats.prefix`.
///
/// - `publish`: with a [`HistoryStore`] and a channel that keeps history (or an idempotency
///   key), stores first (offset, epoch, idempotency, version from the store), then sends the
///   publication with its offset over NATS; otherwise just sends it. At most once: a
///   publication sent while a node is disconnected from NATS does not reach that node, which
///   resyncs all its channels (3010) when it reconnects.
/// - `subscribe` returns once the NATS server has the subscription (a round trip to itself).
/// - `history` needs a [`HistoryStore`]; without one it fails.
/// - Dropping the broker stops its tasks; NATS subscriptions end with the connection.
pub struct NatsBroker {
    inner: Arc<Inner>,
    history: Option<Arc<dyn HistoryStore>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker").finish_non_exhaustive()
    }
}

fn backend(what: impl std::fmt::Display) -> EngineError {
    EngineError::backend(format!("nats: {what}"))
}

fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl NatsBroker {
    /// Connects to `config.url` (validated) within `dial_timeout`; fails naming
    /// `broker.nats.url` when NATS is unreachable. After a successful start the client
    /// reconnects by itself, forever, with backoff; `history` keeps channel history.
    pub async fn connect(
        config: &NatsBrokerConfig,
        history: Option<Arc<dyn HistoryStore>>,
    ) -> Result<NatsBroker, StartError> {
        let (events_tx, mut events) = tokio::sync::mpsc::channel(EVENTS);
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(config.dial_timeout)
            .max_reconnects(None)
            .event_callback(move |event| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.try_send(event);
                }
            });
        let client = options
            .connect(config.url.as_str())
            .await
            .map_err(|source| StartError::Connect {
                url: config.url.clone(),
                source,
            })?;
        let inner = Arc::new(Inner {
            client,
            subjects: Subjects::new(&config.prefix),
            handler: Arc::new(OnceLock::new()),
            subs: tokio::sync::Mutex::new(HashMap::new()),
            metrics: NatsMetrics::default(),
            write_timeout: config.write_timeout,
            barrier_prefix: format!(
                "{}.barrier.{}x{}",
                config.prefix,
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
            barriers: AtomicU64::new(0),
        });
        inner.metrics.connected.store(1, Ordering::Relaxed);
        let weak = Arc::downgrade(&inner);
        let event_task = tokio::spawn(async move {
            let mut lost = false;
            while let Some(event) = events.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                match event {
                    async_nats::Event::Disconnected => {
                        lost = true;
                        inner.metrics.connected.store(0, Ordering::Relaxed);
                        tracing::warn!("nats connection lost; reconnecting");
                    }
                    async_nats::Event::Connected if lost => {
                        lost = false;
                        inner.metrics.connected.store(1, Ordering::Relaxed);
                        inc(&inner.metrics.reconnects);
                        let channels: Vec<String> =
                            inner.subs.lock().await.keys().cloned().collect();
                        tracing::info!(channels = channels.len(), "nats reconnected");
                        if let Some(handler) = inner.handler.get() {
                            handler.on_resync(&channels);
                        }
                    }
                    other => tracing::debug!(event = %other, "nats event"),
                }
            }
        });
        Ok(NatsBroker {
            inner,
            history,
            tasks: Mutex::new(vec![event_task]),
        })
    }

    /// The broker's counters.
    pub fn nats_metrics(&self) -> &NatsMetrics {
        &self.inner.metrics
    }

    fn subject(&self, channel: &str) -> Result<String, EngineError> {
        self.inner.subjects.channel(channel).ok_or_else(|| {
            backend(format_args!(
                "channel {channel:?} is not a valid NATS subject"
            ))
        })
    }

    async fn send(&self, subject: String, payload: Vec<u8>) -> Result<(), EngineError> {
        self.inner
            .client
            .publish(subject, payload.into())
            .await
            .map_err(backend)
    }

    async fn publish_inner(
        &self,
        channel: &str,
        mut publication: Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        let subject = self.subject(channel)?;
        let mut outcome = PublishOutcome::default();
        match &self.history {
            Some(store) if options.history() || options.idempotency_key.is_some() => {
                outcome = store.store(channel, &publication, options).await?;
                if outcome.suppressed {
                    return Ok(outcome);
                }
                if let Some(position) = &outcome.position {
                    publication.offset = position.offset;
                }
            }
            None if options.history() => {
                return Err(backend(
                    "history needs a history store (engine.type = \"redis\" with broker.type = \"nats\")",
                ));
            }
            _ => {}
        }
        self.send(subject, codec::publication_message(&publication))
            .await?;
        Ok(outcome)
    }
}

impl Drop for NatsBroker {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().drain(..) {
            t.abort();
        }
        if let Ok(mut subs) = self.inner.subs.try_lock() {
            for (_, (_, task)) in subs.drain() {
                task.abort();
            }
        }
    }
}

/// Hands every message of one channel subscription to the node.
async fn forward(mut sub: async_nats::Subscriber, channel: String, inner: Arc<Inner>) {
    while let Some(msg) = sub.next().await {
        inc(&inner.metrics.messages);
        let Some(handler) = inner.handler.get() else {
            continue;
        };
        match codec::decode_message(&msg.payload) {
            Ok(Message::Publication(p)) => handler.on_publication(&channel, &p),
            Ok(Message::JoinLeave(info, join)) => handler.on_join_leave(&channel, &info, join),
            Err(e) => tracing::warn!(channel, error = %e, "dropped a malformed nats message"),
        }
    }
}

/// Hands every control message of one subject to the node.
async fn forward_control(mut sub: async_nats::Subscriber, inner: Arc<Inner>) {
    while let Some(msg) = sub.next().await {
        if let Some(handler) = inner.handler.get() {
            handler.on_control(&msg.payload);
        }
    }
}

#[async_trait]
impl Broker for NatsBroker {
    fn set_handler(&self, node_id: &str, handler: Arc<dyn BrokerEventHandler>) {
        let _ = self.inner.handler.set(handler);
        let subjects = [
            self.inner.subjects.control(),
            self.inner.subjects.node(node_id),
        ];
        let inner = self.inner.clone();
        // Subscribed in the background: set_handler is not async. The client sends the SUBs
        // in order before anything published later by this node.
        let task = tokio::spawn(async move {
            let mut forwards = Vec::new();
            for subject in subjects {
                match inner.client.subscribe(subject.clone()).await {
                    Ok(sub) => forwards.push(forward_control(sub, inner.clone())),
                    Err(e) => {
                        tracing::error!(subject, error = %e, "control subject not subscribed")
                    }
                }
            }
            if let Err(e) = inner.barrier().await {
                tracing::warn!(error = %e, "control subjects not confirmed");
            }
            futures_util::future::join_all(forwards).await;
        });
        self.tasks.lock().push(task);
    }

    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        let result = self.publish_inner(channel, publication, options).await;
        match &result {
            Ok(o) if !o.suppressed => inc(&self.inner.metrics.publications),
            Ok(_) => {}
            Err(_) => inc(&self.inner.metrics.publish_errors),
        }
        result
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        info: ClientInfo,
        join: bool,
    ) -> Result<(), EngineError> {
        let subject = self.subject(channel)?;
        self.send(subject, codec::join_leave_message(&info, join))
            .await
    }

    async fn subscribe(&self, channel: &str) -> Result<(), EngineError> {
        let subject = self.subject(channel)?;
        let mut subs = self.inner.subs.lock().await;
        if let Some((n, _)) = subs.get_mut(channel) {
            *n += 1;
            return Ok(());
        }
        let timeout = self.inner.write_timeout;
        let sub = tokio::time::timeout(timeout, self.inner.client.subscribe(subject))
            .await
            .map_err(|_| backend("subscribe timed out"))?
            .map_err(backend)?;
        self.inner.barrier().await?;
        let task = tokio::spawn(forward(sub, channel.to_owned(), self.inner.clone()));
        subs.insert(channel.to_owned(), (1, task));
        Ok(())
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError> {
        let mut subs = self.inner.subs.lock().await;
        if let Some((n, _)) = subs.get_mut(channel) {
            *n -= 1;
            if *n == 0
                && let Some((_, task)) = subs.remove(channel)
            {
                // Dropping the subscriber (with its task) unsubscribes in NATS.
                task.abort();
            }
        }
        Ok(())
    }

    async fn history(
        &self,
        channel: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage, EngineError> {
        match &self.history {
            Some(store) => store.history(channel, query).await,
            None => Err(backend(
                "no history with the NATS broker alone (engine.type = \"redis\" keeps it)",
            )),
        }
    }

    async fn remove_history(&self, channel: &str) -> Result<(), EngineError> {
        match &self.history {
            Some(store) => store.remove_history(channel).await,
            None => Ok(()),
        }
    }

    async fn publish_control(
        &self,
        data: bytes::Bytes,
        to: Option<&str>,
    ) -> Result<(), EngineError> {
        let subject = match to {
            Some(uid) => self.inner.subjects.node(uid),
            None => self.inner.subjects.control(),
        };
        self.inner
            .client
            .publish(subject, data)
            .await
            .map_err(backend)
    }

    fn degraded(&self) -> Option<String> {
        (self.inner.client.connection_state() != async_nats::connection::State::Connected)
            .then(|| "nats disconnected (reconnecting)".to_owned())
    }

    fn metrics(&self) -> Vec<EngineMetric> {
        let m = &self.inner.metrics;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            EngineMetric::counter(
                "pushwire_nats_publications_total",
                "Publications sent to NATS (stored first when the channel keeps history).",
                get(&m.publications),
            ),
            EngineMetric::counter(
                "pushwire_nats_publish_errors_total",
                "Publications that failed (history store or NATS).",
                get(&m.publish_errors),
            ),
            EngineMetric::counter(
                "pushwire_nats_messages_total",
                "Channel messages received from NATS (publications, joins, leaves).",
                get(&m.messages),
            ),
            EngineMetric::counter(
                "pushwire_nats_reconnects_total",
                "Times the NATS connection was lost and re-established (subscribers resynced with 3010).",
                get(&m.reconnects),
            ),
            EngineMetric::gauge(
                "pushwire_nats_connected",
                "1 while the node is connected to NATS, 0 while it reconnects.",
                get(&m.connected),
            ),
        ]
    }
}
