//! The in-memory broker: one node, streams in process memory.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use pushwire_protocol::{ClientInfo, Publication};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::broker::{
    Broker, BrokerEventHandler, EngineError, HistoryPage, HistoryQuery, PublishOptions,
    PublishOutcome,
};
use super::stream::Stream;

const SHARDS: usize = 32;
/// How often expired publications, idempotency keys and idle streams are dropped.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Broker for a single node. Streams live in sharded maps; each publish appends and delivers
/// under its shard's lock, which keeps delivery in offset order per channel.
///
/// It owns its housekeeping: created inside a Tokio runtime, it sweeps expired publications,
/// idempotency keys and idle streams every second until it is dropped. Control messages
/// loop back to the node's own handler (this node is the whole cluster).
pub struct MemoryBroker {
    inner: Arc<Inner>,
    _sweeper: Option<DropGuard>,
}

struct Inner {
    shards: Box<[Mutex<HashMap<String, Stream>>]>,
    handler: OnceLock<Arc<dyn BrokerEventHandler>>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBroker {
    /// An empty broker; starts its sweep task when called inside a Tokio runtime.
    pub fn new() -> Self {
        let inner = Arc::new(Inner {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            handler: OnceLock::new(),
        });
        let sweeper = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let cancel = CancellationToken::new();
            rt.spawn(sweep_loop(Arc::downgrade(&inner), cancel.clone()));
            cancel.drop_guard()
        });
        MemoryBroker {
            inner,
            _sweeper: sweeper,
        }
    }

    /// Drops expired publications, keys and streams. Returns the number of streams left.
    pub fn sweep(&self) -> usize {
        self.inner.sweep()
    }

    /// Number of channel streams held.
    pub fn num_streams(&self) -> usize {
        self.inner.shards.iter().map(|s| s.lock().len()).sum()
    }

    fn shard(&self, channel: &str) -> &Mutex<HashMap<String, Stream>> {
        self.inner.shard(channel)
    }

    fn handler(&self) -> &Arc<dyn BrokerEventHandler> {
        self.inner.handler()
    }
}

async fn sweep_loop(inner: Weak<Inner>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => match inner.upgrade() {
                Some(inner) => {
                    inner.sweep();
                }
                None => return,
            },
        }
    }
}

impl Inner {
    fn shard(&self, channel: &str) -> &Mutex<HashMap<String, Stream>> {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in channel.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        &self.shards[(h as usize) % SHARDS]
    }

    fn handler(&self) -> &Arc<dyn BrokerEventHandler> {
        self.handler
            .get()
            .expect("broker handler set at node start")
    }

    fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut left = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.retain(|_, s| !s.sweep(now));
            left += shard.len();
        }
        left
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn set_handler(&self, _node_id: &str, handler: Arc<dyn BrokerEventHandler>) {
        let _ = self.inner.handler.set(handler);
    }

    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        let now = Instant::now();
        let mut shard = self.shard(channel).lock();
        let needs_state = options.history() || options.idempotency_key.is_some();
        if !needs_state {
            self.handler().on_publication(channel, &publication);
            return Ok(PublishOutcome::default());
        }
        let stream = shard
            .entry(channel.to_owned())
            .or_insert_with(|| Stream::new(now, options.history_meta_ttl));
        if let Some(key) = &options.idempotency_key
            && let Some(duplicate) = stream.duplicate(key, now)
        {
            return Ok(PublishOutcome {
                position: duplicate.position,
                suppressed: true,
            });
        }
        if options.history() && stream.stale_version(options.version, &options.version_epoch) {
            return Ok(PublishOutcome {
                position: Some(stream.position()),
                suppressed: true,
            });
        }
        let (delivered, position) = if options.history() {
            let stored = stream.append(
                publication,
                options.history_size,
                options.history_ttl,
                options.history_meta_ttl,
                now,
            );
            (stored, Some(stream.position()))
        } else {
            (publication, None)
        };
        if let Some(key) = &options.idempotency_key {
            stream.remember(key.clone(), position.clone(), now);
        }
        self.handler().on_publication(channel, &delivered);
        Ok(PublishOutcome {
            position,
            suppressed: false,
        })
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        info: ClientInfo,
        join: bool,
    ) -> Result<(), EngineError> {
        // Same lock as publications: joins and leaves keep their order relative to them.
        let _shard = self.shard(channel).lock();
        self.handler().on_join_leave(channel, &info, join);
        Ok(())
    }

    async fn subscribe(&self, _channel: &str) -> Result<(), EngineError> {
        Ok(())
    }

    async fn unsubscribe(&self, _channel: &str) -> Result<(), EngineError> {
        Ok(())
    }

    async fn history(
        &self,
        channel: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage, EngineError> {
        let now = Instant::now();
        let mut shard = self.shard(channel).lock();
        let stream = shard
            .entry(channel.to_owned())
            .or_insert_with(|| Stream::new(now, query.meta_ttl));
        stream.read(&query, now)
    }

    async fn remove_history(&self, channel: &str) -> Result<(), EngineError> {
        if let Some(s) = self.shard(channel).lock().get_mut(channel) {
            s.clear();
        }
        Ok(())
    }

    async fn publish_control(
        &self,
        data: bytes::Bytes,
        _to: Option<&str>,
    ) -> Result<(), EngineError> {
        // The only node there is: a broadcast and a message addressed to any node both reach
        // this node's handler.
        self.handler().on_control(&data);
        Ok(())
    }
}
