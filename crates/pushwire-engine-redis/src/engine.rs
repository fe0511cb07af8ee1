//! [`RedisEngine`]: connects, then hands out the broker and the presence manager.

use std::sync::{Arc, OnceLock};

use pushwire_core::engine::Engine;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::RedisBroker;
use crate::circuit::Circuit;
use crate::config::RedisConfig;
use crate::conn::{ClientSource, Link, RedisConn};
use crate::connections::RedisUserConnections;
use crate::error::StartError;
use crate::keys::Keys;
use crate::metrics::RedisMetrics;
use crate::occupancy::RedisOccupancy;
use crate::presence::RedisPresence;
use crate::pubsub::{self, PubSubConnection, PubSubHooks, PubSubSettings};
use crate::sentinel::{MasterResolver, SentinelConn};
use crate::sentinel_watch::{self, WatchSettings};
use crate::shard::{Shard, Shards};

/// A connected Redis engine: per Redis of `engine.redis.address` (one per shard), one
/// multiplexed connection for commands (reconnects by itself; behind the shard's circuit
/// breaker, `engine.redis.circuit_breaker`) and one PUB/SUB connection for
/// the node (reconnected by its controller task; the first shard's also carries the control
/// messages between nodes).
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
    /// Connects both connections of every shard and checks each Redis answers (`PING`); on a
    /// Redis Cluster, the command and PUB/SUB cluster connections, checked by a `PING` to
    /// the master of every partition's slot.
    /// Fails with a message naming the address when a Redis is unreachable, so a node never starts without its
    /// engine. `config` must have been validated.
    pub async fn connect(config: &RedisConfig) -> Result<RedisEngine, StartError> {
        let keys = if config.cluster_address.is_empty() {
            Keys::new(&config.prefix)
        } else {
            Keys::cluster(
                &config.prefix,
                crate::slots::partition_tags(config.sharded_pub_sub_partitions),
            )
        };
        let metrics = Arc::new(RedisMetrics::default());
        let cancel = CancellationToken::new();
        let handler = Arc::new(OnceLock::new());
        let broker_cancel = cancel.child_token();
        let mut shards = Vec::with_capacity(config.address.len());
        let mut tasks = Vec::new();
        let mut sources = Vec::new();
        if !config.cluster_address.is_empty() {
            let (conn, pubsub, task) = crate::cluster::connect(
                config,
                keys.clone(),
                crate::cluster::Hooks {
                    handler: handler.clone(),
                    metrics: metrics.clone(),
                },
                broker_cancel.clone(),
            )
            .await?;
            tasks.push(task);
            let circuit = Circuit::new(
                &config.circuit_breaker,
                format!("redis cluster {}", config.cluster_address.join(",")),
                metrics.clone(),
            );
            shards.push(Shard {
                conn: RedisConn::new(Link::Cluster(conn), circuit),
                pubsub,
            });
        } else if config.sentinel_address.is_empty() {
            for address in config.address.urls() {
                sources.push(connect_one(address, config, &metrics).await?);
            }
        } else {
            let (conn, source, first, watch) =
                connect_sentinel(config, &metrics, broker_cancel.child_token()).await?;
            tasks.push(watch);
            sources.push((conn, source, first));
        }
        for (conn, source, first) in sources {
            let (pubsub, pubsub_task) = pubsub::start(
                source,
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
            tasks.push(pubsub_task);
            shards.push(Shard { conn, pubsub });
        }
        metrics.set_pubsub_shards(shards.len());
        let shards = Shards::new(shards);
        let first = shards.first().conn.clone();
        let broker = RedisBroker::new(
            shards.clone(),
            keys.clone(),
            handler,
            config.idempotency_window,
            metrics.clone(),
            broker_cancel.drop_guard(),
        );
        let (connections, connections_task) = RedisUserConnections::start(
            first.clone(),
            keys.clone(),
            config.presence_ttl,
            metrics.clone(),
            cancel.child_token(),
        );
        let occupancy = Arc::new(RedisOccupancy::new(first, keys.clone()));
        let (presence, presence_task) = RedisPresence::start(
            shards,
            keys,
            config.presence_ttl,
            metrics.clone(),
            cancel.child_token(),
        );
        tasks.push(presence_task);
        tasks.push(connections_task);
        Ok(RedisEngine {
            broker: Arc::new(broker),
            presence: Arc::new(presence),
            connections: Arc::new(connections),
            occupancy,
            metrics,
            cancel,
            tasks,
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

/// Connects one Redis (one shard): its command connection (checked with `PING`), its client
/// and a first PUB/SUB connection. Errors name `address`.
async fn connect_one(
    address: &str,
    config: &RedisConfig,
    metrics: &Arc<RedisMetrics>,
) -> Result<(RedisConn, ClientSource, PubSubConnection), StartError> {
    let address = address.to_owned();
    let url_error = |source| StartError::Url {
        address: address.clone(),
        source,
    };
    let client = match crate::tls::Roots::load(config)?.redis {
        None => redis::Client::open(address.as_str()).map_err(url_error)?,
        Some(certs) => redis::Client::build_with_tls(address.as_str(), certs).map_err(url_error)?,
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
    let circuit = Circuit::new(&config.circuit_breaker, address, metrics.clone());
    Ok((
        RedisConn::new(Link::Direct(conn), circuit),
        ClientSource::Fixed(Box::new(client)),
        first,
    ))
}

/// Asks the sentinels for the master, connects to it (checked with `PING`), opens a first
/// PUB/SUB connection and starts the task that watches for a master switch (stopped by
/// `cancel`). Errors name the `sentinel_*` key at fault.
async fn connect_sentinel(
    config: &RedisConfig,
    metrics: &Arc<RedisMetrics>,
    cancel: CancellationToken,
) -> Result<(RedisConn, ClientSource, PubSubConnection, JoinHandle<()>), StartError> {
    let sentinel_error = |source: redis::RedisError| StartError::Sentinel {
        key: if source.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel {
            "engine.redis.sentinel_master_name"
        } else {
            "engine.redis.sentinel_address"
        },
        master_name: config.sentinel_master_name.clone(),
        sentinels: config.sentinel_address.join(","),
        source,
    };
    let roots = crate::tls::Roots::load(config)?;
    let resolver = Arc::new(MasterResolver::new(config, &roots).map_err(sentinel_error)?);
    let client = match resolver.client().await {
        Ok(client) => client,
        Err(source) => return Err(roots.name_untrusted(config, sentinel_error(source)).await),
    };
    let address = format!("{:?}", client.get_connection_info().addr());
    let mut conn = SentinelConn::new(
        resolver.clone(),
        config.connect_timeout,
        config.command_timeout,
    );
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|source| StartError::Connect {
            address: address.clone(),
            source,
        })?;
    let first = pubsub::open(&client, config.connect_timeout)
        .await
        .map_err(|e| match e {
            Some(source) => StartError::Connect {
                address: address.clone(),
                source,
            },
            None => StartError::Timeout {
                address: address.clone(),
                timeout: config.connect_timeout,
            },
        })?;
    let settings = WatchSettings::new(config, roots);
    let sentinels = settings.len();
    let tried = sentinel_watch::Tried::new();
    let watch = tokio::spawn(sentinel_watch::run(
        resolver.clone(),
        settings,
        tried.clone(),
        cancel,
    ));
    // A failover that begins right after the start must find the watchers subscribed.
    let bound = config.connect_timeout + config.command_timeout;
    if !tried.all(sentinels, bound).await {
        tracing::warn!(
            sentinels = %config.sentinel_address.join(","),
            "not every redis sentinel could be watched within {bound:?}; a failover it leads may be seen late"
        );
    }
    let circuit = Circuit::new(
        &config.circuit_breaker,
        format!("redis sentinel master {}", config.sentinel_master_name),
        metrics.clone(),
    );
    Ok((
        RedisConn::new(Link::Sentinel(conn), circuit),
        ClientSource::Sentinel(resolver),
        first,
        watch,
    ))
}
