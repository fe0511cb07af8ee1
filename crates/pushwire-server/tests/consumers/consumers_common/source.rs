//! The small per-source trait the shared consumer scenarios are written over. Each source
//! file (`rabbitmq.rs`, `redis_stream.rs`, `postgres.rs`, `kafka.rs`, `nats.rs`) implements it
//! with its own client and names for one test, and keeps its source-specific tests; the
//! scenarios that are the same modulo the source live once in this module's siblings.

use pushwire_consumers::{ConsumerConfig, Mode, RouteConfig};

use super::{event, publish_command};

/// A message a scenario wrote, kept so a source can hand it to the consumer again.
#[derive(Debug, Clone)]
pub struct Sent<R> {
    /// The body as written.
    pub body: Vec<u8>,
    /// Its idempotency key, where the source carries one (RabbitMQ `message_id`).
    pub key: String,
    /// Where the source put it (Redis entry id, outbox row id, stream sequence, …).
    pub receipt: R,
}

/// One queue, stream or table of a real source, named for one test (created by the source's
/// own constructor, removed by [`Source::cleanup`]).
#[allow(
    async_fn_in_trait,
    reason = "the scenarios await these on the test's own task; nothing spawns them, so no Send bound is needed"
)]
pub trait Source {
    /// Where the real source listens (`host:port`; what a [`super::LateBroker`] forwards to).
    const ADDR: &'static str;
    /// Messages written while no consumer is attached wait for it (a stream with a durable
    /// consumer): the down-at-start scenario writes its events before the source comes up.
    const KEEPS_MESSAGES_FOR_A_LATE_CONSUMER: bool = false;
    /// How many poison messages [`Source::produce_poison`] writes.
    const POISON: u64;
    /// Where a message landed (see [`Sent::receipt`]).
    type Receipt;
    /// What [`Source::produce_poison`] wrote, for [`Source::assert_dead_lettered`].
    type Poison;

    /// A consumer named `name` of this source, reached at `addr` (`host:port`: [`Self::ADDR`]
    /// or a late broker in front of it), in `mode`, whose events land in a channel of
    /// `namespace`; and that channel. In route mode the channel comes from the route template
    /// and the tag from the event's `type`; in command mode each body names its channel.
    fn consumer(
        &self,
        name: &str,
        addr: &str,
        namespace: &str,
        mode: Mode,
    ) -> (ConsumerConfig, String);

    /// Waits until the consumer is attached (queue consumed, group or table created).
    async fn wait_ready(&self);

    /// Writes `body` with idempotency key `key` (where the source carries one) and waits for
    /// the source's acknowledgement.
    async fn produce(&self, body: &[u8], key: &str) -> Self::Receipt;

    /// Writes `messages` (body, key) in order; one [`Source::produce`] after the other unless a
    /// source pipelines them.
    async fn produce_all(&self, messages: &[(Vec<u8>, String)]) {
        for (body, key) in messages {
            self.produce(body, key).await;
        }
    }

    /// Writes this source's poison messages (not JSON, no payload, an unknown method, …: what
    /// the mode its ordered test runs in must dead-letter), [`Self::POISON`] of them.
    async fn produce_poison(&self) -> Self::Poison;

    /// Asserts that the poison went where this source dead-letters, untouched and with why.
    async fn assert_dead_lettered(&self, poison: Self::Poison);

    /// Removes what the test created in the source (queues, streams, tables).
    async fn cleanup(&self);
}

/// A source that can hand messages the consumer already took to it again, as after a crash
/// between publishing and acknowledging (a publisher retry, a rewound group, re-inserted rows).
#[allow(
    async_fn_in_trait,
    reason = "the scenarios await these on the test's own task; nothing spawns them"
)]
pub trait Redelivering: Source {
    /// Makes `sent[from..]` reach the consumer again with their idempotency keys (`sent[i]`
    /// is event `i + 1`).
    async fn redeliver(&self, sent: &[Sent<Self::Receipt>], from: usize);
}

/// The body of event `n` for `channel` in `mode`: an API `publish` command naming the channel,
/// or in route mode the event itself (`n`, `type` alternating `created` / `paid`).
pub fn body(mode: Mode, channel: &str, n: u64) -> Vec<u8> {
    match mode {
        Mode::Route if n.is_multiple_of(2) => event(n, "paid"),
        Mode::Route => event(n, "created"),
        _ => publish_command(channel, n),
    }
}

/// `config` in `mode`: route mode routes to `channel_template` and tags with `type`.
pub fn with_mode(mut config: ConsumerConfig, mode: Mode, channel_template: &str) -> ConsumerConfig {
    if mode == Mode::Route {
        config.route = RouteConfig {
            channel: channel_template.into(),
            tag_field: "type".into(),
            skip_history: false,
        };
    }
    config.mode = mode;
    config
}

/// The metric labels of `config`'s consumer: `{consumer="…",type="…"}`.
pub fn labels(config: &ConsumerConfig) -> String {
    format!(
        "{{consumer=\"{}\",type=\"{}\"}}",
        config.name,
        config.consumer_type.as_str()
    )
}
