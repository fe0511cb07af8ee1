//! `pushwire bench` scenarios against a real server at small scale: the numbers must add up.

use clap::Parser;
use pushwire_bench::{run, BenchArgs, BenchReport, Scenario, EXIT_OK};
use pushwire_test_support::{TestServer, API_KEY, SECRET};
use serde_json::Value;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

/// Bench options against `server`: the API key, no warm-up, plus `extra`.
fn args(server: &TestServer, extra: &[&str]) -> BenchArgs {
    let url = server.http_url();
    let base = [
        "bench",
        "--url",
        &url,
        "--api-key",
        API_KEY,
        "--warmup",
        "0",
    ];
    Cli::parse_from(base.iter().chain(extra)).bench
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_publication_once() {
    let server = TestServer::start().await;
    let html = std::env::temp_dir().join(format!("bench-{}.html", std::process::id()));
    let a = args(
        &server,
        &[
            "fanout",
            "--connections",
            "50",
            "--rate",
            "20",
            "--duration",
            "2",
            "--html",
            html.to_str().unwrap(),
        ],
    );
    let report = run(a.clone()).await.expect("run");
    let c = &report.connections;
    assert_eq!(
        (c.requested, c.established, c.errors, c.dropped),
        (50, 50, 0, 0)
    );
    let p = report.publications.as_ref().unwrap();
    assert_eq!((p.planned, p.sent, p.errors), (40, 40, 0), "{p:?}");
    let d = report.deliveries.as_ref().unwrap();
    assert_eq!(d.expected, 40 * 50);
    assert_eq!(d.delivered, d.expected, "{d:?}");
    assert_eq!((d.lost, d.duplicates, d.loss_ratio), (0, 0, 0.0));
    assert!(d.per_sec > 0.0);
    // Each delivery is a push of at least the 64-byte payload; pings add a little.
    assert!(d.frames >= 1 && d.frames <= d.delivered + 200, "{d:?}");
    assert!(
        d.bytes_per_delivery >= 64.0 && d.bytes_per_delivery < 200.0,
        "{d:?}"
    );
    let l = report.latency.as_ref().unwrap();
    assert_eq!(l.samples, d.delivered);
    assert!(l.p50_us <= l.p90_us && l.p90_us <= l.p99_us && l.p99_us <= l.p999_us);
    assert!(l.p999_us <= l.max_us && l.max_us < 5_000_000, "{l:?}");
    assert_eq!(l.buckets.iter().map(|b| b.count).sum::<u64>(), l.samples);
    assert_eq!(c.latency.samples, 50);
    assert!(report.complete, "{:?}", report.problems);
    assert_eq!(report.exit_code, EXIT_OK);
    let per_second: u64 = report.timeline.iter().map(|s| s.delivered_per_sec).sum();
    assert!(per_second <= d.delivered && !report.timeline.is_empty());
    assert!(report.timeline.iter().any(|s| s.live == 50));

    assert_json_consistent(&report);

    assert_eq!(pushwire_bench::execute(a).await.expect("execute"), EXIT_OK);
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("<svg") && page.contains("percentile curve"));
    assert!(!page.contains("<script"));
    let _ = std::fs::remove_file(html);
    server.stop().await;
}

/// A 2 KB document changing a few fields: `--delta fossil` delivers every publication
/// (rebuilt from deltas by the bench) with far fewer bytes per delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fossil_delta_cuts_bytes_per_delivery() {
    let server = TestServer::start_with(pushwire_test_support::add_delta_namespace).await;
    let mut per_delivery = Vec::new();
    for delta in [false, true] {
        let mut extra = vec![
            "fanout",
            "--connections",
            "10",
            "--rate",
            "20",
            "--duration",
            "2",
            "--channel",
            "delta:bench",
            "--document",
            "--payload-bytes",
            "2048",
        ];
        if delta {
            extra.extend(["--delta", "fossil"]);
        }
        let report = run(args(&server, &extra)).await.expect("run");
        let d = report.deliveries.as_ref().unwrap();
        assert_eq!((d.delivered, d.lost), (400, 0), "delta {delta}: {d:?}");
        per_delivery.push(d.bytes_per_delivery);
    }
    assert!(per_delivery[0] > 2000.0, "{per_delivery:?}");
    assert!(
        per_delivery[1] * 5.0 < per_delivery[0],
        "plain vs fossil bytes per delivery: {per_delivery:?}"
    );
    server.stop().await;
}

/// Every documented key is present and agrees with the struct.
fn assert_json_consistent(report: &BenchReport) {
    let v: Value = serde_json::from_str(&report.to_json()).unwrap();
    for key in [
        "schema_version",
        "scenario",
        "complete",
        "exit_code",
        "problems",
        "params",
        "machine",
        "connections",
        "publications",
        "deliveries",
        "latency",
        "reconnect",
        "memory",
        "cpu",
        "timeline",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["scenario"], "fanout");
    assert_eq!(v["params"]["connections"], 50);
    assert_eq!(v["params"]["channels"], 1);
    assert_eq!(v["params"]["rate"], 20);
    assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert!(v["machine"]["load_avg_start"].is_number());
    for key in [
        "requested",
        "established",
        "errors",
        "first_error",
        "dropped",
        "closed_slow",
        "secs",
    ] {
        assert!(v["connections"].get(key).is_some(), "connections.{key}");
    }
    // Without --server-pid only the bench's own CPU time is measured.
    assert_eq!(v["cpu"]["server_secs"], Value::Null);
    assert!(v["cpu"]["bench_secs"].is_number());
    let d = &v["deliveries"];
    assert_eq!(
        d["expected"].as_u64().unwrap(),
        v["publications"]["sent"].as_u64().unwrap()
            * v["connections"]["established"].as_u64().unwrap()
    );
    assert_eq!(
        d["lost"].as_u64().unwrap(),
        d["expected"].as_u64().unwrap() - d["delivered"].as_u64().unwrap()
    );
    let l = &v["latency"];
    for key in [
        "samples", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
    ] {
        assert!(l[key].is_u64(), "latency.{key}");
    }
    assert_eq!(l["samples"], d["delivered"]);
    assert!(l["curve"].as_array().unwrap().len() > 5);
    assert_eq!(v["reconnect"], Value::Null);
    assert_eq!(v["memory"], Value::Null);
    let t = &v["timeline"][0];
    for key in [
        "t_secs",
        "live",
        "dropped",
        "sent_per_sec",
        "delivered_per_sec",
    ] {
        assert!(t[key].is_u64(), "timeline.{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_publishes_to_each_subscriber_channel() {
    let server = TestServer::start().await;
    let a = args(
        &server,
        &[
            "channels",
            "--connections",
            "50",
            "--rate",
            "10",
            "--duration",
            "2",
        ],
    );
    let report = run(a).await.expect("run");
    assert_eq!(report.scenario, Scenario::Channels);
    assert_eq!(report.params.channels, 50);
    assert_eq!(report.connections.established, 50);
    let p = report.publications.as_ref().unwrap();
    assert_eq!((p.planned, p.sent, p.errors), (1000, 1000, 0), "{p:?}");
    let d = report.deliveries.as_ref().unwrap();
    assert_eq!(d.expected, 1000, "one subscriber per channel");
    assert_eq!((d.delivered, d.lost, d.duplicates), (1000, 0, 0), "{d:?}");
    assert!(report.complete, "{:?}", report.problems);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_storm_then_reconnect_storm() {
    let server = TestServer::start().await;
    let a = args(
        &server,
        &[
            "connect",
            "--connections",
            "100",
            "--token-hmac-secret",
            SECRET,
        ],
    );
    assert_eq!(a.effective_connect_rate(), 0, "unpaced by default");
    let report = run(a).await.expect("run");
    let c = &report.connections;
    assert_eq!((c.established, c.errors, c.dropped), (100, 0, 0), "{c:?}");
    assert!(c.per_sec > 0.0 && c.secs > 0.0);
    assert_eq!(c.latency.samples, 100);
    assert!(c.latency.p50_us > 0 && c.latency.p50_us <= c.latency.max_us);
    let r = report.reconnect.as_ref().expect("reconnect storm ran");
    assert_eq!(
        (r.expected, r.reconnected, r.errors),
        (100, 100, 0),
        "{r:?}"
    );
    assert_eq!(r.latency.samples, 100);
    assert!(r.secs > 0.0 && r.per_sec > 0.0);
    assert!(report.publications.is_none() && report.deliveries.is_none());
    assert!(report.complete, "{:?}", report.problems);

    // Anonymous connections have no user to disconnect: the storm is skipped, not failed.
    let report = run(args(&server, &["connect", "--connections", "20"]))
        .await
        .expect("run");
    assert_eq!(report.connections.established, 20);
    assert!(report.reconnect.is_none());
    assert!(report.complete, "{:?}", report.problems);
    server.stop().await;
}

/// A server that closes its subscribers as slow (3008) is named in the report, and the
/// server's CPU time over the publish phase is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_as_slow_and_server_cpu_are_reported() {
    // One publication is bigger than a whole outbox: the first one overflows every queue.
    let server = TestServer::start_with(|c| c.client.queue_max_size = 1024).await;
    // The test server runs in this process, so its CPU time is this process's.
    let pid = std::process::id().to_string();
    let a = args(
        &server,
        &[
            "fanout",
            "--connections",
            "20",
            "--rate",
            "5",
            "--duration",
            "1",
            "--payload-bytes",
            "2048",
            "--server-pid",
            &pid,
        ],
    );
    let report = run(a).await.expect("run");
    let c = &report.connections;
    assert_eq!(
        (c.established, c.dropped, c.closed_slow),
        (20, 20, 20),
        "{c:?}"
    );
    assert!(
        report.problems.iter().any(|p| p.contains("slow (3008)")),
        "{:?}",
        report.problems
    );
    assert!(!report.complete);
    let cpu = report.cpu.as_ref().expect("cpu measured");
    assert!(cpu.server_secs.is_some_and(|s| s >= 0.0), "{cpu:?}");
    assert!(cpu.bench_secs.is_some(), "{cpu:?}");
    assert!(report
        .human()
        .contains("closed by the server as slow (3008)"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_reports_server_memory() {
    let server = TestServer::start().await;
    // The test server runs in this process, so its RSS is this process's.
    let pid = std::process::id().to_string();
    let a = args(
        &server,
        &[
            "idle",
            "--connections",
            "200",
            "--duration",
            "1",
            "--server-pid",
            &pid,
        ],
    );
    let report = run(a).await.expect("run");
    assert_eq!(report.connections.established, 200);
    let m = report.memory.as_ref().expect("memory measured");
    assert!(m.rss_before > 0 && m.rss_after > 0);
    assert_eq!(m.rss_delta, m.rss_after as i64 - m.rss_before as i64);
    assert_eq!(m.bytes_per_connection, Some(m.rss_delta / 200));
    assert!(report.complete, "{:?}", report.problems);
    server.stop().await;
}
