//! Connecting to NATS and making sure the stream and the durable consumer exist.

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer},
    stream,
};

use async_nats::Event;
use tokio_util::sync::CancellationToken;

use super::settings::{NatsDeliverPolicy, NatsJetStreamSettings};
use crate::error::ConsumerError;

/// A connected JetStream context and the durable pull consumer to read.
pub(crate) struct Session {
    /// The JetStream context (requests time out after `request_timeout`).
    pub js: jetstream::Context,
    /// The durable pull consumer.
    pub consumer: PullConsumer,
    /// Cancelled when the connection drops (or the client fell behind and lost messages):
    /// deliveries made meanwhile are lost and come back only after `ack_wait`, so the
    /// session must end and the next one settle first (see `source`).
    pub disconnected: CancellationToken,
}

/// Connects to `settings.url`, then gets (or, when allowed, creates) the stream and the
/// durable consumer. Every step is bounded by `request_timeout`.
pub(crate) async fn connect(
    name: &str,
    s: &NatsJetStreamSettings,
) -> Result<Session, ConsumerError> {
    let disconnected = CancellationToken::new();
    let on_event = disconnected.clone();
    let connect = async_nats::ConnectOptions::new()
        .name(format!("pushwire consumer {name}"))
        .event_callback(move |event| {
            let on_event = on_event.clone();
            async move {
                if matches!(
                    event,
                    Event::Disconnected | Event::Closed | Event::SlowConsumer(_)
                ) {
                    on_event.cancel();
                }
            }
        })
        .connection_timeout(s.request_timeout)
        .request_timeout(Some(s.request_timeout))
        .connect(s.url.as_str());
    let client = tokio::time::timeout(s.request_timeout, connect)
        .await
        .map_err(|_| ConsumerError::Connection(format!("connect to {}: timed out", s.url)))?
        .map_err(|e| ConsumerError::Connection(format!("connect to {}: {e}", s.url)))?;
    let mut js = jetstream::new(client);
    js.set_timeout(s.request_timeout);
    let stream = get_stream(&js, s).await?;
    let consumer = get_consumer(&stream, s).await?;
    Ok(Session {
        js,
        consumer,
        disconnected,
    })
}

async fn get_stream(
    js: &jetstream::Context,
    s: &NatsJetStreamSettings,
) -> Result<stream::Stream, ConsumerError> {
    let broker =
        |e: &dyn std::fmt::Display| ConsumerError::Broker(format!("stream {}: {e}", s.stream));
    if s.create_stream {
        js.get_or_create_stream(stream::Config {
            name: s.stream.clone(),
            subjects: s.subjects.clone(),
            ..Default::default()
        })
        .await
        .map_err(|e| broker(&e))
    } else {
        js.get_stream(&s.stream).await.map_err(|e| broker(&e))
    }
}

async fn get_consumer(
    stream: &stream::Stream,
    s: &NatsJetStreamSettings,
) -> Result<PullConsumer, ConsumerError> {
    let name = s.durable_consumer_name.as_str();
    let broker = |e: &dyn std::fmt::Display| {
        ConsumerError::Broker(format!("consumer {}/{name}: {e}", s.stream))
    };
    if !s.create_consumer {
        return stream.get_consumer(name).await.map_err(|e| broker(&*e));
    }
    stream
        .get_or_create_consumer(name, consumer_config(s))
        .await
        .map_err(|e| broker(&e))
}

/// The configuration a durable consumer is created with.
pub(crate) fn consumer_config(s: &NatsJetStreamSettings) -> pull::Config {
    let mut config = pull::Config {
        durable_name: Some(s.durable_consumer_name.clone()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: s.ack_wait,
        max_ack_pending: s.max_ack_pending,
        deliver_policy: match s.deliver_policy {
            NatsDeliverPolicy::All => DeliverPolicy::All,
            NatsDeliverPolicy::New => DeliverPolicy::New,
        },
        ..Default::default()
    };
    match s.subjects.as_slice() {
        [] => {}
        [one] => config.filter_subject = one.clone(),
        many => config.filter_subjects = many.to_vec(),
    }
    config
}
