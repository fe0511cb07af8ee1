//! The client over WebSocket against a real pushwire server: connect, subscribe, receive,
//! calls, typed errors, bad input, ping timeout, clean close.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushwire_client::{
    codes, Backoff, Client, ClientConfig, ClientError, Event, HistoryOptions, Protocol, State,
    SubState, SubscriptionOptions,
};
use pushwire_test_support::{token, TestServer};
use serde_json::json;
use support::{collect_for, pub_text, wait_for, Proxy};

async fn subscribe_and_receive(protocol: Protocol) {
    let server = TestServer::start().await;
    let (client, mut events) =
        Client::new(ClientConfig::new(server.ws_url()).protocol(protocol)).unwrap();
    client.connect();
    client.ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(client.state(), State::Connected);
    let sub = client
        .new_subscription("chat:index", SubscriptionOptions::default())
        .unwrap();
    sub.subscribe().await.unwrap();
    let mut seen = Vec::new();
    let ev = wait_for(&mut events, &mut seen, "subscribed", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    match ev {
        Event::Subscribed {
            channel,
            recoverable,
            ..
        } => {
            assert_eq!(channel, "chat:index");
            assert!(recoverable, "chat: forces recovery");
        }
        _ => unreachable!(),
    }
    assert_eq!(sub.state(), SubState::Subscribed);
    for i in 1..=3 {
        server.publish("chat:index", json!({ "n": i })).await;
    }
    for i in 1..=3u64 {
        let ev = wait_for(&mut events, &mut seen, "publication", |e| {
            pub_text(e).is_some()
        })
        .await;
        let (channel, offset, data) = pub_text(&ev).unwrap();
        assert_eq!(channel, "chat:index");
        assert_eq!(offset, i);
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(v, json!({ "n": i }));
    }
    client.close().await;
    assert_eq!(client.state(), State::Closed);
    server.stop().await;
}

#[tokio::test]
async fn json_connect_subscribe_receive() {
    subscribe_and_receive(Protocol::Json).await;
}

#[tokio::test]
async fn protobuf_connect_subscribe_receive() {
    subscribe_and_receive(Protocol::Protobuf).await;
}

async fn calls(protocol: Protocol) {
    let server = TestServer::start().await;
    let tok = token(json!({"sub": "alice"}));
    let (client, mut events) = Client::new(
        ClientConfig::new(server.ws_url())
            .protocol(protocol)
            .token(tok),
    )
    .unwrap();
    client.connect();
    let mut seen = Vec::new();
    let connected = wait_for(&mut events, &mut seen, "connected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    let Event::Connected { client_id, .. } = connected else {
        unreachable!()
    };
    let sub = client
        .new_subscription("chat:calls", SubscriptionOptions::default())
        .unwrap();
    sub.subscribe().await.unwrap();
    wait_for(&mut events, &mut seen, "subscribed", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;

    // Publish from the client; it comes back through the subscription.
    sub.publish(br#"{"text":"hi"}"#.to_vec()).await.unwrap();
    client
        .publish("chat:calls", br#"{"text":"again"}"#.to_vec())
        .await
        .unwrap();
    let p = wait_for(&mut events, &mut seen, "own publication", |e| {
        pub_text(e).is_some()
    })
    .await;
    assert_eq!(pub_text(&p).unwrap().1, 1);
    if let Event::Publication { publication, .. } = &p {
        assert_eq!(publication.info.as_ref().unwrap().user, "alice");
    }

    // History: everything, then position only.
    let h = client
        .history(
            "chat:calls",
            HistoryOptions {
                limit: -1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(h.publications.len(), 2);
    assert_eq!(h.offset, 2);
    assert!(!h.epoch.is_empty());
    let since = sub
        .history(HistoryOptions {
            limit: 10,
            since: Some((1, h.epoch.clone())),
            reverse: false,
        })
        .await
        .unwrap();
    assert_eq!(since.publications.len(), 1);
    assert_eq!(since.publications[0].offset, 2);

    // Presence.
    let p = sub.presence().await.unwrap();
    let me = p.presence.get(&client_id).expect("own presence entry");
    assert_eq!(me.user, "alice");
    let stats = client.presence_stats("chat:calls").await.unwrap();
    assert_eq!((stats.num_clients, stats.num_users), (1, 1));

    // Typed errors with the server's code.
    match client.history("nohistory", HistoryOptions::default()).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, 108, "{e}"),
        other => panic!("expected 108, got {other:?}"),
    }
    match client.presence("unknownns:x").await {
        Err(e) => assert_eq!(e.code(), Some(102), "{e}"),
        other => panic!("expected 102, got {other:?}"),
    }
    if protocol == Protocol::Json {
        match client.publish("chat:calls", b"{not json".to_vec()).await {
            Err(ClientError::InvalidData(_)) => {}
            other => panic!("expected InvalidData, got {other:?}"),
        }
    }
    // A subscription the server refuses: error event with 103, then unsubscribed.
    let secure = client
        .new_subscription("secure:x", SubscriptionOptions::default())
        .unwrap();
    secure.subscribe().await.unwrap();
    let err = wait_for(&mut events, &mut seen, "subscription error", |e| {
        matches!(e, Event::SubscriptionError { .. })
    })
    .await;
    let Event::SubscriptionError { channel, error } = err else {
        unreachable!()
    };
    assert_eq!(channel, "secure:x");
    assert_eq!(error.code(), Some(103));
    wait_for(&mut events, &mut seen, "unsubscribed", |e| {
        matches!(e, Event::SubState { channel, state: SubState::Unsubscribed, code: 103, .. } if channel == "secure:x")
    })
    .await;
    assert!(matches!(
        client.new_subscription("secure:x", SubscriptionOptions::default()),
        Err(ClientError::DuplicateSubscription(_))
    ));

    // Unsubscribe: no more publications.
    sub.unsubscribe().await.unwrap();
    wait_for(&mut events, &mut seen, "unsubscribed", |e| {
        matches!(
            e,
            Event::SubState {
                state: SubState::Unsubscribed,
                ..
            }
        )
    })
    .await;
    server.publish("chat:calls", json!({"after": true})).await;
    let rest = collect_for(&mut events, Duration::from_millis(300)).await;
    assert!(
        rest.iter().all(|e| pub_text(e).is_none()),
        "publication after unsubscribe: {rest:?}"
    );
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn json_publish_history_presence_and_typed_errors() {
    calls(Protocol::Json).await;
}

#[tokio::test]
async fn protobuf_publish_history_presence_and_typed_errors() {
    calls(Protocol::Protobuf).await;
}

#[tokio::test]
async fn bad_urls_are_typed_errors() {
    for url in [
        "not a url",
        "http://127.0.0.1:1/connection/websocket",
        "ws://",
    ] {
        match Client::new(ClientConfig::new(url)) {
            Err(ClientError::InvalidUrl { url: u, .. }) => assert_eq!(u, url),
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn refused_connection_backs_off_without_busy_loop() {
    // A port nobody listens on: every attempt fails at once, so only the backoff spaces them.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (client, mut events) = Client::new(
        ClientConfig::new(format!("ws://127.0.0.1:{port}/connection/websocket")).backoff(Backoff {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
        }),
    )
    .unwrap();
    client.connect();
    let started = Instant::now();
    assert!(matches!(
        client.ready(Duration::from_millis(300)).await,
        Err(ClientError::Timeout)
    ));
    let evs = collect_for(&mut events, Duration::from_millis(2200)).await;
    let errors: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Error(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert!(
        errors.iter().all(|e| matches!(
            e,
            ClientError::Transport {
                transport: "websocket",
                ..
            }
        )),
        "{errors:?}"
    );
    // 2.5 s with delays of 100-400 ms: between ~6 and ~25 attempts, never hundreds.
    let n = errors.len();
    assert!(
        (4..=26).contains(&n),
        "{n} attempts in {:?}",
        started.elapsed()
    );
    assert_eq!(client.state(), State::Connecting);
    client.close().await;
    assert!(matches!(
        client.publish("x", b"1".to_vec()).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn bad_token_is_terminal() {
    let server = TestServer::start().await;
    let (client, mut events) =
        Client::new(ClientConfig::new(server.ws_url()).token("not-a-jwt")).unwrap();
    client.connect();
    match client.ready(Duration::from_secs(5)).await {
        Err(ClientError::Disconnected { code, .. }) => assert_eq!(code, 3500),
        other => panic!("expected 3500, got {other:?}"),
    }
    assert_eq!(client.state(), State::Disconnected);
    let mut seen = Vec::new();
    wait_for(&mut events, &mut seen, "disconnected", |e| {
        matches!(
            e,
            Event::State {
                state: State::Disconnected,
                code: 3500,
                ..
            }
        )
    })
    .await;
    // Terminal: no more attempts.
    let later = collect_for(&mut events, Duration::from_millis(800)).await;
    assert!(
        later.iter().all(|e| !matches!(
            e,
            Event::State {
                state: State::Connecting,
                ..
            }
        )),
        "{later:?}"
    );
    assert!(matches!(
        client.publish("x", b"1".to_vec()).await,
        Err(ClientError::NotConnected)
    ));
    // An expired token is a 109 error reply: terminal without a token callback.
    let expired = token(json!({"sub": "u", "exp": pushwire_test_support::now() - 10}));
    let (c2, _ev2) = Client::new(ClientConfig::new(server.ws_url()).token(expired)).unwrap();
    c2.connect();
    match c2.ready(Duration::from_secs(5)).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, 109),
        other => panic!("expected 109, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn token_callback_is_called_and_refetched_after_expiry() {
    let server = TestServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let config = ClientConfig::new(server.ws_url()).token_callback(move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            // The first token is already expired (109): the client must ask again.
            let exp = if n == 0 {
                pushwire_test_support::now() - 10
            } else {
                pushwire_test_support::now() + 3600
            };
            Ok(token(json!({"sub": "bob", "exp": exp})))
        }
    });
    let (client, _events) = Client::new(config).unwrap();
    client.connect();
    client.ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let sub = client
        .new_subscription("chat:tok", SubscriptionOptions::default())
        .unwrap();
    sub.subscribe().await.unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(s) = client.presence_stats("chat:tok").await
                && s.num_users == 1
            {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(stats.num_clients, 1);
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn missing_server_pings_are_detected_and_the_client_reconnects() {
    let server = TestServer::start_with(|c| {
        c.client.ping_interval = Duration::from_secs(1);
        c.client.pong_timeout = Duration::from_millis(900);
    })
    .await;
    let proxy = Proxy::start(server.addr).await;
    let (client, mut events) = Client::new(
        ClientConfig::new(format!("ws://{}/connection/websocket", proxy.addr))
            .max_server_ping_delay(Duration::from_millis(500))
            .backoff(Backoff {
                min_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(200),
            }),
    )
    .unwrap();
    client.connect();
    let mut seen = Vec::new();
    wait_for(&mut events, &mut seen, "connected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    // Pings flow and are answered: the connection outlives several ping intervals.
    let quiet = collect_for(&mut events, Duration::from_millis(2500)).await;
    assert!(
        quiet.iter().all(|e| !matches!(
            e,
            Event::State {
                state: State::Connecting,
                ..
            }
        )),
        "reconnected while pings flowed: {quiet:?}"
    );
    // The link goes silent (no FIN, no RST): only the missing pings reveal it.
    proxy.stall(true);
    let stalled_at = Instant::now();
    wait_for(&mut events, &mut seen, "no ping", |e| {
        matches!(e, Event::State { state: State::Connecting, code, .. } if *code == codes::NO_PING)
    })
    .await;
    let took = stalled_at.elapsed();
    assert!(
        took <= Duration::from_millis(2500),
        "detected after {took:?} (ping 1 s + delay 0.5 s)"
    );
    proxy.stall(false);
    wait_for(&mut events, &mut seen, "reconnected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    client.close().await;
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn close_is_clean_and_ends_the_stream() {
    let server = TestServer::start().await;
    let (client, mut events) = Client::new(ClientConfig::new(server.ws_url())).unwrap();
    client.connect();
    client.ready(Duration::from_secs(5)).await.unwrap();
    let sub = client
        .new_subscription("chat:close", SubscriptionOptions::default())
        .unwrap();
    sub.subscribe().await.unwrap();
    let mut seen = Vec::new();
    wait_for(&mut events, &mut seen, "subscribed", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    client.close().await;
    // The stream ends after the Closed state.
    let rest = collect_for(&mut events, Duration::from_secs(2)).await;
    assert!(
        rest.iter().any(|e| matches!(
            e,
            Event::State {
                state: State::Closed,
                ..
            }
        )),
        "{rest:?}"
    );
    assert!(events.recv().await.is_none());
    // The server saw the connection go: no presence left.
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (_, body) = server
                .api("presence_stats", json!({"channel": "chat:close"}))
                .await;
            if body["result"]["num_clients"] == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("presence released after close");
    server.stop().await;
}

#[tokio::test]
async fn expiring_connection_is_refreshed_with_the_callback() {
    let server = TestServer::start_with(|c| {
        c.client.expired_close_delay = Duration::from_millis(300);
    })
    .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let config = ClientConfig::new(server.ws_url()).token_callback(move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            // The first token expires in 2 s: without a refresh the server closes with 3005.
            let ttl = if n == 0 { 2 } else { 3600 };
            Ok(token(
                json!({"sub": "carol", "exp": pushwire_test_support::now() + ttl}),
            ))
        }
    });
    let (client, mut events) = Client::new(config).unwrap();
    client.connect();
    let mut seen = Vec::new();
    wait_for(&mut events, &mut seen, "connected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    // Control: the same expiry with a fixed token (nothing to refresh with) is closed with 3005.
    let fixed = token(json!({"sub": "carol", "exp": pushwire_test_support::now() + 2}));
    let (control, mut control_events) =
        Client::new(ClientConfig::new(server.ws_url()).token(fixed)).unwrap();
    control.connect();
    let (later, control_later) = tokio::join!(
        collect_for(&mut events, Duration::from_millis(4500)),
        collect_for(&mut control_events, Duration::from_millis(4500)),
    );
    assert!(
        later.iter().all(|e| !matches!(
            e,
            Event::State {
                state: State::Connecting,
                ..
            }
        )),
        "connection dropped instead of refreshing: {later:?}"
    );
    assert!(
        control_later.iter().any(|e| matches!(
            e,
            Event::State {
                state: State::Connecting,
                code: 3005,
                ..
            }
        )),
        "control not expired: {control_later:?}"
    );
    control.close().await;
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "callback not used to refresh"
    );
    assert_eq!(client.state(), State::Connected);
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn server_side_subscription_recovers_through_connect_subs() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(server.addr).await;
    let proxy_addr = proxy.addr;
    let tok = token(json!({"sub": "dave", "channels": ["chat:srv"]}));
    let (client, mut events) = Client::new(
        ClientConfig::new(format!("ws://{proxy_addr}/connection/websocket"))
            .token(tok)
            .backoff(Backoff {
                min_delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(300),
            }),
    )
    .unwrap();
    client.connect();
    let mut seen = Vec::new();
    let ev = wait_for(&mut events, &mut seen, "server-side subscribed", |e| {
        matches!(
            e,
            Event::Subscribed {
                server_side: true,
                ..
            }
        )
    })
    .await;
    assert!(
        matches!(ev, Event::Subscribed { ref channel, recoverable: true, .. } if channel == "chat:srv")
    );
    server.publish("chat:srv", json!({"n": 1})).await;
    let p = wait_for(&mut events, &mut seen, "publication", |e| {
        pub_text(e).is_some()
    })
    .await;
    assert_eq!(pub_text(&p).unwrap().1, 1);

    // Cut the link, publish while the client is away, bring the link back on the same port.
    proxy.stop().await;
    wait_for(&mut events, &mut seen, "connecting", |e| {
        matches!(
            e,
            Event::State {
                state: State::Connecting,
                ..
            }
        )
    })
    .await;
    server.publish("chat:srv", json!({"n": 2})).await;
    server.publish("chat:srv", json!({"n": 3})).await;
    let proxy = Proxy::start_on(&proxy_addr.to_string(), server.addr).await;
    let ev = wait_for(&mut events, &mut seen, "server-side resubscribed", |e| {
        matches!(
            e,
            Event::Subscribed {
                server_side: true,
                ..
            }
        )
    })
    .await;
    assert!(
        matches!(
            ev,
            Event::Subscribed {
                was_recovering: true,
                recovered: true,
                ..
            }
        ),
        "{ev:?}"
    );
    for want in 2..=3 {
        let p = wait_for(&mut events, &mut seen, "recovered publication", |e| {
            pub_text(e).is_some()
        })
        .await;
        assert_eq!(pub_text(&p).unwrap().1, want);
    }
    client.close().await;
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn server_disconnect_and_unsubscribe_codes_follow_the_rules() {
    let server = TestServer::start().await;
    let tok = token(json!({"sub": "erin"}));
    let (client, mut events) = Client::new(ClientConfig::new(server.ws_url()).token(tok).backoff(
        Backoff {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
        },
    ))
    .unwrap();
    client.connect();
    let mut seen = Vec::new();
    wait_for(&mut events, &mut seen, "connected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    let sub = client
        .new_subscription("chat:codes", SubscriptionOptions::default())
        .unwrap();
    sub.subscribe().await.unwrap();
    wait_for(&mut events, &mut seen, "subscribed", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;

    // 2000 (server unsubscribe): terminal for the subscription.
    let (status, body) = server
        .api(
            "unsubscribe",
            json!({"user": "erin", "channel": "chat:codes"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for(&mut events, &mut seen, "unsubscribed 2000", |e| {
        matches!(
            e,
            Event::SubState {
                state: SubState::Unsubscribed,
                code: 2000,
                ..
            }
        )
    })
    .await;
    assert_eq!(sub.state(), SubState::Unsubscribed);

    // 4001 (application code in the reconnect range): the client comes back.
    server
        .api(
            "disconnect",
            json!({"user": "erin", "disconnect": {"code": 4001, "reason": "come back"}}),
        )
        .await;
    wait_for(&mut events, &mut seen, "connecting 4001", |e| {
        matches!(
            e,
            Event::State {
                state: State::Connecting,
                code: 4001,
                ..
            }
        )
    })
    .await;
    wait_for(&mut events, &mut seen, "reconnected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;

    // 4501 (terminal range): disconnected, and it stays so.
    server
        .api(
            "disconnect",
            json!({"user": "erin", "disconnect": {"code": 4501, "reason": "go away"}}),
        )
        .await;
    wait_for(&mut events, &mut seen, "disconnected 4501", |e| {
        matches!(
            e,
            Event::State {
                state: State::Disconnected,
                code: 4501,
                ..
            }
        )
    })
    .await;
    let later = collect_for(&mut events, Duration::from_millis(700)).await;
    assert!(
        later.iter().all(|e| !matches!(e, Event::Connected { .. })),
        "{later:?}"
    );
    match client.ready(Duration::from_millis(100)).await {
        Err(ClientError::Disconnected { code: 4501, reason }) => assert_eq!(reason, "go away"),
        other => panic!("{other:?}"),
    }
    // connect() starts again after a terminal disconnect.
    client.connect();
    client.ready(Duration::from_secs(5)).await.unwrap();
    client.close().await;
    server.stop().await;
}
