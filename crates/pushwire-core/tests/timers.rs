//! The client's timers on a paused clock: a connection that never connects is closed as stale
//! (3501), a connected one gets a ping every `ping_interval` (the first one spread over it), a missing pong closes it (3012)
//! and an answered one keeps it; the deadline the transport sleeps until is always the next
//! timer. Time only moves when the test advances it, so each case is exact and instant.

use std::sync::Arc;
use std::time::Duration;

use pushwire_core::config::NodeConfig;
use pushwire_core::engine::Engine;
use pushwire_core::{Client, Node, TransportInfo, TransportKind};
use pushwire_protocol::{Disconnect, Protocol};
use serde_json::json;
use tokio::time::Instant;

const PING: Duration = Duration::from_secs(25);
const PONG: Duration = Duration::from_secs(8);
const STALE: Duration = Duration::from_secs(10);

fn client() -> Arc<Client> {
    let mut config = NodeConfig::default();
    config.client.allow_anonymous_connect_without_token = true;
    config.client.command_rate_limit = 0;
    config.client.ping_interval = PING;
    config.client.pong_timeout = PONG;
    config.client.stale_close_delay = STALE;
    config.validate().expect("valid");
    let node = Node::new(config, "timers", Engine::memory(), None);
    Client::new(
        node,
        TransportInfo {
            kind: TransportKind::WebSocket,
            protocol: Protocol::Json,
        },
    )
}

async fn connect(client: &Arc<Client>) {
    client
        .handle_frame(json!({"id":1,"connect":{}}).to_string().as_bytes())
        .await
        .expect("connect");
    client.outbox().try_drain();
}

/// Moves the paused clock to the client's next deadline and fires its timers there.
async fn fire_next(client: &Arc<Client>) -> Result<(), Disconnect> {
    tokio::time::advance(client.next_deadline() - Instant::now()).await;
    client.on_timer()
}

/// Whether the outbox holds a ping (an empty JSON reply `{}`).
fn pinged(client: &Arc<Client>) -> bool {
    client
        .outbox()
        .try_drain()
        .messages
        .iter()
        .any(|m| m.as_ref() == b"{}")
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_connects_is_stale_after_the_delay() {
    let client = client();
    let start = Instant::now();
    assert_eq!(client.next_deadline() - start, STALE);
    tokio::time::advance(STALE - Duration::from_millis(1)).await;
    assert!(client.on_timer().is_ok(), "not stale before the delay");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(client.on_timer(), Err(Disconnect::STALE));
}

/// Fires the client's timers deadline by deadline until it sends a ping, which must come
/// within one `ping_interval` of `from` (the first ping is spread over the interval so that
/// connections made together are not pinged together); returns when it came.
async fn until_pinged(client: &Arc<Client>, from: Instant) -> Instant {
    loop {
        assert!(fire_next(client).await.is_ok());
        assert!(Instant::now() - from <= PING, "a ping within one interval");
        if pinged(client) {
            return Instant::now();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_connected_client_is_pinged_within_the_interval_and_closed_without_a_pong() {
    let client = client();
    connect(&client).await;
    let pinged_at = until_pinged(&client, Instant::now()).await;
    // Next deadline: the pong deadline, before the next ping.
    assert_eq!(client.next_deadline() - pinged_at, PONG);
    tokio::time::advance(PONG - Duration::from_millis(1)).await;
    assert!(client.on_timer().is_ok(), "the pong has until the deadline");
    assert_eq!(fire_next(&client).await, Err(Disconnect::NO_PONG));
}

#[tokio::test(start_paused = true)]
async fn an_answered_ping_keeps_the_connection_and_the_next_ping_follows_an_interval_later() {
    let client = client();
    connect(&client).await;
    let pinged_at = until_pinged(&client, Instant::now()).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    client.handle_frame(b"{}").await.expect("pong");
    assert_eq!(
        client.next_deadline() - pinged_at,
        PING,
        "no pong deadline left: the next timer is the next ping"
    );
    assert!(fire_next(&client).await.is_ok());
    assert!(pinged(&client), "second ping");
}
