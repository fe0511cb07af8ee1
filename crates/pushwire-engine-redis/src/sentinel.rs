//! Redis Sentinel (`engine.redis.sentinel_address`): the master is asked of the sentinels,
//! and the command connection follows it across failovers.
//!
//! [`MasterResolver`] asks the sentinels for the current master of
//! `engine.redis.sentinel_master_name` and checks it answers `ROLE` as master.
//! [`SentinelConn`] is the command connection of a Sentinel deployment: one multiplexed
//! connection to the master, dropped when a command fails in a way that means the master is
//! gone or demoted (I/O error, dropped connection, timeout, `READONLY`); the next command asks
//! the sentinels again. A command that certainly was not executed (`READONLY`, or a broken
//! pipe of a connection already closed) is retried once on the master asked anew. The PUB/SUB controller reconnects through the same resolver (Sentinel kills
//! the clients of a demoted master, so its subscriptions drop and are resubscribed on the new
//! master, and the node resyncs those channels with 3010).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, RedisError, RedisFuture, Value,
};

use crate::config::RedisConfig;
use crate::tls::Roots;

/// Finds the current master through the sentinels, and tells who connected to it when the
/// sentinels switch to another master ([`MasterResolver::switched`]).
pub(crate) struct MasterResolver {
    client: tokio::sync::Mutex<SentinelClient>,
    timeout: Duration,
    /// The master last resolved (`host:port`).
    last: Mutex<Option<String>>,
    /// Bumped on every master switch the watcher sees.
    switches: tokio::sync::watch::Sender<u64>,
    /// While a failover runs (a sentinel started promoting a replica), commands wait until
    /// this instant for the switch, so the old master accepts nothing that is then lost.
    paused_until: Mutex<Option<tokio::time::Instant>>,
    resumed: tokio::sync::Notify,
    /// Longest pause (the command timeout).
    pause_max: Duration,
}

/// `host:port` → a TCP address (validated by [`RedisConfig::validate`]).
pub(crate) fn sentinel_addr(entry: &str) -> Option<ConnectionAddr> {
    let (host, port) = entry.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && !host.contains('/')).then(|| ConnectionAddr::Tcp(host.to_owned(), port))
}

impl MasterResolver {
    /// A resolver for `config` (its `sentinel_*` keys; the master's own user, password, db
    /// and TLS (`rediss://`) come from the first `address` URL when it has them). `roots`
    /// holds the root certificates read at start ([`Roots::load`]).
    pub(crate) fn new(config: &RedisConfig, roots: &Roots) -> Result<MasterResolver, RedisError> {
        let sentinels = config
            .sentinel_address
            .iter()
            .filter_map(|s| roots.sentinel_addr(s))
            .collect::<Vec<_>>();
        let mut builder = SentinelClientBuilder::new(
            sentinels,
            &config.sentinel_master_name,
            SentinelServerType::Master,
        )?;
        if !config.sentinel_user.is_empty() {
            builder = builder.set_client_to_sentinel_username(&config.sentinel_user);
        }
        if !config.sentinel_password.is_empty() {
            builder = builder.set_client_to_sentinel_password(&config.sentinel_password);
        }
        if let Some(certs) = roots.sentinel.clone().filter(|_| roots.sentinel_tls) {
            builder = builder.set_client_to_sentinel_certificates(certs);
        }
        if config
            .address
            .urls()
            .first()
            .is_some_and(|u| u.starts_with("rediss://"))
        {
            builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
            if let Some(certs) = roots.redis.clone() {
                builder = builder.set_client_to_redis_certificates(certs);
            }
        }
        if let Some(url) = config.address.urls().first() {
            use redis::IntoConnectionInfo;
            if let Ok(info) = url.as_str().into_connection_info() {
                let node = info.redis_settings();
                if let Some(user) = node.username() {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = node.password() {
                    builder = builder.set_client_to_redis_password(password);
                }
                if node.db() != 0 {
                    builder = builder.set_client_to_redis_db(node.db());
                }
            }
        }
        Ok(MasterResolver {
            client: tokio::sync::Mutex::new(builder.build()?),
            timeout: config.connect_timeout + config.command_timeout,
            last: Mutex::new(None),
            switches: tokio::sync::watch::channel(0).0,
            paused_until: Mutex::new(None),
            resumed: tokio::sync::Notify::new(),
            pause_max: config.command_timeout,
        })
    }

    /// A sentinel started a failover of this master: commands wait (at most the command
    /// timeout) for the switch instead of writing to a master about to be demoted.
    pub(crate) fn failover_started(&self) {
        tracing::warn!("redis sentinel failover started; holding commands until the switch");
        *self.paused_until.lock() = Some(tokio::time::Instant::now() + self.pause_max);
    }

    /// The failover ended (switched or aborted): commands go on.
    pub(crate) fn failover_ended(&self) {
        if self.paused_until.lock().take().is_some() {
            self.resumed.notify_waiters();
        }
    }

    /// Waits while a failover holds commands (see [`MasterResolver::failover_started`]).
    pub(crate) async fn wait_failover(&self) {
        loop {
            let resumed = self.resumed.notified();
            let Some(until) = *self.paused_until.lock() else {
                return;
            };
            if tokio::time::Instant::now() >= until {
                return;
            }
            tokio::select! {
                _ = resumed => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Records that the sentinels now name `master` (`host:port`): when it differs from the
    /// one last resolved, every connection made to the old one is dropped.
    pub(crate) fn observe(&self, master: &str) {
        let changed = matches!(&*self.last.lock(), Some(last) if last != master);
        if changed {
            tracing::warn!(master, "redis sentinel switched master; reconnecting");
            self.switches.send_modify(|n| *n += 1);
            self.failover_ended();
        }
    }

    /// How many master switches were seen (changes with every switch).
    pub(crate) fn switches(&self) -> u64 {
        *self.switches.borrow()
    }

    /// A receiver that is notified on every master switch.
    pub(crate) fn switched(&self) -> tokio::sync::watch::Receiver<u64> {
        self.switches.subscribe()
    }

    /// A client for the current master, within the connect plus command timeout.
    pub(crate) async fn client(&self) -> Result<redis::Client, RedisError> {
        let mut sentinel = self.client.lock().await;
        let client = match tokio::time::timeout(self.timeout, sentinel.async_get_client()).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(RedisError::from((
                    ErrorKind::Io,
                    "no sentinel answered in time",
                )))
            }
        };
        *self.last.lock() = Some(client.get_connection_info().addr().to_string());
        Ok(client)
    }
}

/// Whether a failed command means the connection no longer leads to the master.
fn lost_master(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || read_only(e)
}

fn read_only(e: &RedisError) -> bool {
    e.code() == Some("READONLY")
}

/// Whether the command was certainly not executed, so sending it again (once, to the master
/// asked anew) can not apply it twice: `READONLY` (a demoted master refused it) or a broken
/// pipe (the connection was already closed, e.g. by Sentinel's `CLIENT KILL` of a demoted
/// master's clients, and nothing was written).
fn not_executed(e: &RedisError) -> bool {
    read_only(e) || (e.is_io_error() && e.to_string().to_ascii_lowercase().contains("broken pipe"))
}

struct State {
    resolver: Arc<MasterResolver>,
    config: AsyncConnectionConfig,
    /// The connection, its local generation and the resolver's switch count when made.
    current: Mutex<Option<(u64, u64, MultiplexedConnection)>>,
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

/// The command connection of a Sentinel deployment (see the module doc). Cheap to clone;
/// clones share the connection.
#[derive(Clone)]
pub(crate) struct SentinelConn(Arc<State>);

impl SentinelConn {
    /// A connection that resolves the master through `resolver` (lazily: the first command
    /// connects).
    pub(crate) fn new(
        resolver: Arc<MasterResolver>,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> SentinelConn {
        SentinelConn(Arc::new(State {
            resolver,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(command_timeout)),
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }))
    }

    /// The current connection, unless it was made before the last master switch.
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        let switches = self.0.resolver.switches();
        let mut current = self.0.current.lock();
        match &*current {
            Some((g, s, c)) if *s == switches => Some((*g, c.clone())),
            Some(_) => {
                *current = None;
                None
            }
            None => None,
        }
    }

    async fn get(&self) -> Result<(u64, MultiplexedConnection), RedisError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one_at_a_time = self.0.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let switches = self.0.resolver.switches();
        let client = self.0.resolver.client().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.0.config)
            .await?;
        let generation = self.0.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.0.current.lock() = Some((generation, switches, conn.clone()));
        Ok((generation, conn))
    }

    fn forget(&self, generation: u64) {
        let mut current = self.0.current.lock();
        if matches!(&*current, Some((g, _, _)) if *g == generation) {
            *current = None;
        }
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut retried = false;
            loop {
                self.0.resolver.wait_failover().await;
                let (generation, mut conn) = self.get().await?;
                let result = conn.req_packed_command(cmd).await;
                match &result {
                    Err(e) if lost_master(e) => {
                        self.forget(generation);
                        if not_executed(e) && !retried {
                            retried = true;
                            continue;
                        }
                    }
                    _ => {}
                }
                return result;
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.0.resolver.wait_failover().await;
            let (generation, mut conn) = self.get().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            if matches!(&result, Err(e) if lost_master(e)) {
                self.forget(generation);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_addresses_are_host_and_port() {
        assert!(matches!(
            sentinel_addr("127.0.0.1:26379"),
            Some(ConnectionAddr::Tcp(h, 26379)) if h == "127.0.0.1"
        ));
        for bad in ["127.0.0.1", ":1", "h:x", "redis://h:1/0", "h:70000"] {
            assert!(sentinel_addr(bad).is_none(), "{bad}");
        }
    }
}
