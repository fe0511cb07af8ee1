//! Reading a server's `/metrics` in tests: one scrape, samples looked up by name and labels.

use crate::TestServer;

/// One scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The exposition text.
    pub text: String,
}

impl Scrape {
    /// `GET /metrics` on `server` (panics unless 200).
    pub async fn of(server: &TestServer) -> Scrape {
        let resp = reqwest::get(format!("{}/metrics", server.http_url()))
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status().as_u16(), 200, "/metrics status");
        Scrape {
            text: resp.text().await.expect("metrics body"),
        }
    }

    /// The value of the sample written exactly as `series` (`name` or `name{l="v",…}` with
    /// the labels in exposition order), if present.
    pub fn find(&self, series: &str) -> Option<f64> {
        self.text.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Like [`Scrape::find`], panicking with the scrape when the sample is missing.
    pub fn get(&self, series: &str) -> f64 {
        self.find(series)
            .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{}", self.text))
    }

    /// A sample that must be an integer count.
    pub fn count(&self, series: &str) -> u64 {
        let v = self.get(series);
        assert!(
            v >= 0.0 && v.fract() == 0.0,
            "{series} = {v} is not a count"
        );
        v as u64
    }

    /// Like [`Scrape::count`] but 0 when the series is absent (a code never seen).
    pub fn count_or_zero(&self, series: &str) -> u64 {
        self.find(series).map_or(0, |v| v as u64)
    }

    /// Sum of every sample of metric `name` (all label sets).
    pub fn sum(&self, name: &str) -> f64 {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
            })
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    }
}
