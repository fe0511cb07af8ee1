//! The processor against a real in-memory node: route mode, idempotency, poison
//! classification, back-pressure. (`api_command` mode goes through the server's API: its
//! tests are in the server's `tests/api_consumer`.)

mod common;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use common::{history, node};
use pushwire_consumers::{ConsumerType, Message, Outcome, Processor};
use serde_json::json;

#[allow(
    clippy::needless_pass_by_value,
    reason = "callers pass `json!` literals; a `&` at every call site buys nothing in a test"
)]
fn msg(id: &str, body: serde_json::Value) -> Message {
    Message {
        id: id.into(),
        subject: "orders".into(),
        headers: vec![("tenant".into(), "acme".into())],
        body: Bytes::from(body.to_string()),
    }
}

fn poison(o: Outcome) -> String {
    match o {
        Outcome::Poison(why) => why,
        other => panic!("expected poison, got {other:?}"),
    }
}

fn route(node: &std::sync::Arc<pushwire_core::Node>, channel: &str, tag_field: &str) -> Processor {
    common::route(node, ConsumerType::RedisStream, channel, tag_field)
}

#[tokio::test]
async fn route_mode_renders_the_channel_and_tags_the_event_type() {
    let node = node();
    let p = route(&node, "ev:{header.tenant}.{subject}.{type}", "type");
    let body = json!({"type": "paid", "id": 5});
    assert_eq!(p.process(&msg("r1", body.clone())).await, Outcome::Done);
    assert_eq!(p.process(&msg("r1", body)).await, Outcome::Done);
    let h = node
        .history("ev:acme.orders.paid", -1, None, false)
        .await
        .unwrap();
    assert_eq!(h.publications.len(), 1, "redelivery suppressed");
    assert_eq!(
        h.publications[0].tags.get("type").map(String::as_str),
        Some("paid")
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(h.publications[0].data.as_bytes()).unwrap(),
        json!({"type": "paid", "id": 5})
    );
    // A body without the field, or not JSON, is poison naming what is missing.
    assert!(poison(p.process(&msg("r2", json!({"id": 1}))).await).contains("{type}"));
    let not_json = Message {
        id: "r3".into(),
        body: Bytes::from_static(b"{"),
        ..Default::default()
    };
    assert!(poison(p.process(&not_json).await).contains("not JSON"));
}

#[tokio::test]
async fn route_mode_without_body_fields_publishes_any_payload() {
    let node = node();
    let p = route(&node, "ev:{subject}", "");
    let m = Message {
        id: "x".into(),
        subject: "raw".into(),
        body: Bytes::from_static(b"[1,2]"),
        ..Default::default()
    };
    assert_eq!(p.process(&m).await, Outcome::Done);
    assert_eq!(history(&node, "ev:raw").await, vec![json!([1, 2])]);
}

#[tokio::test]
async fn ready_returns_at_once_on_an_idle_node() {
    let node = node();
    let p = route(&node, "ev:{subject}", "");
    tokio::time::timeout(std::time::Duration::from_secs(1), p.ready())
        .await
        .expect("not overloaded");
    assert_eq!(p.queued_bytes(), 0);
    assert_eq!(p.metrics().paused.load(Ordering::Relaxed), 0);
}
