//! Delivery statistics shared by all subscriber tasks, sharded so that no single lock is
//! taken by every message.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Highest latency the histograms track, in microseconds (larger values are clamped).
const MAX_LATENCY_US: u64 = 60_000_000;
/// Publications numbered from here on are the `scale` scenario's personal phase: they are
/// tallied apart from the others (the shared channel's), in [`Shard::personal`].
pub(crate) const PERSONAL_SEQ_BASE: u64 = 1 << 40;

/// First deliveries, duplicates and latencies of one kind of publication.
pub(crate) struct Tally {
    /// Latency of first deliveries, microseconds.
    pub(crate) latency: Histogram<u64>,
    /// First deliveries.
    pub(crate) delivered: u64,
    /// Repeated deliveries.
    pub(crate) duplicates: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency: new_histogram(),
            delivered: 0,
            duplicates: 0,
        }
    }

    fn add(&mut self, other: &Tally) {
        self.latency
            .add(&other.latency)
            .expect("tallies share the histogram bounds");
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
    }
}

/// One shard: the latencies and delivery counts of the connections mapped to it.
pub(crate) struct Shard {
    /// Latency of first deliveries, microseconds.
    pub(crate) latency: Histogram<u64>,
    /// First deliveries (one per connection and publication).
    pub(crate) delivered: u64,
    /// Repeated deliveries of a publication already seen on the same connection.
    pub(crate) duplicates: u64,
    /// Bytes of the WebSocket messages received after the handshake.
    pub(crate) bytes: u64,
    /// WebSocket messages received after the handshake.
    pub(crate) frames: u64,
    /// Publications numbered from [`PERSONAL_SEQ_BASE`] (`scale`'s personal phase), which
    /// the fields above do not count.
    pub(crate) personal: Tally,
}

impl Shard {
    fn new() -> Self {
        Self {
            latency: new_histogram(),
            delivered: 0,
            duplicates: 0,
            bytes: 0,
            frames: 0,
            personal: Tally::new(),
        }
    }

    /// Records a delivery of publication `seq`: into [`Shard::personal`] from
    /// [`PERSONAL_SEQ_BASE`] on, otherwise as [`Shard::record`].
    pub(crate) fn record_seq(&mut self, seq: u64, first: bool, latency_us: u64) {
        if seq < PERSONAL_SEQ_BASE {
            return self.record(first, latency_us);
        }
        let t = &mut self.personal;
        if first {
            t.delivered += 1;
            t.latency.saturating_record(latency_us);
        } else {
            t.duplicates += 1;
        }
    }

    /// Records one delivery: its latency when `first`, otherwise a duplicate.
    pub(crate) fn record(&mut self, first: bool, latency_us: u64) {
        if first {
            self.delivered += 1;
            self.latency.saturating_record(latency_us);
        } else {
            self.duplicates += 1;
        }
    }
}

/// Sharded statistics of the whole run, plus the connection counters and the (rarer) connect
/// and reconnect latencies.
///
/// One histogram per connection task would cost ~140 KB each (1 µs..60 s at 3 significant
/// digits), so tasks record into a fixed set of shards instead, merged at the end.
pub(crate) struct Stats {
    shards: Box<[Mutex<Shard>]>,
    dropped: AtomicU64,
    closed_slow: AtomicU64,
    live: AtomicU64,
    sent: AtomicU64,
    connect: Mutex<Histogram<u64>>,
    reconnect: Mutex<Histogram<u64>>,
}

/// Merged view of all shards.
pub(crate) struct Totals {
    /// All first-delivery latencies, microseconds.
    pub(crate) latency: Histogram<u64>,
    /// First deliveries.
    pub(crate) delivered: u64,
    /// Duplicate deliveries.
    pub(crate) duplicates: u64,
    /// Bytes received.
    pub(crate) bytes: u64,
    /// Messages received.
    pub(crate) frames: u64,
    /// Established connections that ended before the bench closed them.
    pub(crate) dropped: u64,
    /// Of `dropped`, those the server closed as slow (3008).
    pub(crate) closed_slow: u64,
    /// Connect (TCP + WebSocket + connect + subscribe) latencies, microseconds.
    pub(crate) connect: Histogram<u64>,
    /// Reconnect latencies (connection lost → subscribed again), microseconds.
    pub(crate) reconnect: Histogram<u64>,
    /// Personal-phase publications (`scale`), not counted above.
    pub(crate) personal: Tally,
}

impl Stats {
    /// `shards` independent shards (at least one).
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Shard::new()))
                .collect(),
            dropped: AtomicU64::new(0),
            closed_slow: AtomicU64::new(0),
            live: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            connect: Mutex::new(new_histogram()),
            reconnect: Mutex::new(new_histogram()),
        }
    }

    /// A connection is subscribed (again) after `latency_us`; `reconnect` picks the histogram.
    pub(crate) fn connection_up(&self, latency_us: u64, reconnect: bool) {
        self.live.fetch_add(1, Ordering::Relaxed);
        let h = if reconnect {
            &self.reconnect
        } else {
            &self.connect
        };
        h.lock().saturating_record(latency_us.max(1));
    }

    /// A live connection ended (closed by the bench, lost or about to reconnect).
    pub(crate) fn connection_down(&self) {
        let _ = self
            .live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Connections subscribed right now.
    pub(crate) fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Counts `n` publications accepted by the server (one per channel).
    pub(crate) fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// Publications accepted so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Established connections lost so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The shard of connection number `conn`.
    pub(crate) fn shard(&self, conn: usize) -> &Mutex<Shard> {
        &self.shards[conn % self.shards.len()]
    }

    /// Counts an established connection lost before the end of the run; `slow`: the
    /// server closed it with 3008 (its outbox overflowed).
    pub(crate) fn connection_dropped(&self, slow: bool) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if slow {
            self.closed_slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// First deliveries so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.shards.iter().map(|s| s.lock().delivered).sum()
    }

    /// Merges all shards.
    pub(crate) fn totals(&self) -> Totals {
        let mut latency = new_histogram();
        let (mut delivered, mut duplicates, mut bytes, mut frames) = (0, 0, 0, 0);
        let mut personal = Tally::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            personal.add(&shard.personal);
            latency
                .add(&shard.latency)
                .expect("shards share the histogram bounds");
            delivered += shard.delivered;
            duplicates += shard.duplicates;
            bytes += shard.bytes;
            frames += shard.frames;
        }
        Totals {
            latency,
            delivered,
            duplicates,
            bytes,
            frames,
            dropped: self.dropped.load(Ordering::Relaxed),
            closed_slow: self.closed_slow.load(Ordering::Relaxed),
            connect: self.connect.lock().clone(),
            reconnect: self.reconnect.lock().clone(),
            personal,
        }
    }
}

/// A histogram of microseconds from 1 µs to [`MAX_LATENCY_US`] with 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Latency in microseconds between publish time `ts_ns` and receive time `now_ns` (Unix
/// nanoseconds); 0 if the clock went backwards.
pub(crate) fn latency_us(now_ns: u64, ts_ns: u64) -> u64 {
    now_ns.saturating_sub(ts_ns) / 1000
}

/// Current wall-clock time in Unix nanoseconds.
pub(crate) fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_conversion() {
        assert_eq!(latency_us(5_000_999, 1_000_000), 4_000);
        assert_eq!(latency_us(1, 2), 0);
        assert!(unix_nanos() > 1_600_000_000_000_000_000);
    }

    #[test]
    fn shards_merge() {
        let stats = Stats::new(4);
        for conn in 0..8usize {
            let mut shard = stats.shard(conn).lock();
            shard.record(true, 100 * (conn as u64 + 1));
            shard.record(conn % 2 == 0, 5);
        }
        stats.connection_dropped(false);
        stats.connection_up(300, false);
        stats.connection_up(400, true);
        stats.connection_up(500, true);
        stats.connection_down();
        stats.add_sent(3);
        assert_eq!((stats.live(), stats.sent(), stats.dropped()), (2, 3, 1));
        assert_eq!(stats.delivered(), 12);
        let t = stats.totals();
        assert_eq!(t.delivered, 12);
        assert_eq!(t.duplicates, 4);
        assert_eq!(t.dropped, 1);
        assert_eq!(t.latency.len(), 12);
        assert_eq!(t.latency.max(), 800);
        assert_eq!((t.connect.len(), t.reconnect.len()), (1, 2));
        assert_eq!(t.reconnect.max(), 500);
    }

    #[test]
    fn personal_publications_are_tallied_apart() {
        let stats = Stats::new(2);
        stats.shard(0).lock().record_seq(3, true, 100);
        stats
            .shard(1)
            .lock()
            .record_seq(PERSONAL_SEQ_BASE, true, 700);
        stats
            .shard(0)
            .lock()
            .record_seq(PERSONAL_SEQ_BASE + 9, true, 900);
        stats
            .shard(0)
            .lock()
            .record_seq(PERSONAL_SEQ_BASE + 9, false, 900);
        let t = stats.totals();
        assert_eq!((t.delivered, t.duplicates, t.latency.max()), (1, 0, 100));
        let p = &t.personal;
        assert_eq!((p.delivered, p.duplicates, p.latency.len()), (2, 1, 2));
        assert!(p.latency.min() >= 700);
    }

    #[test]
    fn clamps_huge_latency() {
        let mut shard = Shard::new();
        shard.record(true, u64::MAX);
        assert_eq!(shard.latency.len(), 1);
        assert!(shard.latency.max() >= MAX_LATENCY_US);
    }
}
