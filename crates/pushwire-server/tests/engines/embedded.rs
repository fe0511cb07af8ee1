//! The embedded engine end to end, on the real `pushwire serve` binary: publications made
//! through the HTTP API while the node is `kill -9`ed at a random moment are all in history
//! after a restart, with the offset and epoch the API acknowledged; centrifuge-python clients
//! that were subscribed recover exactly what they missed; after a crash under
//! `fsync = "interval"` the streams get new epochs and a client is told it can not recover; a second process on the same data
//! directory, and a truncated data file, stop the start with an error naming the file. The
//! admin page's numbers name the engine and its disk use.
//!
//! Sized for a 2-core machine: 2,000 publications into 20 channels (the benchmark
//! scenario is 10,000 into 100), published by 8 concurrent HTTP workers, fsync per publish.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pushwire_core::config::NamespaceConfig;
use pushwire_engine_embedded::{EmbeddedConfig, FsyncPolicy};
use pushwire_server::config::EngineKind;
use pushwire_server::ServerConfig;
use pushwire_test_support::node_process::{free_port, NodeProcess};
use pushwire_test_support::sdk_live::LiveScript;
use pushwire_test_support::{test_config, API_KEY};
use serde_json::{json, Value};

const PUSHWIRE: &str = env!("CARGO_BIN_EXE_pushwire");
const PUBLICATIONS: usize = 2_000;
const CHANNELS: usize = 20;
const WORKERS: usize = 8;
const T: Duration = Duration::from_secs(20);

/// A temporary data directory, removed on drop.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> DataDir {
        DataDir(std::env::temp_dir().join(format!("pw-e2e-embedded-{}", uuid::Uuid::new_v4())))
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test config on the embedded engine in `dir`, with a `durable:` namespace whose history
/// holds every publication of the test.
fn config(dir: &Path) -> ServerConfig {
    let mut c = test_config();
    c.engine.kind = EngineKind::Embedded;
    c.engine.embedded = EmbeddedConfig {
        fsync: FsyncPolicy::Always,
        ..EmbeddedConfig::at(dir.to_string_lossy())
    };
    let chat = c
        .channel
        .namespaces
        .iter()
        .find(|n| n.name == "chat")
        .expect("the test config has a chat namespace")
        .options
        .clone();
    let mut options = chat;
    options.history_size = 1_000;
    options.history_ttl = Duration::from_secs(3600);
    c.channel.namespaces.push(NamespaceConfig {
        name: "durable".into(),
        options,
    });
    c.log.level = "info".into();
    c.admin.enabled = true;
    c.admin.insecure = true;
    c
}

fn channel(i: usize) -> String {
    format!("durable:e2e-{}", i % CHANNELS)
}

/// A random number in `lo..hi` (the test only needs a different moment per run).
fn random_in(lo: usize, hi: usize) -> usize {
    let b = uuid::Uuid::new_v4().as_u128();
    lo + (b % (hi - lo) as u128) as usize
}

/// What the API acknowledged: publication number → (offset, epoch).
type Acked = Arc<Mutex<HashMap<usize, (u64, String)>>>;

/// Publishes `n` (with idempotency key `n-<n>`) until the API acknowledges it: a publish that
/// failed because the node was down is retried, and the key makes a retry of a publication
/// that was stored before the crash answer its original position.
async fn publish_until_acked(http: &reqwest::Client, base: &str, n: usize) -> (u64, String) {
    loop {
        let sent = http
            .post(format!("{base}/api/publish"))
            .header("X-API-Key", API_KEY)
            .timeout(Duration::from_secs(3))
            .json(&json!({
                "channel": channel(n),
                "data": {"n": n},
                "idempotency_key": format!("n-{n}"),
            }))
            .send()
            .await;
        if let Ok(resp) = sent
            && let Ok(body) = resp.json::<Value>().await
        {
            let r = &body["result"];
            if let (Some(offset), Some(epoch)) = (r["offset"].as_u64(), r["epoch"].as_str()) {
                return (offset, epoch.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// History of `ch`: (epoch, offset → n).
async fn history(node: &NodeProcess, ch: &str) -> (String, BTreeMap<u64, usize>) {
    let (status, body) = node
        .api("history", json!({"channel": ch, "limit": 1000}))
        .await;
    assert_eq!(status, 200, "{body}");
    let r = &body["result"];
    let pubs = r["publications"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let offset = p["offset"].as_u64().unwrap();
                    (offset, p["data"]["n"].as_u64().unwrap() as usize)
                })
                .collect()
        })
        .unwrap_or_default();
    (r["epoch"].as_str().unwrap_or_default().to_owned(), pubs)
}

#[tokio::test]
async fn every_acknowledged_publication_survives_kill_9_and_subscribers_recover_what_they_missed() {
    let dir = DataDir::new();
    let mut node = NodeProcess::start(PUSHWIRE, config(&dir.0)).await;
    let watched = [channel(0), channel(1)];
    let mut clients = Vec::new();
    for ch in &watched {
        let mut client = LiveScript::python(
            &["python/cluster_user.py", &node.ws_url(), "-", ch, "120"],
            &node.http_url(),
        );
        client
            .json("subscribed", T, |v| v["event"] == "subscribed")
            .await;
        clients.push(client);
    }

    let acked: Acked = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let base = node.http_url();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (acked, count, next, base) = (acked.clone(), count.clone(), next.clone(), base.clone());
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= PUBLICATIONS {
                    return;
                }
                let position = publish_until_acked(&http, &base, n).await;
                acked.lock().insert(n, position);
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Crash the node once a random share of the publications is acknowledged.
    let crash_at = random_in(PUBLICATIONS / 8, PUBLICATIONS * 3 / 4);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Relaxed) < crash_at {
        assert!(
            tokio::time::Instant::now() < deadline,
            "publishing stalled before the crash"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    node.kill().await;
    let acked_before_crash = count.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.restart().await;
    for w in workers {
        tokio::time::timeout(Duration::from_secs(180), w)
            .await
            .expect("publishing finished after the restart")
            .unwrap();
    }
    println!(
        "killed after {acked_before_crash} of {PUBLICATIONS} acknowledgements (target {crash_at})"
    );

    // Every acknowledged publication is in history with its offset and epoch; every stream
    // kept its epoch (fsync per publish: nothing delivered was lost); each number is stored
    // once (the idempotency keys held across the crash).
    let acked = acked.lock().clone();
    assert_eq!(acked.len(), PUBLICATIONS);
    let mut epochs = HashMap::new();
    let mut stored = 0;
    for c in 0..CHANNELS {
        let ch = channel(c);
        let (epoch, pubs) = history(&node, &ch).await;
        let offsets: Vec<u64> = pubs.keys().copied().collect();
        assert_eq!(
            offsets,
            (1..=pubs.len() as u64).collect::<Vec<_>>(),
            "{ch}: consecutive offsets from 1"
        );
        let mut numbers: Vec<usize> = pubs.values().copied().collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(
            numbers.len(),
            pubs.len(),
            "{ch}: every publication stored once"
        );
        stored += pubs.len();
        epochs.insert(ch, (epoch, pubs));
    }
    assert_eq!(stored, PUBLICATIONS, "nothing lost, nothing duplicated");
    for (n, (offset, epoch)) in &acked {
        let (stream_epoch, pubs) = &epochs[&channel(*n)];
        assert_eq!(
            epoch, stream_epoch,
            "publication {n}: acknowledged epoch is the stream's"
        );
        assert_eq!(
            pubs.get(offset),
            Some(n),
            "publication {n}: at its acknowledged offset"
        );
    }

    // Each subscriber reconnected by itself and got every publication of its channel exactly
    // once, in offset order: live before the crash, recovered after it, live again.
    for (ch, client) in watched.iter().zip(clients.iter_mut()) {
        let (_, expected) = &epochs[ch];
        let top = *expected.keys().last().unwrap();
        let mut got: Vec<(u64, usize)> = Vec::new();
        let mut recovered = Vec::new();
        while got.last().is_none_or(|(o, _)| *o < top) {
            let v = client
                .json("publication or resubscribe", T, |v| {
                    v["event"] == "publication" || v["event"] == "subscribed"
                })
                .await;
            if v["event"] == "subscribed" {
                recovered.push(v["recovered"] == json!(true));
                continue;
            }
            got.push((
                v["offset"].as_u64().unwrap(),
                v["data"]["n"].as_u64().unwrap() as usize,
            ));
        }
        assert_eq!(
            got,
            expected.iter().map(|(o, n)| (*o, *n)).collect::<Vec<_>>(),
            "{ch}: the subscriber saw each publication once, in order"
        );
        assert_eq!(
            recovered,
            vec![true],
            "{ch}: one resubscribe after the crash, recovered"
        );
    }

    let metrics = reqwest::get(format!("{}/metrics", node.http_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "pushwire_embedded_publications_total",
        "pushwire_embedded_publish_errors_total",
        "pushwire_embedded_disk_bytes",
        "pushwire_embedded_streams",
    ] {
        assert!(
            metrics.contains(&format!("\n{family} ")),
            "{family} in /metrics"
        );
    }
    let stats: Value = reqwest::get(format!("{}/admin/api/stats", node.http_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["engine"], "embedded", "{stats}");
    assert!(stats["engine_disk_bytes"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        node.log().contains("the previous run did not stop cleanly"),
        "the restart noticed the crash"
    );
    drop(clients);
}

/// Runs `pushwire serve` on `config` and expects it to stop at start; returns its output.
async fn failed_start(config: &ServerConfig) -> String {
    let file = std::env::temp_dir().join(format!("pw-e2e-embedded-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_string(config).unwrap()).unwrap();
    let out = tokio::time::timeout(
        T,
        tokio::process::Command::new(PUSHWIRE)
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the node stops at start")
    .unwrap();
    let _ = std::fs::remove_file(&file);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "the node must not start:\n{text}");
    text
}

#[tokio::test]
async fn a_second_process_and_a_truncated_file_stop_the_start_naming_the_file() {
    let dir = DataDir::new();
    let mut node = NodeProcess::start(PUSHWIRE, config(&dir.0)).await;
    for n in 0..50 {
        let (status, body) = node
            .api("publish", json!({"channel": "durable:x", "data": {"n": n}}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let file = pushwire_engine_embedded::data_file(&dir.0);
    let shown = file.display().to_string();

    let mut second = config(&dir.0);
    second.http_server.port = free_port();
    let out = failed_start(&second).await;
    assert!(out.contains(&shown) && out.contains("locked"), "{out}");

    node.kill().await;
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let out = failed_start(&second).await;
    assert!(
        out.contains(&shown) && out.contains("corrupted or truncated"),
        "{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
}

#[tokio::test]
async fn after_a_crash_under_interval_streams_get_new_epochs_and_clients_do_not_recover() {
    let dir = DataDir::new();
    let mut c = config(&dir.0);
    c.engine.embedded.fsync = FsyncPolicy::Interval;
    let mut node = NodeProcess::start(PUSHWIRE, c).await;
    let ch = "durable:interval";
    let mut client = LiveScript::python(
        &["python/cluster_user.py", &node.ws_url(), "-", ch, "60"],
        &node.http_url(),
    );
    client
        .json("subscribed", T, |v| v["event"] == "subscribed")
        .await;
    for n in 1..=5 {
        let (status, body) = node
            .api("publish", json!({"channel": ch, "data": {"n": n}}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (epoch, _) = history(&node, ch).await;
    for n in 1..=5u64 {
        let p = client
            .json("publication", T, |v| v["event"] == "publication")
            .await;
        assert_eq!(p["offset"], json!(n));
    }
    // Past one group commit (100 ms) everything is durable; the crash still renews the epoch,
    // since the node can not know what the last interval lost.
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.kill().await;
    node.restart().await;
    let (renewed, pubs) = history(&node, ch).await;
    assert_ne!(renewed, epoch, "a crash under interval renews the epoch");
    assert_eq!(pubs.len(), 5, "what was made durable is kept");
    let again = client
        .json("resubscribe", T, |v| v["event"] == "subscribed")
        .await;
    assert_eq!(again["recovered"], json!(false), "{again}");
    assert!(node.log().contains("renewed_epochs=1"), "{}", node.log());
}
