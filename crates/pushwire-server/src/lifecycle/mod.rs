//! Lifecycle sinks: where the node's lifecycle events go (docs/lifecycle.md).
//!
//! `Node::run_lifecycle` hands events, in per-node sequence order, to a router task that
//! filters them per sink (event types, namespaces) into each sink's bounded [`spool::Spool`].
//! Sinks: webhook, Redis stream, Kafka topic, NATS JetStream subject.
//! One task per sink delivers batches (`batch_size` events or after `batch_interval`) and
//! retries a failed batch with exponential backoff until it is acknowledged (at least once,
//! in order per sink); a webhook's 4xx refuses a batch for good (logged, counted). Every task
//! is owned by [`Sinks`] and stops with its cancellation token.

pub mod redis_stream;
pub mod spool;
pub mod webhook;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pushwire_core::lifecycle::{Event, EventKind};
use pushwire_core::Node;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{LifecycleConfig, SinkConfig, SinkKind};
use spool::Spool;

/// Events between the node's lifecycle task and the router, at most.
const ROUTER_QUEUE: usize = 4096;

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Stored or answered 2xx: the batch leaves the spool.
    Acknowledged,
    /// Refused for good (a webhook's 4xx): the batch leaves the spool, counted and logged.
    Refused(String),
    /// Not delivered (5xx, timeout, connection): retried with backoff.
    Failed(String),
}

/// One sink's figures (`pushwire_lifecycle_sink_*{sink}`).
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Events acknowledged.
    pub delivered: AtomicU64,
    /// Delivery attempts that failed (each retried).
    pub failures: AtomicU64,
    /// Events refused for good.
    pub refused: AtomicU64,
    /// Whether the last attempt failed (the sink is degraded until one succeeds).
    pub degraded: AtomicBool,
}

/// One configured sink: its name, filters, spool and figures.
#[derive(Debug)]
pub struct Sink {
    /// Name in logs and metrics.
    pub name: String,
    /// Events waiting.
    pub spool: Spool,
    /// Figures.
    pub stats: SinkStats,
    config: SinkConfig,
}

impl Sink {
    fn wants(&self, e: &Event, namespace_of: impl Fn(&str) -> String) -> bool {
        let c = &self.config;
        (c.events.is_empty() || c.events.contains(&e.kind))
            && (c.namespaces.is_empty()
                || e.channel
                    .as_deref()
                    .is_none_or(|ch| c.namespaces.contains(&namespace_of(ch))))
    }
}

/// The running sinks of a node.
#[derive(Debug)]
pub struct Sinks {
    sinks: Vec<Arc<Sink>>,
    tasks: parking_lot::Mutex<JoinSet<()>>,
}

impl Sinks {
    /// Starts the node's lifecycle task, the router and one task per sink (when
    /// `lifecycle.enabled`); everything stops when `cancel` fires.
    pub fn start(node: &Arc<Node>, config: &LifecycleConfig, cancel: &CancellationToken) -> Sinks {
        let sinks: Vec<Arc<Sink>> = config
            .sinks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let kind = match c.kind {
                    SinkKind::Webhook => "webhook",
                    SinkKind::RedisStream => "redis_stream",
                    SinkKind::Kafka => "kafka",
                    SinkKind::NatsJetstream => "nats_jetstream",
                };
                Arc::new(Sink {
                    name: if c.name.is_empty() {
                        format!("{kind}-{i}")
                    } else {
                        c.name.clone()
                    },
                    spool: Spool::new(c.spool_size),
                    stats: SinkStats::default(),
                    config: c.clone(),
                })
            })
            .collect();
        let mut tasks = JoinSet::new();
        if config.enabled {
            let (tx, rx) = mpsc::channel(ROUTER_QUEUE);
            tasks.spawn(node.clone().run_lifecycle(tx, cancel.clone()));
            tasks.spawn(route(node.clone(), rx, sinks.clone(), cancel.clone()));
            for sink in &sinks {
                tasks.spawn(deliver(sink.clone(), node.id().to_owned(), cancel.clone()));
            }
        }
        Sinks {
            sinks,
            tasks: parking_lot::Mutex::new(tasks),
        }
    }

    /// The sinks.
    pub fn sinks(&self) -> &[Arc<Sink>] {
        &self.sinks
    }

    /// Names of the sinks whose last delivery failed.
    pub fn degraded(&self) -> Vec<String> {
        self.sinks
            .iter()
            .filter(|s| s.stats.degraded.load(Ordering::Relaxed))
            .map(|s| s.name.clone())
            .collect()
    }

    /// Stops every task now.
    pub fn abort(&self) {
        self.tasks.lock().abort_all();
    }
}

async fn route(
    node: Arc<Node>,
    mut rx: mpsc::Receiver<Event>,
    sinks: Vec<Arc<Sink>>,
    cancel: CancellationToken,
) {
    let namespace_of = |channel: &str| {
        node.namespaces()
            .resolve(channel)
            .map(|i| i.namespace.name.to_string())
            .unwrap_or_default()
    };
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = rx.recv() => match e {
                Some(e) => Arc::new(e),
                None => return,
            },
        };
        for sink in &sinks {
            if sink.wants(&event, namespace_of) {
                sink.spool.push(event.clone());
            }
        }
    }
}

enum Target {
    Webhook(webhook::Webhook),
    Redis(Box<redis_stream::RedisStream>),
    #[cfg(feature = "kafka")]
    Kafka(Box<pushwire_consumers::kafka::KafkaProducer>, String),
    #[cfg(feature = "nats_jetstream")]
    Nats(Box<pushwire_consumers::nats_jetstream::JetStreamPublisher>),
    /// A kind this build lacks (config validation refuses it; never reached).
    Unavailable,
}

fn target(c: &SinkConfig, node: &str) -> Target {
    match c.kind {
        SinkKind::Webhook => Target::Webhook(webhook::Webhook::new(&c.url, &c.secret, c.timeout)),
        SinkKind::RedisStream => Target::Redis(Box::new(redis_stream::RedisStream::new(
            &c.address, &c.stream, c.max_len, c.timeout,
        ))),
        #[cfg(feature = "kafka")]
        SinkKind::Kafka => {
            match pushwire_consumers::kafka::KafkaProducer::new(
                &c.address,
                &c.topic,
                c.timeout,
                &[],
            ) {
                Ok(p) => Target::Kafka(Box::new(p), node.to_owned()),
                Err(e) => {
                    tracing::error!(error = %e, "lifecycle kafka sink not created");
                    Target::Unavailable
                }
            }
        }
        #[cfg(feature = "nats_jetstream")]
        SinkKind::NatsJetstream => Target::Nats(Box::new(
            pushwire_consumers::nats_jetstream::JetStreamPublisher::new(
                &c.address, &c.subject, c.timeout,
            ),
        )),
        #[allow(unreachable_patterns)] // Reached only in builds without a sink's feature.
        _ => {
            let _ = node;
            Target::Unavailable
        }
    }
}

async fn deliver(sink: Arc<Sink>, node: String, cancel: CancellationToken) {
    let c = &sink.config;
    let mut target = target(c, &node);
    let mut delay = c.retry_min_delay;
    let mut last_log: Option<tokio::time::Instant> = None;
    loop {
        if sink.spool.len() < c.batch_size {
            // Wait for a first event, then up to batch_interval for a full batch.
            while sink.spool.is_empty() {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = sink.spool.wait() => {}
                }
            }
            let deadline = tokio::time::sleep(c.batch_interval);
            tokio::pin!(deadline);
            while sink.spool.len() < c.batch_size {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = &mut deadline => break,
                    _ = sink.spool.wait() => {}
                }
            }
        }
        let batch = sink.spool.peek(c.batch_size);
        let encoded: Vec<Vec<u8>> = batch
            .iter()
            .map(|e| serde_json::to_vec(&**e).unwrap_or_default())
            .collect();
        let outcome = match &mut target {
            Target::Webhook(w) => w.deliver(json_array(&encoded)).await,
            Target::Redis(r) => r.deliver(&encoded).await,
            #[cfg(feature = "kafka")]
            Target::Kafka(p, key) => match p.send_all(key, &encoded).await {
                Ok(()) => Delivery::Acknowledged,
                Err(e) => Delivery::Failed(e),
            },
            #[cfg(feature = "nats_jetstream")]
            Target::Nats(p) => match p.send_all(&encoded).await {
                Ok(()) => Delivery::Acknowledged,
                Err(e) => Delivery::Failed(e),
            },
            Target::Unavailable => Delivery::Failed("sink unavailable in this build".into()),
        };
        let n = batch.len() as u64;
        match outcome {
            Delivery::Acknowledged => {
                sink.spool.ack(&batch);
                sink.stats.delivered.fetch_add(n, Ordering::Relaxed);
                if sink.stats.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(sink = %sink.name, "lifecycle sink delivers again");
                }
                delay = c.retry_min_delay;
            }
            Delivery::Refused(why) => {
                sink.spool.ack(&batch);
                sink.stats.refused.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(sink = %sink.name, events = n, why, "lifecycle batch refused, not retried");
            }
            Delivery::Failed(why) => {
                sink.stats.failures.fetch_add(1, Ordering::Relaxed);
                sink.stats.degraded.store(true, Ordering::Relaxed);
                let now = tokio::time::Instant::now();
                if last_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                    last_log = Some(now);
                    tracing::warn!(sink = %sink.name, why, waiting = sink.spool.len(), retry_in = ?delay, "lifecycle delivery failed; retrying");
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(c.retry_max_delay);
            }
        }
    }
}

/// `[e1,e2,…]` from already encoded events.
fn json_array(events: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.push(b']');
    body
}

/// The index of `kind` in [`EventKind::ALL`] and its wire name, for metrics.
pub fn kind_names() -> impl Iterator<Item = (usize, &'static str)> {
    EventKind::ALL.iter().enumerate().map(|(i, k)| {
        (
            i,
            match k {
                EventKind::Connect => "connect",
                EventKind::Disconnect => "disconnect",
                EventKind::Subscribe => "subscribe",
                EventKind::Unsubscribe => "unsubscribe",
                EventKind::ChannelOccupied => "channel_occupied",
                EventKind::ChannelVacated => "channel_vacated",
                EventKind::NodeLost => "node_lost",
                EventKind::Snapshot => "snapshot",
            },
        )
    })
}
