//! Minimal inline SVG charts (line and bar) for the HTML report: no scripts, no external
//! assets.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;

/// One line of a line chart.
pub(crate) struct Series {
    /// Legend text.
    pub(crate) name: String,
    /// CSS colour.
    pub(crate) color: &'static str,
    /// `(x, y)` points in data units, x ascending.
    pub(crate) points: Vec<(f64, f64)>,
}

/// The x axis of a line chart.
pub(crate) struct XAxis {
    /// Axis label.
    pub(crate) label: String,
    /// Data range shown.
    pub(crate) min: f64,
    /// Data range shown.
    pub(crate) max: f64,
    /// `(position, text)` ticks; evenly spaced numbers when empty.
    pub(crate) ticks: Vec<(f64, String)>,
}

/// Escapes text for SVG/HTML.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" upper bound ≥ `v` (1, 2 or 5 × 10ⁿ) and 5 ticks.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * mag)
}

fn number(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn frame(out: &mut String, title: &str, y_label: &str, y_max: f64) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let _ = write!(
        out,
        r#"<text transform="translate(14,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        escape(y_label)
    );
    for i in 0..=5 {
        let v = y_max * f64::from(i) / 5.0;
        let y = y_pos(v, y_max);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            number(v)
        );
    }
}

fn y_pos(v: f64, y_max: f64) -> f64 {
    HEIGHT - BOTTOM - (v / y_max).clamp(0.0, 1.0) * (HEIGHT - TOP - BOTTOM)
}

/// A line chart of `series` over `x`, y from 0 to a rounded maximum.
pub(crate) fn line_chart(title: &str, x: &XAxis, y_label: &str, series: &[Series]) -> String {
    let y_max = nice_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let span = if x.max > x.min { x.max - x.min } else { 1.0 };
    let x_pos = |v: f64| LEFT + (v - x.min) / span * (WIDTH - LEFT - RIGHT);
    let mut out = String::new();
    frame(&mut out, title, y_label, y_max);
    let ticks: Vec<(f64, String)> = if x.ticks.is_empty() {
        (0..=5)
            .map(|i| {
                let v = x.min + span * f64::from(i) / 5.0;
                let v = if span >= 5.0 { v.round() } else { v };
                (v, number(v))
            })
            .collect()
    } else {
        x.ticks.clone()
    };
    for (v, text) in &ticks {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x_pos(*v),
            HEIGHT - BOTTOM + 16.0,
            escape(text)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 10.0,
        escape(&x.label)
    );
    for (i, s) in series.iter().enumerate() {
        let path: Vec<String> = s
            .points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x_pos(*px), y_pos(*py, y_max)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.color,
            path.join(" ")
        );
        let ly = TOP + 4.0 + 14.0 * i as f64;
        let _ = write!(
            out,
            r#"<rect x="{}" y="{ly}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            LEFT + 10.0,
            s.color,
            LEFT + 24.0,
            ly + 9.0,
            escape(&s.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// A bar chart: one bar per `(label, value)`.
pub(crate) fn bar_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    bars: &[(String, f64)],
) -> String {
    let y_max = nice_max(bars.iter().map(|b| b.1).fold(0.0, f64::max));
    let mut out = String::new();
    frame(&mut out, title, y_label, y_max);
    let slot = (WIDTH - LEFT - RIGHT) / bars.len().max(1) as f64;
    let every = (bars.len() / 12).max(1);
    for (i, (label, value)) in bars.iter().enumerate() {
        let x = LEFT + slot * i as f64;
        let y = y_pos(*value, y_max);
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="#4878a8"><title>{}: {}</title></rect>"##,
            x + slot * 0.1,
            slot * 0.8,
            HEIGHT - BOTTOM - y,
            escape(label),
            number(*value)
        );
        if i % every == 0 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + slot / 2.0,
                HEIGHT - BOTTOM + 16.0,
                escape(label)
            );
        }
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text></svg>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 10.0,
        escape(x_label)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_bounds() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(10.0), 10.0);
        assert_eq!(nice_max(11.0), 20.0);
        assert_eq!(nice_max(420_000.0), 500_000.0);
    }

    #[test]
    fn charts_are_svg() {
        let s = line_chart(
            "t<1>",
            &XAxis {
                label: "s".into(),
                min: 0.0,
                max: 2.0,
                ticks: vec![],
            },
            "y",
            &[Series {
                name: "a".into(),
                color: "red",
                points: vec![(0.0, 1.0), (2.0, 3.0)],
            }],
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("t&lt;1&gt;") && s.contains("<polyline"));
        let b = bar_chart("h", "x", "y", &[("1".into(), 2.0), ("2".into(), 0.0)]);
        assert_eq!(b.matches("<rect").count(), 2);
        assert!(!b.contains("http://") || b.matches("http://").count() == 1);
    }
}
