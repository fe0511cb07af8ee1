//! The `scale` scenario: one process's part of a cluster scale run (scripts/bench-cluster.sh
//! `scale` starts them). A receiver holds its range of connections, each on its personal
//! channel and the shared one, and reports every delivery; a publisher runs one phase
//! (`scale_publish`); a merge combines the parts (`scale_report`).
//!
//! The parts meet only through the server and the files: receivers are started first, each
//! writes `--ready-file` once its connections are in, the script then runs the publishers
//! one phase after the other and finally sends the receivers SIGTERM, upon which they close
//! and print their part. Deliveries are told apart by sequence number (personal-phase
//! publications are numbered from `PERSONAL_SEQ_BASE`), so no receiver needs to know when a
//! phase starts.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;

use crate::args::{BenchArgs, ScaleRole};
use crate::error::{BenchError, EXIT_OK, EXIT_PARTIAL};
use crate::memory::read_vm_rss;
use crate::pool::Pool;
use crate::progress::Progress;
use crate::run::{MAX_HANDSHAKES, SHARDS};
use crate::scale_report::{self, dump, ReceiverPart, ScalePart, TallyPart};
use crate::stats::Stats;
use crate::subscriber::Shared;
use crate::target::Target;
use crate::{limits, token};

/// Runs this process's part and returns its exit code and its report: a receiver's or
/// publisher's part as one JSON line, a merge as text (JSON with `--json`).
pub(crate) async fn run(args: BenchArgs) -> Result<(i32, String), BenchError> {
    let target = args.validate()?;
    match args.role {
        ScaleRole::Receive => {
            let part = receive(&args, &target).await?;
            let code = if part.is_complete() {
                EXIT_OK
            } else {
                EXIT_PARTIAL
            };
            Ok((code, to_json(&ScalePart::Receive(part))?))
        }
        ScaleRole::Publish => {
            let part = crate::scale_publish::publish(&args, &target).await?;
            let code = if part.errors == 0 && !part.aborted {
                EXIT_OK
            } else {
                EXIT_PARTIAL
            };
            Ok((code, to_json(&ScalePart::Publish(part))?))
        }
        ScaleRole::Merge => {
            let mut parts = Vec::with_capacity(args.inputs.len());
            for path in &args.inputs {
                let text = std::fs::read_to_string(path).map_err(|e| BenchError::Output {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                let part = serde_json::from_str::<ScalePart>(text.trim()).map_err(|e| {
                    BenchError::InvalidArgs(format!("{}: not a scale part: {e}", path.display()))
                })?;
                parts.push(part);
            }
            let report = scale_report::merge(&parts);
            let out = if args.json {
                to_json(&report)?
            } else {
                report.text()
            };
            Ok((report.exit_code, out))
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, BenchError> {
    serde_json::to_string(v).map_err(|e| BenchError::Setup(format!("JSON report: {e}")))
}

/// Opens `--connections` subscribers (personal channel + shared channel each), writes the
/// ready file, holds them until SIGINT/SIGTERM or `--duration`, closes them and reports.
async fn receive(args: &BenchArgs, target: &Target) -> Result<ReceiverPart, BenchError> {
    limits::check_open_files(u64::from(args.connections))?;
    let token = token::connection_token(args)?;
    target.probe().await?;
    // Installed before any load: a SIGTERM during the connect phase is then a stop, not a kill.
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| BenchError::Setup(format!("SIGTERM handler: {e}")))?;
    let rss_before = args.server_pid.map(read_vm_rss).transpose()?;

    let progress = Progress::new();
    let stats = Arc::new(Stats::new(SHARDS));
    let channel_args = args.clone();
    let shared = Arc::new(Shared {
        url: target.ws_url(),
        token,
        channel_of: Box::new(move |i| channel_args.channel_of(i)),
        shared_channel: Some(args.channel.clone()),
        stats: stats.clone(),
        handshakes: Semaphore::new(MAX_HANDSHAKES),
        reconnect: AtomicBool::new(false),
        delta: None,
        deflate: false,
        deflated: AtomicU64::new(0),
    });
    let n = args.connections as usize;
    progress.phase(
        "connect",
        &format!(
            "opening {n} connections to {} (personal {}-{}.., shared {})",
            shared.url, args.channel, args.first_index, args.channel
        ),
        n as u64,
        false,
    );
    let (pool, opened) = Pool::open(shared, n, args.effective_connect_rate(), &progress).await;
    let established = opened.established.len() as u64;
    progress.println(&format!(
        "{established} established, {} errors in {:.2} s",
        opened.errors, opened.secs
    ));
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let rss_after = args.server_pid.map(read_vm_rss).transpose()?;
    if let Some(path) = &args.ready_file {
        let ready = serde_json::json!({
            "established": established,
            "errors": opened.errors,
            "secs": opened.secs,
        });
        std::fs::write(path, ready.to_string()).map_err(|e| BenchError::Output {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    }

    progress.phase(
        "hold",
        &format!(
            "holding {established} connections until SIGTERM (at most {} s)",
            args.duration
        ),
        args.duration,
        true,
    );
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(args.duration)) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    progress.println("closing connections");
    pool.close().await;
    progress.finish();

    let totals = stats.totals();
    Ok(ReceiverPart {
        url: args.url.clone(),
        first_index: args.first_index,
        requested: n as u64,
        established,
        errors: opened.errors,
        first_error: opened.first_error,
        connect_secs: opened.secs,
        dropped: totals.dropped,
        server_pid: args.server_pid,
        rss_before,
        rss_after,
        connect: dump(&totals.connect),
        broadcast: TallyPart {
            delivered: totals.delivered,
            duplicates: totals.duplicates,
            latency: dump(&totals.latency),
        },
        personal: TallyPart {
            delivered: totals.personal.delivered,
            duplicates: totals.personal.duplicates,
            latency: dump(&totals.personal.latency),
        },
    })
}
