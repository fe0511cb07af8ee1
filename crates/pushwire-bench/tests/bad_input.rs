//! `pushwire bench` against a server that is down, refuses connections or goes away mid-run:
//! a clear error or a partial report, and a non-zero exit code either way.

use std::time::Duration;

use clap::Parser;
use pushwire_bench::{execute, run, BenchArgs, BenchError, EXIT_PARTIAL};
use pushwire_test_support::{TestServer, API_KEY, SECRET};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn parse(url: &str, extra: &[&str]) -> BenchArgs {
    let base = ["bench", "--url", url, "--api-key", API_KEY, "--warmup", "0"];
    Cli::parse_from(base.iter().chain(extra)).bench
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_is_a_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let err = execute(parse(&url, &["--connections", "10", "--duration", "1"]))
        .await
        .expect_err("no server");
    assert!(matches!(err, BenchError::ServerDown { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(
        msg.contains("not reachable") && msg.contains("refused"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_target_needs_allow_remote() {
    let err = run(parse("http://192.0.2.1:8000", &[])).await.unwrap_err();
    assert!(matches!(err, BenchError::RemoteTarget(_)), "{err:?}");
    assert!(err.to_string().contains("--allow-remote"));
    let err = run(parse("http://127.0.0.1:1", &["--connections", "100001"]))
        .await
        .unwrap_err();
    assert!(matches!(err, BenchError::InvalidArgs(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_counted_in_a_partial_report() {
    let server = TestServer::start_with(|c| c.client.user_connection_limit = 10).await;
    let a = parse(
        &server.http_url(),
        &[
            "fanout",
            "--connections",
            "30",
            "--connect-rate",
            "0",
            "--token-hmac-secret",
            SECRET,
            "--rate",
            "10",
            "--duration",
            "1",
        ],
    );
    let report = run(a).await.expect("partial report");
    let c = &report.connections;
    assert_eq!((c.established, c.errors), (10, 20), "{c:?}");
    let first = c.first_error.as_deref().unwrap_or_default();
    assert!(
        first.contains("connection limit") || first.contains("3504"),
        "{first}"
    );
    let d = report.deliveries.as_ref().unwrap();
    assert_eq!(d.expected, report.publications.as_ref().unwrap().sent * 10);
    assert_eq!(d.lost, 0, "the 10 established connections got everything");
    assert!(!report.complete);
    assert_eq!(report.exit_code, EXIT_PARTIAL);
    assert!(report
        .problems
        .iter()
        .any(|p| p.contains("20 of 30 connections failed")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_mid_run_gives_a_partial_report() {
    let server = TestServer::start().await;
    let a = parse(
        &server.http_url(),
        &[
            "fanout",
            "--connections",
            "50",
            "--rate",
            "20",
            "--duration",
            "6",
        ],
    );
    let bench = tokio::spawn(run(a));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    server.stop().await;
    let report = tokio::time::timeout(Duration::from_secs(30), bench)
        .await
        .expect("bench ends soon after the server")
        .expect("task")
        .expect("partial report, not an error");
    assert_eq!(report.connections.established, 50);
    assert_eq!(report.connections.dropped, 50, "{:?}", report.connections);
    let p = report.publications.as_ref().unwrap();
    assert!(
        p.sent > 0 && p.sent < p.planned && p.planned == 120,
        "{p:?}"
    );
    assert!(p.aborted || p.errors > 0, "{p:?}");
    let d = report.deliveries.as_ref().unwrap();
    assert!(d.delivered > 0);
    assert_eq!(d.lost, d.expected - d.delivered.min(d.expected));
    assert!(!report.complete);
    assert_eq!(report.exit_code, EXIT_PARTIAL);
    assert!(report
        .problems
        .iter()
        .any(|p| p.contains("50 connections were lost")));
}
