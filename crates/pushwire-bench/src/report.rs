//! The result of a bench run and its text rendering.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Everything a bench run measured. Latencies are microseconds, memory is bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BenchReport {
    /// `--idle`: connections were only held, nothing was published.
    pub idle: bool,
    /// `--connections`.
    pub connections_requested: u64,
    /// Connections whose `connect` and `subscribe` both succeeded.
    pub connections_established: u64,
    /// Connections that failed to open, connect or subscribe.
    pub connect_errors: u64,
    /// The first connect error seen, for diagnosis.
    pub first_connect_error: Option<String>,
    /// Established connections that ended before the bench closed them.
    pub connections_dropped: u64,
    /// Seconds from the first connection attempt to the last outcome.
    pub connect_secs: f64,
    /// Publications the HTTP API accepted.
    pub publications_sent: u64,
    /// Publish requests that failed (transport error, non-200 or an `error` reply).
    pub publish_errors: u64,
    /// The first publish error seen, for diagnosis.
    pub first_publish_error: Option<String>,
    /// Seconds spent publishing.
    pub publish_secs: f64,
    /// `publications_sent × connections_established`.
    pub expected_deliveries: u64,
    /// First deliveries of a publication to a connection (duplicates excluded).
    pub delivered: u64,
    /// `expected_deliveries − delivered` (never negative).
    pub lost: u64,
    /// Repeated deliveries of a publication already received by the same connection.
    pub duplicates: u64,
    /// `lost / expected_deliveries` (0 when nothing was expected).
    pub loss_ratio: f64,
    /// Number of latency samples (equals `delivered`).
    pub latency_samples: u64,
    /// Median publish-to-receive latency.
    pub latency_p50_us: u64,
    /// 90th percentile latency.
    pub latency_p90_us: u64,
    /// 99th percentile latency.
    pub latency_p99_us: u64,
    /// 99.9th percentile latency.
    pub latency_p999_us: u64,
    /// Highest latency.
    pub latency_max_us: u64,
    /// Server VmRSS before connecting, with `--server-pid`.
    pub rss_before: Option<u64>,
    /// Server VmRSS after all connections subscribed, with `--server-pid`.
    pub rss_after: Option<u64>,
    /// `rss_after − rss_before`.
    pub rss_delta: Option<i64>,
    /// `rss_delta / connections_established`.
    pub bytes_per_connection: Option<i64>,
}

impl BenchReport {
    /// Fills the latency fields from a histogram of microseconds.
    pub(crate) fn set_latency(&mut self, h: &Histogram<u64>) {
        self.latency_samples = h.len();
        if h.is_empty() {
            return;
        }
        self.latency_p50_us = h.value_at_quantile(0.50);
        self.latency_p90_us = h.value_at_quantile(0.90);
        self.latency_p99_us = h.value_at_quantile(0.99);
        self.latency_p999_us = h.value_at_quantile(0.999);
        self.latency_max_us = h.max();
    }

    /// Fills expected deliveries, loss and duplicates from what was sent and received.
    pub(crate) fn set_deliveries(&mut self, sent: u64, delivered: u64, duplicates: u64) {
        self.publications_sent = sent;
        self.expected_deliveries = sent.saturating_mul(self.connections_established);
        self.delivered = delivered;
        self.duplicates = duplicates;
        self.lost = self.expected_deliveries.saturating_sub(delivered);
        self.loss_ratio = if self.expected_deliveries == 0 {
            0.0
        } else {
            self.lost as f64 / self.expected_deliveries as f64
        };
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report always serializes")
    }

    /// Prints the report to stdout: one JSON object when `json`, text otherwise.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.to_json());
        } else {
            self.print_human();
        }
    }

    /// Prints the report to stdout as aligned text.
    pub fn print_human(&self) {
        print!("{}", self.human());
    }

    /// The text of [`BenchReport::print_human`].
    pub fn human(&self) -> String {
        let mut out = String::from("pushwire bench\n");
        out += &format!(
            "  connections  {} requested, {} established, {} errors, {} dropped ({:.2} s)\n",
            self.connections_requested,
            self.connections_established,
            self.connect_errors,
            self.connections_dropped,
            self.connect_secs,
        );
        if let Some(e) = &self.first_connect_error {
            out += &format!("               first connect error: {e}\n");
        }
        if self.idle {
            out += "  mode         idle: connections held, nothing published\n";
            out += &self.memory_line();
            return out;
        }
        out += &format!(
            "  publications {} sent, {} errors ({:.2} s)\n",
            self.publications_sent, self.publish_errors, self.publish_secs,
        );
        if let Some(e) = &self.first_publish_error {
            out += &format!("               first publish error: {e}\n");
        }
        out += &format!(
            "  deliveries   {} expected, {} delivered, {} lost ({:.4}%), {} duplicates\n",
            self.expected_deliveries,
            self.delivered,
            self.lost,
            self.loss_ratio * 100.0,
            self.duplicates,
        );
        out += &format!(
            "  latency µs   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})\n",
            self.latency_p50_us,
            self.latency_p90_us,
            self.latency_p99_us,
            self.latency_p999_us,
            self.latency_max_us,
            self.latency_samples,
        );
        out += &self.memory_line();
        out
    }

    fn memory_line(&self) -> String {
        let (Some(before), Some(after)) = (self.rss_before, self.rss_after) else {
            return String::new();
        };
        format!(
            "  server rss   before {}, after {}, delta {} B, {} B/connection\n",
            mib(before),
            mib(after),
            self.rss_delta.unwrap_or_default(),
            self.bytes_per_connection
                .map_or_else(|| "-".to_string(), |b| b.to_string()),
        )
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
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
        let mut r = BenchReport::default();
        r.set_latency(&h);
        assert_eq!(r.latency_samples, 1000);
        assert_eq!(r.latency_p50_us, 500);
        assert_eq!(r.latency_p90_us, 900);
        assert_eq!(r.latency_p99_us, 990);
        assert_eq!(r.latency_p999_us, 999);
        assert_eq!(r.latency_max_us, 1000);
    }

    #[test]
    fn percentiles_keep_three_digits() {
        let mut h = new_histogram();
        h.record(123_456).unwrap();
        let mut r = BenchReport::default();
        r.set_latency(&h);
        assert!((123_400..=123_600).contains(&r.latency_p50_us));
        assert_eq!(r.latency_p50_us, r.latency_max_us);
    }

    #[test]
    fn empty_histogram_is_zero() {
        let mut r = BenchReport::default();
        r.set_latency(&new_histogram());
        assert_eq!(r, BenchReport::default());
    }

    #[test]
    fn loss_and_duplicates() {
        let mut r = BenchReport {
            connections_established: 100,
            ..Default::default()
        };
        r.set_deliveries(20, 1990, 3);
        assert_eq!(r.expected_deliveries, 2000);
        assert_eq!(r.lost, 10);
        assert_eq!(r.duplicates, 3);
        assert!((r.loss_ratio - 0.005).abs() < 1e-12);

        r.set_deliveries(20, 2005, 0);
        assert_eq!(r.lost, 0);
        assert_eq!(r.loss_ratio, 0.0);

        let mut none = BenchReport::default();
        none.set_deliveries(0, 0, 0);
        assert_eq!(none.loss_ratio, 0.0);
    }

    #[test]
    fn renders_text_and_json() {
        let mut r = BenchReport {
            connections_requested: 2,
            connections_established: 2,
            rss_before: Some(1 << 20),
            rss_after: Some(3 << 20),
            rss_delta: Some(2 << 20),
            bytes_per_connection: Some(1 << 20),
            ..Default::default()
        };
        r.set_deliveries(10, 19, 1);
        let text = r.human();
        assert!(text.contains("2 requested, 2 established"));
        assert!(text.contains("20 expected, 19 delivered, 1 lost (5.0000%), 1 duplicates"));
        assert!(text.contains("before 1.0 MiB, after 3.0 MiB"));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["lost"], 1);
        assert_eq!(v["bytes_per_connection"], 1 << 20);
        assert_eq!(v["first_connect_error"], serde_json::Value::Null);

        r.idle = true;
        let text = r.human();
        assert!(text.contains("idle"));
        assert!(!text.contains("deliveries"));
        assert!(text.contains("1048576 B/connection"));
    }
}
