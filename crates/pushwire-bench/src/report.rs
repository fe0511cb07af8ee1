//! The result of a bench run: a stable JSON schema (documented in docs/benchmarks.md) and the
//! exit code it implies. Text and HTML renderings live in `text` and `html`.
//!
//! Every key is always present; sections a scenario does not measure are `null`. Latencies
//! are microseconds, memory is bytes, rates are per second.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::args::Scenario;
use crate::error::{EXIT_OK, EXIT_PARTIAL};
use crate::timeline::Sample;

/// Version of the JSON schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Percentiles drawn as the latency curve.
const CURVE_PERCENTILES: [f64; 14] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
];
/// Latency histogram buckets: upper bounds double from 1 µs (…, 65.5 ms, 131 ms, …, ~68 s).
const BUCKETS: u32 = 27;

/// Everything a bench run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The scenario run.
    pub scenario: Scenario,
    /// No connect error, dropped connection, publish error, lost or duplicate delivery, or
    /// failed reconnect.
    pub complete: bool,
    /// The process exit code: 0 when `complete`, 2 otherwise.
    pub exit_code: i32,
    /// Why the run is not complete, one line each (empty when complete).
    pub problems: Vec<String>,
    /// What was asked for.
    pub params: Params,
    /// The machine the bench ran on.
    pub machine: Machine,
    /// The connect phase.
    pub connections: Connections,
    /// The publisher (`fanout`, `channels`).
    pub publications: Option<Publications>,
    /// Deliveries against expectations (`fanout`, `channels`).
    pub deliveries: Option<Deliveries>,
    /// Publish-to-receive latency of first deliveries (`fanout`, `channels`).
    pub latency: Option<Latency>,
    /// The reconnect storm (`connect` unless `--no-reconnect`).
    pub reconnect: Option<Reconnect>,
    /// Server memory (`--server-pid`).
    pub memory: Option<Memory>,
    /// CPU time of the server (`--server-pid`) and of the bench during the publish phase
    /// (`fanout`, `channels`).
    pub cpu: Option<Cpu>,
    /// The kernel's floor for a fan-out round (`floor`).
    pub floor: Option<Floor>,
    /// One sample per second of the run.
    pub timeline: Vec<Sample>,
}

/// The options of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Params {
    /// `--url`.
    pub url: String,
    /// `--connections`.
    pub connections: u64,
    /// Channels published to: 1, or `connections` for `channels`, 0 when nothing is published.
    pub channels: u64,
    /// `--rate`, per channel (0 when nothing is published).
    pub rate: u32,
    /// `--duration`.
    pub duration_secs: u64,
    /// `--payload-bytes`.
    pub payload_bytes: usize,
    /// Connect rate in effect, 0 for unpaced.
    pub connect_rate: u32,
}

/// Where the numbers were taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Machine {
    /// CPUs available to the bench process (its affinity mask).
    pub cpus: usize,
    /// 1-minute load average when the run started (`/proc/loadavg`).
    pub load_avg_start: Option<f64>,
    /// 1-minute load average when the run ended.
    pub load_avg_end: Option<f64>,
}

/// The connect phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Connections {
    /// `--connections`.
    pub requested: u64,
    /// Connections whose `connect` and `subscribe` both succeeded.
    pub established: u64,
    /// Connections that failed to open, connect or subscribe.
    pub errors: u64,
    /// The first connect error, for diagnosis.
    pub first_error: Option<String>,
    /// Handshakes in which the server accepted permessage-deflate (`--deflate`).
    pub deflated: u64,
    /// Established connections that ended before the bench closed them.
    pub dropped: u64,
    /// Of `dropped`, the connections the server closed as slow (close code 3008: the
    /// connection's outbox overflowed `client.queue_max_size`).
    pub closed_slow: u64,
    /// Seconds from the first attempt to the last outcome.
    pub secs: f64,
    /// `established / secs`.
    pub per_sec: f64,
    /// Handshake latency (TCP connect to subscribe reply) of established connections.
    pub latency: Latency,
}

/// The publisher.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Publications {
    /// Publications the plan called for: `rate × duration × channels`.
    pub planned: u64,
    /// Publications accepted by the server (one per channel).
    pub sent: u64,
    /// Publications that failed (transport error, non-200 or an `error` reply).
    pub errors: u64,
    /// The first publish error.
    pub first_error: Option<String>,
    /// Seconds spent publishing.
    pub secs: f64,
    /// `sent / secs`.
    pub per_sec: f64,
    /// Publishing stopped early because every connection was lost.
    pub aborted: bool,
}

/// Deliveries against expectations.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Deliveries {
    /// `fanout`: `sent × established`; `channels`: `sent` (one subscriber per channel).
    pub expected: u64,
    /// First deliveries of a publication to a connection.
    pub delivered: u64,
    /// `expected − delivered`, never negative.
    pub lost: u64,
    /// Repeated deliveries of a publication already received on the same connection.
    pub duplicates: u64,
    /// `lost / expected` (0 when nothing was expected).
    pub loss_ratio: f64,
    /// `delivered` divided by the seconds from the first publish to the last delivery.
    pub per_sec: f64,
    /// Bytes of the WebSocket messages the subscribers received (payloads of the frames,
    /// after the handshake; pings included).
    pub bytes: u64,
    /// WebSocket messages the subscribers received.
    pub frames: u64,
    /// `bytes / delivered` (0 when nothing was delivered).
    pub bytes_per_delivery: f64,
}

/// The reconnect storm.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reconnect {
    /// How the server was made to disconnect everyone.
    pub trigger: String,
    /// Connections subscribed before the trigger.
    pub expected: u64,
    /// Connections subscribed again.
    pub reconnected: u64,
    /// Reconnects that failed.
    pub errors: u64,
    /// The first reconnect error, or why the trigger failed.
    pub first_error: Option<String>,
    /// Seconds from the trigger to the last reconnect.
    pub secs: f64,
    /// `reconnected / secs`.
    pub per_sec: f64,
    /// Handshake latency of the reconnects.
    pub latency: Latency,
}

/// Server memory, from `/proc/<pid>/status` VmRSS.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Memory {
    /// Before connecting.
    pub rss_before: u64,
    /// After all connections subscribed and the warm-up.
    pub rss_after: u64,
    /// `rss_after − rss_before`.
    pub rss_delta: i64,
    /// `rss_delta / established`.
    pub bytes_per_connection: Option<i64>,
}

/// CPU time (user + system, from `/proc/<pid>/stat`, 10 ms ticks) from the first publish to
/// the end of the straggler wait.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cpu {
    /// Seconds of the server process (`None` without a readable `--server-pid`).
    pub server_secs: Option<f64>,
    /// `server_secs` per first delivery, microseconds.
    pub server_us_per_delivery: Option<f64>,
    /// Seconds of the bench process (connections and publisher).
    pub bench_secs: Option<f64>,
    /// `bench_secs` per first delivery, microseconds.
    pub bench_us_per_delivery: Option<f64>,
}

/// The `floor` scenario: rounds of one small write to each of N loopback connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Floor {
    /// Bytes of each write: a WebSocket frame carrying the fan-out's push (`--payload-bytes`
    /// of data) as the server encodes it in JSON.
    pub frame_bytes: usize,
    /// Where the reading end runs.
    pub sink: String,
    /// CPU the writing thread was pinned to (`--writer-cpu`).
    pub writer_cpu: Option<usize>,
    /// CPU the sink thread was pinned to (`--sink-cpu`).
    pub sink_cpu: Option<usize>,
    /// Bytes the sink should have read (warm-up round included).
    pub bytes_expected: u64,
    /// Bytes the sink read.
    pub bytes_received: u64,
    /// One `write` system call per connection, in turn.
    pub sequential: FloorRounds,
    /// The same writes as one batch of io_uring `send` entries per round (`None`:
    /// `--no-batched`, or io_uring unavailable, see `batched_error`).
    pub batched: Option<FloorRounds>,
    /// Why the batched rounds did not run.
    pub batched_error: Option<String>,
}

/// Rounds of one method of the `floor` scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FloorRounds {
    /// `write` or `io_uring`.
    pub method: String,
    /// Rounds measured.
    pub rounds: u64,
    /// Writes that failed or were short.
    pub errors: u64,
    /// Time of one round (first write started to last write returned), microseconds.
    pub round: Latency,
    /// Median round divided by the connections: microseconds per write.
    pub us_per_write_p50: f64,
    /// 99th-percentile round divided by the connections.
    pub us_per_write_p99: f64,
}

/// A latency distribution, microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Number of samples.
    pub samples: u64,
    /// Mean.
    pub mean_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Highest.
    pub max_us: u64,
    /// The percentile curve (empty without samples).
    pub curve: Vec<CurvePoint>,
    /// Counts per power-of-two bucket, empty buckets at the ends left out.
    pub buckets: Vec<Bucket>,
}

/// One point of the percentile curve.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Percentile, 0 to 100.
    pub percentile: f64,
    /// Latency at that percentile.
    pub us: u64,
}

/// One histogram bucket: samples in `(previous le_us, le_us]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound, microseconds.
    pub le_us: u64,
    /// Samples in the bucket.
    pub count: u64,
}

impl Latency {
    /// Summarizes a histogram of microseconds.
    pub(crate) fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let curve = CURVE_PERCENTILES
            .iter()
            .map(|&p| CurvePoint {
                percentile: p,
                us: h.value_at_percentile(p),
            })
            .collect();
        let mut counts = vec![0u64; BUCKETS as usize];
        for v in h.iter_recorded() {
            let value = v.value_iterated_to();
            let idx = (64 - value.saturating_sub(1).leading_zeros()).min(BUCKETS - 1);
            counts[idx as usize] += v.count_at_value();
        }
        let first = counts.iter().position(|c| *c > 0).unwrap_or(0);
        let last = counts.iter().rposition(|c| *c > 0).unwrap_or(0);
        let buckets = (first..=last)
            .map(|i| Bucket {
                le_us: 1u64 << i,
                count: counts[i],
            })
            .collect();
        Latency {
            samples: h.len(),
            mean_us: h.mean().round() as u64,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            curve,
            buckets,
        }
    }
}

impl Deliveries {
    /// Loss and ratio from what was expected and received over `secs`.
    pub(crate) fn new(expected: u64, delivered: u64, duplicates: u64, secs: f64) -> Deliveries {
        let lost = expected.saturating_sub(delivered);
        Deliveries {
            expected,
            delivered,
            lost,
            duplicates,
            loss_ratio: ratio(lost as f64, expected as f64),
            per_sec: ratio(delivered as f64, secs),
            bytes: 0,
            frames: 0,
            bytes_per_delivery: 0.0,
        }
    }

    /// Adds what the subscribers received: `bytes` in `frames` messages.
    pub(crate) fn with_bytes(mut self, bytes: u64, frames: u64) -> Deliveries {
        self.bytes = bytes;
        self.frames = frames;
        self.bytes_per_delivery = ratio(bytes as f64, self.delivered as f64);
        self
    }
}

/// `a / b`, 0 when `b` is 0.
pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

impl BenchReport {
    /// An empty report of `scenario`, filled in by the run.
    pub(crate) fn new(scenario: Scenario, params: Params, machine: Machine) -> BenchReport {
        BenchReport {
            schema_version: SCHEMA_VERSION,
            scenario,
            complete: false,
            exit_code: EXIT_PARTIAL,
            problems: Vec::new(),
            params,
            machine,
            connections: Connections::default(),
            publications: None,
            deliveries: None,
            latency: None,
            reconnect: None,
            memory: None,
            cpu: None,
            floor: None,
            timeline: Vec::new(),
        }
    }

    /// Lists the problems and sets `complete` and `exit_code` from them.
    pub(crate) fn conclude(&mut self) {
        let mut p = Vec::new();
        let c = &self.connections;
        if c.errors > 0 {
            p.push(format!(
                "{} of {} connections failed",
                c.errors, c.requested
            ));
        }
        if c.dropped > 0 {
            p.push(format!(
                "{} connections were lost during the run",
                c.dropped
            ));
        }
        if c.closed_slow > 0 {
            p.push(format!(
                "{} of them closed by the server as slow (3008)",
                c.closed_slow
            ));
        }
        if let Some(publ) = &self.publications {
            if publ.errors > 0 {
                p.push(format!("{} publications failed", publ.errors));
            }
            if publ.aborted {
                p.push("publishing stopped early: every connection was lost".into());
            }
        }
        if let Some(d) = &self.deliveries {
            if d.lost > 0 {
                p.push(format!("{} of {} deliveries lost", d.lost, d.expected));
            }
            if d.duplicates > 0 {
                p.push(format!("{} duplicate deliveries", d.duplicates));
            }
        }
        if let Some(f) = &self.floor {
            if f.bytes_received != f.bytes_expected {
                p.push(format!(
                    "the sink read {} of {} bytes",
                    f.bytes_received, f.bytes_expected
                ));
            }
            for r in std::iter::once(&f.sequential).chain(f.batched.as_ref()) {
                if r.errors > 0 {
                    p.push(format!("{} {} writes failed", r.errors, r.method));
                }
            }
        }
        if let Some(r) = &self.reconnect
            && r.reconnected < r.expected
        {
            p.push(format!(
                "{} of {} connections did not reconnect",
                r.expected - r.reconnected,
                r.expected
            ));
        }
        self.complete = p.is_empty();
        self.exit_code = if self.complete { EXIT_OK } else { EXIT_PARTIAL };
        self.problems = p;
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn percentiles_from_histogram() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.samples, 1000);
        assert_eq!(
            (l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us),
            (500, 900, 990, 999, 1000)
        );
        assert_eq!(l.mean_us, 501);
        assert_eq!(l.curve.first().unwrap().us, 1);
        assert_eq!(l.curve.last().unwrap().us, 1000);
        assert!(l.curve.windows(2).all(|w| w[0].us <= w[1].us));
        assert_eq!(l.buckets.iter().map(|b| b.count).sum::<u64>(), 1000);
        assert_eq!(l.buckets.first().unwrap(), &Bucket { le_us: 1, count: 1 });
        assert_eq!(l.buckets[1], Bucket { le_us: 2, count: 1 });
        assert_eq!(l.buckets[2], Bucket { le_us: 4, count: 2 });
        assert_eq!(l.buckets.last().unwrap().le_us, 1024);
    }

    #[test]
    fn empty_histogram_is_zero() {
        assert_eq!(
            Latency::from_histogram(&new_histogram()),
            Latency::default()
        );
    }

    #[test]
    fn loss_and_rates() {
        let d = Deliveries::new(2000, 1990, 3, 2.0);
        assert_eq!((d.lost, d.duplicates), (10, 3));
        assert!((d.loss_ratio - 0.005).abs() < 1e-12);
        assert!((d.per_sec - 995.0).abs() < 1e-9);
        let d = Deliveries::new(20, 25, 0, 0.0);
        assert_eq!((d.lost, d.loss_ratio, d.per_sec), (0, 0.0, 0.0));
    }

    #[test]
    fn conclude_sets_exit_code() {
        let mut r = BenchReport::new(Scenario::Fanout, Params::default(), Machine::default());
        r.connections.requested = 10;
        r.connections.established = 10;
        r.deliveries = Some(Deliveries::new(100, 100, 0, 1.0));
        r.conclude();
        assert!(r.complete && r.problems.is_empty());
        assert_eq!(r.exit_code, EXIT_OK);
        r.deliveries = Some(Deliveries::new(100, 90, 0, 1.0));
        r.connections.dropped = 2;
        r.connections.closed_slow = 1;
        r.conclude();
        assert!(!r.complete);
        assert_eq!(r.exit_code, EXIT_PARTIAL);
        assert_eq!(r.problems.len(), 3, "{:?}", r.problems);
        assert!(r.problems[1].contains("slow (3008)"), "{:?}", r.problems);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["scenario"], "fanout");
        assert_eq!(v["deliveries"]["lost"], 10);
        assert_eq!(v["memory"], serde_json::Value::Null);
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
    }
}
