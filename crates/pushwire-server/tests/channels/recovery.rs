//! Recovery end to end (docs/protocol.md: subscribe step 8, recovery): stream recovery, epoch mismatch, the
//! reject-unrecovered flag, the recovery limit, cache mode, `auto_cache_recover`, and live
//! publications merged into a recovery without gap or duplicate.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pushwire_core::config::{ChannelOptions, RecoveryMode};
use pushwire_test_support::{TestServer, API_KEY};
use serde_json::json;

/// Publishes `n` numbered publications through the API; returns the epoch.
async fn publish_n(server: &TestServer, channel: &str, n: u64) -> String {
    let mut epoch = String::new();
    for i in 1..=n {
        let r = server.publish(channel, json!({ "n": i })).await;
        epoch = r["epoch"].as_str().expect("epoch").to_owned();
    }
    epoch
}

#[tokio::test]
async fn stream_recovery_outcomes() {
    let server = TestServer::start_with(|c| {
        c.client.recovery_max_publication_limit = 3;
        c.channel.namespaces.push(ns("rec", recovering(100)));
    })
    .await;
    let ch = "rec:a";
    let epoch = publish_n(&server, ch, 5).await;
    let (mut c, _) = anon(&server).await;
    let recover = |offset: u64, epoch: &str| {
        let mut req = json!({"channel": ch, "recover": true});
        req["offset"] = json!(offset);
        req["epoch"] = json!(epoch);
        req
    };

    // Exactly the missing publications; offset is the client's.
    let r = subscribe_with(&mut c, recover(3, &epoch)).await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(r["was_recovering"], json!(true));
    assert_eq!(r["recoverable"], json!(true));
    assert_eq!(r["positioned"], json!(true));
    assert_eq!(
        (r["offset"].clone(), r["epoch"].clone()),
        (json!(3), json!(epoch))
    );
    assert_eq!(
        r["publications"],
        json!([{"data": {"n": 4}, "offset": 4}, {"data": {"n": 5}, "offset": 5}])
    );
    unsubscribe(&mut c, ch).await;

    // Already at the top: recovered, nothing to deliver.
    let r = subscribe_with(&mut c, recover(5, &epoch)).await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert!(r.get("publications").is_none(), "{r}");
    unsubscribe(&mut c, ch).await;

    // A gap of exactly the limit (3) is recovered.
    let r = subscribe_with(&mut c, recover(2, &epoch)).await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(offsets(&r["publications"]), [3, 4, 5]);
    unsubscribe(&mut c, ch).await;

    // Another epoch: not recovered (no 112), current epoch and top offset, no publications.
    let r = subscribe_with(&mut c, recover(3, "elsewhere")).await;
    assert!(r.get("recovered").is_none(), "{r}");
    assert_eq!(r["was_recovering"], json!(true));
    assert_eq!(
        (r["offset"].clone(), r["epoch"].clone()),
        (json!(5), json!(epoch))
    );
    assert!(r.get("publications").is_none(), "{r}");
    unsubscribe(&mut c, ch).await;

    // A gap above recovery_max_publication_limit (5 missed > 3): not recovered.
    let r = subscribe_with(&mut c, recover(0, &epoch)).await;
    assert!(r.get("recovered").is_none(), "{r}");
    assert_eq!(r["was_recovering"], json!(true));
    assert_eq!(
        (r["offset"].clone(), r["epoch"].clone()),
        (json!(5), json!(epoch))
    );
    assert!(r.get("publications").is_none(), "{r}");
    unsubscribe(&mut c, ch).await;

    // With flag 2 (reject unrecovered) both become error 112, and nothing stays subscribed.
    for (offset, e) in [(3, "elsewhere"), (0, epoch.as_str())] {
        let mut req = recover(offset, e);
        req["flag"] = json!(2);
        let r = subscribe_raw(&mut c, req).await;
        assert_eq!(code(&r), 112, "{r}");
    }
    // An empty epoch counts as the current one.
    let r = subscribe_with(&mut c, recover(3, "")).await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(offsets(&r["publications"]), [4, 5]);
    unsubscribe(&mut c, ch).await;
    // A position beyond the top can not be recovered.
    let r = subscribe_with(&mut c, recover(9, &epoch)).await;
    assert!(r.get("recovered").is_none(), "{r}");
    assert_eq!(r["offset"], json!(5), "{r}");
    assert!(r.get("publications").is_none(), "{r}");
    unsubscribe(&mut c, ch).await;
    // A recoverable position with flag 2 still succeeds.
    let mut req = recover(4, &epoch);
    req["flag"] = json!(3);
    let r = subscribe_with(&mut c, req).await;
    assert_eq!(offsets(&r["publications"]), [5], "{r}");
    server.stop().await;
}

#[tokio::test]
async fn positioning_and_recovery_are_granted_only_when_allowed() {
    let server = TestServer::start_with(|c| {
        let quiet = |o: ChannelOptions| ChannelOptions {
            allow_history_for_client: false,
            allow_history_for_anonymous: false,
            ..o
        };
        // History kept but not readable by clients: only the allow_* flags grant.
        c.channel
            .namespaces
            .push(ns("closed", quiet(with_history(10))));
        c.channel.namespaces.push(ns(
            "optin",
            ChannelOptions {
                allow_recovery: true,
                allow_positioning: true,
                ..quiet(with_history(10))
            },
        ));
        // History permission grants both.
        c.channel.namespaces.push(ns("readable", with_history(10)));
    })
    .await;
    for ch in ["closed:a", "optin:a", "readable:a"] {
        publish_n(&server, ch, 2).await;
    }
    let (_, _, epoch) = stored(&server, "optin:a").await;
    let (mut c, _) = anon(&server).await;

    // Nothing asked: a plain subscription everywhere.
    for ch in ["closed:a", "optin:a", "readable:a"] {
        assert_eq!(subscribe(&mut c, ch).await, json!({}), "{ch}");
        unsubscribe(&mut c, ch).await;
    }
    // Asked but not allowed: ignored, recover included.
    let ask = |ch: &str, e: &str| {
        json!({
            "channel": ch, "recoverable": true, "positioned": true,
            "recover": true, "offset": 1, "epoch": e
        })
    };
    assert_eq!(subscribe_with(&mut c, ask("closed:a", "")).await, json!({}));
    // Allowed: granted, and the recovery runs.
    for ch in ["optin:a", "readable:a"] {
        let (_, _, e) = stored(&server, ch).await;
        let r = subscribe_with(&mut c, ask(ch, &e)).await;
        assert_eq!(
            (r["recoverable"].clone(), r["positioned"].clone()),
            (json!(true), json!(true)),
            "{ch}: {r}"
        );
        assert_eq!(r["recovered"], json!(true), "{ch}: {r}");
        assert_eq!(offsets(&r["publications"]), [2], "{ch}: {r}");
        unsubscribe(&mut c, ch).await;
    }
    // Positioning alone.
    let r = subscribe_with(&mut c, json!({"channel": "optin:a", "positioned": true})).await;
    assert_eq!(
        r,
        json!({"positioned": true, "epoch": epoch, "offset": 2}),
        "{r}"
    );
    server.stop().await;
}

#[tokio::test]
async fn cache_mode_recovers_only_the_latest() {
    let cache = ChannelOptions {
        force_recovery_mode: RecoveryMode::Cache,
        ..recovering(100)
    };
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns("cache", cache.clone()));
        c.channel.namespaces.push(ns(
            "auto",
            ChannelOptions {
                auto_cache_recover: true,
                ..cache
            },
        ));
    })
    .await;
    let epoch = publish_n(&server, "cache:a", 3).await;
    let (mut c, _) = anon(&server).await;
    let r = subscribe_with(
        &mut c,
        json!({"channel": "cache:a", "recover": true, "offset": 1, "epoch": epoch}),
    )
    .await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(r["epoch"], json!(epoch));
    assert_eq!(
        r["publications"],
        json!([{"data": {"n": 3}, "offset": 3}]),
        "{r}"
    );
    unsubscribe(&mut c, "cache:a").await;
    // Already at the top: nothing.
    let r = subscribe_with(
        &mut c,
        json!({"channel": "cache:a", "recover": true, "offset": 3, "epoch": epoch}),
    )
    .await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert!(r.get("publications").is_none(), "{r}");
    unsubscribe(&mut c, "cache:a").await;
    // Another epoch: the latest publication.
    let r = subscribe_with(
        &mut c,
        json!({"channel": "cache:a", "recover": true, "offset": 3, "epoch": "elsewhere"}),
    )
    .await;
    assert_eq!(offsets(&r["publications"]), [3], "{r}");
    assert_eq!(r["epoch"], json!(epoch));
    unsubscribe(&mut c, "cache:a").await;
    // Without recover: position only.
    let r = subscribe(&mut c, "cache:a").await;
    assert!(r.get("publications").is_none(), "{r}");
    assert_eq!(r["offset"], json!(3));

    // auto_cache_recover: a plain subscribe gets the latest publication.
    publish_n(&server, "auto:a", 4).await;
    let (mut d, _) = anon(&server).await;
    let r = subscribe(&mut d, "auto:a").await;
    assert_eq!(
        r["publications"],
        json!([{"data": {"n": 4}, "offset": 4}]),
        "{r}"
    );
    assert_eq!(r["was_recovering"], json!(true), "{r}");
    // An empty channel: nothing.
    let r = subscribe(&mut d, "auto:empty").await;
    assert!(r.get("publications").is_none(), "{r}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_publications_merge_into_recovery_without_gap_or_duplicate() {
    let server = TestServer::start_with(|c| {
        // About 80 commands in a burst: keep the per-connection rate limit out of the way.
        c.client.command_rate_limit = 0;
        c.channel.namespaces.push(ns("live", recovering(10_000)));
    })
    .await;
    let ch = "live:merge";
    let (mut c, _) = anon(&server).await;
    let first = subscribe(&mut c, ch).await;
    let epoch = first["epoch"].as_str().expect("epoch").to_owned();
    let mut last = first["offset"].as_u64().unwrap_or(0);

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        let url = format!("{}/api/publish", server.http_url());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let resp = http
                    .post(&url)
                    .header("X-API-Key", API_KEY)
                    .json(&json!({"channel": ch, "data": {"n": n}}))
                    .send()
                    .await
                    .expect("publish");
                assert_eq!(resp.status().as_u16(), 200);
            }
            n
        })
    };

    let mut recovered_total = 0;
    let mut live_total = 0;
    for round in 0..40u32 {
        let (before, reply) = ordered_command(
            &mut c,
            10_000 + 2 * round,
            json!({"unsubscribe": {"channel": ch}}),
            ch,
        )
        .await;
        assert_eq!(reply["unsubscribe"], json!({}), "{reply}");
        // Everything delivered up to the unsubscribe reply continues the sequence.
        for o in before {
            assert_eq!(
                o,
                last + 1,
                "round {round}: gap or duplicate before unsubscribe"
            );
            last = o;
        }
        // Let some publications go by unseen.
        tokio::time::sleep(Duration::from_millis(2 + 2 * u64::from(round % 3))).await;
        let (stray, reply) = ordered_command(
            &mut c,
            10_001 + 2 * round,
            json!({"subscribe": {"channel": ch, "recover": true, "offset": last, "epoch": epoch}}),
            ch,
        )
        .await;
        assert!(
            stray.is_empty(),
            "round {round}: publication before the subscribe reply: {stray:?}"
        );
        let sub = &reply["subscribe"];
        assert_eq!(sub["recovered"], json!(true), "round {round}: {reply}");
        let recovered = offsets(&sub["publications"]);
        recovered_total += recovered.len();
        for o in recovered {
            assert_eq!(o, last + 1, "round {round}: gap or duplicate in recovery");
            last = o;
        }
        // Live publications follow the recovered ones.
        for _ in 0..5 {
            let p = c.next_publication(ch).await;
            let o = p["offset"].as_u64().expect("offset");
            assert_eq!(o, last + 1, "round {round}: live gap or duplicate");
            last = o;
            live_total += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let published = publisher.await.expect("publisher");
    let (before, _) =
        ordered_command(&mut c, 20_000, json!({"unsubscribe": {"channel": ch}}), ch).await;
    for o in before {
        assert_eq!(o, last + 1, "gap or duplicate at the end");
        last = o;
    }
    assert!(recovered_total > 0, "no round recovered anything");
    assert!(live_total > 0);
    assert_eq!(last, published, "every publication seen exactly once");
    server.stop().await;
}

/// Finding 4 of the adversarial probe: a recovery (or a history reply) larger than
/// `client.queue_max_size` closed the client with 3008 on every attempt, so it retried from the
/// same offset for ever. One reply may now pass the queue bound (it is never a slow consumer):
/// the 1.2 MB recovery of the probe succeeds with a 1 MB queue. A recovery beyond
/// `client.reply_max_size` answers `recovered: false` (the client moves to the top) and an
/// oversized history reply 106; the connection stays either way.
#[tokio::test]
async fn a_recovery_larger_than_the_queue_is_delivered_and_one_beyond_the_reply_limit_refused() {
    let server = TestServer::start_with(|c| {
        c.client.queue_max_size = 1024 * 1024;
        c.client.reply_max_size = 2 * 1024 * 1024;
        let mut opts = recovering(300);
        opts.allow_history_for_anonymous = true;
        opts.allow_history_for_subscriber = true;
        c.channel.namespaces.push(ns("big", opts));
    })
    .await;
    let ch = "big:a";
    let (mut c, _) = anon(&server).await;
    let first = subscribe_with(&mut c, json!({"channel": ch, "recover": true})).await;
    let epoch = first["epoch"].as_str().expect("epoch").to_owned();
    unsubscribe(&mut c, ch).await;
    // 100 x 12 KB = 1.2 MB missed: more than the 1 MB queue, within the 2 MB reply limit.
    let chunk = "y".repeat(12 * 1024);
    for i in 0..100 {
        server.publish(ch, json!({ "i": i, "pad": chunk })).await;
    }
    let r = subscribe_with(
        &mut c,
        json!({"channel": ch, "recover": true, "offset": 0, "epoch": epoch}),
    )
    .await;
    assert_eq!(r["recovered"], json!(true), "recovered");
    assert_eq!(offsets(&r["publications"]), (1..=100).collect::<Vec<u64>>());
    unsubscribe(&mut c, ch).await;
    // 100 more: 2.4 MB missed from offset 0, beyond the reply limit. Refused, never looped.
    for i in 100..200 {
        server.publish(ch, json!({ "i": i, "pad": chunk })).await;
    }
    for _ in 0..3 {
        let r = subscribe_with(
            &mut c,
            json!({"channel": ch, "recover": true, "offset": 0, "epoch": epoch}),
        )
        .await;
        assert_ne!(r["recovered"], json!(true), "not recovered");
        assert_eq!(r["was_recovering"], json!(true));
        assert_eq!(r["offset"], json!(200), "the client moves to the top");
        assert!(r["publications"].is_null(), "nothing queued");
        unsubscribe(&mut c, ch).await;
    }
    // A history read of everything is larger than the reply limit: 106, the connection stays.
    let r = c
        .command(json!({"history": {"channel": ch, "limit": -1}}))
        .await;
    assert_eq!(code(&r), 106, "{r}");
    // A small recovery still works on the same connection.
    server.publish(ch, json!({ "i": 200 })).await;
    let r = subscribe_with(
        &mut c,
        json!({"channel": ch, "recover": true, "offset": 200, "epoch": epoch}),
    )
    .await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(offsets(&r["publications"]), vec![201]);
    server.stop().await;
}
