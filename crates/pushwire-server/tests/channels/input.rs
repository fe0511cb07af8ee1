//! What channels accept, end to end (docs/protocol.md: filters, subscribe, client publish, channel names, channel options):
//! `publication_data_format`, tags filters (event types) live and in recovery, and bad channel
//! names, each time checking that what was stored before is unchanged.

use crate::common;

use std::time::Duration;

use common::*;
use pushwire_core::config::{ChannelOptions, DataFormat};
use pushwire_test_support::TestServer;
use serde_json::{json, Value};

#[tokio::test]
async fn publication_data_format_is_enforced() {
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns(
            "obj",
            ChannelOptions {
                publication_data_format: DataFormat::JsonObject,
                allow_publish_for_client: true,
                allow_publish_for_anonymous: true,
                ..with_history(10)
            },
        ));
        c.channel.namespaces.push(ns(
            "any",
            ChannelOptions {
                allow_publish_for_client: true,
                allow_publish_for_anonymous: true,
                ..with_history(10)
            },
        ));
    })
    .await;
    let (mut c, _) = anon(&server).await;
    let publish = |ch: &str, data: Value| json!({"publish": {"channel": ch, "data": data}});

    for bad in [json!([1, 2]), json!("x"), json!(5), json!(null)] {
        let r = c.command(publish("obj:a", bad.clone())).await;
        assert_eq!(code(&r), 107, "client publish {bad}: {r}");
        let body = api_publish(&server, "obj:a", bad.clone(), json!({})).await;
        assert_eq!(
            body["error"]["code"],
            json!(107),
            "API publish {bad}: {body}"
        );
    }
    let r = c.command(json!({"publish": {"channel": "obj:a"}})).await;
    assert_eq!(code(&r), 107, "client publish without data: {r}");
    assert_eq!(stored(&server, "obj:a").await.1, 0, "nothing stored");
    let r = c.command(publish("obj:a", json!({}))).await;
    assert_eq!(r["publish"], json!({}), "{r}");
    let body = api_publish(&server, "obj:a", json!({"k": [1]}), json!({})).await;
    assert_eq!(body["result"]["offset"], json!(2), "{body}");
    assert_eq!(stored(&server, "obj:a").await.0, [1, 2]);

    // Default format: any JSON, but data must be present.
    let r = c.command(json!({"publish": {"channel": "any:a"}})).await;
    assert_eq!(code(&r), 107, "{r}");
    let (status, body) = server.api("publish", json!({"channel": "any:a"})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (200, json!(107)),
        "{body}"
    );
    for ok in [json!([1, 2]), json!("x")] {
        let r = c.command(publish("any:a", ok.clone())).await;
        assert_eq!(r["publish"], json!({}), "{ok}: {r}");
    }
    assert_eq!(stored(&server, "any:a").await.0, [1, 2]);
    server.stop().await;
}

#[tokio::test]
async fn tags_filter_selects_event_types_live_and_in_recovery() {
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns(
            "ev",
            ChannelOptions {
                allow_tags_filter: true,
                ..recovering(100)
            },
        ));
    })
    .await;
    let ch = "ev:device";
    let alert = json!({"key": "type", "cmp": "eq", "val": "alert"});
    let (mut f, _) = anon(&server).await;
    let (mut all, _) = anon(&server).await;
    let first = subscribe_with(&mut f, json!({"channel": ch, "tf": alert})).await;
    let epoch = first["epoch"].as_str().expect("epoch").to_owned();
    subscribe(&mut all, ch).await;

    let tagged = |t: &str| json!({"tags": {"type": t}});
    api_publish(&server, ch, json!({"n": 1}), tagged("alert")).await;
    api_publish(&server, ch, json!({"n": 2}), tagged("state_change")).await;
    api_publish(&server, ch, json!({"n": 3}), json!({})).await;
    api_publish(&server, ch, json!({"n": 4}), tagged("alert")).await;

    let p = f.next_publication(ch).await;
    assert_eq!(
        p,
        json!({"data": {"n": 1}, "offset": 1, "tags": {"type": "alert"}})
    );
    let p = f.next_publication(ch).await;
    assert_eq!(
        p,
        json!({"data": {"n": 4}, "offset": 4, "tags": {"type": "alert"}})
    );
    assert!(f.silent_for(Duration::from_millis(100)).await);
    // Unfiltered subscribers get everything, tags included.
    let p = all.next_publication(ch).await;
    assert_eq!(p["tags"], json!({"type": "alert"}));
    let p = all.next_publication(ch).await;
    assert_eq!(p["tags"], json!({"type": "state_change"}));
    let p = all.next_publication(ch).await;
    assert!(p.get("tags").is_none(), "{p}");
    assert_eq!(all.next_publication(ch).await["offset"], json!(4));

    // History keeps the tags.
    let (_, body) = server
        .api("history", json!({"channel": ch, "limit": 2}))
        .await;
    assert_eq!(
        body["result"]["publications"],
        json!([
            {"data": {"n": 1}, "offset": 1, "tags": {"type": "alert"}},
            {"data": {"n": 2}, "offset": 2, "tags": {"type": "state_change"}}
        ]),
        "{body}"
    );

    // Missed while away: only the alerts come back in the recovery.
    unsubscribe(&mut f, ch).await;
    api_publish(&server, ch, json!({"n": 5}), tagged("state_change")).await;
    api_publish(&server, ch, json!({"n": 6}), tagged("alert")).await;
    api_publish(&server, ch, json!({"n": 7}), tagged("state_change")).await;
    let r = subscribe_with(
        &mut f,
        json!({"channel": ch, "tf": alert, "recover": true, "offset": 4, "epoch": epoch}),
    )
    .await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(
        r["publications"],
        json!([{"data": {"n": 6}, "offset": 6, "tags": {"type": "alert"}}]),
        "{r}"
    );
    api_publish(&server, ch, json!({"n": 8}), tagged("state_change")).await;
    api_publish(&server, ch, json!({"n": 9}), tagged("alert")).await;
    assert_eq!(f.next_publication(ch).await["offset"], json!(9));

    // A combined filter: alerts or anything without a type.
    let (mut g, _) = anon(&server).await;
    let tf = json!({"op": "or", "nodes": [alert, {"key": "type", "cmp": "nex"}]});
    let r = subscribe_with(
        &mut g,
        json!({"channel": ch, "tf": tf, "recover": true, "offset": 0, "epoch": epoch}),
    )
    .await;
    assert_eq!(offsets(&r["publications"]), [1, 3, 4, 6, 9], "{r}");

    // Filters are refused where not allowed, and malformed ones are refused everywhere.
    let (mut h, _) = anon(&server).await;
    let r = subscribe_raw(&mut h, json!({"channel": "chat:x", "tf": alert})).await;
    assert_eq!(code(&r), 107, "{r}");
    for bad in [
        json!({"key": "type", "cmp": "regex", "val": "a.*"}),
        json!({"cmp": "eq", "val": "alert"}),
        json!({"op": "xor", "nodes": [alert]}),
        json!({"op": "not", "nodes": []}),
        json!({"key": "level", "cmp": "gt", "val": "high"}),
    ] {
        let r = subscribe_raw(&mut h, json!({"channel": ch, "tf": bad})).await;
        assert_eq!(code(&r), 107, "{bad}: {r}");
    }
    // None of the refused subscriptions stuck.
    subscribe(&mut h, ch).await;
    subscribe(&mut h, "chat:x").await;
    server.stop().await;
}

#[tokio::test]
async fn bad_channels_change_nothing() {
    let server = TestServer::start_with(|c| c.channel.max_length = 20).await;
    let keep = "chat:keep";
    let (mut c, _) = anon(&server).await;
    subscribe(&mut c, keep).await;
    for n in 1..=2 {
        let r = c
            .command(json!({"publish": {"channel": keep, "data": {"n": n}}}))
            .await;
        assert_eq!(r["publish"], json!({}), "{r}");
    }
    let before = stored(&server, keep).await;
    assert_eq!((before.0.clone(), before.1), (vec![1, 2], 2));

    let too_long = format!("chat:{}", "k".repeat(16));
    assert_eq!(too_long.len(), 21);
    let cases: [(&str, u64); 6] = [
        ("nope:x", 102),
        ("$nope:x", 102),
        ("nope:keep", 102),
        ("chat:kéép", 107),
        ("chät", 107),
        (&too_long, 107),
    ];
    for (ch, expected) in cases {
        let requests = [
            json!({"subscribe": {"channel": ch}}),
            json!({"publish": {"channel": ch, "data": {"x": 1}}}),
            json!({"history": {"channel": ch, "limit": -1}}),
            json!({"presence": {"channel": ch}}),
        ];
        for req in requests {
            let r = c.command(req.clone()).await;
            assert_eq!(code(&r), expected, "{req}: {r}");
        }
        for method in ["publish", "history", "presence"] {
            let (status, body) = server
                .api(method, json!({"channel": ch, "data": {"x": 1}}))
                .await;
            assert_eq!(status, 200, "{method} {ch}");
            assert_eq!(
                body["error"]["code"],
                json!(expected),
                "API {method} {ch}: {body}"
            );
        }
        assert_eq!(stored(&server, keep).await, before, "after {ch}");
        let message = if expected == 102 {
            "unknown channel"
        } else {
            "bad request"
        };
        let r = subscribe_raw(&mut c, json!({ "channel": ch })).await;
        assert_eq!(
            r["error"],
            json!({"code": expected, "message": message}),
            "{r}"
        );
    }
    // Unsubscribing from a channel never subscribed succeeds.
    unsubscribe(&mut c, "chat:never").await;
    // The connection still works and the stored channel continues where it was.
    assert_eq!(
        code(&subscribe_raw(&mut c, json!({"channel": keep})).await),
        105
    );
    let max = format!("chat:{}", "k".repeat(15));
    subscribe(&mut c, &max).await;
    let r = c
        .command(json!({"publish": {"channel": keep, "data": {"n": 3}}}))
        .await;
    assert_eq!(r["publish"], json!({}), "{r}");
    let delivered: Vec<Value> = [
        c.next_publication(keep).await,
        c.next_publication(keep).await,
        c.next_publication(keep).await,
    ]
    .into_iter()
    .map(|p| p["offset"].clone())
    .collect();
    assert_eq!(delivered, [json!(1), json!(2), json!(3)]);
    server.stop().await;
}

#[tokio::test]
async fn channel_limit_comes_before_permission() {
    let server = TestServer::start_with(|c| c.client.channel_limit = 2).await;
    let (mut c, _) = anon(&server).await;
    subscribe(&mut c, "news").await;
    subscribe(&mut c, "chat:a").await;
    for ch in ["chat:b", "secure:x", "$chat:x"] {
        let r = subscribe_raw(&mut c, json!({ "channel": ch })).await;
        assert_eq!(
            r["error"],
            json!({"code": 106, "message": "limit exceeded"}),
            "{ch}: {r}"
        );
    }
    unsubscribe(&mut c, "news").await;
    subscribe(&mut c, "chat:b").await;
    server.stop().await;
}

/// Reference §3.2: the channel limit (step 2) is checked before namespace resolution (step 3).
#[tokio::test]
async fn channel_limit_comes_before_namespace_resolution() {
    let server = TestServer::start_with(|c| c.client.channel_limit = 1).await;
    let (mut c, _) = anon(&server).await;
    subscribe(&mut c, "news").await;
    let r = subscribe_raw(&mut c, json!({"channel": "nope:x"})).await;
    assert_eq!(code(&r), 106, "{r}");
    server.stop().await;
}

/// Reference §3.2: "already subscribed" (step 2) is checked before anything that depends on the
/// namespace, such as the tags filter (allowed by the namespace, then validated).
#[tokio::test]
async fn already_subscribed_comes_before_the_tags_filter() {
    let server = TestServer::start().await;
    let (mut c, _) = anon(&server).await;
    subscribe(&mut c, "tags:a").await;
    subscribe(&mut c, "chat:a").await;
    let bad = json!({"key": "type", "cmp": "regex", "val": "x"});
    let r = subscribe_raw(&mut c, json!({"channel": "tags:a", "tf": bad})).await;
    assert_eq!(code(&r), 105, "malformed filter: {r}");
    let ok = json!({"key": "type", "cmp": "eq", "val": "x"});
    let r = subscribe_raw(&mut c, json!({"channel": "chat:a", "tf": ok})).await;
    assert_eq!(code(&r), 105, "filter where not allowed: {r}");
    server.stop().await;
}
