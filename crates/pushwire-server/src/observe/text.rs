//! The Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, samples.

use std::fmt::{Display, Write};

use pushwire_core::metrics::HistogramSnapshot;

/// Builds one exposition. Every family is written whole (header, then its samples), so the
/// output is valid for any mix of calls.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// Label pairs of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Exposition {
    /// An empty exposition with room for a typical scrape.
    pub fn new() -> Self {
        Exposition {
            out: String::with_capacity(16 * 1024),
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                escape_into(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// An unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str, value: impl Display) {
        self.header(name, "counter", help);
        self.sample(name, &[], value);
    }

    /// An unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.header(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// A labelled family of `kind` (`counter` or `gauge`).
    pub fn family<'a, V: Display>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Vec<(&'a str, String)>, V)>,
    ) {
        self.header(name, kind, help);
        for (labels, value) in samples {
            let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            self.sample(name, &pairs, value);
        }
    }

    /// A histogram; bounds and sum are divided by `unit` (1e9 turns nanoseconds into seconds).
    pub fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot, unit: f64) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (bound, count) in h.bounds.iter().zip(&h.cumulative) {
            let le = format!("{}", *bound as f64 / unit);
            self.sample(&bucket, &[("le", &le)], count);
        }
        let total = h.cumulative.last().copied().unwrap_or(0);
        self.sample(&bucket, &[("le", "+Inf")], total);
        self.sample(&format!("{name}_sum"), &[], h.sum as f64 / unit);
        self.sample(&format!("{name}_count"), &[], total);
    }
}

impl Exposition {
    /// A histogram family with one label: one series per `(label value, snapshot)`; bounds
    /// and sums divided by `unit`.
    pub fn histogram_family<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (&'a str, HistogramSnapshot)>,
        unit: f64,
    ) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (value, h) in series {
            for (bound, count) in h.bounds.iter().zip(&h.cumulative) {
                let le = format!("{}", *bound as f64 / unit);
                self.sample(&bucket, &[(label, value), ("le", &le)], count);
            }
            let total = h.cumulative.last().copied().unwrap_or(0);
            self.sample(&bucket, &[(label, value), ("le", "+Inf")], total);
            self.sample(
                &format!("{name}_sum"),
                &[(label, value)],
                h.sum as f64 / unit,
            );
            self.sample(&format!("{name}_count"), &[(label, value)], total);
        }
    }
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushwire_core::metrics::Histogram;

    #[test]
    fn families_and_histograms() {
        let mut e = Exposition::new();
        e.counter("a_total", "A.", 3);
        e.family(
            "b",
            "gauge",
            "B.",
            [
                (vec![("t", "x\"y".to_owned())], 1),
                (vec![("t", "z".into())], 2),
            ],
        );
        let h = Histogram::new(&[1_000_000, 1_000_000_000]);
        h.observe(500);
        h.observe(2_000_000_000);
        e.histogram("lat_seconds", "L.", &h.snapshot(), 1e9);
        let text = e.finish();
        assert!(
            text.contains("# TYPE a_total counter\na_total 3\n"),
            "{text}"
        );
        assert!(text.contains("b{t=\"x\\\"y\"} 1\nb{t=\"z\"} 2\n"), "{text}");
        assert!(
            text.contains("lat_seconds_bucket{le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("lat_seconds_bucket{le=\"1\"} 1\n"), "{text}");
        assert!(
            text.contains("lat_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("lat_seconds_count 2\n"), "{text}");
        assert!(text.contains("lat_seconds_sum 2.0000005\n"), "{text}");
    }
}
