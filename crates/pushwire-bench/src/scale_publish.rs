//! The publishing side of the `scale` scenario: one phase per process, through the HTTP API.
//!
//! - broadcast: `--broadcasts` publications to the shared channel (`publish`), one every
//!   `--broadcast-interval-ms`, sequence numbers 0, 1, …;
//! - personal: `--rate` publications per second for `--duration` s, sent as [`TICKS_PER_SEC`]
//!   `broadcast` requests per second, each to distinct random personal channels; the
//!   publications of tick `t` carry sequence number `PERSONAL_SEQ_BASE + t`.
//!
//! Every publication carries its send time; the receivers time the deliveries.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::{BenchArgs, ScalePhase};
use crate::error::BenchError;
use crate::publisher::{
    join_failure, request_body, send, PublishOutcome, MAX_IN_FLIGHT, REQUEST_TIMEOUT,
};
use crate::report::ratio;
use crate::scale_report::PublisherPart;
use crate::stats::{unix_nanos, PERSONAL_SEQ_BASE};
use crate::target::Target;

/// `broadcast` requests per second in the personal phase.
pub(crate) const TICKS_PER_SEC: u64 = 100;

/// Runs the phase `args.phase` and reports what was sent.
pub(crate) async fn publish(
    args: &BenchArgs,
    target: &Target,
) -> Result<PublisherPart, BenchError> {
    target.probe().await?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| BenchError::Setup(format!("HTTP client: {e}")))?;
    let (planned, outcome) = match args.phase {
        ScalePhase::Broadcast => broadcast(args, target, &client).await?,
        ScalePhase::Personal => personal(args, target, client).await?,
    };
    Ok(PublisherPart {
        phase: args.phase,
        api_url: target.api_url(""),
        planned,
        sent: outcome.sent,
        errors: outcome.errors,
        first_error: outcome.first_error,
        secs: outcome.secs,
        per_sec: ratio(outcome.sent as f64, outcome.secs),
        aborted: outcome.aborted,
    })
}

/// `--broadcasts` publications to the shared channel, one at a time on a fixed schedule.
async fn broadcast(
    args: &BenchArgs,
    target: &Target,
    client: &reqwest::Client,
) -> Result<(u64, PublishOutcome), BenchError> {
    let url = target.api_url("publish");
    let head = format!(
        r#"{{"channel":{}"#,
        serde_json::to_string(&args.channel).map_err(|e| BenchError::Setup(e.to_string()))?
    );
    let interval = Duration::from_millis(args.broadcast_interval_ms);
    let mut outcome = PublishOutcome::default();
    let start = Instant::now();
    for seq in 0..u64::from(args.broadcasts) {
        let at = start + interval.saturating_mul(u32::try_from(seq).unwrap_or(u32::MAX));
        tokio::time::sleep_until(at).await;
        let body = request_body(&head, unix_nanos(), seq, args.payload_bytes);
        outcome.record(send(client, &url, &args.api_key, body, 1).await);
    }
    outcome.secs = start.elapsed().as_secs_f64();
    Ok((u64::from(args.broadcasts), outcome))
}

/// `--rate` publications per second for `--duration` s over random personal channels.
async fn personal(
    args: &BenchArgs,
    target: &Target,
    client: reqwest::Client,
) -> Result<(u64, PublishOutcome), BenchError> {
    let url: Arc<str> = target.api_url("broadcast").into();
    let api_key: Arc<str> = args.api_key.as_str().into();
    let range = u64::from(args.connections);
    let ticks = args.duration * TICKS_PER_SEC;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut rng = XorShift::seeded(unix_nanos());
    let mut tasks = JoinSet::new();
    let mut outcome = PublishOutcome::default();
    let mut planned = 0;
    let start = Instant::now();
    for tick in 0..ticks {
        tokio::time::sleep_until(start + Duration::from_millis(tick * 1000 / TICKS_PER_SEC)).await;
        let count = per_tick(args.rate, tick).min(range);
        if count == 0 {
            continue;
        }
        let channels: Vec<String> = distinct(&mut rng, range, count)
            .into_iter()
            .map(|i| format!("{}-{}", args.channel, args.first_index + i))
            .collect();
        planned += count;
        let head = format!(
            r#"{{"channels":{}"#,
            serde_json::to_string(&channels).map_err(|e| BenchError::Setup(e.to_string()))?
        );
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (client, url, api_key) = (client.clone(), url.clone(), api_key.clone());
        let payload_bytes = args.payload_bytes;
        tasks.spawn(async move {
            let body = request_body(&head, unix_nanos(), PERSONAL_SEQ_BASE + tick, payload_bytes);
            let result = send(&client, &url, &api_key, body, count).await;
            drop(permit);
            result
        });
        while let Some(done) = tasks.try_join_next() {
            outcome.record(done.unwrap_or_else(join_failure));
        }
    }
    while let Some(done) = tasks.join_next().await {
        outcome.record(done.unwrap_or_else(join_failure));
    }
    outcome.secs = start.elapsed().as_secs_f64();
    Ok((planned, outcome))
}

/// Publications of tick `tick` so that every second carries exactly `rate`.
pub(crate) fn per_tick(rate: u32, tick: u64) -> u64 {
    let rate = u64::from(rate);
    (tick + 1) * rate / TICKS_PER_SEC - tick * rate / TICKS_PER_SEC
}

/// `count` distinct numbers below `range` (`count <= range`).
fn distinct(rng: &mut XorShift, range: u64, count: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(count as usize);
    while (out.len() as u64) < count.min(range) {
        let pick = rng.next() % range;
        if !out.contains(&pick) {
            out.push(pick);
        }
    }
    out
}

/// xorshift64: enough to spread publications over channels, no dependency.
struct XorShift(u64);

impl XorShift {
    fn seeded(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_add_up_to_the_rate() {
        for rate in [1, 99, 150, 10_000] {
            let second: u64 = (0..TICKS_PER_SEC).map(|t| per_tick(rate, t)).sum();
            assert_eq!(second, u64::from(rate));
            let next: u64 = (TICKS_PER_SEC..2 * TICKS_PER_SEC)
                .map(|t| per_tick(rate, t))
                .sum();
            assert_eq!(next, u64::from(rate));
        }
        assert_eq!(per_tick(10_000, 7), 100);
    }

    #[test]
    fn picks_are_distinct_and_in_range() {
        let mut rng = XorShift::seeded(42);
        let picks = distinct(&mut rng, 1000, 100);
        assert_eq!(picks.len(), 100);
        assert!(picks.iter().all(|p| *p < 1000));
        let mut sorted = picks.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 100);
        let mut all = distinct(&mut rng, 5, 5);
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3, 4]);
    }
}
