//! [`RedisPresence`]: presence entries in Redis hashes that expire unless refreshed.
//!
//! Each channel has a hash (client id → protobuf `ClientInfo`) and a sorted set (client id →
//! expiry in Unix ms, Redis clock). Reads drop expired entries first. The node remembers the
//! entries it added and refreshes them every third of `presence_ttl`, so entries of a live
//! connection stay and entries of a crashed node vanish within `presence_ttl`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use pushwire_core::engine::{EngineError, PresenceManager, PresenceStats};
use pushwire_protocol::ClientInfo;
use redis::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::codec;
use crate::error::{backend, malformed};
use crate::keys::Keys;
use crate::metrics::RedisMetrics;
use crate::scripts;
use crate::shard::Shards;

/// Entries refreshed with one script call at most.
const REFRESH_BATCH: usize = 500;

/// Presence shared by every node on the same Redis (or shards, by channel) and prefix. Dropping it stops its
/// refresh task.
pub struct RedisPresence {
    inner: Arc<Inner>,
    _stop: DropGuard,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("prefix", &self.inner.keys.prefix())
            .finish_non_exhaustive()
    }
}

struct Inner {
    shards: Shards,
    keys: Keys,
    ttl: Duration,
    metrics: Arc<RedisMetrics>,
    /// The entries this node added: channel → client id → encoded info.
    local: Mutex<HashMap<String, HashMap<String, Vec<u8>>>>,
    /// Removes hold it shared, a refresh of a channel holds it exclusively: a refresh can not
    /// write back an entry removed while it ran.
    gate: tokio::sync::RwLock<()>,
}

impl RedisPresence {
    /// Presence on `conn`; starts the refresh task (owned by the returned value).
    pub(crate) fn start(
        shards: Shards,
        keys: Keys,
        ttl: Duration,
        metrics: Arc<RedisMetrics>,
        cancel: CancellationToken,
    ) -> (RedisPresence, JoinHandle<()>) {
        let inner = Arc::new(Inner {
            shards,
            keys,
            ttl,
            metrics,
            local: Mutex::new(HashMap::new()),
            gate: tokio::sync::RwLock::new(()),
        });
        let task = tokio::spawn(crate::refresh::every_third_of(
            Arc::downgrade(&inner),
            ttl,
            cancel.clone(),
            |inner| {
                Box::pin(async move {
                    if let Err(e) = inner.refresh_all().await {
                        tracing::warn!(error = %e, "presence refresh failed");
                    }
                })
            },
        ));
        (
            RedisPresence {
                inner,
                _stop: cancel.drop_guard(),
            },
            task,
        )
    }

    /// Entries this node keeps refreshed (for tests and metrics).
    pub fn num_local_entries(&self) -> usize {
        self.inner.local.lock().values().map(HashMap::len).sum()
    }

    /// Refreshes every entry this node added, now.
    pub async fn refresh(&self) -> Result<(), EngineError> {
        self.inner.refresh_all().await
    }
}

impl Inner {
    /// Counts a failed presence operation.
    fn failed<T>(&self, result: Result<T, EngineError>) -> Result<T, EngineError> {
        if result.is_err() {
            RedisMetrics::inc(&self.metrics.presence_errors);
        }
        result
    }

    async fn write(&self, channel: &str, entries: &[(String, Vec<u8>)]) -> Result<(), EngineError> {
        let result = self.write_entries(channel, entries).await;
        self.failed(result)
    }

    async fn write_entries(
        &self,
        channel: &str,
        entries: &[(String, Vec<u8>)],
    ) -> Result<(), EngineError> {
        for chunk in entries.chunks(REFRESH_BATCH) {
            let mut call = scripts::PRESENCE_ADD.prepare_invoke();
            call.key(self.keys.presence_data(channel))
                .key(self.keys.presence_expire(channel))
                .arg(self.ttl.as_millis() as u64);
            for (client, info) in chunk {
                call.arg(client).arg(info);
            }
            let _: i64 = call
                .invoke_async(&mut self.shards.of(channel).conn.clone())
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn refresh_all(&self) -> Result<(), EngineError> {
        let channels: Vec<String> = self.local.lock().keys().cloned().collect();
        let mut result = Ok(());
        for channel in channels {
            let _exclusive = self.gate.write().await;
            let entries: Vec<(String, Vec<u8>)> = match self.local.lock().get(&channel) {
                Some(m) => m.iter().map(|(c, i)| (c.clone(), i.clone())).collect(),
                None => continue,
            };
            if let Err(e) = self.write(&channel, &entries).await {
                result = Err(e);
            }
        }
        result
    }

    async fn read(&self, channel: &str) -> Result<Vec<(String, ClientInfo)>, EngineError> {
        let result = self.read_entries(channel).await;
        self.failed(result)
    }

    async fn read_entries(&self, channel: &str) -> Result<Vec<(String, ClientInfo)>, EngineError> {
        let flat: Vec<Value> = scripts::PRESENCE_GET
            .key(self.keys.presence_data(channel))
            .key(self.keys.presence_expire(channel))
            .invoke_async(&mut self.shards.of(channel).conn.clone())
            .await
            .map_err(backend)?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks(2) {
            let [Value::BulkString(client), Value::BulkString(info)] = pair else {
                return Err(malformed("presence entry"));
            };
            let client = String::from_utf8(client.clone()).map_err(|_| malformed("client id"))?;
            let info = codec::decode_info(info)
                .map_err(|e| malformed(format_args!("presence info: {e}")))?;
            out.push((client, info));
        }
        Ok(out)
    }
}

#[async_trait]
impl PresenceManager for RedisPresence {
    async fn add(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError> {
        let encoded = codec::encode_info(&info);
        self.inner
            .local
            .lock()
            .entry(channel.to_owned())
            .or_default()
            .insert(info.client.clone(), encoded.clone());
        self.inner
            .write(channel, &[(info.client.clone(), encoded)])
            .await
    }

    async fn remove(&self, channel: &str, client: &str) -> Result<(), EngineError> {
        let _shared = self.inner.gate.read().await;
        {
            let mut local = self.inner.local.lock();
            if let Some(entries) = local.get_mut(channel) {
                entries.remove(client);
                if entries.is_empty() {
                    local.remove(channel);
                }
            }
        }
        let removed: Result<i64, EngineError> = scripts::PRESENCE_REMOVE
            .key(self.inner.keys.presence_data(channel))
            .key(self.inner.keys.presence_expire(channel))
            .arg(client)
            .invoke_async(&mut self.inner.shards.of(channel).conn.clone())
            .await
            .map_err(backend);
        self.inner.failed(removed).map(drop)
    }

    async fn presence(&self, channel: &str) -> Result<HashMap<String, ClientInfo>, EngineError> {
        Ok(self.inner.read(channel).await?.into_iter().collect())
    }

    async fn stats(&self, channel: &str) -> Result<PresenceStats, EngineError> {
        let entries = self.inner.read(channel).await?;
        let users: HashSet<&str> = entries.iter().map(|(_, i)| i.user.as_str()).collect();
        Ok(PresenceStats {
            num_clients: entries.len() as u32,
            num_users: users.len() as u32,
        })
    }
}
