//! One bench run: open the subscribers, publish, wait for stragglers, close and report.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::args::BenchArgs;
use crate::memory::{read_vm_rss, rss_delta};
use crate::pace::schedule_offset;
use crate::publisher::{publish, PublishPlan};
use crate::report::BenchReport;
use crate::stats::Stats;
use crate::subscriber::{self, Shared};
use crate::{limits, wire};

/// Handshakes in progress at once, whatever the connect rate.
const MAX_HANDSHAKES: usize = 256;
/// Statistic shards; connections map to them round-robin.
const SHARDS: usize = 64;
/// How long to wait for deliveries still in flight after the last publish.
const STRAGGLER_WAIT: Duration = Duration::from_secs(2);
/// How long closing all connections may take before the rest are aborted.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Runs the bench described by `args` against a live server and returns what it measured.
///
/// Call it on a multi-threaded tokio runtime: subscriber tasks are spread over its workers.
/// Progress goes to stderr; the report is returned, not printed.
pub async fn run(args: BenchArgs) -> Result<BenchReport> {
    args.validate()?;
    let ws_url = args.ws_url()?;
    let publish_url = args.publish_url()?;
    let requested = u64::from(args.connections);
    limits::check_open_files(requested)?;

    let mut report = BenchReport {
        connections_requested: requested,
        idle: args.idle,
        ..Default::default()
    };
    report.rss_before = args.server_pid.map(read_vm_rss).transpose()?;

    let stats = Arc::new(Stats::new(SHARDS));
    let shared = Arc::new(Shared {
        url: ws_url.clone(),
        hello: wire::hello_frame(args.token.as_deref(), &args.channel),
        stats: stats.clone(),
        handshakes: Semaphore::new(MAX_HANDSHAKES),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();

    eprintln!("bench: opening {requested} connections to {ws_url}");
    let start = Instant::now();
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(args.connections as usize);
    for index in 0..args.connections as usize {
        if args.connect_rate > 0 {
            let due = start + schedule_offset(index as u64, args.connect_rate);
            tokio::time::sleep_until(due).await;
        }
        handles.push(tokio::spawn(subscriber::run(
            index,
            shared.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(ready_tx);
    drop(stop_rx);
    while let Some(outcome) = ready_rx.recv().await {
        match outcome {
            Ok(()) => report.connections_established += 1,
            Err(e) => {
                report.connect_errors += 1;
                report.first_connect_error.get_or_insert(e);
            }
        }
    }
    report.connect_secs = start.elapsed().as_secs_f64();
    eprintln!(
        "bench: {} established, {} errors in {:.2} s",
        report.connections_established, report.connect_errors, report.connect_secs
    );

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    if let Some(pid) = args.server_pid {
        let after = read_vm_rss(pid)?;
        report.rss_after = Some(after);
        let (delta, per) = rss_delta(
            report.rss_before.unwrap_or(0),
            after,
            report.connections_established,
        );
        report.rss_delta = Some(delta);
        report.bytes_per_connection = per;
    }

    let mut sent = 0;
    if args.idle {
        eprintln!("bench: holding connections for {} s", args.duration);
        tokio::time::sleep(Duration::from_secs(args.duration)).await;
    } else if report.connections_established > 0 {
        eprintln!(
            "bench: publishing {} publications at {}/s to {publish_url}",
            args.publications(),
            args.rate
        );
        let outcome = publish(PublishPlan {
            url: publish_url,
            api_key: args.api_key.clone(),
            channel: args.channel.clone(),
            rate: args.rate,
            count: args.publications(),
            payload_bytes: args.payload_bytes,
        })
        .await?;
        sent = outcome.sent;
        report.publish_errors = outcome.errors;
        report.first_publish_error = outcome.first_error;
        report.publish_secs = outcome.secs;
        let expected = sent.saturating_mul(report.connections_established);
        let deadline = Instant::now() + STRAGGLER_WAIT;
        while stats.delivered() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let _ = stop_tx.send(true);
    let shutdown = Instant::now() + SHUTDOWN_WAIT;
    for handle in &mut handles {
        if tokio::time::timeout_at(shutdown, &mut *handle)
            .await
            .is_err()
        {
            break;
        }
    }
    for handle in &handles {
        handle.abort();
    }

    let totals = stats.totals();
    report.connections_dropped = totals.dropped;
    report.set_deliveries(sent, totals.delivered, totals.duplicates);
    report.set_latency(&totals.latency);
    Ok(report)
}
