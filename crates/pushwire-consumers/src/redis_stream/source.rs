//! The Redis Streams consume loop.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Value};
use tokio_util::sync::CancellationToken;

use super::RedisStreamSettings;
use crate::backoff::Backoff;
use crate::error::ConsumerError;
use crate::message::Message;
use crate::metrics::ConsumerMetrics;
use crate::processor::{Outcome, Processor};

/// Timeout of connecting and of each command (a blocking read adds its `block`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the group lag is read.
const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// Reads `settings.streams` through consumer group `settings.group` until `shutdown`: first
/// this consumer's own pending entries (left unacknowledged by a previous run), then new
/// ones, and every `claim_interval` entries idle for `claim_min_idle` in other consumers
/// (`XAUTOCLAIM`). Each entry is acknowledged (`XACK`) after the processor says `Done`; a
/// poison entry is `XADD`ed to the dead-letter stream first; `Retry` retries in place with
/// backoff (order per stream kept). Reconnects with backoff on errors; never panics.
pub async fn run(
    name: String,
    settings: RedisStreamSettings,
    processor: Processor,
    shutdown: CancellationToken,
) {
    let mut backoff = processor.backoff();
    let consumer = if settings.consumer_name.is_empty() {
        processor.node().name().to_owned()
    } else {
        settings.consumer_name.clone()
    };
    while !shutdown.is_cancelled() {
        let mut session = Session {
            s: &settings,
            processor: &processor,
            shutdown: &shutdown,
            consumer: &consumer,
        };
        let result = session.run(&mut backoff).await;
        if shutdown.is_cancelled() {
            break;
        }
        let delay = backoff.next_delay();
        if let Err(e) = result {
            tracing::warn!(consumer = %name, error = %e, ?delay, "redis stream unavailable; reconnecting");
            processor.metrics().set_source_down(Some(e.to_string()));
        }
        processor.metrics().set_lag(-1);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!(consumer = %name, "redis stream consumer stopped");
}

fn redis_err(what: &str) -> impl Fn(redis::RedisError) -> ConsumerError + '_ {
    move |e| ConsumerError::Broker(format!("{what}: {e}"))
}

struct Session<'a> {
    s: &'a RedisStreamSettings,
    processor: &'a Processor,
    shutdown: &'a CancellationToken,
    consumer: &'a str,
}

/// What handling one entry ended with.
enum Handled {
    /// Acknowledged.
    Acked,
    /// Shutdown while retrying: left pending.
    Stopped,
}

impl Session<'_> {
    /// The client for `address`, over TLS with `tls_ca_pem_file` as the only root when set
    /// (the same rule as the Redis engine's `engine.redis.tls_ca_pem_file`).
    fn client(&self) -> Result<redis::Client, ConsumerError> {
        let address = self.s.address.as_str();
        if address.starts_with("rediss://") {
            // The redis crate takes the process-wide rustls provider: make sure there is one.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let url =
            |e: redis::RedisError| ConsumerError::config("redis_stream.address", e.to_string());
        if self.s.tls_ca_pem_file.is_empty() {
            return redis::Client::open(address).map_err(url);
        }
        let pem = std::fs::read(&self.s.tls_ca_pem_file).map_err(|e| {
            ConsumerError::config(
                "redis_stream.tls_ca_pem_file",
                format!("{}: {e}", self.s.tls_ca_pem_file),
            )
        })?;
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        };
        redis::Client::build_with_tls(address, certs).map_err(url)
    }

    async fn connect(&self) -> Result<MultiplexedConnection, ConsumerError> {
        let client = self.client()?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT + self.s.block));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| ConsumerError::Connection(e.to_string()))
    }

    async fn run(&mut self, backoff: &mut Backoff) -> Result<(), ConsumerError> {
        let mut conn = self.connect().await?;
        for stream in &self.s.streams {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(&self.s.group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(redis_err("XGROUP CREATE")(e)),
            }
        }
        tracing::info!(consumer = %self.processor.name(), streams = ?self.s.streams, group = %self.s.group, "redis stream consumer connected");
        backoff.reset();
        self.processor.metrics().set_source_down(None);
        // This consumer's own pending entries first (a previous run died before XACK).
        loop {
            let ids = vec!["0"; self.s.streams.len()];
            let reply = self.read(&mut conn, &ids, None).await?;
            let n: usize = reply.keys.iter().map(|k| k.ids.len()).sum();
            if n == 0 {
                break;
            }
            if !self.handle_reply(&mut conn, reply).await? {
                return Ok(());
            }
        }
        let mut last_claim = Instant::now() - self.s.claim_interval;
        let mut last_lag = Instant::now() - LAG_INTERVAL;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = self.processor.ready() => {}
            }
            if last_lag.elapsed() >= LAG_INTERVAL {
                last_lag = Instant::now();
                self.update_lag(&mut conn).await?;
            }
            if last_claim.elapsed() >= self.s.claim_interval {
                last_claim = Instant::now();
                if !self.claim(&mut conn).await? {
                    return Ok(());
                }
            }
            let ids = vec![">"; self.s.streams.len()];
            let block = self.s.block.as_millis().max(1) as usize;
            let reply = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                r = self.read(&mut conn, &ids, Some(block)) => r?,
            };
            if !self.handle_reply(&mut conn, reply).await? {
                return Ok(());
            }
        }
    }

    async fn read(
        &self,
        conn: &mut MultiplexedConnection,
        ids: &[&str],
        block_ms: Option<usize>,
    ) -> Result<StreamReadReply, ConsumerError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.s.group)
            .arg(self.consumer)
            .arg("COUNT")
            .arg(self.s.batch_size);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(&self.s.streams).arg(ids);
        let reply: Option<StreamReadReply> = cmd
            .query_async(conn)
            .await
            .map_err(redis_err("XREADGROUP"))?;
        Ok(reply.unwrap_or_default())
    }

    /// Handles every entry of `reply`; false when stopped by shutdown.
    async fn handle_reply(
        &self,
        conn: &mut MultiplexedConnection,
        reply: StreamReadReply,
    ) -> Result<bool, ConsumerError> {
        for key in reply.keys {
            for entry in key.ids {
                if let Handled::Stopped = self.handle(conn, &key.key, entry).await? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Claims entries idle in other consumers for `claim_min_idle`; false when stopped.
    async fn claim(&self, conn: &mut MultiplexedConnection) -> Result<bool, ConsumerError> {
        let min_idle = self.s.claim_min_idle.as_millis() as u64;
        for stream in &self.s.streams {
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(stream)
                .arg(&self.s.group)
                .arg(self.consumer)
                .arg(min_idle)
                .arg("0-0")
                .arg("COUNT")
                .arg(self.s.batch_size)
                .query_async(conn)
                .await
                .map_err(redis_err("XAUTOCLAIM"))?;
            if !reply.claimed.is_empty() {
                tracing::info!(consumer = %self.processor.name(), stream = %stream, n = reply.claimed.len(), "claimed idle entries");
            }
            for entry in reply.claimed {
                if let Handled::Stopped = self.handle(conn, stream, entry).await? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    async fn update_lag(&self, conn: &mut MultiplexedConnection) -> Result<(), ConsumerError> {
        let mut total: i64 = 0;
        for stream in &self.s.streams {
            let info: StreamInfoGroupsReply = redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(stream)
                .query_async(conn)
                .await
                .map_err(redis_err("XINFO GROUPS"))?;
            match info
                .groups
                .iter()
                .find(|g| g.name == self.s.group)
                .and_then(|g| g.lag)
            {
                Some(lag) => total += lag as i64,
                None => {
                    self.processor.metrics().set_lag(-1);
                    return Ok(());
                }
            }
        }
        self.processor.metrics().set_lag(total);
        Ok(())
    }

    /// Processes one entry until it can be acknowledged (or shutdown).
    async fn handle(
        &self,
        conn: &mut MultiplexedConnection,
        stream: &str,
        entry: StreamId,
    ) -> Result<Handled, ConsumerError> {
        if entry.map.is_empty() {
            // Deleted (XDEL) while pending: nothing to deliver, only to acknowledge.
            tracing::debug!(consumer = %self.processor.name(), stream, id = %entry.id, "pending entry was deleted");
            return self.ack(conn, stream, &entry.id).await;
        }
        let (msg, missing) = message(stream, &self.s.payload_field, &entry);
        // Back-pressure also between entries of a batch already read: an entry left unread
        // here stays pending (and is re-read by this consumer after a restart).
        tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(Handled::Stopped),
            _ = self.processor.ready() => {}
        }
        let mut retry = self.processor.backoff();
        loop {
            let outcome = match &missing {
                // Counted like any other message so the metrics add up.
                Some(why) => {
                    let m = self.processor.metrics();
                    ConsumerMetrics::inc(&m.received);
                    ConsumerMetrics::inc(&m.failed);
                    tracing::warn!(consumer = %self.processor.name(), id = %msg.id, reason = %why, "poison message");
                    Outcome::Poison(why.clone())
                }
                None => self.processor.process(&msg).await,
            };
            match outcome {
                Outcome::Done => break,
                Outcome::Poison(why) => {
                    self.dead_letter(conn, stream, &entry, &why).await?;
                    ConsumerMetrics::inc(&self.processor.metrics().dead_lettered);
                    break;
                }
                Outcome::Retry(_) => {
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Ok(Handled::Stopped),
                        _ = tokio::time::sleep(retry.next_delay()) => {}
                    }
                }
            }
        }
        self.ack(conn, stream, &entry.id).await
    }

    async fn ack(
        &self,
        conn: &mut MultiplexedConnection,
        stream: &str,
        id: &str,
    ) -> Result<Handled, ConsumerError> {
        let _: i64 = redis::cmd("XACK")
            .arg(stream)
            .arg(&self.s.group)
            .arg(id)
            .query_async(conn)
            .await
            .map_err(redis_err("XACK"))?;
        Ok(Handled::Acked)
    }

    /// `XADD`s the entry, with why and where it came from, to the dead-letter stream.
    async fn dead_letter(
        &self,
        conn: &mut MultiplexedConnection,
        stream: &str,
        entry: &StreamId,
        why: &str,
    ) -> Result<(), ConsumerError> {
        let target = self.s.dead_letter_for(stream);
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&target)
            .arg("*")
            .arg("pushwire_error")
            .arg(why)
            .arg("pushwire_source_stream")
            .arg(stream)
            .arg("pushwire_source_id")
            .arg(&entry.id);
        let mut fields: Vec<_> = entry.map.iter().collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in fields {
            cmd.arg(k).arg(bytes_of(v).unwrap_or_default());
        }
        let _: String = cmd
            .query_async(conn)
            .await
            .map_err(redis_err("XADD dead letter"))?;
        Ok(())
    }
}

/// The bytes of a scalar reply value.
fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

/// The message of an entry: id `redis_stream:<stream>:<entry id>`, subject the stream, body
/// the `payload_field`, headers the other fields. The second value says why the entry is
/// poison when it has no payload field.
fn message(stream: &str, payload_field: &str, entry: &StreamId) -> (Message, Option<String>) {
    let mut body = None;
    let mut headers = Vec::new();
    for (k, v) in &entry.map {
        let Some(bytes) = bytes_of(v) else { continue };
        if k == payload_field {
            body = Some(bytes);
        } else {
            headers.push((k.clone(), String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    headers.sort();
    let missing = body
        .is_none()
        .then(|| format!("entry has no field {payload_field:?}"));
    (
        Message {
            id: format!("redis_stream:{stream}:{}", entry.id),
            subject: stream.to_owned(),
            headers,
            body: body.map(bytes::Bytes::from).unwrap_or_default(),
        },
        missing,
    )
}
