//! Issue 14 item 4 with the circuit breaker on: a Redis that hangs (a private `redis-server`,
//! SIGSTOPped) costs a few command timeouts, then the shard's circuit opens and API publishes
//! answer an error at once; `/metrics` and `/health` show the open circuit; after SIGCONT a
//! trial command closes it, publishing resumes and no acknowledged publication is missing for
//! the subscriber.
//!
//! Needs `redis-server` installed (the private one) and the real Redis at 127.0.0.1:6379 is
//! not touched.

use crate::common::*;
use pushwire_test_support::stoppable::StoppableProcess;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushwire_core::config::CircuitBreakerConfig;
use pushwire_server::config::EngineKind;
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::{eventually, TestServer};
use serde_json::{json, Value};

const OPEN: &str = "pushwire_redis_circuit_open";
const REFUSED: &str = "pushwire_redis_circuit_refused_total";

/// One API publish as the publisher saw it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    n: u64,
    started: Instant,
    took: Duration,
    acked: bool,
}

async fn health(server: &TestServer) -> Value {
    reqwest::get(format!("{}/health", server.http_url()))
        .await
        .expect("/health")
        .json()
        .await
        .expect("json")
}

fn degraded_by_circuit(h: &Value) -> bool {
    h["degraded"].as_array().is_some_and(|d| {
        d.iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("redis circuit open")))
    })
}

async fn gauge(server: &TestServer, name: &str) -> f64 {
    Scrape::of(server).await.find(name).unwrap_or(-1.0)
}

/// Publishes `{"n": …}` to `hang:a` through the HTTP API every 50 ms until `stop`, recording
/// how long each answer took and whether it was acknowledged.
fn publisher(
    server: &TestServer,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<Sent>> {
    let api = format!("{}/api/publish", server.http_url());
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut sent = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let body: Value = http
                .post(&api)
                .header("X-API-Key", pushwire_test_support::API_KEY)
                .json(&json!({"channel": "hang:a", "data": {"n": n}}))
                .send()
                .await
                .expect("an answer, never a hang")
                .json()
                .await
                .expect("json");
            let ok = body["result"].is_object();
            if ok {
                acked.fetch_add(1, Ordering::Relaxed);
            } else {
                assert!(body["error"]["code"].is_u64(), "{body}");
            }
            sent.push(Sent {
                n,
                started,
                took: started.elapsed(),
                acked: ok,
            });
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    })
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

/// Breaker on (3 failures, open 1 s, command timeout 1 s): while Redis is stopped, once the
/// first commands timed out the circuit opens — `/metrics` shows it open and counts refused
/// commands, `/health` is degraded — and API publishes answer an error in a median well
/// under the command timeout (< 200 ms). After SIGCONT the circuit closes within a few
/// seconds, publishing resumes and the subscriber ends with every acknowledged publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_answers_publishes_at_once_while_redis_hangs_and_closes_after_sigcont() {
    let redis = StoppableProcess::redis().await;
    let server = TestServer::start_with(|c| {
        c.engine.kind = EngineKind::Redis;
        c.engine.redis.address = redis.redis_url().into();
        c.engine.redis.prefix = pushwire_test_support::unique("pwtest.hang.");
        c.engine.redis.reconnect_min_delay = Duration::from_millis(20);
        c.engine.redis.reconnect_max_delay = Duration::from_millis(200);
        c.engine.redis.command_timeout = Duration::from_secs(1);
        c.engine.redis.connect_timeout = Duration::from_millis(500);
        c.engine.redis.circuit_breaker = CircuitBreakerConfig {
            failures: 3,
            open_for: Duration::from_secs(1),
        };
        c.channel.namespaces.push(ns("hang", recovering(1000)));
        c.client.recovery_max_publication_limit = 1000;
    })
    .await;
    assert_eq!(gauge(&server, OPEN).await, 0.0, "closed at start");
    let ch = "hang:a";
    let (mut c, _) = anon(&server).await;
    let r = subscribe_with(&mut c, json!({"channel": ch, "recover": true})).await;
    let epoch = r["epoch"].as_str().expect("epoch").to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let publishing = publisher(&server, stop.clone(), acked.clone());
    eventually(
        "publishes are acknowledged",
        Duration::from_secs(10),
        || {
            let acked = acked.clone();
            async move { acked.load(Ordering::Relaxed) >= 10 }
        },
    )
    .await;

    redis.stop();
    let stopped_at = Instant::now();
    eventually(
        "the circuit opens while Redis hangs",
        Duration::from_secs(15),
        || async { gauge(&server, OPEN).await == 1.0 },
    )
    .await;
    let open_seen = Instant::now();
    eprintln!("circuit open {:?} after SIGSTOP", open_seen - stopped_at);
    let h = health(&server).await;
    assert!(degraded_by_circuit(&h), "/health while open: {h}");
    // Redis stays stopped a while longer: the publishes of this window meet the open circuit
    // (and its trials, one command timeout each).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let refused = Scrape::of(&server).await.count(REFUSED);
    assert!(refused > 0, "{REFUSED} counts the refused commands");
    assert_eq!(
        gauge(&server, OPEN).await,
        1.0,
        "still open while Redis hangs"
    );

    // Taken before the signal: Redis may answer before `kill` returns.
    let continued_at = Instant::now();
    redis.resume();
    eventually(
        "the circuit closes after SIGCONT",
        Duration::from_secs(15),
        || async { gauge(&server, OPEN).await == 0.0 },
    )
    .await;
    let closed_after = continued_at.elapsed();
    let acked_at_cont = acked.load(Ordering::Relaxed);
    eventually(
        "publishing resumes after SIGCONT",
        Duration::from_secs(15),
        || {
            let acked = acked.clone();
            async move { acked.load(Ordering::Relaxed) >= acked_at_cont + 10 }
        },
    )
    .await;
    let resumed_after = continued_at.elapsed();
    eventually(
        "/health no longer degraded by the circuit",
        Duration::from_secs(5),
        || async { !degraded_by_circuit(&health(&server).await) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let sent = publishing.await.expect("publisher");

    // While the circuit was open, publishes answered at once (the trials wait one command
    // timeout each; the median is a refusal).
    let open_window: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.started >= open_seen && s.started + s.took <= continued_at)
        .collect();
    let errors: Vec<Duration> = open_window
        .iter()
        .filter(|s| !s.acked)
        .map(|s| s.took)
        .collect();
    assert!(
        open_window.iter().all(|s| !s.acked),
        "nothing is acknowledged while Redis is stopped"
    );
    assert!(
        errors.len() >= 10,
        "publishes kept answering while the circuit was open: {} answers in 4 s",
        errors.len()
    );
    let median_error = median(errors.clone());
    let slowest = sent.iter().map(|s| s.took).max().expect("sent");
    eprintln!(
        "open window: {} errors, median {median_error:?}, slowest publish {slowest:?}; \
         {refused} commands refused; circuit closed {closed_after:?} and 10 more acked \
         {resumed_after:?} after SIGCONT",
        errors.len()
    );
    assert!(
        median_error < Duration::from_millis(200),
        "median error answer {median_error:?} while the circuit is open"
    );
    assert!(
        slowest < Duration::from_millis(3500),
        "a publish waited {slowest:?}: more than the command timeout allows"
    );

    // The subscriber ends with every acknowledged publication (reconnecting and recovering
    // when its node resynced it).
    let acked: Vec<u64> = sent.iter().filter(|s| s.acked).map(|s| s.n).collect();
    let last = *acked.last().expect("acked");
    let mut received = std::collections::BTreeSet::new();
    let mut offset = 0u64;
    while !received.contains(&last) {
        match tokio::time::timeout(Duration::from_secs(3), c.read_one()).await {
            Ok(Some(m)) if m["push"]["pub"].is_object() => {
                let p = &m["push"]["pub"];
                received.insert(p["data"]["n"].as_u64().expect("n"));
                offset = p["offset"].as_u64().unwrap_or(offset);
            }
            Ok(Some(m)) if m["push"]["disconnect"].is_object() || m.is_null() => break,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if !received.contains(&last) {
        let (mut again, _) = anon(&server).await;
        let r = subscribe_with(
            &mut again,
            json!({"channel": ch, "recover": true, "offset": offset, "epoch": epoch}),
        )
        .await;
        assert_eq!(r["recovered"], json!(true), "{r}");
        for p in r["publications"].as_array().cloned().unwrap_or_default() {
            received.insert(p["data"]["n"].as_u64().expect("n"));
        }
    }
    let missing: Vec<u64> = acked
        .iter()
        .filter(|n| !received.contains(n))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    server.stop().await;
}
