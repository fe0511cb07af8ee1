//! The report as aligned text, for a terminal.

use std::fmt::Write;

use crate::report::{BenchReport, Latency};

impl BenchReport {
    /// Prints the report to stdout: one JSON object when `json`, text otherwise.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.to_json());
        } else {
            print!("{}", self.human());
        }
    }

    /// The report as text.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let p = &self.params;
        let _ = writeln!(
            out,
            "pushwire bench {} against {}",
            self.scenario.as_str(),
            p.url
        );
        if let Some(load) = self.machine.load_avg_start {
            let _ = writeln!(
                out,
                "  machine      {} cpus for the bench, load average {load:.2} → {:.2}",
                self.machine.cpus,
                self.machine.load_avg_end.unwrap_or(load)
            );
        }
        let c = &self.connections;
        let _ = writeln!(
            out,
            "  connections  {} requested, {} established, {} errors, {} dropped; {:.2} s, {:.0}/s",
            c.requested, c.established, c.errors, c.dropped, c.secs, c.per_sec
        );
        if let Some(e) = &c.first_error {
            let _ = writeln!(out, "               first connect error: {e}");
        }
        if c.closed_slow > 0 {
            let _ = writeln!(
                out,
                "               {} closed by the server as slow (3008)",
                c.closed_slow
            );
        }
        if c.deflated > 0 {
            let _ = writeln!(
                out,
                "               {} negotiated permessage-deflate",
                c.deflated
            );
        }
        latency_line(&mut out, "connect", &c.latency);
        if let Some(r) = &self.reconnect {
            let _ = writeln!(
                out,
                "  reconnect    {}: {} of {} back, {} errors; {:.2} s, {:.0}/s",
                r.trigger, r.reconnected, r.expected, r.errors, r.secs, r.per_sec
            );
            if let Some(e) = &r.first_error {
                let _ = writeln!(out, "               first reconnect error: {e}");
            }
            latency_line(&mut out, "reconnect", &r.latency);
        }
        if let Some(publ) = &self.publications {
            let _ = writeln!(
                out,
                "  publications {} of {} sent to {} channel(s) at {}/s, {} errors; {:.2} s, {:.0}/s{}",
                publ.sent,
                publ.planned,
                p.channels,
                p.rate,
                publ.errors,
                publ.secs,
                publ.per_sec,
                if publ.aborted { " (aborted)" } else { "" }
            );
            if let Some(e) = &publ.first_error {
                let _ = writeln!(out, "               first publish error: {e}");
            }
        }
        if let Some(d) = &self.deliveries {
            let _ = writeln!(
                out,
                "  deliveries   {} expected, {} delivered, {} lost ({:.4}%), {} duplicates; {:.0}/s",
                d.expected,
                d.delivered,
                d.lost,
                d.loss_ratio * 100.0,
                d.duplicates,
                d.per_sec
            );
            let _ = writeln!(
                out,
                "  received     {} bytes in {} messages, {:.1} bytes per delivery",
                d.bytes, d.frames, d.bytes_per_delivery
            );
        }
        if let Some(l) = &self.latency {
            latency_line(&mut out, "latency", l);
        }
        if let Some(cpu) = &self.cpu {
            let secs = |s: Option<f64>| s.map_or_else(|| "-".to_string(), |s| format!("{s:.2} s"));
            let per =
                |u: Option<f64>| u.map_or_else(String::new, |u| format!(", {u:.2} µs/delivery"));
            let _ = writeln!(
                out,
                "  cpu          server {}{}; bench {}{}",
                secs(cpu.server_secs),
                per(cpu.server_us_per_delivery),
                secs(cpu.bench_secs),
                per(cpu.bench_us_per_delivery)
            );
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                out,
                "  server rss   before {}, after {}, delta {} B, {} B/connection",
                mib(m.rss_before),
                mib(m.rss_after),
                m.rss_delta,
                m.bytes_per_connection
                    .map_or_else(|| "-".to_string(), |b| b.to_string()),
            );
        }
        if let Some(f) = &self.floor {
            let pin =
                |c: Option<usize>| c.map_or_else(|| "unpinned".to_string(), |c| format!("CPU {c}"));
            let _ = writeln!(
                out,
                "  floor        {}-byte frames; writer {}, sink {} ({}); sink read {} of {} bytes",
                f.frame_bytes,
                pin(f.writer_cpu),
                pin(f.sink_cpu),
                f.sink,
                f.bytes_received,
                f.bytes_expected
            );
            for r in std::iter::once(&f.sequential).chain(f.batched.as_ref()) {
                let _ = writeln!(
                    out,
                    "  {:<12} {} rounds, {} errors; {:.2} µs/write at the median round, {:.2} at p99",
                    r.method, r.rounds, r.errors, r.us_per_write_p50, r.us_per_write_p99
                );
                latency_line(&mut out, "  round", &r.round);
            }
            if let Some(e) = &f.batched_error {
                let _ = writeln!(out, "               batched rounds: {e}");
            }
        }
        if self.complete {
            let _ = writeln!(out, "  result       complete");
        } else {
            let _ = writeln!(out, "  result       PARTIAL (exit {})", self.exit_code);
            for problem in &self.problems {
                let _ = writeln!(out, "               - {problem}");
            }
        }
        out
    }
}

fn latency_line(out: &mut String, what: &str, l: &Latency) {
    if l.samples == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "  {what:<12} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p99_us),
        ms(l.p999_us),
        ms(l.max_us),
        l.samples
    );
}

/// Microseconds as milliseconds with two decimals.
pub(crate) fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use crate::args::Scenario;
    use crate::report::*;

    #[test]
    fn renders_sections() {
        let mut r = BenchReport::new(Scenario::Fanout, Params::default(), Machine::default());
        r.connections.requested = 2;
        r.connections.established = 2;
        r.publications = Some(Publications {
            sent: 10,
            ..Default::default()
        });
        r.deliveries = Some(Deliveries::new(20, 19, 1, 1.0));
        r.memory = Some(Memory {
            rss_before: 1 << 20,
            rss_after: 3 << 20,
            rss_delta: 2 << 20,
            bytes_per_connection: Some(1 << 20),
        });
        r.conclude();
        let text = r.human();
        assert!(text.contains("2 requested, 2 established"), "{text}");
        assert!(text.contains("20 expected, 19 delivered, 1 lost (5.0000%), 1 duplicates"));
        assert!(text.contains("before 1.0 MiB, after 3.0 MiB"));
        assert!(text.contains("PARTIAL (exit 2)"));
        assert!(text.contains("1 of 20 deliveries lost"));
    }
}
