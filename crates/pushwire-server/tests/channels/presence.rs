//! Presence, join/leave and the channel-level server API end to end (docs/protocol.md: presence, API methods):
//! presence and presence_stats from clients and the API, removal on disconnect, join/leave
//! pushes with and without `force_push_join_leave`, API `channels` and `info`.

use crate::common;

use std::time::Duration;

use common::*;
use pushwire_core::config::ChannelOptions;
use pushwire_test_support::{TestServer, WsClient};
use serde_json::{json, Value};

fn presence_ns() -> ChannelOptions {
    ChannelOptions {
        presence: true,
        allow_presence_for_subscriber: true,
        allow_presence_for_anonymous: true,
        ..open()
    }
}

async fn api_result(server: &TestServer, method: &str, body: Value) -> Value {
    let (status, body) = server.api(method, body).await;
    assert_eq!(status, 200, "{method}: {body}");
    assert!(body.get("error").is_none(), "{method}: {body}");
    body["result"].clone()
}

#[tokio::test]
async fn presence_lists_clients_and_drops_disconnected_ones() {
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns("pres", presence_ns()));
        c.channel.namespaces.push(ns(
            "nopres",
            ChannelOptions {
                allow_presence_for_subscriber: true,
                allow_presence_for_anonymous: true,
                ..open()
            },
        ));
    })
    .await;
    let ch = "pres:room";
    let (mut a, a_id) = user(&server, "u1", Some(json!({"name": "A"}))).await;
    let (mut b, b_id) = anon(&server).await;
    subscribe(&mut a, ch).await;
    subscribe(&mut b, ch).await;

    let both = json!({
        a_id.clone(): {"user": "u1", "client": a_id.clone(), "conn_info": {"name": "A"}},
        b_id.clone(): {"user": "", "client": b_id.clone()},
    });
    let r = a.command(json!({"presence": {"channel": ch}})).await;
    assert_eq!(r["presence"], json!({ "presence": both }), "{r}");
    let r = b.command(json!({"presence_stats": {"channel": ch}})).await;
    assert_eq!(
        r["presence_stats"],
        json!({"num_clients": 2, "num_users": 2}),
        "{r}"
    );
    assert_eq!(
        api_result(&server, "presence", json!({ "channel": ch })).await,
        json!({ "presence": both })
    );
    assert_eq!(
        api_result(&server, "presence_stats", json!({ "channel": ch })).await,
        json!({"num_clients": 2, "num_users": 2})
    );

    // A second connection of the same user counts as a client, not as a user.
    let (mut a2, a2_id) = user(&server, "u1", None).await;
    subscribe(&mut a2, ch).await;
    assert_eq!(
        api_result(&server, "presence_stats", json!({ "channel": ch })).await,
        json!({"num_clients": 3, "num_users": 2})
    );
    unsubscribe(&mut a2, ch).await;
    let r = a2.command(json!({"presence": {"channel": ch}})).await;
    assert_eq!(code(&r), 103, "not subscribed any more: {r}");
    assert!(
        api_result(&server, "presence", json!({ "channel": ch })).await["presence"]
            .get(&a2_id)
            .is_none(),
        "unsubscribed client still present"
    );

    // Dropping the socket removes the entry at once.
    drop(b);
    let only_a = json!({
        a_id.clone(): {"user": "u1", "client": a_id.clone(), "conn_info": {"name": "A"}},
    });
    let gone = eventually(Duration::from_secs(1), || async {
        api_result(&server, "presence", json!({ "channel": ch })).await
            == json!({ "presence": only_a })
    })
    .await;
    assert!(gone, "presence still lists the dropped client");
    let r = a.command(json!({"presence": {"channel": ch}})).await;
    assert_eq!(r["presence"], json!({ "presence": only_a }), "{r}");
    let r = a.command(json!({"presence_stats": {"channel": ch}})).await;
    assert_eq!(
        r["presence_stats"],
        json!({"num_clients": 1, "num_users": 1}),
        "{r}"
    );
    // Unsubscribing removes it too.
    unsubscribe(&mut a, ch).await;
    assert_eq!(
        api_result(&server, "presence_stats", json!({ "channel": ch })).await,
        json!({"num_clients": 0, "num_users": 0})
    );

    // No presence in the namespace: 108 everywhere, permission or not ("news" grants none).
    let r = a.command(json!({"presence": {"channel": "news"}})).await;
    assert_eq!(code(&r), 108, "{r}");
    subscribe(&mut a, "nopres:room").await;
    for call in ["presence", "presence_stats"] {
        let r = a.command(json!({ call: {"channel": "nopres:room"} })).await;
        assert_eq!(code(&r), 108, "{call}: {r}");
        let (status, body) = server.api(call, json!({"channel": "nopres:room"})).await;
        assert_eq!(status, 200);
        assert_eq!(body["error"]["code"], json!(108), "{call}: {body}");
    }
    server.stop().await;
}

/// `{"push":{"channel":…,<kind>:{"info":…}}}`.
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers pass `json!` literals; a `&` at every call site buys nothing in a test"
)]
fn push(channel: &str, kind: &str, info: Value) -> Value {
    json!({"push": {"channel": channel, kind: {"info": info}}})
}

/// The next join or leave push on `channel` about `client`, skipping everything else.
async fn next_join_leave(c: &mut WsClient, channel: &str, client: &str) -> Value {
    loop {
        let m = c.next_message().await.expect("connection open");
        let push = &m["push"];
        if push["channel"] != json!(channel) {
            continue;
        }
        for kind in ["join", "leave"] {
            if push[kind]["info"]["client"] == json!(client) {
                return m;
            }
        }
    }
}

#[tokio::test]
async fn join_and_leave_pushes() {
    let server = TestServer::start_with(|c| {
        c.channel.namespaces.push(ns(
            "forced",
            ChannelOptions {
                join_leave: true,
                force_push_join_leave: true,
                ..presence_ns()
            },
        ));
        c.channel.namespaces.push(ns(
            "asked",
            ChannelOptions {
                join_leave: true,
                ..presence_ns()
            },
        ));
        c.channel.namespaces.push(ns(
            "noperm",
            ChannelOptions {
                presence: true,
                join_leave: true,
                ..open()
            },
        ));
    })
    .await;

    // Forced: every subscriber gets them.
    let ch = "forced:1";
    let (mut a, _) = anon(&server).await;
    subscribe(&mut a, ch).await;
    let (mut b, b_id) = user(&server, "bob", Some(json!({"name": "Bob"}))).await;
    subscribe(&mut b, ch).await;
    let bob = json!({"user": "bob", "client": b_id, "conn_info": {"name": "Bob"}});
    let join = push(ch, "join", bob.clone());
    assert_eq!(next_join_leave(&mut a, ch, &b_id).await, join);
    unsubscribe(&mut b, ch).await;
    let leave = push(ch, "leave", bob.clone());
    assert_eq!(next_join_leave(&mut a, ch, &b_id).await, leave);
    // A disconnect is a leave too.
    let (mut d, d_id) = anon(&server).await;
    subscribe(&mut d, ch).await;
    let join = push(ch, "join", json!({"user": "", "client": d_id}));
    assert_eq!(next_join_leave(&mut a, ch, &d_id).await, join);
    drop(d);
    let leave = push(ch, "leave", json!({"user": "", "client": d_id}));
    assert_eq!(next_join_leave(&mut a, ch, &d_id).await, leave);

    // Not forced: only to the subscriber that asked (and has presence permission).
    for ch in ["asked:1", "noperm:1"] {
        let (mut asked, _) = anon(&server).await;
        subscribe_with(&mut asked, json!({"channel": ch, "join_leave": true})).await;
        let (mut quiet, _) = anon(&server).await;
        subscribe(&mut quiet, ch).await;
        subscribe(&mut b, ch).await;
        unsubscribe(&mut b, ch).await;
        if ch == "asked:1" {
            let join = push(ch, "join", bob.clone());
            let leave = push(ch, "leave", bob.clone());
            assert_eq!(next_join_leave(&mut asked, ch, &b_id).await, join);
            assert_eq!(next_join_leave(&mut asked, ch, &b_id).await, leave);
        }
        assert!(
            asked.silent_for(Duration::from_millis(200)).await,
            "{ch}: extra push"
        );
        assert!(
            quiet.silent_for(Duration::from_millis(200)).await,
            "{ch}: push to a subscriber that did not ask"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn api_channels_and_info_track_subscriptions() {
    let server = TestServer::start().await;
    let (mut a, _) = user(&server, "u1", None).await;
    let (mut b, _) = user(&server, "u2", None).await;
    subscribe(&mut a, "chat:one").await;
    subscribe(&mut a, "news").await;
    subscribe(&mut b, "chat:one").await;
    // Refused subscriptions leave nothing behind.
    let r = subscribe_raw(
        &mut b,
        json!({"channel": "chat:ghost", "recover": true, "offset": 1, "epoch": "zz", "flag": 2}),
    )
    .await;
    assert_eq!(code(&r), 112, "{r}");
    let r = subscribe_raw(&mut b, json!({"channel": "secure:ghost"})).await;
    assert_eq!(code(&r), 103, "{r}");
    assert_eq!(
        api_result(&server, "presence", json!({"channel": "chat:ghost"})).await,
        json!({"presence": {}})
    );

    let channels =
        || async { api_result(&server, "channels", json!({})).await["channels"].clone() };
    let counts = || async {
        let info = api_result(&server, "info", json!({})).await;
        let n = &info["nodes"][0];
        [
            n["num_clients"].clone(),
            n["num_users"].clone(),
            n["num_channels"].clone(),
            n["num_subs"].clone(),
        ]
    };
    assert_eq!(
        channels().await,
        json!({"chat:one": {"num_clients": 2}, "news": {"num_clients": 1}})
    );
    assert_eq!(counts().await, [json!(2), json!(2), json!(2), json!(3)]);
    let r = api_result(&server, "channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(r, json!({"channels": {"chat:one": {"num_clients": 2}}}));

    drop(b);
    let settled = eventually(Duration::from_secs(1), || async {
        counts().await == [json!(1), json!(1), json!(2), json!(2)]
    })
    .await;
    assert!(settled, "info after disconnect: {:?}", counts().await);
    assert_eq!(
        channels().await,
        json!({"chat:one": {"num_clients": 1}, "news": {"num_clients": 1}})
    );

    unsubscribe(&mut a, "news").await;
    assert_eq!(channels().await, json!({"chat:one": {"num_clients": 1}}));
    assert_eq!(counts().await, [json!(1), json!(1), json!(1), json!(1)]);
    drop(a);
    let settled = eventually(Duration::from_secs(1), || async {
        counts().await == [json!(0), json!(0), json!(0), json!(0)]
    })
    .await;
    assert!(settled, "info after all left: {:?}", counts().await);
    assert_eq!(channels().await, json!({}));
    server.stop().await;
}

/// Reference §3.6/§3.9: presence entries are removed on unsubscribe and disconnect, and a Join is
/// never left without its Leave. An API `unsubscribe` that lands while the client's own
/// subscribe to the same channel is in flight must not leave anything behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_ghost_presence_when_api_unsubscribe_races_a_subscribe() {
    let server = TestServer::start_with(|c| c.client.command_rate_limit = 0).await;
    let ch = "chat:race";
    let (mut observer, _) = user(&server, "observer", None).await;
    subscribe(&mut observer, ch).await;
    let (mut c, id) = user(&server, "racer", None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    let mut i = 0u32;
    while tokio::time::Instant::now() < deadline {
        i += 1;
        let sub = json!({"id": 50_000 + i, "subscribe": {"channel": ch}}).to_string();
        let (_, (status, _)) = tokio::join!(c.send_text(&sub), async {
            if i.is_multiple_of(2) {
                tokio::task::yield_now().await;
            }
            server
                .api("unsubscribe", json!({"user": "racer", "channel": ch}))
                .await
        });
        assert_eq!(status, 200);
        let r = c.reply(50_000 + i).await;
        assert!(r["subscribe"].is_object(), "{r}");
        unsubscribe(&mut c, ch).await;
        // Not subscribed any more, by either path: not present.
        let presence = api_result(&server, "presence", json!({ "channel": ch })).await;
        assert!(
            presence["presence"].get(&id).is_none(),
            "iteration {i}: unsubscribed client still in presence: {presence}"
        );
    }
    drop(c);
    let only_observer = eventually(Duration::from_secs(1), || async {
        api_result(&server, "presence_stats", json!({ "channel": ch })).await
            == json!({"num_clients": 1, "num_users": 1})
    })
    .await;
    assert!(only_observer, "presence after the racer left");
    // Every Join the observer got for the racer has its Leave.
    observer
        .send_text(&json!({"id": 99_999, "presence_stats": {"channel": ch}}).to_string())
        .await;
    let (mut joins, mut leaves) = (0, 0);
    loop {
        let m = observer.read_one().await.expect("connection open");
        if m["id"] == json!(99_999) {
            break;
        }
        if m["push"]["join"]["info"]["client"] == json!(id) {
            joins += 1;
        }
        if m["push"]["leave"]["info"]["client"] == json!(id) {
            leaves += 1;
        }
    }
    assert_eq!(joins, leaves, "joins without leaves");
    server.stop().await;
}
