//! Lifecycle events: connect, disconnect, subscribe, unsubscribe, channel_occupied,
//! channel_vacated (cluster-wide), node_lost and periodic snapshots, for a backend that must
//! know who is online.
//!
//! Connections record what happened with [`Lifecycle::record`], which never blocks: records
//! wait in a bounded queue (`lifecycle.queue_size`; beyond it they are dropped and counted).
//! `Node::run_lifecycle` (one task per node) turns records into [`Event`]s in arrival order —
//! numbering them per node, resolving cluster-wide occupancy through the engine's
//! [`ChannelOccupancy`](crate::engine::ChannelOccupancy), heart-beating, finding lost nodes,
//! taking snapshots — and hands them to the server's sinks.

mod event;
mod run;

pub use event::{Event, EventKind, SnapshotEntry};

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::config::LifecycleSettings;

/// Something that happened to a connection of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A connection authenticated.
    Connect {
        /// Client id.
        client: String,
        /// User id.
        user: String,
    },
    /// An authenticated connection closed.
    Disconnect {
        /// Client id.
        client: String,
        /// User id.
        user: String,
        /// Disconnect code.
        code: u32,
        /// Disconnect reason.
        reason: String,
    },
    /// A subscription became live.
    Subscribe {
        /// Client id.
        client: String,
        /// User id.
        user: String,
        /// Channel.
        channel: String,
    },
    /// A live subscription ended.
    Unsubscribe {
        /// Client id.
        client: String,
        /// User id.
        user: String,
        /// Channel.
        channel: String,
    },
    /// The first subscriber of `channel` on this node.
    NodeOccupied(String),
    /// The last subscriber of `channel` on this node left.
    NodeVacated(String),
}

/// Counters of the lifecycle pipeline (`pushwire_lifecycle_*`).
#[derive(Debug, Default)]
pub struct LifecycleMetrics {
    /// Records dropped because `lifecycle.queue_size` were waiting.
    pub dropped: AtomicU64,
    /// Events made, by kind (index in [`EventKind::ALL`]).
    pub events: [AtomicU64; 8],
    /// Engine calls (occupancy, heartbeat, sweep) that failed.
    pub engine_errors: AtomicU64,
}

/// The recording end of the lifecycle pipeline, owned by the node.
#[derive(Debug)]
pub struct Lifecycle {
    settings: LifecycleSettings,
    tx: mpsc::Sender<Record>,
    rx: Mutex<Option<mpsc::Receiver<Record>>>,
    seq: AtomicU64,
    metrics: LifecycleMetrics,
}

impl Lifecycle {
    /// A pipeline with `settings` (validated).
    pub fn new(settings: LifecycleSettings) -> Lifecycle {
        let (tx, rx) = mpsc::channel(settings.queue_size);
        Lifecycle {
            settings,
            tx,
            rx: Mutex::new(Some(rx)),
            seq: AtomicU64::new(0),
            metrics: LifecycleMetrics::default(),
        }
    }

    /// Whether events are made at all.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Settings.
    pub fn settings(&self) -> &LifecycleSettings {
        &self.settings
    }

    /// Records what happened; a no-op when disabled. Never blocks: a full queue drops the
    /// record (counted in [`LifecycleMetrics::dropped`]).
    pub fn record(&self, record: Record) {
        if !self.settings.enabled {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(record) {
            self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counters.
    pub fn metrics(&self) -> &LifecycleMetrics {
        &self.metrics
    }

    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Record>> {
        self.rx.lock().take()
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn count(&self, kind: EventKind) {
        if let Some(i) = EventKind::ALL.iter().position(|k| *k == kind) {
            self.metrics.events[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(i: u32) -> Record {
        Record::Connect {
            client: i.to_string(),
            user: "u".into(),
        }
    }

    #[test]
    fn recording_never_blocks_and_counts_what_a_full_queue_drops() {
        let l = Lifecycle::new(LifecycleSettings {
            enabled: true,
            queue_size: 2,
            ..Default::default()
        });
        for i in 0..10_000 {
            l.record(connect(i));
        }
        assert_eq!(l.metrics().dropped.load(Ordering::Relaxed), 9_998);
        let mut rx = l.take_receiver().unwrap();
        assert_eq!(rx.try_recv().ok(), Some(connect(0)));
        assert_eq!(rx.try_recv().ok(), Some(connect(1)));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn disabled_records_nothing() {
        let l = Lifecycle::new(LifecycleSettings::default());
        l.record(connect(1));
        assert!(l.take_receiver().unwrap().try_recv().is_err());
        assert_eq!(l.metrics().dropped.load(Ordering::Relaxed), 0);
    }
}
