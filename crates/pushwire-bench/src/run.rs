//! One bench run: check the target, open the connections, run the scenario's phase, close and
//! report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::args::{BenchArgs, Scenario};
use crate::cpu::CpuSample;
use crate::error::BenchError;
use crate::memory::{read_vm_rss, rss_delta};
use crate::pool::Pool;
use crate::progress::Progress;
use crate::publisher::{publish, Channels, PublishPlan};
use crate::report::{
    ratio, BenchReport, Deliveries, Latency, Machine, Memory, Params, Publications, Reconnect,
};
use crate::stats::Stats;
use crate::subscriber::Shared;
use crate::target::Target;
use crate::{api, limits, machine, timeline, token};

/// Handshakes in progress at once, whatever the connect rate.
pub(crate) const MAX_HANDSHAKES: usize = 256;
/// Statistic shards; connections map to them round-robin.
pub(crate) const SHARDS: usize = 64;
/// How long to wait for deliveries still in flight after the last publish.
const STRAGGLER_WAIT: Duration = Duration::from_secs(3);
/// How often the publish phase checks whether every connection is gone.
const LIVENESS_CHECK: Duration = Duration::from_millis(100);
/// Reconnect storm: base wait for every connection to come back, plus 1 ms per connection.
const RECONNECT_WAIT: Duration = Duration::from_secs(30);
/// Disconnect code of the reconnect storm (3000..=3499: the client should reconnect).
const RECONNECT_CODE: u32 = 3000;

/// Runs the bench described by `args` against a live server and returns what it measured.
///
/// Fails (no report) on bad options, a non-loopback target without `--allow-remote`, a
/// server that does not accept TCP connections, a too-low open-file limit or an unreadable
/// `--server-pid`. Anything that goes wrong once the load has started (refused connections,
/// lost connections, failed publishes, loss) is counted in the report instead, whose
/// `exit_code` is then non-zero.
///
/// Call it on a multi-threaded tokio runtime: connection tasks are spread over its workers.
/// Progress goes to stderr; the report is returned, not printed.
pub async fn run(args: BenchArgs) -> Result<BenchReport, BenchError> {
    let target = args.validate()?;
    if args.scenario == Scenario::Floor {
        let params = params_of(&args);
        return crate::floor::run(args, params).await;
    }
    if args.scenario == Scenario::Scale {
        return Err(BenchError::InvalidArgs(
            "the scale scenario makes its own reports: run it through `execute`".into(),
        ));
    }
    limits::check_open_files(u64::from(args.connections))?;
    let token = token::connection_token(&args)?;
    target.probe().await?;

    let machine = Machine {
        cpus: machine::cpus(),
        load_avg_start: machine::load_avg(),
        load_avg_end: None,
    };
    let mut report = BenchReport::new(args.scenario, params(&args), machine);
    let rss_before = args.server_pid.map(read_vm_rss).transpose()?;

    let progress = Arc::new(Progress::new());
    let stats = Arc::new(Stats::new(SHARDS));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let (sampler_stop, sampler_rx) = watch::channel(false);
    let sampler = tokio::spawn(timeline::sample(
        stats.clone(),
        progress.clone(),
        sampler_rx,
        samples.clone(),
    ));

    let channel_args = args.clone();
    let shared = Arc::new(Shared {
        url: target.ws_url(),
        token,
        channel_of: Box::new(move |i| channel_args.channel_of(i)),
        shared_channel: None,
        stats: stats.clone(),
        handshakes: Semaphore::new(MAX_HANDSHAKES),
        reconnect: AtomicBool::new(false),
        delta: args.delta.clone(),
        deflate: args.deflate,
        deflated: AtomicU64::new(0),
    });
    let n = args.connections as usize;
    let rate = args.effective_connect_rate();
    progress.phase(
        "connect",
        &format!(
            "opening {n} connections to {} ({})",
            shared.url,
            if rate == 0 {
                "unpaced".to_string()
            } else {
                format!("{rate}/s")
            }
        ),
        n as u64,
        false,
    );
    let counts = shared.clone();
    let (mut pool, opened) = Pool::open(shared, n, rate, &progress).await;
    let established = opened.established.len() as u64;
    let c = &mut report.connections;
    c.requested = n as u64;
    c.established = established;
    c.errors = opened.errors;
    c.first_error = opened.first_error.clone();
    c.deflated = counts.deflated.load(Ordering::Relaxed);
    c.secs = opened.secs;
    c.per_sec = ratio(established as f64, opened.secs);
    progress.println(&format!(
        "{established} established, {} errors in {:.2} s",
        opened.errors, opened.secs
    ));

    if established > 0 {
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    }
    if let (Some(pid), Some(before)) = (args.server_pid, rss_before) {
        let after = read_vm_rss(pid)?;
        let (delta, per) = rss_delta(before, after, established);
        report.memory = Some(Memory {
            rss_before: before,
            rss_after: after,
            rss_delta: delta,
            bytes_per_connection: per,
        });
    }

    let mut expected_deliveries = None;
    let cpu_before = CpuSample::take(args.server_pid);
    if established > 0 {
        match args.scenario {
            Scenario::Fanout | Scenario::Channels => {
                let (expected, secs) = publish_phase(
                    &args,
                    &target,
                    &opened.established,
                    &stats,
                    &progress,
                    &mut report,
                )
                .await?;
                // Read before closing: the close handshakes are not the phase's work.
                expected_deliveries = Some((expected, secs, CpuSample::take(args.server_pid)));
            }
            Scenario::Idle => {
                progress.phase(
                    "hold",
                    &format!("holding {established} connections for {} s", args.duration),
                    args.duration,
                    true,
                );
                tokio::time::sleep(Duration::from_secs(args.duration)).await;
            }
            // Dispatched before any connection.
            Scenario::Floor | Scenario::Scale => {}
            Scenario::Connect if args.no_reconnect => {}
            Scenario::Connect => {
                report.reconnect =
                    reconnect_phase(&args, &target, established, &mut pool, &progress).await;
            }
        }
    }

    progress.println("closing connections");
    pool.close().await;
    let _ = sampler_stop.send(true);
    let _ = sampler.await;
    progress.finish();

    let totals = stats.totals();
    report.connections.dropped = totals.dropped;
    report.connections.closed_slow = totals.closed_slow;
    report.connections.latency = Latency::from_histogram(&totals.connect);
    if let Some(r) = &mut report.reconnect {
        r.latency = Latency::from_histogram(&totals.reconnect);
    }
    if let Some((expected, secs, cpu_after)) = expected_deliveries {
        report.cpu = Some(cpu_before.since(cpu_after, totals.delivered));
        report.deliveries = Some(
            Deliveries::new(expected, totals.delivered, totals.duplicates, secs)
                .with_bytes(totals.bytes, totals.frames),
        );
        report.latency = Some(Latency::from_histogram(&totals.latency));
    }
    report.timeline = std::mem::take(&mut *samples.lock());
    report.machine.load_avg_end = machine::load_avg();
    report.conclude();
    Ok(report)
}

fn params(args: &BenchArgs) -> Params {
    params_of(args)
}

/// The report's `params` of `args`.
pub(crate) fn params_of(args: &BenchArgs) -> Params {
    let (channels, rate) = match args.scenario {
        Scenario::Fanout => (1, args.rate),
        Scenario::Channels => (u64::from(args.connections), args.rate),
        Scenario::Idle if args.personal => (u64::from(args.connections), 0),
        Scenario::Connect | Scenario::Idle => (0, 0),
        Scenario::Scale => (u64::from(args.connections) + 1, args.rate),
        Scenario::Floor => (0, args.rate),
    };
    Params {
        url: args.url.clone(),
        connections: u64::from(args.connections),
        channels,
        rate,
        duration_secs: args.duration,
        payload_bytes: args.payload_bytes,
        connect_rate: args.effective_connect_rate(),
    }
}

/// Publishes for `--duration`, waits for stragglers and fills `publications`. Returns the
/// expected deliveries and the seconds from the first publish to the last delivery (or the
/// end of the straggler wait).
async fn publish_phase(
    args: &BenchArgs,
    target: &Target,
    established: &[usize],
    stats: &Arc<Stats>,
    progress: &Progress,
    report: &mut BenchReport,
) -> Result<(u64, f64), BenchError> {
    let channel_count = match args.scenario {
        Scenario::Channels => established.len() as u64,
        _ => 1,
    };
    let channels = match args.scenario {
        Scenario::Channels => {
            Channels::Many(established.iter().map(|i| args.channel_of(*i)).collect())
        }
        _ => Channels::One(args.channel.clone()),
    };
    let plan = PublishPlan {
        api_base: target.api_url(""),
        api_key: args.api_key.clone(),
        channels,
        rate: args.rate,
        count: args.publications(),
        payload_bytes: args.payload_bytes,
        document: args.document,
        delta: args.delta.is_some(),
    };
    progress.phase(
        "publish",
        &format!(
            "publishing {} rounds at {}/s to {} channel(s)",
            plan.count,
            plan.rate,
            report.params.channels.min(established.len() as u64)
        ),
        args.duration,
        true,
    );
    let (abort_tx, abort_rx) = watch::channel(false);
    let start = Instant::now();
    let publishing = publish(plan, stats.clone(), abort_rx);
    tokio::pin!(publishing);
    let outcome = loop {
        tokio::select! {
            outcome = &mut publishing => break outcome,
            () = tokio::time::sleep(LIVENESS_CHECK) => {
                if stats.live() == 0 {
                    let _ = abort_tx.send(true);
                }
            }
        }
    }
    .map_err(BenchError::Setup)?;

    let fanout = match args.scenario {
        Scenario::Channels => 1,
        _ => established.len() as u64,
    };
    let expected = outcome.sent.saturating_mul(fanout);
    let deadline = Instant::now() + STRAGGLER_WAIT;
    while stats.delivered() < expected && Instant::now() < deadline && stats.live() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    report.publications = Some(Publications {
        planned: args.publications() * channel_count,
        sent: outcome.sent,
        errors: outcome.errors,
        first_error: outcome.first_error,
        secs: outcome.secs,
        per_sec: ratio(outcome.sent as f64, outcome.secs),
        aborted: outcome.aborted,
    });
    Ok((expected, secs))
}

/// Makes the server disconnect the bench user through the API and measures the way back.
/// `None` when the connections are anonymous (the API disconnects by user).
async fn reconnect_phase(
    args: &BenchArgs,
    target: &Target,
    established: u64,
    pool: &mut Pool,
    progress: &Progress,
) -> Option<Reconnect> {
    if args.token.is_none() && args.token_hmac_secret.is_none() {
        progress.println(
            "reconnect storm skipped: it needs --token or --token-hmac-secret \
             (the API disconnects by user)",
        );
        return None;
    }
    progress.phase(
        "reconnect",
        &format!(
            "reconnect storm: disconnecting user {:?} ({established} connections)",
            args.user
        ),
        established,
        false,
    );
    let url = target.api_url("disconnect");
    let body = serde_json::json!({
        "user": args.user,
        "disconnect": {"code": RECONNECT_CODE, "reason": "bench reconnect storm"},
    });
    let trigger = api::call(&url, &args.api_key, body);
    let wait = RECONNECT_WAIT + Duration::from_millis(established);
    let out = pool
        .reconnect_storm(established, wait, trigger, progress)
        .await;
    Some(Reconnect {
        trigger: "api disconnect".into(),
        expected: established,
        reconnected: out.reconnected,
        errors: out.errors,
        first_error: out.first_error,
        secs: out.secs,
        per_sec: ratio(out.reconnected as f64, out.secs),
        latency: Latency::default(),
    })
}
