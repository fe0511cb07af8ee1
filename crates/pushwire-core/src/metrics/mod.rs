//! Node metrics, read by the server's Prometheus endpoint, the admin page and the `info` API.
//!
//! Everything here is relaxed atomics in fixed tables, so the hot paths (fan-out, writes,
//! command handling) never lock or allocate to count, and a scrape never blocks them. Labels
//! are bounded: transports and methods from fixed lists ([`labels`]), codes in small
//! lock-free tables ([`CodeCounts`]), never channels or users.
//!
//! Delivery latency: the hub takes one [`stamp_now`] per publication and hands it to every
//! outbox the publication is queued to; an outbox keeps the stamp of the oldest undelivered
//! publication, the writer gets it with the messages it drains and reports
//! [`Metrics::delivered`] once they are written. One clock read per publication and one per
//! write, one histogram observation per write that carried a publication.

mod codes;
mod histogram;
pub mod labels;

pub use codes::CodeCounts;
pub use histogram::{Histogram, HistogramSnapshot};
pub use labels::{command_index, API_METHODS, API_REFUSALS, COMMANDS, TRANSPORTS};

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pushwire_protocol::TransportKind;

/// Upper bounds of the delivery latency histogram, in nanoseconds (50 µs … 10 s).
pub const LATENCY_BOUNDS_NS: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds of the drained-queue histogram, in bytes (128 B … 8 MiB).
pub const QUEUE_BOUNDS_BYTES: &[u64] = &[
    128, 512, 2048, 8192, 32768, 131_072, 524_288, 2_097_152, 8_388_608,
];

/// Distinct codes kept per command method and per API method.
const CODE_SLOTS: usize = 16;
/// Distinct disconnect codes kept.
const DISCONNECT_SLOTS: usize = 32;

/// Counters of one transport.
#[derive(Debug, Default)]
pub struct TransportMetrics {
    /// Connections opened (a `Client` created).
    pub opened: AtomicU64,
    /// Connections closed (the `Client` dropped).
    pub closed: AtomicU64,
    /// Messages handed to the transport's socket or response body.
    pub messages_delivered: AtomicU64,
    /// Bytes of those messages (payload bytes, before framing).
    pub bytes_delivered: AtomicU64,
}

/// Counters and gauges of a node. All relaxed atomics: cheap on hot paths.
#[derive(Debug)]
pub struct Metrics {
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Connections currently authenticated.
    pub connections_active: AtomicU64,
    /// Publications accepted (API and clients).
    pub publications: AtomicU64,
    /// Messages queued to connections.
    pub messages_queued: AtomicU64,
    /// Connections closed because their queue overflowed (3008).
    pub slow_disconnects: AtomicU64,
    /// Subscriptions shed instead of closing their connection (`slow_subscriber_policy =
    /// "resubscribe"`: unsubscribed with 2500 to recover).
    pub subscriptions_shed: AtomicU64,
    /// Commands handled from clients.
    pub commands: AtomicU64,
    /// Error replies sent to clients.
    pub command_errors: AtomicU64,
    /// Disconnects by the server for protocol violations (3501).
    pub bad_requests: AtomicU64,
    /// Recoveries attempted on subscribe.
    pub recoveries: AtomicU64,
    /// Recoveries that failed (`recovered:false` or 112).
    pub recoveries_failed: AtomicU64,
    /// WebSocket connections that negotiated permessage-deflate.
    pub websocket_compressed: AtomicU64,
    /// Per transport, indexed like [`TRANSPORTS`].
    pub transports: [TransportMetrics; TRANSPORTS.len()],
    /// Client commands by method (indexed like [`COMMANDS`]) and result code: 0 for success,
    /// the error code of an error reply, the disconnect code when the command closed the
    /// connection.
    pub command_results: [CodeCounts<CODE_SLOTS>; COMMANDS.len()],
    /// Server API calls by method (the server's method index) and result code (0 = success).
    pub api_requests: [CodeCounts<CODE_SLOTS>; API_METHODS],
    /// Server API requests refused before a method ran, by reason (indexed like
    /// [`API_REFUSALS`]): wrong key, malformed body, unknown method, body too large.
    pub api_refused: [AtomicU64; API_REFUSALS.len()],
    /// Closed connections by disconnect code (3000 when the peer went away).
    pub disconnects: CodeCounts<DISCONNECT_SLOTS>,
    /// Publication stamped by the hub → written by the connection's writer, in nanoseconds.
    pub delivery_latency: Histogram,
    /// Bytes a connection's writer found queued when it drained its outbox.
    pub drained_bytes: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections_accepted: AtomicU64::new(0),
            connections_active: AtomicU64::new(0),
            publications: AtomicU64::new(0),
            messages_queued: AtomicU64::new(0),
            slow_disconnects: AtomicU64::new(0),
            subscriptions_shed: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            command_errors: AtomicU64::new(0),
            bad_requests: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            recoveries_failed: AtomicU64::new(0),
            websocket_compressed: AtomicU64::new(0),
            transports: Default::default(),
            command_results: Default::default(),
            api_requests: Default::default(),
            api_refused: Default::default(),
            disconnects: Default::default(),
            delivery_latency: Histogram::new(LATENCY_BOUNDS_NS),
            drained_bytes: Histogram::new(QUEUE_BOUNDS_BYTES),
        }
    }
}

/// What a writer just wrote: built from the drained messages before writing them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivered {
    /// Messages written.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Stamp of the oldest publication among them ([`stamp_now`]), 0 when none.
    pub stamp: u64,
}

impl Delivered {
    /// Counts `messages` carrying the publication stamp `stamp` (0 = none).
    pub fn of(messages: &[Bytes], stamp: u64) -> Delivered {
        Delivered {
            messages: messages.len() as u64,
            bytes: messages.iter().map(|m| m.len() as u64).sum(),
            stamp,
        }
    }
}

/// Records a command's result when dropped: success unless [`CommandOutcome::fail`] ran.
#[derive(Debug)]
pub struct CommandOutcome<'a> {
    metrics: &'a Metrics,
    method: usize,
    code: u32,
}

impl CommandOutcome<'_> {
    /// The command ended with an error reply or a disconnect with this code.
    pub fn fail(&mut self, code: u32) {
        self.code = code;
    }
}

impl Drop for CommandOutcome<'_> {
    fn drop(&mut self) {
        let m = self.metrics;
        m.commands.fetch_add(1, Ordering::Relaxed);
        // Error replies (100-2999); disconnects (3000+) are not replies.
        if (1..3000).contains(&self.code) {
            m.command_errors.fetch_add(1, Ordering::Relaxed);
        }
        m.command_results[self.method].add(self.code, 1);
    }
}

impl Metrics {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// A connection of `transport` opened.
    pub fn connection_opened(&self, transport: TransportKind) {
        Self::add(&self.connections_accepted, 1);
        Self::add(&self.transports[transport.index()].opened, 1);
    }

    /// A connection of `transport` closed with `code` (3000 when nobody gave a reason).
    pub fn connection_closed(&self, transport: TransportKind, code: u32) {
        Self::add(&self.transports[transport.index()].closed, 1);
        self.disconnects.add(code, 1);
    }

    /// Open connections of the transport with this index (opened minus closed).
    pub fn open_connections(&self, transport: usize) -> u64 {
        let t = &self.transports[transport];
        Self::get(&t.opened).saturating_sub(Self::get(&t.closed))
    }

    /// Starts counting one client command of method `method` (a [`COMMANDS`] index).
    pub fn command(&self, method: usize) -> CommandOutcome<'_> {
        CommandOutcome {
            metrics: self,
            method: method.min(COMMANDS.len() - 1),
            code: 0,
        }
    }

    /// One server API call of method index `method` ended with `code` (0 = success).
    pub fn api_request(&self, method: usize, code: u32) {
        self.api_requests[method.min(API_METHODS - 1)].add(code, 1);
    }

    /// One server API request refused for reason index `reason` (an [`API_REFUSALS`] index).
    pub fn api_refused(&self, reason: usize) {
        Self::add(&self.api_refused[reason.min(API_REFUSALS.len() - 1)], 1);
    }

    /// A writer of `transport` wrote `d`.
    pub fn delivered(&self, transport: TransportKind, d: Delivered) {
        if d.messages == 0 {
            return;
        }
        let t = &self.transports[transport.index()];
        Self::add(&t.messages_delivered, d.messages);
        Self::add(&t.bytes_delivered, d.bytes);
        self.drained_bytes.observe(d.bytes);
        if d.stamp != 0 {
            self.delivery_latency
                .observe(since(d.stamp).as_nanos().min(u64::MAX as u128) as u64);
        }
    }

    /// Messages delivered over every transport.
    pub fn messages_delivered(&self) -> u64 {
        self.transports
            .iter()
            .map(|t| Self::get(&t.messages_delivered))
            .sum()
    }
}

/// Gauges the hub keeps as subscriptions come and go, so reading them locks nothing.
#[derive(Debug, Default)]
pub struct HubGauges {
    /// Channels with at least one subscriber on this node.
    pub channels: AtomicI64,
    /// Subscriptions by transport (indexed like [`TRANSPORTS`]).
    pub subscriptions: [AtomicI64; TRANSPORTS.len()],
}

impl HubGauges {
    /// A subscription of a connection of transport index `transport` was added (+1) or
    /// removed (-1).
    pub fn subscription(&self, transport: u8, delta: i64) {
        let i = (transport as usize).min(TRANSPORTS.len() - 1);
        self.subscriptions[i].fetch_add(delta, Ordering::Relaxed);
    }

    /// A channel got its first subscriber (+1) or lost its last (-1).
    pub fn channel(&self, delta: i64) {
        self.channels.fetch_add(delta, Ordering::Relaxed);
    }

    /// Subscriptions of the transport with this index.
    pub fn subscriptions_of(&self, transport: usize) -> u64 {
        self.subscriptions[transport].load(Ordering::Relaxed).max(0) as u64
    }

    /// Channels with subscribers.
    pub fn num_channels(&self) -> u64 {
        self.channels.load(Ordering::Relaxed).max(0) as u64
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The current time as a publication stamp: nanoseconds since a process-wide origin, never 0
/// (0 means "no stamp").
pub fn stamp_now() -> u64 {
    (epoch().elapsed().as_nanos() as u64).max(1)
}

/// Time elapsed since `stamp` (a [`stamp_now`] value).
pub fn since(stamp: u64) -> Duration {
    epoch()
        .elapsed()
        .saturating_sub(Duration::from_nanos(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_outcome_counts_on_drop() {
        let m = Metrics::default();
        drop(m.command(1));
        let mut failed = m.command(1);
        failed.fail(103);
        drop(failed);
        let mut closed = m.command(0);
        closed.fail(3501);
        drop(closed);
        assert_eq!(Metrics::get(&m.commands), 3);
        assert_eq!(Metrics::get(&m.command_errors), 1);
        assert_eq!(m.command_results[1].snapshot().0, vec![(0, 1), (103, 1)]);
        assert_eq!(m.command_results[0].get(3501), 1);
    }

    #[test]
    fn delivered_counts_and_observes_latency() {
        let m = Metrics::default();
        let stamp = stamp_now();
        let msgs = [Bytes::from_static(b"abc"), Bytes::from_static(b"de")];
        m.delivered(TransportKind::WebSocket, Delivered::of(&msgs, stamp));
        m.delivered(TransportKind::WebSocket, Delivered::of(&msgs[..1], 0));
        assert_eq!(Metrics::get(&m.transports[0].messages_delivered), 3);
        assert_eq!(Metrics::get(&m.transports[0].bytes_delivered), 8);
        assert_eq!(m.delivery_latency.count(), 1, "only stamped writes");
        assert_eq!(m.drained_bytes.count(), 2);
        assert!(since(stamp) < Duration::from_secs(5));
    }

    #[test]
    fn connections_by_transport() {
        let m = Metrics::default();
        m.connection_opened(TransportKind::Sse);
        m.connection_opened(TransportKind::Sse);
        m.connection_closed(TransportKind::Sse, 3008);
        assert_eq!(m.open_connections(TransportKind::Sse.index()), 1);
        assert_eq!(m.disconnects.get(3008), 1);
        assert_eq!(Metrics::get(&m.connections_accepted), 2);
    }
}
