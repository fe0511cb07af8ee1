//! Channel permissions end to end over WebSocket (docs/protocol.md: subscribe, channel names, permissions): private `$`
//! channels and subscription tokens, user-limited `#` channels, subscribe/publish/history/
//! presence flags for clients, subscribers and anonymous users, `channel_regex`.

use crate::common;

use std::time::Duration;

use common::*;
use pushwire_core::config::ChannelOptions;
use pushwire_test_support::{now, token, TestServer};
use serde_json::json;

#[tokio::test]
async fn private_channel_needs_a_subscription_token() {
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns(
            "priv",
            ChannelOptions {
                presence: true,
                allow_presence_for_subscriber: true,
                allow_publish_for_subscriber: true,
                ..open()
            },
        ));
    })
    .await;
    let ch = "$priv:room";
    let (mut c, id) = user(&server, "u1", None).await;

    // No token: 103 even though the namespace lets clients subscribe.
    let r = subscribe_raw(&mut c, json!({"channel": ch})).await;
    assert_eq!(code(&r), 103, "{r}");
    // Bad signature: 103.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "u1", "channel": ch}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret"),
    )
    .expect("encode");
    let r = subscribe_raw(&mut c, json!({"channel": ch, "token": forged})).await;
    assert_eq!(code(&r), 103, "{r}");
    // Expired token: 109.
    let expired = token(json!({"sub": "u1", "channel": ch, "exp": now() - 10}));
    let r = subscribe_raw(&mut c, json!({"channel": ch, "token": expired})).await;
    assert_eq!(code(&r), 109, "{r}");

    // expire_at already in the past: 110.
    let gone =
        token(json!({"sub": "u1", "channel": ch, "exp": now() + 600, "expire_at": now() - 10}));
    let r = subscribe_raw(&mut c, json!({"channel": ch, "token": gone})).await;
    assert_eq!(code(&r), 110, "{r}");

    // A valid token: subscribed, with expiry and its info as chan_info in presence.
    let t = token(json!({
        "sub": "u1", "channel": ch, "exp": now() + 600, "info": {"role": "admin"}
    }));
    let result = subscribe_with(&mut c, json!({"channel": ch, "token": t})).await;
    assert_eq!(result["expires"], json!(true), "{result}");
    let ttl = result["ttl"].as_u64().expect("ttl");
    assert!((595..=600).contains(&ttl), "ttl {ttl}");
    let r = c.command(json!({"presence": {"channel": ch}})).await;
    assert_eq!(
        r["presence"],
        json!({"presence": {
            id.clone(): {"user": "u1", "client": id, "chan_info": {"role": "admin"}}
        }}),
        "{r}"
    );

    // Its publications carry the channel info too.
    let r = c
        .command(json!({"publish": {"channel": ch, "data": {"x": 1}}}))
        .await;
    assert_eq!(r["publish"], json!({}), "{r}");
    let p = c.next_publication(ch).await;
    assert_eq!(
        p["info"],
        json!({"user": "u1", "client": id, "chan_info": {"role": "admin"}})
    );

    // A token for another channel closes the connection with 3500.
    let (mut other, _) = user(&server, "u1", None).await;
    let t = token(json!({"sub": "u1", "channel": "$priv:other"}));
    other
        .send_text(&json!({"id": 1, "subscribe": {"channel": ch, "token": t}}).to_string())
        .await;
    assert_eq!(other.expect_close().await, (3500, "invalid token".into()));
    // So does a token bound to another client.
    let (mut other, _) = user(&server, "u1", None).await;
    let t = token(json!({"sub": "u1", "channel": ch, "client": id}));
    other
        .send_text(&json!({"id": 1, "subscribe": {"channel": ch, "token": t}}).to_string())
        .await;
    assert_eq!(other.expect_close().await, (3500, "invalid token".into()));
    // And a token for another user.
    let (mut other, _) = user(&server, "u2", None).await;
    let t = token(json!({"sub": "u1", "channel": ch}));
    other
        .send_text(&json!({"id": 1, "subscribe": {"channel": ch, "token": t}}).to_string())
        .await;
    assert_eq!(other.expect_close().await, (3500, "invalid token".into()));
    server.stop().await;
}

#[tokio::test]
async fn user_limited_channel_admits_listed_users_only() {
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns(
            "personal",
            ChannelOptions {
                allow_user_limited_channels: true,
                ..open()
            },
        ));
    })
    .await;
    let ch = "personal:dialog#42,43";
    for u in ["42", "43"] {
        let (mut c, _) = user(&server, u, None).await;
        subscribe(&mut c, ch).await;
    }
    // Not listed: 103, although the namespace lets clients subscribe to other channels.
    let (mut seven, _) = user(&server, "7", None).await;
    let r = subscribe_raw(&mut seven, json!({"channel": ch})).await;
    assert_eq!(code(&r), 103, "{r}");
    subscribe(&mut seven, "personal:open").await;
    let (mut a, _) = anon(&server).await;
    let r = subscribe_raw(&mut a, json!({"channel": ch})).await;
    assert_eq!(
        r["error"],
        json!({"code": 103, "message": "permission denied"}),
        "{r}"
    );
    // Private and user-limited: the token requirement wins, even for a listed user.
    let (mut u42, _) = user(&server, "42", None).await;
    let r = subscribe_raw(&mut u42, json!({"channel": "$personal:dialog#42,43"})).await;
    assert_eq!(code(&r), 103, "{r}");
    // `#` means nothing where user-limited channels are not enabled.
    subscribe(&mut seven, "chat:dialog#42,43").await;
    server.stop().await;
}

#[tokio::test]
async fn a_subscription_token_is_enough_anywhere() {
    let server = TestServer::start().await;
    // `secure:` allows nothing without a token.
    let (mut u, _) = user(&server, "u1", None).await;
    let r = subscribe_raw(&mut u, json!({"channel": "secure:x"})).await;
    assert_eq!(code(&r), 103, "{r}");
    for ch in ["secure:x", "$secure:y"] {
        let t = token(json!({"sub": "u1", "channel": ch}));
        let result = subscribe_with(&mut u, json!({"channel": ch, "token": t})).await;
        assert_eq!(result, json!({}), "{ch}");
    }
    // An anonymous connection uses an empty `sub`.
    let (mut a, _) = anon(&server).await;
    let t = token(json!({"sub": "", "channel": "$secure:y", "data": {"welcome": 1}}));
    let result = subscribe_with(&mut a, json!({"channel": "$secure:y", "token": t})).await;
    assert_eq!(result, json!({"data": {"welcome": 1}}));
    server.stop().await;
}

#[tokio::test]
async fn subscribe_for_client_without_anonymous() {
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns(
            "members",
            ChannelOptions {
                allow_subscribe_for_client: true,
                ..Default::default()
            },
        ));
        c.channel.namespaces.push(ns(
            "re",
            ChannelOptions {
                channel_regex: "^[a-z]+$".into(),
                ..open()
            },
        ));
    })
    .await;
    let (mut u, _) = user(&server, "u1", None).await;
    subscribe(&mut u, "members:lobby").await;
    let (mut a, _) = anon(&server).await;
    let r = subscribe_raw(&mut a, json!({"channel": "members:lobby"})).await;
    assert_eq!(code(&r), 103, "{r}");

    // channel_regex: the name after the namespace must match.
    subscribe(&mut a, "re:abc").await;
    for bad in ["re:ABC", "re:abc1", "re:"] {
        let r = subscribe_raw(&mut a, json!({"channel": bad})).await;
        assert_eq!(code(&r), 107, "{bad}: {r}");
    }
    server.stop().await;
}

#[tokio::test]
async fn publish_permissions() {
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns(
            "psub",
            ChannelOptions {
                allow_publish_for_subscriber: true,
                ..open()
            },
        ));
        c.channel.namespaces.push(ns(
            "pcli",
            ChannelOptions {
                allow_publish_for_client: true,
                ..open()
            },
        ));
        c.channel.namespaces.push(ns(
            "panon",
            ChannelOptions {
                allow_publish_for_client: true,
                allow_publish_for_anonymous: true,
                ..open()
            },
        ));
    })
    .await;
    let publish = |ch: &str| json!({"publish": {"channel": ch, "data": {"x": 1}}});
    let (mut u, _) = user(&server, "u1", None).await;
    let (mut a, _) = anon(&server).await;

    // Subscriber-only: 103 before subscribing, ok after (and the publication is delivered).
    let r = u.command(publish("psub:1")).await;
    assert_eq!(code(&r), 103, "{r}");
    subscribe(&mut u, "psub:1").await;
    let r = u.command(publish("psub:1")).await;
    assert_eq!(r["publish"], json!({}), "{r}");
    let p = u.next_publication("psub:1").await;
    assert_eq!(p["data"], json!({"x": 1}));
    assert_eq!(p["info"]["user"], json!("u1"));
    // Anonymous subscriber without allow_publish_for_anonymous: 103.
    subscribe(&mut a, "psub:1").await;
    let r = a.command(publish("psub:1")).await;
    assert_eq!(code(&r), 103, "{r}");

    // For clients: no subscription needed, but anonymous users still need their flag.
    let r = u.command(publish("pcli:1")).await;
    assert_eq!(r["publish"], json!({}), "{r}");
    let r = a.command(publish("pcli:1")).await;
    assert_eq!(code(&r), 103, "{r}");
    let r = a.command(publish("panon:1")).await;
    assert_eq!(r["publish"], json!({}), "{r}");
    server.stop().await;
}

#[tokio::test]
async fn history_and_presence_permissions() {
    let both = |sub: bool, cli: bool, anon: bool| ChannelOptions {
        history_size: 10,
        history_ttl: Duration::from_secs(300),
        presence: true,
        allow_history_for_subscriber: sub,
        allow_presence_for_subscriber: sub,
        allow_history_for_client: cli,
        allow_presence_for_client: cli,
        allow_history_for_anonymous: anon,
        allow_presence_for_anonymous: anon,
        ..open()
    };
    let server = TestServer::start_with(|c| {
        c.channel
            .namespaces
            .push(ns("hsub", both(true, false, false)));
        c.channel
            .namespaces
            .push(ns("hcli", both(false, true, false)));
        c.channel
            .namespaces
            .push(ns("hanon", both(false, true, true)));
        c.channel
            .namespaces
            .push(ns("hsuba", both(true, false, true)));
        c.channel
            .namespaces
            .push(ns("hnone", both(false, false, true)));
    })
    .await;
    let (mut u, _) = user(&server, "u1", None).await;
    let (mut a, _) = anon(&server).await;
    let calls = |ch: &str| {
        [
            json!({"history": {"channel": ch, "limit": 0}}),
            json!({"presence": {"channel": ch}}),
            json!({"presence_stats": {"channel": ch}}),
        ]
    };
    // (client is authenticated, subscribes first, channel, expected code or 0 for ok)
    let cases = [
        (true, false, "hsub:1", 103),
        (true, true, "hsub:1", 0),
        (false, true, "hsub:2", 103),
        (false, true, "hsuba:1", 0),
        (false, false, "hsuba:2", 103),
        (true, false, "hcli:1", 0),
        (false, false, "hcli:2", 103),
        (false, true, "hcli:3", 103),
        (false, false, "hanon:1", 0),
        (true, true, "hnone:1", 103),
        (false, true, "hnone:2", 103),
    ];
    for (authenticated, subscribed, ch, expected) in cases {
        let c = if authenticated { &mut u } else { &mut a };
        if subscribed {
            subscribe(c, ch).await;
        }
        for call in calls(ch) {
            let r = c.command(call.clone()).await;
            let what = format!("{call} (authenticated {authenticated}, subscribed {subscribed})");
            if expected == 0 {
                assert!(r.get("error").is_none(), "{what}: {r}");
            } else {
                assert_eq!(code(&r), expected, "{what}: {r}");
            }
        }
    }
    server.stop().await;
}
