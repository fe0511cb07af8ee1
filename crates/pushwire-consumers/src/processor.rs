//! Turns a source message into node operations and says what the source must do with it.

use std::sync::Arc;
use std::time::Duration;

use pushwire_core::Node;

use crate::config::{ConsumerConfig, Mode};
use crate::dispatch::ApiDispatch;
use crate::error::ConsumerError;
use crate::message::Message;
use crate::metrics::ConsumerMetrics;
use crate::outcome::Effect;
pub use crate::outcome::Outcome;
use crate::{api_command, debezium, route};

/// How long `ready` sleeps between checks while the node is overloaded.
const PRESSURE_POLL: Duration = Duration::from_millis(20);

struct Inner {
    node: Arc<Node>,
    api: Arc<dyn ApiDispatch>,
    name: String,
    mode: Mode,
    route: Option<route::Route>,
    #[cfg(any(feature = "avro", feature = "protobuf"))]
    decoder: Option<crate::payload::Decoder>,
    metrics: Arc<ConsumerMetrics>,
    pause_queued_bytes: usize,
    backoff: (Duration, Duration),
}

/// Applies messages of one consumer to the node. Cheap to clone; one per consumer.
#[derive(Clone)]
pub struct Processor {
    inner: Arc<Inner>,
}

impl Processor {
    /// A processor for `config` (its mode, route and back-pressure settings). `api` runs the
    /// commands of `api_command` mode (the server's own API dispatch).
    pub fn new(
        node: Arc<Node>,
        api: Arc<dyn ApiDispatch>,
        config: &ConsumerConfig,
    ) -> Result<Processor, ConsumerError> {
        let route = match config.mode {
            Mode::Route | Mode::Debezium => Some(
                route::Route::new(&config.route)
                    .map_err(|e| ConsumerError::config("route.channel", e))?,
            ),
            Mode::ApiCommand => None,
        };
        Ok(Processor {
            inner: Arc::new(Inner {
                #[cfg(any(feature = "avro", feature = "protobuf"))]
                decoder: crate::payload::Decoder::new(&config.payload, "payload")?,
                node,
                api,
                name: config.name.clone(),
                mode: config.mode,
                route,
                metrics: Arc::new(ConsumerMetrics::default()),
                pause_queued_bytes: config.pause_queued_bytes,
                backoff: (config.retry_backoff_min, config.retry_backoff_max),
            }),
        })
    }

    /// Applies `msg`: in `api_command` mode executes the command in its body (through the
    /// server API's dispatch: what the HTTP API refuses is poison here), in `debezium` mode
    /// converts the envelope to a change event and routes it, in `route` mode
    /// publishes the body to the routed channel. `Done` only once the publication is in channel
    /// history (or was already there: duplicate). Counts received / published / duplicates /
    /// failed.
    pub async fn process(&self, msg: &Message) -> Outcome {
        let m = &self.inner.metrics;
        ConsumerMetrics::inc(&m.received);
        let node = &self.inner.node;
        #[cfg(any(feature = "avro", feature = "protobuf"))]
        let decoded;
        #[cfg(any(feature = "avro", feature = "protobuf"))]
        let msg = match &self.inner.decoder {
            Some(d) => match d.decode(&msg.body).await {
                Ok(json) => {
                    if d.uses_registry() {
                        m.set_degraded(None);
                    }
                    decoded = Message {
                        body: json.into(),
                        ..msg.clone()
                    };
                    &decoded
                }
                Err(crate::payload::DecodeError::Poison(why)) => {
                    if d.uses_registry() {
                        // The registry answered (e.g. unknown id): it is up.
                        m.set_degraded(None);
                    }
                    return self.failed(msg, Outcome::Poison(why));
                }
                Err(crate::payload::DecodeError::Unavailable(why)) => {
                    m.set_degraded(Some(why.clone()));
                    return self.failed(msg, Outcome::Retry(why));
                }
            },
            None => msg,
        };
        let applied = match (&self.inner.route, self.inner.mode) {
            (Some(r), Mode::Debezium) => match debezium::convert(msg) {
                Ok(debezium::Converted::Change(event)) => r.apply(node, &event).await,
                Ok(debezium::Converted::Skip) => Ok(Effect::Skipped),
                Err(why) => Err(Outcome::Poison(why)),
            },
            (Some(r), _) => r.apply(node, msg).await,
            (None, _) => api_command::apply(self.inner.api.as_ref(), msg).await,
        };
        match applied {
            Ok(Effect::Applied) => {
                ConsumerMetrics::inc(&m.published);
                Outcome::Done
            }
            Ok(Effect::Duplicate) => {
                ConsumerMetrics::inc(&m.duplicates);
                Outcome::Done
            }
            Ok(Effect::Skipped) => Outcome::Done,
            Err(outcome) => self.failed(msg, outcome),
        }
    }

    /// Counts and logs a failed message.
    fn failed(&self, msg: &Message, outcome: Outcome) -> Outcome {
        ConsumerMetrics::inc(&self.inner.metrics.failed);
        match &outcome {
            Outcome::Poison(why) => {
                tracing::warn!(consumer = %self.inner.name, id = %msg.id, reason = %why, "poison message")
            }
            Outcome::Retry(why) => {
                tracing::warn!(consumer = %self.inner.name, id = %msg.id, reason = %why, "message will be retried")
            }
            Outcome::Done => {}
        }
        outcome
    }

    /// Back-pressure: returns when the node can take more, i.e. the bytes queued to all its
    /// connections are at most `pause_queued_bytes` (or the node is shutting down). Sources call
    /// it before fetching.
    pub async fn ready(&self) {
        let limit = self.inner.pause_queued_bytes;
        if limit == 0 {
            return;
        }
        let mut paused = false;
        loop {
            if self.inner.node.shutdown_token().is_cancelled() {
                return;
            }
            let queued = self.queued_bytes();
            if queued <= limit {
                if paused {
                    tracing::info!(consumer = %self.inner.name, queued, "node drained; consumer resumes");
                }
                return;
            }
            if !paused {
                paused = true;
                ConsumerMetrics::inc(&self.inner.metrics.paused);
                tracing::warn!(consumer = %self.inner.name, queued, limit, "node overloaded; consumer pauses");
            }
            tokio::time::sleep(PRESSURE_POLL).await;
        }
    }

    /// Bytes queued to every connection of the node: the gauge the outboxes keep
    /// ([`pushwire_core::outbox::Outboxes::queued_bytes`]), so reading it costs one load.
    pub fn queued_bytes(&self) -> usize {
        self.inner.node.outboxes().queued_bytes()
    }

    /// This consumer's counters.
    pub fn metrics(&self) -> &Arc<ConsumerMetrics> {
        &self.inner.metrics
    }

    /// The mapping mode (sources that build the body themselves, like the outbox, need it).
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// A fresh backoff with the consumer's `retry_backoff_min` / `retry_backoff_max`, for
    /// reconnects and retries.
    pub fn backoff(&self) -> crate::backoff::Backoff {
        crate::backoff::Backoff::new(self.inner.backoff.0, self.inner.backoff.1)
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.inner.node
    }
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").finish_non_exhaustive()
    }
}
