//! Server killed and restarted on the same port mid-stream: the client reconnects with
//! backoff, resubscribes and recovers what it missed (Redis engine: the stream survives the
//! restart), or is told to reload when the stream is gone (memory engine: new epoch).

mod support;

use std::time::{Duration, Instant};

use pushwire_client::{
    Backoff, Client, ClientConfig, ClientError, Event, State, SubscriptionOptions,
};
use pushwire_server::config::EngineKind;
use pushwire_server::ServerConfig;
use pushwire_test_support::TestServer;
use serde_json::json;
use support::{pub_text, wait_for};

fn redis(c: &mut ServerConfig, prefix: &str) {
    c.engine.kind = EngineKind::Redis;
    c.engine.redis.prefix = prefix.to_owned();
}

fn client_for(server: &TestServer) -> (Client, pushwire_client::EventStream) {
    Client::new(ClientConfig::new(server.ws_url()).backoff(Backoff {
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(800),
    }))
    .unwrap()
}

async fn expect_pubs(
    events: &mut pushwire_client::EventStream,
    seen: &mut Vec<Event>,
    offsets: std::ops::RangeInclusive<u64>,
) {
    for want in offsets {
        let e = wait_for(events, seen, "publication", |e| pub_text(e).is_some()).await;
        let (_, offset, data) = pub_text(&e).unwrap();
        assert_eq!(
            offset, want,
            "publications in offset order, none lost or repeated"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&data).unwrap(),
            json!({ "n": want })
        );
    }
}

#[tokio::test]
async fn restart_on_redis_recovers_missed_publications() {
    let prefix = format!("client-restart-{}", std::process::id());
    let p = prefix.clone();
    let server = TestServer::start_with(move |c| redis(c, &p)).await;
    let addr = server.addr;
    let ch = "chat:restart";
    let (client, mut events) = client_for(&server);
    client.connect();
    client
        .new_subscription(ch, SubscriptionOptions::default())
        .unwrap()
        .subscribe()
        .await
        .unwrap();
    let mut seen = Vec::new();
    wait_for(&mut events, &mut seen, "subscribed", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    for n in 1..=2 {
        server.publish(ch, json!({ "n": n })).await;
    }
    expect_pubs(&mut events, &mut seen, 1..=2).await;

    // Kill the server: the client is told 3001 (reconnect) and starts retrying.
    server.stop().await;
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
    let down_at = Instant::now();

    // Meanwhile another node on the same Redis takes publications the client misses.
    let p = prefix.clone();
    let other = TestServer::start_with(move |c| redis(c, &p)).await;
    for n in 3..=5 {
        other.publish(ch, json!({ "n": n })).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Restart on the same port.
    let p = prefix.clone();
    let server = TestServer::start_with(move |c| {
        redis(c, &p);
        c.http_server.port = addr.port();
    })
    .await;
    assert_eq!(server.addr, addr);
    let ev = wait_for(&mut events, &mut seen, "resubscribed", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    let Event::Subscribed {
        was_recovering,
        recovered,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert!(was_recovering && recovered, "recovered: {ev:?}");
    // Failed attempts while the server was down were spaced by the backoff.
    let failed = seen
        .iter()
        .filter(|e| matches!(e, Event::Error(ClientError::Transport { .. })))
        .count();
    let down = down_at.elapsed();
    assert!(failed >= 1, "no failed attempt while down: {seen:?}");
    assert!(
        failed as u128 <= down.as_millis() / 100 + 2,
        "{failed} attempts in {down:?}: backoff not applied"
    );
    expect_pubs(&mut events, &mut seen, 3..=5).await;
    // And live publications flow again.
    server.publish(ch, json!({ "n": 6 })).await;
    expect_pubs(&mut events, &mut seen, 6..=6).await;
    client.close().await;
    server.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn restart_on_memory_tells_the_app_to_reload() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let ch = "chat:reload";
    let (client, mut events) = client_for(&server);
    client.connect();
    client
        .new_subscription(ch, SubscriptionOptions::default())
        .unwrap()
        .subscribe()
        .await
        .unwrap();
    let mut seen = Vec::new();
    wait_for(&mut events, &mut seen, "subscribed", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    server.publish(ch, json!({ "n": 1 })).await;
    expect_pubs(&mut events, &mut seen, 1..=1).await;
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = TestServer::start_with(move |c| c.http_server.port = addr.port()).await;
    let ev = wait_for(&mut events, &mut seen, "resubscribed", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    // The in-memory stream died with the server: a new epoch, nothing to recover from.
    assert!(
        matches!(
            ev,
            Event::Subscribed {
                was_recovering: true,
                recovered: false,
                ..
            }
        ),
        "{ev:?}"
    );
    server.publish(ch, json!({ "n": 1 })).await;
    expect_pubs(&mut events, &mut seen, 1..=1).await;
    client.close().await;
    server.stop().await;
}
