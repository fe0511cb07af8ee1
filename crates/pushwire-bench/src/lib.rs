//! `pushwire bench`: a load generator for a pushwire (Centrifugo protocol v2) server.
//!
//! Scenarios ([`Scenario`]): `fanout` (N subscribers on one channel, R publications/s),
//! `channels` (N subscribers on N channels, each published to), `connect` (connection storm,
//! then a reconnect storm triggered by the server API) and `idle` (server memory per idle
//! subscribed connection, `--personal` for a channel each) and `floor` (no server: the
//! kernel's cost of a fan-out round of loopback writes, plain and io_uring) and `scale` (one
//! process's part of a cluster scale run: receiver, publisher of one phase, or the merge of
//! their reports). Publications carry their send time; each delivery's latency goes
//! into sharded HDR histograms merged at the end. The report ([`BenchReport`]) prints as text
//! or JSON and renders as a self-contained HTML page; its `exit_code` is non-zero when
//! anything was refused, lost or failed.
//!
//! Layout:
//! - [`args`][]: [`BenchArgs`], the options and their hard caps; `target`: the URL, the
//!   loopback rule, the reachability probe; `token`: the connection token.
//! - `run`: [`run`], one run; `pool`: the connection tasks; `subscriber`: one connection;
//!   `publisher`: the HTTP API publisher; `api`: one-off API calls; `wire`: the client side
//!   of the JSON protocol; `pace`: fixed-rate scheduling.
//! - `seq`, `stats`: duplicate detection and sharded statistics; `timeline`: per-second
//!   samples; `progress`: the progress bar.
//! - `floor`: the `floor` scenario, self-contained (its own sink and writer threads).
//! - `scale`: the `scale` scenario's receiver and dispatch; `scale_publish`: its publishing
//!   phases; `scale_report`: its per-process parts and their merge.
//! - `memory`, `limits`, `machine`: `/proc` readers.
//! - [`report`][]: [`BenchReport`] (JSON schema); `text`, `html`, `svg`: its renderings.
//! - [`error`][]: [`BenchError`] and the exit codes.

// Not in [workspace.lints]: the integration-test binaries would flag every `pub` helper.
#![warn(unreachable_pub)]

mod api;
pub mod args;
mod cpu;
pub mod error;
mod floor;
mod html;
mod limits;
mod machine;
mod memory;
mod pace;
mod pool;
mod progress;
mod publisher;
pub mod report;
mod run;
mod scale;
mod scale_publish;
mod scale_report;
mod seq;
mod stats;
mod subscriber;
mod svg;
mod target;
mod text;
mod timeline;
mod token;
mod wire;

pub use args::{BenchArgs, ScalePhase, ScaleRole, Scenario};
pub use error::{BenchError, EXIT_ERROR, EXIT_OK, EXIT_PARTIAL};
pub use report::BenchReport;
pub use run::run;
pub use timeline::Sample;

/// One part of the `scale` scenario (`--role`): returns the exit code ([`EXIT_OK`] or
/// [`EXIT_PARTIAL`]) and what [`execute`] prints: a receiver's or publisher's part as one JSON
/// line, or the merge of parts (`--inputs`) as text, JSON with `--json`. A receiver holds its
/// connections until SIGINT/SIGTERM or `--duration`. Fails as [`run`] does, and on an
/// unreadable or malformed `--inputs` file.
pub async fn run_scale(args: BenchArgs) -> Result<(i32, String), BenchError> {
    if args.scenario != Scenario::Scale {
        return Err(BenchError::InvalidArgs(
            "run_scale needs the scale scenario".into(),
        ));
    }
    scale::run(args).await
}

/// `pushwire bench` end to end: runs, prints the report to stdout (JSON with `--json`),
/// writes the HTML report with `--html`, and returns the process exit code
/// ([`EXIT_OK`] or [`EXIT_PARTIAL`]). An `Err` means no report could be made
/// (exit with [`EXIT_ERROR`]).
pub async fn execute(args: BenchArgs) -> Result<i32, BenchError> {
    if args.scenario == Scenario::Scale {
        let (code, out) = run_scale(args).await?;
        println!("{}", out.trim_end());
        return Ok(code);
    }
    let (json, html) = (args.json, args.html.clone());
    let report = run(args).await?;
    report.print(json);
    if let Some(path) = html {
        std::fs::write(&path, report.html()).map_err(|e| BenchError::Output {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        eprintln!("bench: HTML report written to {}", path.display());
    }
    Ok(report.exit_code)
}
