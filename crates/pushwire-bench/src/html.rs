//! The report as one self-contained HTML page: summary tables and inline SVG charts
//! (latency percentile curve, latency histogram, per-second throughput and connections).

use std::fmt::Write;

use crate::report::{BenchReport, Latency};
use crate::svg::{self, escape, Series, XAxis};
use crate::text::ms;

/// Percentile tick positions on the curve's x axis: `-log10(1 - p)`.
const CURVE_TICKS: [(f64, &str); 6] = [
    (0.0, "0%"),
    (1.0, "90%"),
    (2.0, "99%"),
    (3.0, "99.9%"),
    (4.0, "99.99%"),
    (5.0, "99.999%"),
];

impl BenchReport {
    /// The HTML page.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>pushwire bench</title>\
             <style>body{font-family:sans-serif;max-width:780px;margin:2em auto;color:#222}\
             table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
             th{background:#f4f4f4}.bad{color:#b00}pre{background:#f7f7f7;padding:8px;white-space:pre-wrap}</style>\
             </head><body>\n",
        );
        let _ = writeln!(
            out,
            "<h1>pushwire bench: {}</h1>\n<p class=\"{}\">{}</p>",
            self.scenario.as_str(),
            if self.complete { "ok" } else { "bad" },
            if self.complete {
                "Complete: no errors, no loss.".to_string()
            } else {
                format!(
                    "PARTIAL (exit {}): {}",
                    self.exit_code,
                    escape(&self.problems.join("; "))
                )
            }
        );
        let _ = writeln!(out, "<pre>{}</pre>", escape(&self.human()));
        if let Some(l) = &self.latency {
            latency_section(&mut out, "Publish → delivery latency", l);
        }
        latency_section(&mut out, "Connect latency", &self.connections.latency);
        if let Some(r) = &self.reconnect {
            latency_section(&mut out, "Reconnect latency", &r.latency);
        }
        self.timeline_section(&mut out);
        out.push_str("</body></html>\n");
        out
    }

    fn timeline_section(&self, out: &mut String) {
        if self.timeline.is_empty() {
            return;
        }
        let x = XAxis {
            label: "seconds since start".into(),
            min: 0.0,
            max: self.timeline.last().map_or(1.0, |s| s.t_secs as f64),
            ticks: vec![],
        };
        let points = |f: fn(&crate::timeline::Sample) -> u64| -> Vec<(f64, f64)> {
            self.timeline
                .iter()
                .map(|s| (s.t_secs as f64, f(s) as f64))
                .collect()
        };
        out.push_str("<h2>Over time</h2>\n");
        if self.publications.is_some() {
            out.push_str(&svg::line_chart(
                "Deliveries per second",
                &x,
                "deliveries/s",
                &[Series {
                    name: "delivered".into(),
                    color: "#2a7",
                    points: points(|s| s.delivered_per_sec),
                }],
            ));
            out.push_str(&svg::line_chart(
                "Publications per second",
                &x,
                "publications/s",
                &[Series {
                    name: "accepted by the server".into(),
                    color: "#47a",
                    points: points(|s| s.sent_per_sec),
                }],
            ));
        }
        out.push_str(&svg::line_chart(
            "Connections",
            &x,
            "connections",
            &[
                Series {
                    name: "subscribed".into(),
                    color: "#47a",
                    points: points(|s| s.live),
                },
                Series {
                    name: "lost".into(),
                    color: "#c33",
                    points: points(|s| s.dropped),
                },
            ],
        ));
    }
}

fn latency_section(out: &mut String, title: &str, l: &Latency) {
    if l.samples == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "<h2>{}</h2>\n<table><tr><th>samples</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th>\
         <th>p99.9</th><th>max</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td></tr></table>",
        escape(title),
        l.samples,
        ms(l.mean_us),
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p99_us),
        ms(l.p999_us),
        ms(l.max_us)
    );
    let points = l
        .curve
        .iter()
        .map(|p| {
            let q = (p.percentile / 100.0).min(0.999_999);
            (-(1.0 - q).log10(), p.us as f64 / 1000.0)
        })
        .collect();
    out.push_str(&svg::line_chart(
        &format!("{title}: percentile curve"),
        &XAxis {
            label: "percentile".into(),
            min: 0.0,
            max: 6.0,
            ticks: CURVE_TICKS
                .iter()
                .map(|(v, t)| (*v, (*t).to_string()))
                .collect(),
        },
        "ms",
        &[Series {
            name: "latency".into(),
            color: "#c63",
            points,
        }],
    ));
    let bars: Vec<(String, f64)> = l
        .buckets
        .iter()
        .map(|b| (bucket_label(b.le_us), b.count as f64))
        .collect();
    out.push_str(&svg::bar_chart(
        &format!("{title}: histogram"),
        "latency (upper bound of bucket)",
        "samples",
        &bars,
    ));
    out.push('\n');
}

fn bucket_label(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.0}s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.0}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Scenario;
    use crate::report::{Machine, Params};
    use crate::stats::new_histogram;
    use crate::timeline::Sample;

    #[test]
    fn page_is_self_contained() {
        let mut r = BenchReport::new(Scenario::Fanout, Params::default(), Machine::default());
        let mut h = new_histogram();
        for v in [100, 2000, 30_000] {
            h.record(v).unwrap();
        }
        r.latency = Some(Latency::from_histogram(&h));
        r.publications = Some(Default::default());
        r.timeline = (0..3)
            .map(|t| Sample {
                t_secs: t,
                delivered_per_sec: 10 * t,
                ..Default::default()
            })
            .collect();
        r.conclude();
        let page = r.html();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(
            page.matches("<svg").count() >= 5,
            "curve, histogram, 3 timelines"
        );
        assert!(page.contains("Deliveries per second"));
        for external in ["<script", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(external), "{external}");
        }
        assert_eq!(bucket_label(1024), "1ms");
        assert_eq!(bucket_label(512), "512µs");
    }
}
