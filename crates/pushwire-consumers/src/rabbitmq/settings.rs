//! `consumers[].rabbitmq`.

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::config::required;

/// `consumers[].rabbitmq`: one queue, consumed in order with manual acknowledgements.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitMqSettings {
    /// AMQP URL. Default `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// Queue to consume (required).
    pub queue: String,
    /// Declare the queue (durable) at start; with `dead_letter_exchange` it gets
    /// `x-dead-letter-exchange`. Default true.
    pub declare_queue: bool,
    /// Unacknowledged deliveries the broker sends ahead (`basic.qos`). Default 100.
    pub prefetch: u16,
    /// Exchange that rejected (poison) messages go to, via the queue's
    /// `x-dead-letter-exchange` argument. Empty = poison messages are dropped (logged, counted).
    pub dead_letter_exchange: String,
    /// Routing key for dead-lettered messages (`x-dead-letter-routing-key`); empty = keep the
    /// message's own.
    pub dead_letter_routing_key: String,
    /// Declare `dead_letter_exchange` (fanout, durable) and a durable queue
    /// `<queue>.dead_letter` bound to it. Default true.
    pub declare_dead_letter: bool,
    /// Bind the queue to this exchange (declared as a durable topic exchange). Empty = no binding.
    pub exchange: String,
    /// Binding keys for `exchange`. Default `["#"]`.
    pub routing_keys: Vec<String>,
}

impl Default for RabbitMqSettings {
    fn default() -> Self {
        RabbitMqSettings {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            queue: String::new(),
            declare_queue: true,
            prefetch: 100,
            dead_letter_exchange: String::new(),
            dead_letter_routing_key: String::new(),
            declare_dead_letter: true,
            exchange: String::new(),
            routing_keys: vec!["#".into()],
        }
    }
}

impl RabbitMqSettings {
    /// Checks the section; `key` is its path, e.g. `consumers[0].rabbitmq`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        required(key, "url", &self.url)?;
        required(key, "queue", &self.queue)?;
        if self.prefetch == 0 {
            return Err(ConfigError::new(format!("{key}.prefetch"), "must be > 0"));
        }
        Ok(())
    }
}
