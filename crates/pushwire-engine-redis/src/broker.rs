//! [`RedisBroker`]: channel streams in Redis, publications fanned out over PUB/SUB.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pushwire_core::engine::{
    Broker, BrokerEventHandler, EngineError, HistoryPage, HistoryQuery, PublishOptions,
    PublishOutcome,
};
use pushwire_protocol::{ClientInfo, Publication, StreamPosition};
use redis::{AsyncCommands, Value};
use tokio_util::sync::DropGuard;

use crate::codec;
use crate::error::{backend, malformed};
use crate::keys::Keys;
use crate::metrics::RedisMetrics;
use crate::pubsub::SharedHandler;
use crate::scripts;
use crate::shard::Shards;

/// A broker shared by every node on the same Redis (or shards) and prefix. With several
/// shards, each channel lives on one of them ([`crate::shard`]); control messages go over
/// the first.
///
/// - `publish` runs one Lua script that checks the idempotency key, checks the version,
///   appends with the next offset, trims to the history size, sets TTLs and PUBLISHes, so
///   every node receives a channel's publications in offset order and the stream top always
///   equals the last offset delivered. History, epochs and idempotency keys live in Redis and
///   survive a node restart.
/// - `subscribe` returns once Redis confirmed the PUB/SUB subscription.
/// - Dropping the broker stops its PUB/SUB task.
pub struct RedisBroker {
    shards: Shards,
    keys: Keys,
    handler: SharedHandler,
    idempotency_window: Duration,
    metrics: Arc<RedisMetrics>,
    _stop: DropGuard,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Int(n) => Some(n.to_string()),
        other => bytes(other).and_then(|b| String::from_utf8(b.to_vec()).ok()),
    }
}

/// A new random epoch: 8 ASCII letters, as the memory engine makes them.
fn new_epoch() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..8)
        .map(|_| {
            let n = rng.random_range(0..52u8);
            (if n < 26 { b'a' + n } else { b'A' + n - 26 }) as char
        })
        .collect()
}

/// `<offset>-0` → offset.
fn entry_offset(id: &[u8]) -> Option<u64> {
    let id = std::str::from_utf8(id).ok()?;
    id.split('-').next()?.parse().ok()
}

impl RedisBroker {
    pub(crate) fn new(
        shards: Shards,
        keys: Keys,
        handler: SharedHandler,
        idempotency_window: Duration,
        metrics: Arc<RedisMetrics>,
        stop: DropGuard,
    ) -> RedisBroker {
        RedisBroker {
            shards,
            keys,
            handler,
            idempotency_window,
            metrics,
            _stop: stop,
        }
    }

    /// `SPUBLISH` on a Redis Cluster (sharded PUB/SUB), `PUBLISH` otherwise.
    fn publish_command(&self) -> &'static str {
        if self.keys.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// Stores `publication` exactly as [`Broker::publish`] does (idempotency key, version,
    /// offset, trim, TTLs) but PUBLISHes nothing: for a broker that fans out over something
    /// else (the NATS broker) and keeps history here.
    pub async fn store(
        &self,
        channel: &str,
        publication: &Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        self.send(channel, publication, options, false).await
    }

    /// Stores (when the channel keeps history or an idempotency key) and, with `fanout`,
    /// PUBLISHes.
    async fn send(
        &self,
        channel: &str,
        publication: &Publication,
        options: &PublishOptions,
        fanout: bool,
    ) -> Result<PublishOutcome, EngineError> {
        let payload = codec::encode_publication(publication);
        let mut conn = self.shards.of(channel).conn.clone();
        let history = options.history();
        if !history && options.idempotency_key.is_none() {
            if !fanout {
                return Ok(PublishOutcome::default());
            }
            let _: i64 = redis::cmd(self.publish_command())
                .arg(self.keys.pubsub(channel))
                .arg(codec::publication_message(&payload))
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            return Ok(PublishOutcome::default());
        }
        let key = options.idempotency_key.as_deref().unwrap_or("");
        let window = if options.idempotency_key.is_some() {
            millis(self.idempotency_window)
        } else {
            0
        };
        let (suppressed, offset, epoch): (i64, String, String) = scripts::PUBLISH
            .key(self.keys.stream(channel))
            .key(self.keys.meta(channel))
            .key(self.keys.idempotency(channel, key))
            .arg(payload)
            .arg(if history { options.history_size } else { 0 })
            .arg(millis(options.history_ttl).max(1))
            .arg(millis(options.history_meta_ttl))
            .arg(new_epoch())
            .arg(if fanout {
                self.keys.pubsub(channel)
            } else {
                String::new()
            })
            .arg(window)
            .arg(options.version)
            .arg(&options.version_epoch)
            .arg(self.publish_command())
            .invoke_async(&mut conn)
            .await
            .map_err(backend)?;
        let position = if offset.is_empty() {
            None
        } else {
            Some(StreamPosition {
                offset: offset.parse().map_err(|_| malformed("offset"))?,
                epoch,
            })
        };
        Ok(PublishOutcome {
            position,
            suppressed: suppressed != 0,
        })
    }

    /// Reads a page of the channel's stream and its position.
    async fn read_history(
        &self,
        channel: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage, EngineError> {
        let since = query.since.as_ref();
        let (mode, from, to) = if query.limit == 0 {
            ("", String::new(), String::new())
        } else if query.reverse {
            match since.map(|s| s.offset) {
                None => ("r", "+".to_owned(), "-".to_owned()),
                Some(0) => ("", String::new(), String::new()),
                Some(before) => ("r", (before - 1).to_string(), "-".to_owned()),
            }
        } else {
            let from = since.map_or("-".to_owned(), |s| s.offset.saturating_add(1).to_string());
            ("f", from, "+".to_owned())
        };
        let reply: Vec<Value> = scripts::HISTORY
            .key(self.keys.stream(channel))
            .key(self.keys.meta(channel))
            .arg(new_epoch())
            .arg(millis(query.meta_ttl))
            .arg(mode)
            .arg(from)
            .arg(to)
            .arg(query.limit)
            .invoke_async(&mut self.shards.of(channel).conn.clone())
            .await
            .map_err(backend)?;
        let epoch = reply
            .first()
            .and_then(text)
            .ok_or_else(|| malformed("epoch"))?;
        let top: u64 = reply
            .get(1)
            .and_then(text)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| malformed("top offset"))?;
        if let Some(since) = since
            && !since.epoch.is_empty()
            && since.epoch != epoch
        {
            return Err(EngineError::EpochMismatch);
        }
        let mut publications = Vec::with_capacity(reply.len().saturating_sub(2) / 2);
        for pair in reply[2..].chunks(2) {
            let [id, data] = pair else {
                return Err(malformed("history entry"));
            };
            let offset = bytes(id)
                .and_then(entry_offset)
                .ok_or_else(|| malformed("entry id"))?;
            let data = bytes(data).ok_or_else(|| malformed("entry data"))?;
            let p = codec::decode_publication(data, offset)
                .map_err(|e| malformed(format_args!("publication: {e}")))?;
            publications.push(p);
        }
        Ok(HistoryPage {
            publications,
            position: StreamPosition { offset: top, epoch },
        })
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn set_handler(&self, node_id: &str, handler: Arc<dyn BrokerEventHandler>) {
        let _ = self.handler.set(handler);
        for name in [self.keys.control().to_owned(), self.keys.node(node_id)] {
            if let Err(e) = self.shards.first().pubsub.pin(name) {
                tracing::error!(error = %e, "control channel not subscribed");
            }
        }
    }

    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        let result = self.send(channel, &publication, options, true).await;
        match &result {
            Ok(outcome) if !outcome.suppressed => RedisMetrics::inc(&self.metrics.publications),
            Ok(_) => {}
            Err(_) => RedisMetrics::inc(&self.metrics.publish_errors),
        }
        result
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        info: ClientInfo,
        join: bool,
    ) -> Result<(), EngineError> {
        let _: i64 = redis::cmd(self.publish_command())
            .arg(self.keys.pubsub(channel))
            .arg(codec::join_leave_message(&info, join))
            .query_async(&mut self.shards.of(channel).conn.clone())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<(), EngineError> {
        self.shards.of(channel).pubsub.subscribe(channel).await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError> {
        self.shards.of(channel).pubsub.unsubscribe(channel).await
    }

    async fn history(
        &self,
        channel: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage, EngineError> {
        RedisMetrics::inc(&self.metrics.history_reads);
        let result = self.read_history(channel, query).await;
        if matches!(&result, Err(e) if !matches!(e, EngineError::EpochMismatch)) {
            RedisMetrics::inc(&self.metrics.history_errors);
        }
        result
    }

    async fn remove_history(&self, channel: &str) -> Result<(), EngineError> {
        let _: i64 = self
            .shards
            .of(channel)
            .conn
            .clone()
            .del(self.keys.stream(channel))
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn publish_control(
        &self,
        data: bytes::Bytes,
        to: Option<&str>,
    ) -> Result<(), EngineError> {
        let name = match to {
            Some(uid) => self.keys.node(uid),
            None => self.keys.control().to_owned(),
        };
        let result: Result<i64, _> = self
            .shards
            .first()
            .conn
            .clone()
            .publish(name, data.as_ref())
            .await;
        if result.is_err() {
            RedisMetrics::inc(&self.metrics.control_errors);
        }
        result.map(|_| ()).map_err(backend)
    }

    fn degraded(&self) -> Option<String> {
        self.metrics.degraded()
    }

    fn metrics(&self) -> Vec<pushwire_core::engine::EngineMetric> {
        self.metrics.families()
    }
}
