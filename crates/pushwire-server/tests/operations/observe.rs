//! Operators' view: `/metrics` exposes what the Grafana dashboard (docs/grafana) queries, the
//! numbers move with the traffic, and a scrape during heavy fan-out neither waits for the hub
//! nor holds it up.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pushwire_core::node::PublishParams;
use pushwire_protocol::RawJson;
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::{TestServer, WsClient};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Metric names an expression refers to (`pushwire_…`, `process_…`), histogram suffixes kept.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = ["pushwire_", "process_"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        names.push(name);
    }
    names
}

#[tokio::test]
async fn dashboard_queries_only_exported_metrics() {
    let server = TestServer::start().await;
    // Traffic first, so that labelled families have samples.
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    c.command(json!({"subscribe": {"channel": "chat:d"}})).await;
    server.publish("chat:d", json!({"n": 1})).await;
    c.next_publication("chat:d").await;
    drop(c);
    let node = server.node().clone();
    pushwire_test_support::sdk::eventually("a disconnect is counted", || {
        node.metrics().disconnects.total() == 1
    })
    .await;
    let scrape = Scrape::of(&server).await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana/pushwire.json"
    );
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("json");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let mut names = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let found = metric_names(expr);
            assert!(!found.is_empty(), "no metric in {expr}");
            names.extend(found);
        }
    }
    assert!(panels.len() >= 10, "{} panels", panels.len());
    for required in [
        "pushwire_delivery_latency_seconds_bucket",
        "pushwire_slow_disconnects_total",
        "pushwire_connections",
        "pushwire_publications_total",
        "pushwire_messages_delivered_total",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "dashboard lacks {required}"
        );
    }
    for name in names {
        assert!(
            scrape.text.lines().any(|l| l
                .strip_prefix(&name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))),
            "{name} is queried by the dashboard but not exported:\n{}",
            scrape.text
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn metrics_follow_traffic() {
    let server = TestServer::start().await;
    let before = Scrape::of(&server).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    c.command(json!({"subscribe": {"channel": "chat:m"}})).await;
    server.publish("chat:m", json!({"n": 1})).await;
    c.next_publication("chat:m").await;
    let after = Scrape::of(&server).await;
    assert_eq!(after.count("pushwire_clients"), 1);
    assert_eq!(
        after.count("pushwire_subscriptions{transport=\"websocket\"}"),
        1
    );
    assert_eq!(
        after.count("pushwire_publications_total") - before.count("pushwire_publications_total"),
        1
    );
    assert!(after.count("pushwire_messages_queued_total") >= 1);
    assert!(after.count("pushwire_commands_total") >= 2);
    assert_eq!(after.count("pushwire_build_info{version=\"0.1.0\",target_os=\"linux\",target_arch=\"x86_64\",profile=\"debug\"}".replace("0.1.0", pushwire_core::node::VERSION).replace("x86_64", std::env::consts::ARCH).as_str()), 1);
    server.stop().await;
}

#[tokio::test]
#[cfg(target_os = "linux")]
async fn process_figures_from_proc() {
    let server = TestServer::start().await;
    let s = Scrape::of(&server).await;
    assert!(s.get("process_resident_memory_bytes") > 1e6);
    assert!(s.get("process_open_fds") >= 3.0);
    assert!(s.get("process_max_fds") >= s.get("process_open_fds"));
    assert!(s.get("process_cpu_seconds_total") >= 0.0);
    assert!(s.get("process_threads") >= 1.0);
    assert!(s.get("process_start_time_seconds") > 1.6e9);
    // Each WebSocket is one more descriptor.
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(WsClient::connected(&server.ws_url(), None).await.0);
    }
    let more = Scrape::of(&server).await;
    assert!(
        more.get("process_open_fds") >= s.get("process_open_fds") + 20.0,
        "fds follow connections"
    );
    server.stop().await;
}

const SUBSCRIBERS: usize = 100;
const LOAD_PUBLICATIONS: u64 = 2000;
/// A scrape (or a publish) slower than this under load counts as blocked.
const BOUND: Duration = Duration::from_millis(500);

/// Scrapes back to back while the hub fans 2000 publications out to 100 WebSocket
/// subscribers: every scrape answers within the bound, the publication counter moves between
/// scrapes, no publish call stalls, and every subscriber receives every publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_under_load_does_not_block_the_hub() {
    let server = TestServer::start().await;
    let channel = "load";
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
        c.command(json!({"subscribe": {"channel": channel}})).await;
        // Counts publication pushes in the raw frames: parsing 200 000 JSON messages in a
        // debug build would take the CPU the server needs.
        readers.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < LOAD_PUBLICATIONS {
                match c.stream().next().await {
                    Some(Ok(Message::Text(t))) => seen += t.matches("\"pub\"").count() as u64,
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            seen
        }));
    }
    let node = server.node().clone();
    let publisher = tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        for n in 0..LOAD_PUBLICATIONS {
            let t = Instant::now();
            node.publish(
                channel,
                PublishParams {
                    data: RawJson::from_json_str(&format!("{{\"n\":{n}}}")).expect("json"),
                    ..Default::default()
                },
            )
            .await
            .expect("publish");
            slowest = slowest.max(t.elapsed());
            if n % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        slowest
    });
    // The scraper runs on a thread and runtime of its own, like Prometheus would: what it
    // measures is the server's answer, not the test's own tasks.
    let url = format!("{}/metrics", server.http_url());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let done = done.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let http = reqwest::Client::new();
                let mut scrapes = Vec::new();
                let mut slowest = Duration::ZERO;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    let text = http
                        .get(&url)
                        .send()
                        .await
                        .expect("scrape")
                        .text()
                        .await
                        .expect("body");
                    slowest = slowest.max(t.elapsed());
                    scrapes.push(Scrape { text }.count("pushwire_publications_total"));
                }
                (scrapes, slowest)
            })
        })
    };
    let slowest_publish = publisher.await.expect("publisher");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (scrapes, slowest_scrape) = scraper.join().expect("scraper");
    for r in readers {
        let seen = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .expect("subscriber finished")
            .expect("reader");
        assert_eq!(seen, LOAD_PUBLICATIONS);
    }
    let last = Scrape::of(&server).await;
    println!(
        "{} scrapes during load, slowest scrape {slowest_scrape:?}, slowest publish \
         {slowest_publish:?}, publications seen by scrapes {scrapes:?}",
        scrapes.len()
    );
    assert!(scrapes.len() >= 3, "scraped during the load: {scrapes:?}");
    assert!(slowest_scrape < BOUND, "slowest scrape {slowest_scrape:?}");
    assert!(
        slowest_publish < BOUND,
        "slowest publish {slowest_publish:?}"
    );
    assert!(
        scrapes.windows(2).all(|w| w[0] <= w[1]) && scrapes.first() < scrapes.last(),
        "publications kept flowing while scraped: {scrapes:?}"
    );
    assert_eq!(last.count("pushwire_publications_total"), LOAD_PUBLICATIONS);
    assert_eq!(
        last.count("pushwire_messages_queued_total"),
        LOAD_PUBLICATIONS * SUBSCRIBERS as u64
    );
    assert_eq!(last.count("pushwire_slow_disconnects_total"), 0);
    assert!(last.count("pushwire_delivery_latency_seconds_count") >= SUBSCRIBERS as u64);
    server.stop().await;
}

/// The 2-minute soak (`scripts/soak.sh`, issue 14) against this build's binary: 1,000 stable
/// subscribers, connect and subscribe churn, 500 publications/s and history reads; passes when
/// RSS grows < 5 % after the warm-up, open files come back after churn, and the stable
/// subscribers got every acknowledged publication exactly once, in order.
#[test]
#[cfg(target_os = "linux")]
fn soak_two_minutes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = std::process::Command::new("bash")
        .arg("scripts/soak.sh")
        .current_dir(&root)
        .env("SOAK_SECONDS", "120")
        .env("PUSHWIRE_BIN", env!("CARGO_BIN_EXE_pushwire"))
        .output()
        .expect("bash scripts/soak.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "soak failed ({}): {}",
        output.status,
        stdout
            .lines()
            .filter(|l| l.starts_with("SOAK") || l.starts_with("FAIL"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(stdout.contains("SOAK PASS"), "summary line: {stdout}");
}
