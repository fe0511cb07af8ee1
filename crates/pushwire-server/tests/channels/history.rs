//! History end to end (docs/protocol.md: recovery, history, API methods): the client `history` command (limits,
//! `since`, `reverse`, errors), history size and TTL bounds, and the API publish options that
//! shape history: `idempotency_key`, `version`, `skip_history`.

use crate::common;

use std::time::Duration;

use common::*;
use pushwire_core::config::ChannelOptions;
use pushwire_test_support::TestServer;
use serde_json::{json, Value};

async fn history(c: &mut pushwire_test_support::WsClient, req: Value) -> Value {
    c.command(json!({ "history": req })).await
}

#[tokio::test]
async fn history_command_limits_since_and_reverse() {
    let server = TestServer::start_with(|c| {
        c.client.history_max_publication_limit = 5;
        c.channel.namespaces.push(ns("hist", with_history(100)));
    })
    .await;
    let ch = "hist:a";
    let mut epoch = String::new();
    for n in 1..=8 {
        let r = server.publish(ch, json!({ "n": n })).await;
        assert_eq!(r["offset"], json!(n), "{r}");
        epoch = r["epoch"].as_str().expect("epoch").to_owned();
    }
    let (mut c, _) = anon(&server).await;

    // limit 0 (and absent): only the position.
    let position = json!({"publications": [], "epoch": epoch, "offset": 8});
    let r = history(&mut c, json!({"channel": ch, "limit": 0})).await;
    assert_eq!(r["history"], position, "{r}");
    let r = history(&mut c, json!({ "channel": ch })).await;
    assert_eq!(r["history"], position, "{r}");

    // -1 and anything above the cap: capped at 5, oldest first.
    for limit in [-1, 100] {
        let r = history(&mut c, json!({"channel": ch, "limit": limit})).await;
        assert_eq!(offsets(&r["history"]["publications"]), [1, 2, 3, 4, 5]);
        assert_eq!(r["history"]["offset"], json!(8));
        assert_eq!(r["history"]["epoch"], json!(epoch));
    }
    let r = history(&mut c, json!({"channel": ch, "limit": 1})).await;
    assert_eq!(
        r["history"]["publications"],
        json!([{"data": {"n": 1}, "offset": 1}]),
        "{r}"
    );

    // since: strictly after the offset.
    let since = |offset: u64| json!({"offset": offset, "epoch": epoch});
    let r = history(
        &mut c,
        json!({"channel": ch, "limit": 2, "since": since(3)}),
    )
    .await;
    assert_eq!(offsets(&r["history"]["publications"]), [4, 5], "{r}");
    let r = history(
        &mut c,
        json!({"channel": ch, "limit": -1, "since": since(6)}),
    )
    .await;
    assert_eq!(offsets(&r["history"]["publications"]), [7, 8], "{r}");
    let r = history(
        &mut c,
        json!({"channel": ch, "limit": -1, "since": since(8)}),
    )
    .await;
    assert_eq!(offsets(&r["history"]["publications"]), Vec::<u64>::new());
    // since with an empty epoch is accepted.
    let r = history(
        &mut c,
        json!({"channel": ch, "limit": 2, "since": {"offset": 5}}),
    )
    .await;
    assert_eq!(offsets(&r["history"]["publications"]), [6, 7], "{r}");

    // reverse: newest first; with since, strictly before the offset.
    let r = history(&mut c, json!({"channel": ch, "limit": 3, "reverse": true})).await;
    assert_eq!(offsets(&r["history"]["publications"]), [8, 7, 6], "{r}");
    let r = history(&mut c, json!({"channel": ch, "limit": -1, "reverse": true})).await;
    assert_eq!(offsets(&r["history"]["publications"]), [8, 7, 6, 5, 4]);
    let r = history(
        &mut c,
        json!({"channel": ch, "limit": 2, "reverse": true, "since": since(6)}),
    )
    .await;
    assert_eq!(offsets(&r["history"]["publications"]), [5, 4], "{r}");

    // The API answers the same.
    let (_, body) = server
        .api("history", json!({"channel": ch, "limit": 0}))
        .await;
    assert_eq!(body["result"], position, "{body}");
    let (_, body) = server
        .api(
            "history",
            json!({"channel": ch, "limit": 2, "reverse": true, "since": since(6)}),
        )
        .await;
    assert_eq!(offsets(&body["result"]["publications"]), [5, 4], "{body}");
    let (_, body) = server
        .api(
            "history",
            json!({"channel": ch, "limit": 2, "reverse": true, "since": since(0)}),
        )
        .await;
    assert_eq!(body["error"]["code"], json!(107), "{body}");

    // Errors: reverse from offset 0 → 107; another epoch → 112; no history → 108.
    let r = history(
        &mut c,
        json!({"channel": ch, "limit": 2, "reverse": true, "since": since(0)}),
    )
    .await;
    assert_eq!(code(&r), 107, "{r}");
    let r = history(
        &mut c,
        json!({"channel": ch, "limit": 2, "since": {"offset": 3, "epoch": "not-it"}}),
    )
    .await;
    assert_eq!(code(&r), 112, "{r}");
    let r = history(&mut c, json!({"channel": "news", "limit": -1})).await;
    assert_eq!(code(&r), 108, "{r}");
    // The same through the API.
    let (_, body) = server
        .api("history", json!({"channel": "news", "limit": -1}))
        .await;
    assert_eq!(body["error"]["code"], json!(108), "{body}");
    let (_, body) = server
        .api(
            "history",
            json!({"channel": ch, "limit": 1, "since": {"offset": 1, "epoch": "not-it"}}),
        )
        .await;
    assert_eq!(body["error"]["code"], json!(112), "{body}");

    // Nothing above changed the stream.
    assert_eq!(stored(&server, ch).await, (vec![1, 2, 3, 4, 5], 8, epoch));
    server.stop().await;
}

#[tokio::test]
async fn history_size_and_ttl_bound_what_is_kept() {
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns("three", with_history(3)));
        c.channel.namespaces.push(ns(
            "brief",
            ChannelOptions {
                history_ttl: Duration::from_secs(1),
                ..recovering(10)
            },
        ));
    })
    .await;
    for n in 1..=10 {
        server.publish("three:a", json!({ "n": n })).await;
    }
    let (kept, top, _) = stored(&server, "three:a").await;
    assert_eq!((kept, top), (vec![8, 9, 10], 10));
    let (mut c, _) = anon(&server).await;
    let r = history(&mut c, json!({"channel": "three:a", "limit": -1})).await;
    assert_eq!(
        r["history"]["publications"],
        json!([
            {"data": {"n": 8}, "offset": 8},
            {"data": {"n": 9}, "offset": 9},
            {"data": {"n": 10}, "offset": 10}
        ]),
        "{r}"
    );

    server.publish("brief:a", json!({"n": 1})).await;
    server.publish("brief:a", json!({"n": 2})).await;
    let (kept, top, epoch) = stored(&server, "brief:a").await;
    assert_eq!((kept, top), (vec![1, 2], 2));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Publications expired; the position did not.
    assert_eq!(stored(&server, "brief:a").await, (vec![], 2, epoch.clone()));
    let r = history(&mut c, json!({"channel": "brief:a", "limit": -1})).await;
    assert_eq!(
        r["history"],
        json!({"publications": [], "epoch": epoch, "offset": 2}),
        "{r}"
    );
    // The expired publications can not be recovered any more.
    let r = c
        .command(json!({"subscribe": {
            "channel": "brief:a", "recover": true, "offset": 1, "epoch": epoch
        }}))
        .await;
    let sub = &r["subscribe"];
    assert!(sub.is_object() && sub.get("recovered").is_none(), "{r}");
    assert_eq!(
        (sub["offset"].clone(), sub["epoch"].clone()),
        (json!(2), json!(epoch))
    );
    assert!(sub.get("publications").is_none(), "{r}");
    let r = server.publish("brief:a", json!({"n": 3})).await;
    assert_eq!(r, json!({"offset": 3, "epoch": epoch}));
    // Closed first: the shutdown then has no close handshake to wait for.
    drop(c);
    server.stop().await;
}

#[tokio::test]
async fn api_publish_idempotency_version_and_skip_history() {
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns("hist", with_history(100)));
    })
    .await;
    let (mut c, _) = anon(&server).await;
    for ch in ["hist:idem", "hist:ver", "hist:skip"] {
        subscribe(&mut c, ch).await;
    }

    // idempotency_key: the duplicate gets the first position and is not delivered again.
    let key = json!({"idempotency_key": "k-1"});
    let first = api_publish(&server, "hist:idem", json!({"n": 1}), key.clone()).await;
    let again = api_publish(&server, "hist:idem", json!({"n": 1}), key.clone()).await;
    assert_eq!(first["result"]["offset"], json!(1), "{first}");
    assert_eq!(again, first);
    let other = api_publish(
        &server,
        "hist:idem",
        json!({"n": 2}),
        json!({"idempotency_key": "k-2"}),
    )
    .await;
    assert_eq!(other["result"]["offset"], json!(2), "{other}");
    assert_eq!(c.next_publication("hist:idem").await["offset"], json!(1));
    assert_eq!(c.next_publication("hist:idem").await["offset"], json!(2));
    assert_eq!(stored(&server, "hist:idem").await.0, [1, 2]);
    let elsewhere = api_publish(&server, "hist:idem2", json!({"n": 1}), key.clone()).await;
    assert_eq!(
        elsewhere["result"]["offset"],
        json!(1),
        "keys are per channel: {elsewhere}"
    );

    // version: an older version is suppressed (not delivered, history unchanged).
    let v2 = api_publish(&server, "hist:ver", json!({"v": 2}), json!({"version": 2})).await;
    assert_eq!(v2["result"]["offset"], json!(1), "{v2}");
    let v1 = api_publish(&server, "hist:ver", json!({"v": 1}), json!({"version": 1})).await;
    assert!(v1.get("error").is_none(), "{v1}");
    let v2b = api_publish(&server, "hist:ver", json!({"v": 2}), json!({"version": 2})).await;
    assert!(v2b.get("error").is_none(), "{v2b}");
    let v3 = api_publish(&server, "hist:ver", json!({"v": 3}), json!({"version": 3})).await;
    assert_eq!(v3["result"]["offset"], json!(2), "{v3}");
    let p = c.next_publication("hist:ver").await;
    assert_eq!(
        (p["data"].clone(), p["offset"].clone()),
        (json!({"v": 2}), json!(1))
    );
    let p = c.next_publication("hist:ver").await;
    assert_eq!(
        (p["data"].clone(), p["offset"].clone()),
        (json!({"v": 3}), json!(2))
    );
    // A new version_epoch starts the versions over.
    let fresh = api_publish(
        &server,
        "hist:ver",
        json!({"v": 1}),
        json!({"version": 1, "version_epoch": "e2"}),
    )
    .await;
    assert_eq!(fresh["result"]["offset"], json!(3), "{fresh}");
    let p = c.next_publication("hist:ver").await;
    assert_eq!(
        (p["data"].clone(), p["offset"].clone()),
        (json!({"v": 1}), json!(3))
    );
    assert_eq!(stored(&server, "hist:ver").await.0, [1, 2, 3]);

    // skip_history: delivered without an offset, not stored, the position does not move.
    let r = api_publish(&server, "hist:skip", json!({"n": 1}), json!({})).await;
    let epoch = r["result"]["epoch"].clone();
    let skipped = api_publish(
        &server,
        "hist:skip",
        json!({"s": 1}),
        json!({"skip_history": true}),
    )
    .await;
    assert!(skipped.get("error").is_none(), "{skipped}");
    let (kept, top, _) = stored(&server, "hist:skip").await;
    assert_eq!((kept, top), (vec![1], 1));
    let r = api_publish(&server, "hist:skip", json!({"n": 2}), json!({})).await;
    assert_eq!(r["result"], json!({"offset": 2, "epoch": epoch}));
    assert_eq!(c.next_publication("hist:skip").await["offset"], json!(1));
    let p = c.next_publication("hist:skip").await;
    assert_eq!(p["data"], json!({"s": 1}));
    assert!(p.get("offset").is_none(), "{p}");
    assert_eq!(c.next_publication("hist:skip").await["offset"], json!(2));
    assert!(c.silent_for(Duration::from_millis(200)).await);
    server.stop().await;
}
