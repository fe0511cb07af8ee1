//! The writer thread: the only one that writes to the store.
//!
//! It takes the requests queued since its last commit (up to [`MAX_BATCH`]), applies them in
//! queue order in one write transaction, and commits it — durably (one fsync for the whole
//! batch) under `fsync = "always"`, in memory otherwise. Publications are delivered to the
//! node's handler only after the commit, in queue order, while the writer holds the shard
//! locks of their channels: a history read (which takes its channel's shard lock) therefore
//! never sees a publication that was not delivered yet, and delivery order is offset order.
//! Only then are the publishers answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pushwire_core::engine::{EngineError, PublishOptions, PublishOutcome};
use pushwire_protocol::Publication;
use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTableMetadata as _, WriteTransaction,
};
use tokio::sync::{mpsc, oneshot};

use crate::config::FsyncPolicy;
use crate::error::StoreError;
use crate::metrics::EmbeddedMetrics;
use crate::shared::Shared;
use crate::store::{self, Tables};

/// Most requests applied in one transaction.
pub(crate) const MAX_BATCH: usize = 512;
/// Bound of the request queue in front of the writer.
pub(crate) const QUEUE: usize = 4096;
/// How often the used space is measured at most while the file is above `max_size`.
const MEASURE_EVERY: Duration = Duration::from_secs(1);
/// How often a broken writer checks whether space returned.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// A unit of work for the writer.
pub(crate) enum Request {
    /// Store (with history or an idempotency key) and deliver a publication.
    Publish(Box<PublishRequest>),
    /// Create the channel's stream unless it exists.
    Ensure {
        channel: String,
        meta_ttl: Duration,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Remove the channel's publications.
    RemoveHistory {
        channel: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Make every commit so far durable (group commit of `fsync = "interval"`).
    Flush,
    /// Drop what expired; measure; checkpoint.
    Sweep,
}

/// A publication to store and deliver.
pub(crate) struct PublishRequest {
    pub channel: String,
    pub publication: Publication,
    pub options: PublishOptions,
    pub reply: oneshot::Sender<Result<PublishOutcome, EngineError>>,
}

enum Reply {
    Publish(oneshot::Sender<Result<PublishOutcome, EngineError>>),
    Unit(oneshot::Sender<Result<(), EngineError>>),
}

/// One applied request waiting for the commit.
struct Pending {
    reply: Reply,
    result: Result<(PublishOutcome, Option<(String, Publication)>), StoreError>,
}

/// The writer's settings and state.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub policy: FsyncPolicy,
    pub interval: Duration,
    pub max_size: u64,
    pub idempotency_window: Duration,
    pub dirty: bool,
    pub last_durable: Instant,
    pub last_measure: Option<Instant>,
    /// Publication bytes stored since the last measurement: added to it, so the cap holds
    /// between measurements (at most one per [`MEASURE_EVERY`]) however fast publishes come.
    pub appended: u64,
    /// Why the store refuses writes (an I/O failure such as a full disk), until reopened.
    pub broken: Option<String>,
    /// When the writer last checked whether space returned.
    pub last_probe: Option<Instant>,
}

impl Writer {
    /// Runs until every sender is gone, then makes everything durable and marks the store as
    /// cleanly closed.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.handle(batch);
        }
        self.close();
    }

    fn handle(&mut self, batch: Vec<Request>) {
        let (mut sweep, mut flush) = (false, false);
        let mut writes = Vec::with_capacity(batch.len());
        for r in batch {
            match r {
                Request::Sweep => sweep = true,
                Request::Flush => flush = true,
                other => writes.push(other),
            }
        }
        if self.broken.is_some() && !self.recover() {
            let reason = self.broken.clone().unwrap_or_default();
            let e = EngineError::backend(format!("embedded store: {reason}"));
            for reply in writes.into_iter().filter_map(Request::into_reply) {
                self.answer(reply, Err(e.clone()));
            }
            return;
        }
        // The sweep goes first: a request queued behind it is answered after it.
        if sweep {
            let swept = self.sweep();
            self.failed("sweep", swept);
        }
        if !writes.is_empty() {
            self.write(writes);
        }
        let due =
            self.policy == FsyncPolicy::Interval && self.last_durable.elapsed() >= self.interval;
        if flush || due {
            let done = self.checkpoint();
            self.failed("checkpoint", done);
        }
    }

    /// Logs a failed housekeeping step; an I/O failure puts the writer in the broken state.
    fn failed(&mut self, what: &str, result: Result<(), StoreError>) {
        if let Err(e) = result {
            tracing::error!(error = %e, file = %self.shared.file.display(), "embedded store {what} failed");
            self.note(&e);
        }
    }

    /// Remembers an I/O failure: writes are refused until space returns and the store is
    /// reopened.
    fn note(&mut self, e: &StoreError) {
        if e.is_io() && self.broken.is_none() {
            tracing::error!(error = %e, file = %self.shared.file.display(), "embedded store write failed; publishes fail until space returns");
            self.broken = Some(e.to_string());
        }
    }

    /// In the broken state: at most every [`PROBE_EVERY`], checks that space returned and
    /// reopens the store. Commits that were not durable are rolled back by the reopen, so the
    /// streams then get new epochs (clients must not recover across reused offsets).
    fn recover(&mut self) -> bool {
        if self.last_probe.is_some_and(|t| t.elapsed() < PROBE_EVERY) {
            return false;
        }
        self.last_probe = Some(Instant::now());
        if !self.shared.space_returned() {
            return false;
        }
        if let Err(e) = self.shared.reopen() {
            tracing::error!(error = %e, file = %self.shared.file.display(), "embedded store not reopened");
            return false;
        }
        if self.dirty {
            let rotated = (|| {
                let txn = self.shared.db()?.begin_write().map_err(StoreError::redb)?;
                let n = Tables::open(&txn)?.rotate_epochs()?;
                txn.commit().map_err(StoreError::redb)?;
                Ok::<_, StoreError>(n)
            })();
            match rotated {
                Ok(n) => tracing::warn!(
                    streams = n,
                    "embedded store: new epochs after a lost non-durable commit"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "embedded store: epochs not renewed");
                    return false;
                }
            }
        }
        self.durable();
        self.broken = None;
        tracing::info!(file = %self.shared.file.display(), "embedded store reopened; publishing resumes");
        true
    }

    fn durability(&self) -> Durability {
        match self.policy {
            FsyncPolicy::Always => Durability::Immediate,
            FsyncPolicy::Interval | FsyncPolicy::Never => Durability::None,
        }
    }

    /// The used bytes when the store is above `max_size`.
    fn over_cap(&mut self, txn: &WriteTransaction) -> Option<u64> {
        if self.max_size == 0 {
            return None;
        }
        let metrics = &self.shared.metrics;
        if self.shared.measure_file() <= self.max_size {
            return None;
        }
        if self
            .last_measure
            .is_none_or(|t| t.elapsed() >= MEASURE_EVERY)
        {
            self.last_measure = Some(Instant::now());
            if let Ok(stats) = txn.stats() {
                let used = stats.allocated_pages() * stats.page_size() as u64;
                EmbeddedMetrics::set(&metrics.used_bytes, used);
                self.appended = 0;
            }
        }
        let used = EmbeddedMetrics::get(&metrics.used_bytes) + self.appended;
        (used > self.max_size).then_some(used)
    }

    fn write(&mut self, writes: Vec<Request>) {
        let now = store::now_ms();
        let applied = self.apply(writes, now);
        let (txn, mut pending) = match applied {
            Ok(ok) => ok,
            Err((e, replies)) => {
                self.note(&e);
                let e = EngineError::from(e);
                for reply in replies {
                    self.answer(reply, Err(e.clone()));
                }
                return;
            }
        };
        let mut shards: Vec<usize> = pending
            .iter()
            .filter_map(|p| p.result.as_ref().ok()?.1.as_ref())
            .map(|(channel, _)| self.shared.shard(channel))
            .collect();
        shards.sort_unstable();
        shards.dedup();
        let shared = self.shared.clone();
        let guards: Vec<_> = shards.iter().map(|i| shared.shards[*i].lock()).collect();
        if let Err(e) = txn.commit() {
            drop(guards);
            let e = StoreError::redb(e);
            self.note(&e);
            let e = EngineError::from(e);
            for p in pending {
                self.answer(p.reply, Err(e.clone()));
            }
            return;
        }
        if self.policy == FsyncPolicy::Always {
            self.durable();
        } else {
            self.dirty = true;
        }
        if let Some(handler) = self.shared.handler.get() {
            for p in &pending {
                if let Ok((_, Some((channel, publication)))) = &p.result {
                    handler.on_publication(channel, publication);
                }
            }
        }
        drop(guards);
        self.shared.measure_file();
        for p in pending.drain(..) {
            let result = p
                .result
                .map(|(outcome, _)| outcome)
                .map_err(EngineError::from);
            self.answer(p.reply, result);
        }
    }

    /// Applies `writes` in one transaction. On a store failure every request is answered with
    /// it (the transaction is dropped, i.e. aborted).
    // The per-request answer channels, spelled out once; an alias would hide what is answered.
    #[allow(clippy::type_complexity)]
    fn apply(
        &mut self,
        writes: Vec<Request>,
        now: u64,
    ) -> Result<(WriteTransaction, Vec<Pending>), (StoreError, Vec<Reply>)> {
        let mut replies = Vec::new();
        let mut iter = writes.into_iter();
        let fail = |e: StoreError, mut replies: Vec<Reply>, rest: std::vec::IntoIter<Request>| {
            replies.extend(rest.filter_map(Request::into_reply));
            Err((e, replies))
        };
        let begun = self
            .shared
            .db()
            .and_then(|db| db.begin_write().map_err(StoreError::redb));
        let mut txn = match begun {
            Ok(t) => t,
            Err(e) => return fail(e, replies, iter),
        };
        if let Err(e) = txn.set_durability(self.durability()) {
            return fail(StoreError::redb(e), replies, iter);
        }
        let full = self.over_cap(&txn);
        let mut pending = Vec::new();
        {
            let mut tables = match Tables::open(&txn) {
                Ok(t) => t,
                Err(e) => return fail(e, replies, iter),
            };
            while let Some(request) = iter.next() {
                let (reply, result) = match request {
                    Request::Publish(request) => {
                        let PublishRequest {
                            channel,
                            publication,
                            options,
                            reply,
                        } = *request;
                        let size = publication.data.as_bytes().len() as u64;
                        let result = match full {
                            Some(used) => {
                                EmbeddedMetrics::inc(&self.shared.metrics.full_rejections);
                                Err(StoreError::Full {
                                    used,
                                    max: self.max_size,
                                })
                            }
                            None => tables
                                .publish(
                                    &channel,
                                    publication,
                                    &options,
                                    self.idempotency_window,
                                    now,
                                )
                                .map(|(outcome, delivered)| {
                                    if delivered.is_some() {
                                        self.appended += size;
                                    }
                                    (outcome, delivered.map(|p| (channel, p)))
                                }),
                        };
                        (Reply::Publish(reply), result)
                    }
                    Request::Ensure {
                        channel,
                        meta_ttl,
                        reply,
                    } => (
                        Reply::Unit(reply),
                        tables
                            .ensure(&channel, meta_ttl, now)
                            .map(|()| (PublishOutcome::default(), None)),
                    ),
                    Request::RemoveHistory { channel, reply } => (
                        Reply::Unit(reply),
                        tables
                            .remove_history(&channel)
                            .map(|()| (PublishOutcome::default(), None)),
                    ),
                    Request::Flush | Request::Sweep => continue,
                };
                match result {
                    Err(StoreError::Redb(e)) => {
                        // The transaction may be half-applied: abort it all.
                        replies.extend(pending.into_iter().map(|p: Pending| p.reply));
                        replies.push(reply);
                        return fail(StoreError::Redb(e), replies, iter);
                    }
                    result => pending.push(Pending { reply, result }),
                }
            }
        }
        Ok((txn, pending))
    }

    fn answer(&self, reply: Reply, result: Result<PublishOutcome, EngineError>) {
        let metrics = &self.shared.metrics;
        match reply {
            Reply::Publish(tx) => {
                match &result {
                    Ok(o) if !o.suppressed => EmbeddedMetrics::inc(&metrics.publications),
                    Ok(_) => {}
                    Err(_) => EmbeddedMetrics::inc(&metrics.publish_errors),
                }
                let _ = tx.send(result);
            }
            Reply::Unit(tx) => {
                let _ = tx.send(result.map(|_| ()));
            }
        }
    }

    fn durable(&mut self) {
        self.dirty = false;
        self.last_durable = Instant::now();
        EmbeddedMetrics::inc(&self.shared.metrics.durable_commits);
    }

    /// Commits an empty durable transaction when something is not durable yet.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        if !self.dirty {
            self.last_durable = Instant::now();
            return Ok(());
        }
        let txn = self.shared.db()?.begin_write().map_err(StoreError::redb)?;
        txn.commit().map_err(StoreError::redb)?;
        self.durable();
        Ok(())
    }

    /// Drops what expired, measures, and commits durably (the checkpoint of every policy).
    fn sweep(&mut self) -> Result<(), StoreError> {
        let txn = self.shared.db()?.begin_write().map_err(StoreError::redb)?;
        let streams = {
            let mut tables = Tables::open(&txn)?;
            tables.sweep(store::now_ms())?
        };
        if let Ok(stats) = txn.stats() {
            let used = stats.allocated_pages() * stats.page_size() as u64;
            EmbeddedMetrics::set(&self.shared.metrics.used_bytes, used);
        }
        txn.commit().map_err(StoreError::redb)?;
        self.durable();
        EmbeddedMetrics::set(&self.shared.metrics.streams, streams);
        self.shared.measure_file();
        Ok(())
    }

    /// Makes everything durable and removes the open marker: the next start knows this run
    /// ended cleanly.
    fn close(&mut self) {
        let result = (|| {
            let txn = self.shared.db()?.begin_write().map_err(StoreError::redb)?;
            {
                let mut state = txn.open_table(store::STATE).map_err(StoreError::redb)?;
                state.remove(store::OPEN_MARKER).map_err(StoreError::redb)?;
            }
            txn.commit().map_err(StoreError::redb)
        })();
        match result {
            Ok(()) => self.durable(),
            Err(e) => {
                tracing::error!(error = %e, file = %self.shared.file.display(), "embedded store did not close cleanly")
            }
        }
    }
}

impl Request {
    fn into_reply(self) -> Option<Reply> {
        match self {
            Request::Publish(p) => Some(Reply::Publish(p.reply)),
            Request::Ensure { reply, .. } | Request::RemoveHistory { reply, .. } => {
                Some(Reply::Unit(reply))
            }
            Request::Flush | Request::Sweep => None,
        }
    }
}

/// Reads a stream count (for tests and `info`): the number of rows in the meta table.
pub(crate) fn count_streams(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_read().map_err(StoreError::redb)?;
    let meta = txn.open_table(store::META).map_err(StoreError::redb)?;
    meta.len().map_err(StoreError::redb)
}
