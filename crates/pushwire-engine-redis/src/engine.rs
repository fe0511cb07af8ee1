//! [`RedisEngine`]: connects, then hands out the broker and the presence manager.

use std::sync::{Arc, OnceLock};

use pushwire_core::engine::Engine;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::RedisBroker;
use crate::config::RedisConfig;
use crate::connections::RedisUserConnections;
use crate::error::StartError;
use crate::keys::Keys;
use crate::metrics::RedisMetrics;
use crate::occupancy::RedisOccupancy;
use crate::presence::RedisPresence;
use crate::pubsub::{self, PubSubHooks, PubSubSettings};

/// A connected Redis engine: one multiplexed connection for commands (reconnects by itself),
/// one PUB/SUB connection for the node (reconnected by the broker's controller task, which
/// also carries the control messages between nodes).
///
/// The broker and the presence manager each own their background task: dropping them (with
/// the node that holds them) stops the tasks; [`RedisEngine::stop`] stops them at once.
pub struct RedisEngine {
    broker: Arc<RedisBroker>,
    presence: Arc<RedisPresence>,
    connections: Arc<RedisUserConnections>,
    occupancy: Arc<RedisOccupancy>,
    metrics: Arc<RedisMetrics>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine").finish_non_exhaustive()
    }
}

impl RedisEngine {
    /// Connects both connections and checks Redis answers (`PING`). Fails with a message
    /// naming the address when Redis is unreachable, so a node never starts without its
    /// engine. `config` must have been validated.
    pub async fn connect(config: &RedisConfig) -> Result<RedisEngine, StartError> {
        let address = config.address.clone();
        if address.starts_with("rediss://") {
            // The redis crate builds its TLS configuration from the process-wide provider; make
            // sure there is one (ring, the only one compiled in). Already set: kept.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let url_error = |source| StartError::Url {
            address: address.clone(),
            source,
        };
        let client = if config.tls_ca_pem_file.is_empty() {
            redis::Client::open(address.as_str()).map_err(url_error)?
        } else {
            let pem =
                std::fs::read(&config.tls_ca_pem_file).map_err(|source| StartError::TlsCa {
                    path: config.tls_ca_pem_file.clone(),
                    source,
                })?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(address.as_str(), certs).map_err(url_error)?
        };
        let connect_error = |source| StartError::Connect {
            address: address.clone(),
            source,
        };
        let timeout_error = |timeout| StartError::Timeout {
            address: address.clone(),
            timeout,
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_min_delay(config.reconnect_min_delay)
            .set_max_delay(config.reconnect_max_delay)
            .set_number_of_retries(2);
        // The manager retries a first connect a few times; bound the whole start.
        let start_timeout = config.connect_timeout * 3 + config.command_timeout;
        let mut conn = tokio::time::timeout(
            start_timeout,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| timeout_error(start_timeout))?
        .map_err(connect_error)?;
        let _: String = tokio::time::timeout(
            config.command_timeout,
            redis::cmd("PING").query_async(&mut conn),
        )
        .await
        .map_err(|_| timeout_error(config.command_timeout))?
        .map_err(connect_error)?;
        let first = pubsub::open(&client, config.connect_timeout)
            .await
            .map_err(|e| match e {
                Some(source) => connect_error(source),
                None => timeout_error(config.connect_timeout),
            })?;

        let keys = Keys::new(&config.prefix);
        let metrics = Arc::new(RedisMetrics::default());
        let cancel = CancellationToken::new();
        let handler = Arc::new(OnceLock::new());
        let broker_cancel = cancel.child_token();
        let (handle, pubsub_task) = pubsub::start(
            client,
            first,
            keys.clone(),
            PubSubHooks {
                handler: handler.clone(),
                metrics: metrics.clone(),
            },
            PubSubSettings {
                connect_timeout: config.connect_timeout,
                command_timeout: config.command_timeout,
                reconnect_min_delay: config.reconnect_min_delay,
                reconnect_max_delay: config.reconnect_max_delay,
            },
            broker_cancel.clone(),
        );
        let broker = RedisBroker::new(
            conn.clone(),
            keys.clone(),
            handler,
            handle,
            config.idempotency_window,
            metrics.clone(),
            broker_cancel.drop_guard(),
        );
        let (connections, connections_task) = RedisUserConnections::start(
            conn.clone(),
            keys.clone(),
            config.presence_ttl,
            metrics.clone(),
            cancel.child_token(),
        );
        let occupancy = Arc::new(RedisOccupancy::new(conn.clone(), keys.clone()));
        let (presence, presence_task) = RedisPresence::start(
            conn,
            keys,
            config.presence_ttl,
            metrics.clone(),
            cancel.child_token(),
        );
        Ok(RedisEngine {
            broker: Arc::new(broker),
            presence: Arc::new(presence),
            connections: Arc::new(connections),
            occupancy,
            metrics,
            cancel,
            tasks: vec![pubsub_task, presence_task, connections_task],
        })
    }

    /// The broker, for `Node::new`.
    pub fn broker(&self) -> Arc<RedisBroker> {
        self.broker.clone()
    }

    /// The presence manager, for `Node::new`.
    pub fn presence(&self) -> Arc<RedisPresence> {
        self.presence.clone()
    }

    /// The engine's counters (shared with its broker, PUB/SUB connection and presence; they
    /// keep counting while any of those lives). See [`RedisMetrics`].
    pub fn metrics(&self) -> Arc<RedisMetrics> {
        self.metrics.clone()
    }

    /// The per-user connection counts.
    pub fn connections(&self) -> Arc<RedisUserConnections> {
        self.connections.clone()
    }

    /// The broker, presence and connection counts as the core's [`Engine`], for `Node::new`.
    /// The background tasks keep running while any of them lives.
    pub fn engine(&self) -> Engine {
        Engine {
            broker: self.broker.clone(),
            presence: self.presence.clone(),
            connections: self.connections.clone(),
            occupancy: self.occupancy.clone(),
        }
    }

    /// Stops the background tasks now and waits at most `timeout` for them.
    pub async fn stop(self, timeout: Duration) {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(timeout, task).await;
        }
    }
}
