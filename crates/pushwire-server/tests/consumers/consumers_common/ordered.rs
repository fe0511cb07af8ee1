//! Shared scenario: events reach a real centrifuge-python subscriber in order while poison is
//! dead-lettered, and the consumer's metrics add up.

use std::time::Duration;

use pushwire_consumers::Mode;
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::sdk::{run_in, sdk_dir};
use pushwire_test_support::TestServer;
use serde_json::json;

use super::source::{body, labels, Source};
use super::{ns, wait_subscribed, wait_until};

/// Events in the ordered scenario.
const N: u64 = 40;
/// The poison goes in after this event.
const POISON_AFTER: u64 = 10;

/// 40 events written to `source` reach a centrifuge-python subscriber in order, exactly once
/// (`consume_ordered.py`: consecutive offsets, nothing after the last); the source's poison,
/// written after event 10, is dead-lettered ([`Source::assert_dead_lettered`]) while later
/// events still flow; in route mode every publication carries its event's `type` as a tag;
/// the metrics count 40 published, the poison dead-lettered, everything received, no
/// duplicates, and the lag drops to 0.
pub async fn events_in_order_and_poison_dead_lettered<S: Source>(source: &S, mode: Mode) {
    let (config, channel) = source.consumer("ordered", S::ADDR, "chat", mode);
    let labels = labels(&config);
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;
    source.wait_ready().await;

    let (dir, count) = (sdk_dir(), N.to_string());
    let python = dir.join(".venv/bin/python");
    let args = ["python/consume_ordered.py", &channel, &count, "40"];
    let sdk = run_in(&python, &dir, &args, &server);
    let produce_all = async {
        wait_subscribed(&channel, |b| server.api("presence_stats", b)).await;
        let mut poison = None;
        for n in 1..=N {
            source
                .produce(&body(mode, &channel, n), &format!("{channel}-{n}"))
                .await;
            if n == POISON_AFTER {
                poison = Some(source.produce_poison().await);
            }
        }
        poison.expect("the poison was written")
    };
    let (run, poison) = tokio::join!(sdk, produce_all);
    assert_eq!(
        ns(&run.result()),
        (1..=N).collect::<Vec<_>>(),
        "events in order"
    );
    source.assert_dead_lettered(poison).await;

    if mode == Mode::Route {
        let (_, h) = server
            .api("history", json!({"channel": channel, "limit": -1}))
            .await;
        let pubs = h["result"]["publications"].as_array().expect("history");
        assert_eq!(pubs.len() as u64, N, "{h}");
        for p in pubs {
            assert_eq!(
                p["tags"]["type"], p["data"]["type"],
                "tagged with its type: {p}"
            );
        }
    }

    let lag = format!("pushwire_consumer_lag{labels}");
    wait_until("the lag drops to 0", Duration::from_secs(10), || async {
        Scrape::of(&server).await.find(&lag) == Some(0.0)
    })
    .await;
    let scrape = Scrape::of(&server).await;
    let metric = |m: &str| scrape.count(&format!("pushwire_consumer_{m}{labels}"));
    assert_eq!(metric("published_total"), N);
    assert_eq!(metric("dead_lettered_total"), S::POISON);
    assert_eq!(metric("received_total"), N + S::POISON);
    assert_eq!(metric("duplicates_total"), 0);
    server.stop().await;
    source.cleanup().await;
}
