//! [`EmbeddedBroker`]: channel streams in a single-file store, delivery to this node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pushwire_core::engine::{
    Broker, BrokerEventHandler, EngineError, EngineMetric, HistoryPage, HistoryQuery,
    PublishOptions, PublishOutcome,
};
use pushwire_protocol::{ClientInfo, Publication};
use redb::ReadableDatabase as _;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::{EmbeddedConfig, FsyncPolicy};
use crate::error::{OpenError, StoreError};
use crate::metrics::EmbeddedMetrics;
use crate::open;
use crate::shared::Shared;
use crate::store;
use crate::writer::{self, PublishRequest, Request, Writer};

/// How often expired publications, idempotency records and idle streams are dropped (each
/// sweep is also a durable checkpoint).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A broker for one node whose channel streams (publications with offsets in an epoch, top
/// offset, versions, idempotency keys) live in a crash-safe file and survive restarts and
/// `kill -9`.
///
/// - `publish` of a channel with history or an idempotency key goes to the writer thread,
///   which appends in queue order, commits (durably under `fsync = "always"`, before anything
///   is delivered or acknowledged), then delivers under the channel's shard lock: delivery
///   order is offset order and a history read never sees an undelivered publication.
/// - Control messages loop back to this node's handler (this node is the whole cluster).
/// - It owns its writer thread and its sweep task: dropping the broker stops the task, lets
///   the writer finish what is queued, makes it durable, marks the store cleanly closed and
///   releases the file lock before `drop` returns.
pub struct EmbeddedBroker {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<std::thread::JoinHandle<()>>,
    _ticker: Option<DropGuard>,
    crashed: bool,
    rotated: usize,
    moved_aside: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("file", &self.shared.file)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBroker {
    /// Opens (creating when missing) the store in `config.path`. Fails, naming the path, when
    /// another process holds it, or when the file is corrupted or truncated. After a crash
    /// under `interval` or `never`, every stream gets a new epoch. `config` must have been
    /// validated. Call inside a Tokio runtime so the sweeps run.
    pub fn open(config: &EmbeddedConfig) -> Result<EmbeddedBroker, OpenError> {
        let opened = open::open(config)?;
        let metrics = Arc::new(EmbeddedMetrics::default());
        let shared = Arc::new(Shared::new(opened.db, opened.file.clone(), metrics.clone()));
        shared.measure_file();
        if let Ok(n) = shared.db().and_then(|db| writer::count_streams(&db)) {
            EmbeddedMetrics::set(&metrics.streams, n);
        }
        let (tx, rx) = mpsc::channel(writer::QUEUE);
        let w = Writer {
            shared: shared.clone(),
            policy: config.fsync,
            interval: config.fsync_interval,
            max_size: config.max_size,
            idempotency_window: config.idempotency_window,
            dirty: false,
            last_durable: Instant::now(),
            last_measure: None,
            appended: 0,
            broken: None,
            last_probe: None,
        };
        let handle = std::thread::Builder::new()
            .name("pushwire-embedded-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|source| OpenError::Directory {
                path: opened.file.clone(),
                source,
            })?;
        let ticker = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let cancel = CancellationToken::new();
            let flush = (config.fsync == FsyncPolicy::Interval).then_some(config.fsync_interval);
            rt.spawn(tick(tx.downgrade(), flush, cancel.clone()));
            cancel.drop_guard()
        });
        Ok(EmbeddedBroker {
            shared,
            tx: Some(tx),
            writer: Some(handle),
            _ticker: ticker,
            crashed: opened.crashed,
            rotated: opened.rotated,
            moved_aside: opened.moved_aside,
        })
    }

    /// The data file.
    pub fn file(&self) -> &std::path::Path {
        &self.shared.file
    }

    /// Whether the previous run ended without closing the store (crash, `kill -9`).
    pub fn recovered_from_crash(&self) -> bool {
        self.crashed
    }

    /// How many streams got a new epoch at open (after a crash under `interval`/`never`).
    pub fn rotated_epochs(&self) -> usize {
        self.rotated
    }

    /// Where a damaged data file was moved at open (`on_corruption = "move_aside"`).
    pub fn moved_aside(&self) -> Option<&std::path::Path> {
        self.moved_aside.as_deref()
    }

    /// The engine's counters and gauges.
    pub fn metrics_handle(&self) -> Arc<EmbeddedMetrics> {
        self.shared.metrics.clone()
    }

    /// Asks the writer to sweep now (expired publications, keys, idle streams) and waits for
    /// it, by queueing a no-op behind it.
    pub async fn sweep(&self) -> Result<(), EngineError> {
        self.send(Request::Sweep).await?;
        let (reply, rx) = oneshot::channel();
        self.send(Request::RemoveHistory {
            channel: String::new(),
            reply,
        })
        .await?;
        rx.await.map_err(|_| closed())?
    }

    fn handler(&self) -> Option<&Arc<dyn BrokerEventHandler>> {
        self.shared.handler.get()
    }

    async fn send(&self, request: Request) -> Result<(), EngineError> {
        match &self.tx {
            Some(tx) => tx.send(request).await.map_err(|_| closed()),
            None => Err(closed()),
        }
    }

    async fn read(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<Option<HistoryPage>, EngineError> {
        let shared = self.shared.clone();
        let channel = channel.to_owned();
        let query = query.clone();
        tokio::task::spawn_blocking(move || {
            let _order = shared.shards[shared.shard(&channel)].lock();
            let txn = shared.db()?.begin_read().map_err(StoreError::redb)?;
            store::read_history(&txn, &channel, &query, store::now_ms())
        })
        .await
        .map_err(|e| EngineError::backend(format!("embedded store read: {e}")))?
    }
}

fn closed() -> EngineError {
    StoreError::Closed.into()
}

async fn tick(tx: mpsc::WeakSender<Request>, flush: Option<Duration>, cancel: CancellationToken) {
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    let mut group = tokio::time::interval(flush.unwrap_or(SWEEP_INTERVAL));
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sweep.tick() => Request::Sweep,
            _ = group.tick(), if flush.is_some() => Request::Flush,
        };
        // Never held across an await: the writer must see the queue close on drop.
        match tx.upgrade() {
            Some(tx) => {
                let _ = tx.try_send(request);
            }
            None => return,
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self._ticker.take();
        self.tx.take();
        if let Some(writer) = self.writer.take()
            && writer.thread().id() != std::thread::current().id()
        {
            let _ = writer.join();
        }
    }
}

#[async_trait]
impl Broker for EmbeddedBroker {
    fn set_handler(&self, _node_id: &str, handler: Arc<dyn BrokerEventHandler>) {
        let _ = self.shared.handler.set(handler);
    }

    async fn publish(
        &self,
        channel: &str,
        publication: Publication,
        options: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        if !options.history() && options.idempotency_key.is_none() {
            // Nothing to store: deliver under the channel's lock, as the memory broker does.
            let _order = self.shared.shards[self.shared.shard(channel)].lock();
            if let Some(h) = self.handler() {
                h.on_publication(channel, &publication);
            }
            EmbeddedMetrics::inc(&self.shared.metrics.publications);
            return Ok(PublishOutcome::default());
        }
        let (reply, rx) = oneshot::channel();
        let sent = self
            .send(Request::Publish(Box::new(PublishRequest {
                channel: channel.to_owned(),
                publication,
                options: options.clone(),
                reply,
            })))
            .await;
        if let Err(e) = sent {
            EmbeddedMetrics::inc(&self.shared.metrics.publish_errors);
            return Err(e);
        }
        rx.await.map_err(|_| closed())?
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        info: ClientInfo,
        join: bool,
    ) -> Result<(), EngineError> {
        let _order = self.shared.shards[self.shared.shard(channel)].lock();
        if let Some(h) = self.handler() {
            h.on_join_leave(channel, &info, join);
        }
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
        // A stream created by the writer can be swept again before the read when its meta TTL
        // is (almost) zero: ask again a few times.
        for _ in 0..3 {
            if let Some(page) = self.read(channel, &query).await? {
                return Ok(page);
            }
            let (reply, rx) = oneshot::channel();
            self.send(Request::Ensure {
                channel: channel.to_owned(),
                meta_ttl: query.meta_ttl,
                reply,
            })
            .await?;
            rx.await.map_err(|_| closed())??;
        }
        self.read(channel, &query)
            .await?
            .ok_or_else(|| StoreError::Malformed("stream meta").into())
    }

    async fn remove_history(&self, channel: &str) -> Result<(), EngineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::RemoveHistory {
            channel: channel.to_owned(),
            reply,
        })
        .await?;
        rx.await.map_err(|_| closed())?
    }

    async fn publish_control(
        &self,
        data: bytes::Bytes,
        _to: Option<&str>,
    ) -> Result<(), EngineError> {
        // The only node there is: a broadcast and a message addressed to any node both reach
        // this node's handler.
        if let Some(h) = self.handler() {
            h.on_control(&data);
        }
        Ok(())
    }

    fn metrics(&self) -> Vec<EngineMetric> {
        self.shared.metrics.families()
    }
}
