//! Once-a-second samples of the run (connections, publications, deliveries) for the
//! throughput chart, the JSON report and the progress line.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::progress::Progress;
use crate::stats::Stats;

/// Longest timeline kept, in samples (seconds); later samples are not recorded.
const MAX_SAMPLES: usize = 4 * 3600;

/// The state of the run at the end of one second.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_secs: u64,
    /// Connections subscribed at that moment.
    pub live: u64,
    /// Established connections lost so far.
    pub dropped: u64,
    /// Publications accepted by the server during this second.
    pub sent_per_sec: u64,
    /// First deliveries received during this second.
    pub delivered_per_sec: u64,
}

/// Samples `stats` every second until `stop` turns true; returns the samples.
pub(crate) async fn sample(
    stats: Arc<Stats>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
    out: Arc<Mutex<Vec<Sample>>>,
) {
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut sent, mut delivered) = (0, 0);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let (now_sent, now_delivered) = (stats.sent(), stats.delivered());
        let s = Sample {
            t_secs: start.elapsed().as_secs_f64().round() as u64,
            live: stats.live(),
            dropped: stats.dropped(),
            sent_per_sec: now_sent - sent,
            delivered_per_sec: now_delivered - delivered,
        };
        (sent, delivered) = (now_sent, now_delivered);
        progress.status(format!(
            "live {} dropped {} | sent {}/s delivered {}/s",
            s.live, s.dropped, s.sent_per_sec, s.delivered_per_sec
        ));
        let mut samples = out.lock();
        if samples.len() < MAX_SAMPLES {
            samples.push(s);
        }
    }
}
