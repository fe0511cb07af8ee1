//! [`RedisUserConnections`]: each user's connections counted in Redis, so
//! `client.user_connection_limit` holds across every node on the same Redis and prefix.
//!
//! A user has a sorted set (connection id → expiry, Unix ms, Redis clock). Adding checks the
//! count and adds in one script, so two nodes admitting the same user at once can not both
//! pass the limit. The node refreshes its own entries every third of `presence_ttl`, so the
//! connections of a crashed node stop counting within `presence_ttl`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::conn::RedisConn;
use async_trait::async_trait;
use parking_lot::Mutex;
use pushwire_core::engine::{EngineError, UserConnections};
use redis::AsyncCommands;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::backend;
use crate::keys::Keys;
use crate::metrics::RedisMetrics;
use crate::scripts;

/// Connection ids refreshed with one script call at most.
const REFRESH_BATCH: usize = 500;

/// Per-user connection counts shared by every node on one Redis (and one prefix). Dropping
/// it stops its refresh task.
pub struct RedisUserConnections {
    inner: Arc<Inner>,
    _stop: DropGuard,
}

impl std::fmt::Debug for RedisUserConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisUserConnections")
            .finish_non_exhaustive()
    }
}

struct Inner {
    conn: RedisConn,
    keys: Keys,
    ttl: Duration,
    metrics: Arc<RedisMetrics>,
    /// This node's connections: user → connection ids.
    local: Mutex<HashMap<String, HashSet<String>>>,
}

impl RedisUserConnections {
    /// Counts on `conn`; starts the refresh task (owned by the returned value).
    pub(crate) fn start(
        conn: RedisConn,
        keys: Keys,
        ttl: Duration,
        metrics: Arc<RedisMetrics>,
        cancel: CancellationToken,
    ) -> (RedisUserConnections, JoinHandle<()>) {
        let inner = Arc::new(Inner {
            conn,
            keys,
            ttl,
            metrics,
            local: Mutex::new(HashMap::new()),
        });
        let task = tokio::spawn(crate::refresh::every_third_of(
            Arc::downgrade(&inner),
            ttl,
            cancel.clone(),
            |inner| Box::pin(inner.refresh_all()),
        ));
        (
            RedisUserConnections {
                inner,
                _stop: cancel.drop_guard(),
            },
            task,
        )
    }
}

impl Inner {
    async fn add(&self, user: &str, ids: &[String], limit: usize) -> Result<bool, EngineError> {
        let mut call = scripts::CONNECTIONS_ADD.prepare_invoke();
        call.key(self.keys.user_connections(user))
            .arg(self.ttl.as_millis() as u64)
            .arg(limit);
        for id in ids {
            call.arg(id);
        }
        let added: i64 = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(added == 1)
    }

    async fn refresh_all(&self) {
        let users: Vec<(String, Vec<String>)> = self
            .local
            .lock()
            .iter()
            .map(|(u, ids)| (u.clone(), ids.iter().cloned().collect()))
            .collect();
        for (user, ids) in users {
            for chunk in ids.chunks(REFRESH_BATCH) {
                if self.add(&user, chunk, 0).await.is_err() {
                    RedisMetrics::inc(&self.metrics.connection_count_errors);
                }
            }
        }
    }
}

#[async_trait]
impl UserConnections for RedisUserConnections {
    async fn try_add(&self, user: &str, client: &str, limit: usize) -> Result<bool, EngineError> {
        let result = self.inner.add(user, &[client.to_owned()], limit).await;
        match &result {
            Ok(true) => {
                self.inner
                    .local
                    .lock()
                    .entry(user.to_owned())
                    .or_default()
                    .insert(client.to_owned());
            }
            Ok(false) => {}
            Err(_) => RedisMetrics::inc(&self.inner.metrics.connection_count_errors),
        }
        result
    }

    async fn remove(&self, user: &str, client: &str) -> Result<(), EngineError> {
        {
            let mut local = self.inner.local.lock();
            if let Some(ids) = local.get_mut(user) {
                ids.remove(client);
                if ids.is_empty() {
                    local.remove(user);
                }
            }
        }
        let result: Result<i64, _> = self
            .inner
            .conn
            .clone()
            .zrem(self.inner.keys.user_connections(user), client)
            .await;
        if result.is_err() {
            RedisMetrics::inc(&self.inner.metrics.connection_count_errors);
        }
        result.map(|_| ()).map_err(backend)
    }
}
