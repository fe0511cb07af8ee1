//! Starting and stopping the configured consumers.

use std::sync::Arc;
use std::time::Duration;

use pushwire_core::Node;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ConsumerConfig, ConsumerType};
use crate::dispatch::ApiDispatch;
use crate::error::ConsumerError;
use crate::metrics::{ConsumerMetrics, MetricsRegistry};
use crate::processor::Processor;

/// How long [`Consumers::stop`] waits for each consumer task.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The running consumers: owns their tasks.
#[derive(Debug)]
pub struct Consumers {
    shutdown: CancellationToken,
    tasks: Vec<(String, JoinHandle<()>)>,
    registry: MetricsRegistry,
}

impl Consumers {
    /// No consumers.
    pub fn none() -> Consumers {
        Consumers {
            shutdown: CancellationToken::new(),
            tasks: Vec::new(),
            registry: MetricsRegistry::default(),
        }
    }

    /// (name, type, metrics) of every started consumer.
    pub fn metrics(&self) -> impl Iterator<Item = (&str, &'static str, &Arc<ConsumerMetrics>)> {
        self.registry.iter()
    }

    /// The metrics of every started consumer, to render in `/metrics`.
    pub fn registry(&self) -> MetricsRegistry {
        self.registry.clone()
    }

    /// Stops every consumer: cancels them and waits (at most 5 s each, then aborts). A message
    /// being processed is finished or left unacknowledged (redelivered later).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for (name, mut task) in std::mem::take(&mut self.tasks) {
            if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
                tracing::warn!(consumer = %name, "consumer did not stop in time; aborted");
                task.abort();
            }
        }
    }
}

impl Drop for Consumers {
    fn drop(&mut self) {
        // A dropped (not stopped) set still must not keep consuming: cancel and abort.
        self.shutdown.cancel();
        for (_, t) in &self.tasks {
            t.abort();
        }
    }
}

/// Starts every enabled consumer of `configs` on the current tokio runtime; `api` runs the
/// commands of `api_command` mode. A consumer whose
/// configuration is invalid or whose type is not compiled in is logged and skipped (the
/// configuration loader already rejects invalid ones). Consumers run until `shutdown` (or
/// [`Consumers::stop`]).
#[allow(
    clippy::needless_pass_by_value,
    reason = "the entry point takes the node, the dispatcher and the token its consumers live on; \
              callers hand them over"
)]
pub fn start(
    node: Arc<Node>,
    api: Arc<dyn ApiDispatch>,
    configs: &[ConsumerConfig],
    shutdown: CancellationToken,
) -> Consumers {
    let shutdown = shutdown.child_token();
    let mut tasks = Vec::new();
    let mut entries = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        if !config.enabled {
            continue;
        }
        let spawned = config
            .validate(&format!("consumers[{i}]"))
            .map_err(|e| ConsumerError::config(e.key, e.reason))
            .and_then(|()| Processor::new(node.clone(), api.clone(), config))
            .and_then(|p| spawn(config, p.clone(), shutdown.clone()).map(|t| (p, t)));
        match spawned {
            Ok((processor, task)) => {
                tracing::info!(consumer = %config.name, r#type = config.consumer_type.as_str(), "consumer started");
                entries.push((
                    config.name.clone(),
                    config.consumer_type.as_str(),
                    processor.metrics().clone(),
                ));
                tasks.push((config.name.clone(), task));
            }
            Err(e) => {
                tracing::error!(consumer = %config.name, error = %e, "consumer not started");
            }
        }
    }
    Consumers {
        shutdown,
        tasks,
        registry: MetricsRegistry::new(entries),
    }
}

/// Spawns the source task of `config`.
// In a build without some source's cargo feature, its arm is compiled out and what it uses is not.
#[allow(unused_variables, unreachable_code)]
fn spawn(
    config: &ConsumerConfig,
    processor: Processor,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, ConsumerError> {
    let name = config.name.clone();
    let missing = || ConsumerError::config(config.consumer_type.as_str(), "section missing");
    match config.consumer_type {
        ConsumerType::Rabbitmq => {
            #[cfg(feature = "rabbitmq")]
            {
                let s = config.rabbitmq.clone().ok_or_else(missing)?;
                return Ok(tokio::spawn(crate::rabbitmq::run(
                    name, s, processor, shutdown,
                )));
            }
            Err(ConsumerError::NotCompiled("rabbitmq"))
        }
        ConsumerType::RedisStream => {
            #[cfg(feature = "redis_stream")]
            {
                let s = config.redis_stream.clone().ok_or_else(missing)?;
                return Ok(tokio::spawn(crate::redis_stream::run(
                    name, s, processor, shutdown,
                )));
            }
            Err(ConsumerError::NotCompiled("redis_stream"))
        }
        ConsumerType::PostgresqlOutbox => {
            #[cfg(feature = "postgresql_outbox")]
            {
                let s = config.postgresql_outbox.clone().ok_or_else(missing)?;
                return Ok(tokio::spawn(crate::postgresql_outbox::run(
                    name, s, processor, shutdown,
                )));
            }
            Err(ConsumerError::NotCompiled("postgresql_outbox"))
        }
        ConsumerType::PostgresqlCdc => {
            #[cfg(feature = "postgresql_cdc")]
            {
                let s = config.postgresql_cdc.clone().ok_or_else(missing)?;
                return Ok(tokio::spawn(crate::postgresql_cdc::run(
                    name, s, processor, shutdown,
                )));
            }
            Err(ConsumerError::NotCompiled("postgresql_cdc"))
        }
        ConsumerType::MysqlCdc => {
            #[cfg(feature = "mysql_cdc")]
            {
                let s = config.mysql_cdc.clone().ok_or_else(missing)?;
                return Ok(tokio::spawn(crate::mysql_cdc::run(
                    name, s, processor, shutdown,
                )));
            }
            Err(ConsumerError::NotCompiled("mysql_cdc"))
        }
        ConsumerType::Mqtt => {
            #[cfg(feature = "mqtt")]
            {
                let s = config.mqtt.clone().ok_or_else(missing)?;
                return Ok(tokio::spawn(crate::mqtt::run(name, s, processor, shutdown)));
            }
            Err(ConsumerError::NotCompiled("mqtt"))
        }
        ConsumerType::Kafka => {
            #[cfg(feature = "kafka")]
            {
                let s = config.kafka.clone().ok_or_else(missing)?;
                return Ok(tokio::spawn(crate::kafka::run(
                    name, s, processor, shutdown,
                )));
            }
            Err(ConsumerError::NotCompiled("kafka"))
        }
        ConsumerType::NatsJetstream => {
            #[cfg(feature = "nats_jetstream")]
            {
                let s = config.nats_jetstream.clone().ok_or_else(missing)?;
                return Ok(tokio::spawn(crate::nats_jetstream::run(
                    name, s, processor, shutdown,
                )));
            }
            Err(ConsumerError::NotCompiled("nats_jetstream"))
        }
    }
}
