//! Reports of the `scale` scenario: each process's part ([`ScalePart`], one JSON line) and
//! their merge ([`ScaleReport`]).
//!
//! Latencies travel as the non-empty buckets of the receiver's HDR histogram, so the merge
//! computes percentiles over every delivery of every process, not averages of percentiles.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::args::ScalePhase;
use crate::error::{EXIT_OK, EXIT_PARTIAL};
use crate::stats::new_histogram;

/// One process's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub(crate) enum ScalePart {
    /// A receiver's.
    Receive(ReceiverPart),
    /// A publisher's.
    Publish(PublisherPart),
}

/// What one receiver process saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReceiverPart {
    /// The node it connected to.
    pub(crate) url: String,
    /// Global index of its first connection.
    pub(crate) first_index: u64,
    /// Connections asked for.
    pub(crate) requested: u64,
    /// Connections subscribed to both channels.
    pub(crate) established: u64,
    /// Failed connections.
    pub(crate) errors: u64,
    /// The first failure.
    pub(crate) first_error: Option<String>,
    /// Seconds from the first connect to the last outcome.
    pub(crate) connect_secs: f64,
    /// Connections lost before the end.
    pub(crate) dropped: u64,
    /// `--server-pid`, the node whose memory was read.
    pub(crate) server_pid: Option<u32>,
    /// Node VmRSS before connecting, bytes.
    pub(crate) rss_before: Option<u64>,
    /// Node VmRSS once every connection was subscribed (after the warm-up), bytes.
    pub(crate) rss_after: Option<u64>,
    /// Connect latencies (TCP + WebSocket + connect + 2 subscribes), microseconds.
    pub(crate) connect: Vec<(u64, u64)>,
    /// Deliveries of the shared channel's publications.
    pub(crate) broadcast: TallyPart,
    /// Deliveries of personal-channel publications.
    pub(crate) personal: TallyPart,
}

impl ReceiverPart {
    /// Every connection established and kept, no duplicate.
    pub(crate) fn is_complete(&self) -> bool {
        self.established == self.requested
            && self.dropped == 0
            && self.broadcast.duplicates + self.personal.duplicates == 0
    }
}

/// Deliveries of one kind of publication at one receiver.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TallyPart {
    /// First deliveries.
    pub(crate) delivered: u64,
    /// Repeated deliveries.
    pub(crate) duplicates: u64,
    /// Latency histogram: `(microseconds, count)` of every non-empty bucket.
    pub(crate) latency: Vec<(u64, u64)>,
}

/// What one publisher process sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PublisherPart {
    /// The phase.
    pub(crate) phase: ScalePhase,
    /// `http://HOST/api/`.
    pub(crate) api_url: String,
    /// Publications planned.
    pub(crate) planned: u64,
    /// Publications the server accepted.
    pub(crate) sent: u64,
    /// Publications refused or lost with their request.
    pub(crate) errors: u64,
    /// The first failure.
    pub(crate) first_error: Option<String>,
    /// Seconds from the first request to the last response.
    pub(crate) secs: f64,
    /// Achieved rate: `sent / secs`.
    pub(crate) per_sec: f64,
    /// Stopped early.
    pub(crate) aborted: bool,
}

/// The histogram as `(value, count)` of its non-empty buckets.
pub(crate) fn dump(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Adds dumped buckets to `h`.
fn load(h: &mut Histogram<u64>, buckets: &[(u64, u64)]) {
    for &(value, count) in buckets {
        h.saturating_record_n(value, count);
    }
}

/// Percentiles of a merged histogram, microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Percentiles {
    /// Samples.
    pub(crate) samples: u64,
    /// Median.
    pub(crate) p50_us: u64,
    /// 99th percentile.
    pub(crate) p99_us: u64,
    /// 99.9th percentile.
    pub(crate) p999_us: u64,
    /// Highest.
    pub(crate) max_us: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            samples: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Server memory of one node, from its receiver.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeMemory {
    /// The node's URL.
    pub(crate) url: String,
    /// Connections its receiver holds.
    pub(crate) connections: u64,
    /// VmRSS before, bytes.
    pub(crate) rss_before: u64,
    /// VmRSS after, bytes.
    pub(crate) rss_after: u64,
    /// `(after - before) / connections`.
    pub(crate) bytes_per_connection: i64,
}

/// One phase over all processes.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PhaseResult {
    /// Publications planned.
    pub(crate) planned: u64,
    /// Publications accepted by the server.
    pub(crate) sent: u64,
    /// Publications refused.
    pub(crate) errors: u64,
    /// The first publish failure.
    pub(crate) first_error: Option<String>,
    /// Publishing time, seconds.
    pub(crate) secs: f64,
    /// Achieved publication rate.
    pub(crate) per_sec: f64,
    /// Deliveries expected: broadcast `sent × established`, personal `sent` (one subscriber
    /// per personal channel; exact only when every connection was established).
    pub(crate) expected: u64,
    /// First deliveries.
    pub(crate) delivered: u64,
    /// `expected - delivered` (0 when more arrived).
    pub(crate) lost: u64,
    /// Duplicate deliveries.
    pub(crate) duplicates: u64,
    /// Delivery latency, publish timestamp to receipt.
    pub(crate) latency: Percentiles,
}

/// The merged report of a scale run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ScaleReport {
    /// Receiver processes.
    pub(crate) receivers: u64,
    /// Connections asked for.
    pub(crate) requested: u64,
    /// Connections subscribed.
    pub(crate) established: u64,
    /// Failed connections.
    pub(crate) connect_errors: u64,
    /// The first connect failure.
    pub(crate) first_connect_error: Option<String>,
    /// Connections lost before the end.
    pub(crate) dropped: u64,
    /// Connect storm: the slowest receiver's connect phase (they run at once), seconds.
    pub(crate) connect_storm_secs: f64,
    /// Connect latency over all connections.
    pub(crate) connect_latency: Percentiles,
    /// Memory per node (receivers given `--server-pid`).
    pub(crate) nodes: Vec<NodeMemory>,
    /// The broadcast phase, if a publisher ran it.
    pub(crate) broadcast: Option<PhaseResult>,
    /// The personal phase, if a publisher ran it.
    pub(crate) personal: Option<PhaseResult>,
    /// [`EXIT_OK`] when every connection was established and kept and every publication
    /// was accepted and delivered once; else [`EXIT_PARTIAL`].
    pub(crate) exit_code: i32,
}

/// Combines the parts of one run.
pub(crate) fn merge(parts: &[ScalePart]) -> ScaleReport {
    let mut r = ScaleReport::default();
    let (mut connect, mut bcast, mut pers) = (new_histogram(), new_histogram(), new_histogram());
    let (mut b_tally, mut p_tally) = (TallyPart::default(), TallyPart::default());
    let mut phases: [Option<PhaseResult>; 2] = [None, None];
    for part in parts {
        match part {
            ScalePart::Receive(p) => {
                r.receivers += 1;
                r.requested += p.requested;
                r.established += p.established;
                r.connect_errors += p.errors;
                r.dropped += p.dropped;
                if r.first_connect_error.is_none() {
                    r.first_connect_error.clone_from(&p.first_error);
                }
                r.connect_storm_secs = r.connect_storm_secs.max(p.connect_secs);
                load(&mut connect, &p.connect);
                load(&mut bcast, &p.broadcast.latency);
                load(&mut pers, &p.personal.latency);
                b_tally.delivered += p.broadcast.delivered;
                b_tally.duplicates += p.broadcast.duplicates;
                p_tally.delivered += p.personal.delivered;
                p_tally.duplicates += p.personal.duplicates;
                if let (Some(before), Some(after)) = (p.rss_before, p.rss_after) {
                    let delta = i64::try_from(after).unwrap_or(i64::MAX)
                        - i64::try_from(before).unwrap_or(0);
                    r.nodes.push(NodeMemory {
                        url: p.url.clone(),
                        connections: p.established,
                        rss_before: before,
                        rss_after: after,
                        bytes_per_connection: delta
                            / i64::try_from(p.established.max(1)).unwrap_or(1),
                    });
                }
            }
            ScalePart::Publish(p) => {
                let slot = &mut phases[usize::from(p.phase == ScalePhase::Personal)];
                let phase = slot.get_or_insert_with(PhaseResult::default);
                phase.planned += p.planned;
                phase.sent += p.sent;
                phase.errors += p.errors;
                if phase.first_error.is_none() {
                    phase.first_error.clone_from(&p.first_error);
                }
                phase.secs = phase.secs.max(p.secs);
            }
        }
    }
    let [b, p] = phases;
    r.broadcast = b.map(|mut phase| {
        phase.expected = phase.sent * r.established;
        finish(&mut phase, &b_tally, &bcast);
        phase
    });
    r.personal = p.map(|mut phase| {
        phase.expected = phase.sent;
        finish(&mut phase, &p_tally, &pers);
        phase
    });
    r.connect_latency = Percentiles::of(&connect);
    let clean = |p: &Option<PhaseResult>| {
        p.as_ref()
            .is_none_or(|p| p.errors == 0 && p.lost == 0 && p.duplicates == 0)
    };
    r.exit_code = if r.established == r.requested
        && r.dropped == 0
        && clean(&r.broadcast)
        && clean(&r.personal)
    {
        EXIT_OK
    } else {
        EXIT_PARTIAL
    };
    r
}

fn finish(phase: &mut PhaseResult, tally: &TallyPart, h: &Histogram<u64>) {
    phase.per_sec = crate::report::ratio(phase.sent as f64, phase.secs);
    phase.delivered = tally.delivered;
    phase.duplicates = tally.duplicates;
    phase.lost = phase.expected.saturating_sub(tally.delivered);
    phase.latency = Percentiles::of(h);
}

impl ScaleReport {
    /// The report as text, one fact per line.
    pub(crate) fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "connections: {} of {} established by {} receivers, {} errors, {} dropped{}",
            self.established,
            self.requested,
            self.receivers,
            self.connect_errors,
            self.dropped,
            self.first_connect_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        let c = &self.connect_latency;
        let _ = writeln!(
            s,
            "connect storm: {:.2} s, connect latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
            self.connect_storm_secs,
            ms(c.p50_us),
            ms(c.p99_us),
            ms(c.max_us)
        );
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "node {}: RSS {:.1} -> {:.1} MiB for {} connections = {} B per connection",
                n.url,
                mib(n.rss_before),
                mib(n.rss_after),
                n.connections,
                n.bytes_per_connection
            );
        }
        for (name, phase) in [("broadcast", &self.broadcast), ("personal", &self.personal)] {
            let Some(p) = phase else { continue };
            let l = &p.latency;
            let _ = writeln!(
                s,
                "{name}: {} of {} publications sent in {:.2} s ({:.1}/s), {} errors; \
                 {} of {} deliveries, {} lost, {} duplicates; \
                 latency p50 {:.1} ms p99 {:.1} ms p99.9 {:.1} ms max {:.1} ms{}",
                p.sent,
                p.planned,
                p.secs,
                p.per_sec,
                p.errors,
                p.delivered,
                p.expected,
                p.lost,
                p.duplicates,
                ms(l.p50_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us),
                p.first_error
                    .as_deref()
                    .map(|e| format!(" (first error: {e})"))
                    .unwrap_or_default()
            );
        }
        s
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(first_index: u64, latencies: &[u64], personal: &[u64]) -> ScalePart {
        let hist = |values: &[u64]| {
            let mut h = new_histogram();
            for v in values {
                h.record(*v).unwrap();
            }
            dump(&h)
        };
        ScalePart::Receive(ReceiverPart {
            url: format!("http://127.0.0.1:{}", 9000 + first_index),
            first_index,
            requested: 2,
            established: 2,
            errors: 0,
            first_error: None,
            connect_secs: 1.0 + first_index as f64,
            dropped: 0,
            server_pid: Some(1),
            rss_before: Some(1000),
            rss_after: Some(5000),
            connect: hist(&[100, 200]),
            broadcast: TallyPart {
                delivered: latencies.len() as u64,
                duplicates: 0,
                latency: hist(latencies),
            },
            personal: TallyPart {
                delivered: personal.len() as u64,
                duplicates: 0,
                latency: hist(personal),
            },
        })
    }

    fn publisher(phase: ScalePhase, sent: u64) -> ScalePart {
        ScalePart::Publish(PublisherPart {
            phase,
            api_url: "http://127.0.0.1:9000/api/".into(),
            planned: sent,
            sent,
            errors: 0,
            first_error: None,
            secs: 2.0,
            per_sec: sent as f64 / 2.0,
            aborted: false,
        })
    }

    #[test]
    fn parts_round_trip_as_json() {
        let part = receiver(0, &[1000, 2000], &[500]);
        let json = serde_json::to_string(&part).unwrap();
        assert!(json.starts_with(r#"{"role":"receive""#), "{json}");
        let back: ScalePart = serde_json::from_str(&json).unwrap();
        let ScalePart::Receive(r) = back else {
            panic!("not a receiver")
        };
        assert_eq!(r.broadcast.delivered, 2);
        let p: ScalePart = serde_json::from_str(
            &serde_json::to_string(&publisher(ScalePhase::Personal, 5)).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            p,
            ScalePart::Publish(PublisherPart {
                phase: ScalePhase::Personal,
                sent: 5,
                ..
            })
        ));
    }

    #[test]
    fn merge_counts_losses_and_takes_percentiles_over_all_deliveries() {
        // 2 receivers × 2 connections; 2 broadcasts → 8 expected, 7 arrived.
        let parts = [
            receiver(0, &[1000, 1000, 1000, 1000], &[300, 300]),
            receiver(2, &[1000, 1000, 90_000], &[400]),
            publisher(ScalePhase::Broadcast, 2),
            publisher(ScalePhase::Personal, 3),
        ];
        let r = merge(&parts);
        assert_eq!((r.receivers, r.requested, r.established), (2, 4, 4));
        assert_eq!(r.connect_storm_secs, 3.0);
        assert_eq!(r.connect_latency.samples, 4);
        let b = r.broadcast.as_ref().unwrap();
        assert_eq!((b.expected, b.delivered, b.lost), (8, 7, 1));
        assert_eq!(b.latency.samples, 7);
        assert!((999..=1001).contains(&b.latency.p50_us), "{:?}", b.latency);
        assert!(b.latency.max_us >= 89_000, "{:?}", b.latency);
        let p = r.personal.as_ref().unwrap();
        assert_eq!((p.expected, p.delivered, p.lost), (3, 3, 0));
        assert!((299..=301).contains(&p.latency.p50_us), "{:?}", p.latency);
        assert_eq!(p.per_sec, 1.5);
        assert_eq!(r.nodes.len(), 2);
        assert_eq!(r.nodes[0].bytes_per_connection, 2000);
        assert_eq!(r.exit_code, EXIT_PARTIAL, "a loss makes the run partial");
        let text = r.text();
        assert!(text.contains("broadcast: 2 of 2 publications"), "{text}");
        assert!(text.contains("7 of 8 deliveries, 1 lost"), "{text}");

        let clean = merge(&[
            receiver(0, &[1000, 1000], &[]),
            publisher(ScalePhase::Broadcast, 1),
        ]);
        assert_eq!(clean.exit_code, EXIT_OK);
        assert!(clean.personal.is_none());
    }
}
