//! The processor against a real in-memory node: API commands, route mode, idempotency,
//! poison classification, metrics.

mod common;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use common::{history, node, processor};
use pushwire_consumers::{
    ConsumerConfig, ConsumerType, Message, Mode, Outcome, Processor, RouteConfig,
};
use serde_json::json;

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

#[tokio::test]
async fn publish_command_lands_in_history_once_per_message_id() {
    let node = node();
    let p = processor(&node);
    let body = json!({"method": "publish", "payload": {"channel": "ev:a", "data": {"n": 1}}});
    assert_eq!(p.process(&msg("m1", body.clone())).await, Outcome::Done);
    // A redelivery (same id) is suppressed; a new message with the same body is not.
    assert_eq!(p.process(&msg("m1", body.clone())).await, Outcome::Done);
    assert_eq!(p.process(&msg("m2", body)).await, Outcome::Done);
    assert_eq!(
        history(&node, "ev:a").await,
        vec![json!({"n": 1}), json!({"n": 1})]
    );
    let m = p.metrics();
    assert_eq!(m.received.load(Ordering::Relaxed), 3);
    assert_eq!(m.published.load(Ordering::Relaxed), 2);
    assert_eq!(m.duplicates.load(Ordering::Relaxed), 1);
    assert_eq!(m.failed.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn the_payload_idempotency_key_wins_over_the_message_id() {
    let node = node();
    let p = processor(&node);
    let body = json!({"method": "publish", "payload": {"channel": "ev:k", "data": {"n": 1}, "idempotency_key": "k1"}});
    p.process(&msg("m1", body.clone())).await;
    p.process(&msg("m2", body)).await;
    assert_eq!(history(&node, "ev:k").await.len(), 1);
    assert_eq!(p.metrics().duplicates.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn broadcast_tags_b64data_and_history_remove() {
    let node = node();
    let p = processor(&node);
    let body = json!({"method": "broadcast", "payload": {"channels": ["ev:x", "ev:y"], "data": {"n": 7}, "tags": {"type": "paid"}}});
    assert_eq!(p.process(&msg("b1", body.clone())).await, Outcome::Done);
    assert_eq!(p.process(&msg("b1", body)).await, Outcome::Done);
    for ch in ["ev:x", "ev:y"] {
        let h = node.history(ch, -1, None, false).await.unwrap();
        assert_eq!(h.publications.len(), 1, "{ch}");
        assert_eq!(
            h.publications[0].tags.get("type").map(String::as_str),
            Some("paid")
        );
    }
    assert_eq!(p.metrics().duplicates.load(Ordering::Relaxed), 1);
    // b64data is the raw payload ("{\"n\":8}").
    let b64 =
        json!({"method": "publish", "payload": {"channel": "ev:x", "b64data": "eyJuIjo4fQ=="}});
    assert_eq!(p.process(&msg("b2", b64)).await, Outcome::Done);
    assert_eq!(
        history(&node, "ev:x").await,
        vec![json!({"n": 7}), json!({"n": 8})]
    );
    let rm = json!({"method": "history_remove", "payload": {"channel": "ev:x"}});
    assert_eq!(p.process(&msg("r1", rm)).await, Outcome::Done);
    assert!(history(&node, "ev:x").await.is_empty());
}

#[tokio::test]
async fn poison_messages_are_classified_and_counted() {
    let node = node();
    let p = processor(&node);
    let cases = [
        (Bytes::from_static(b"not json"), "not an API command"),
        (
            Bytes::from(json!({"method": "nope", "payload": {}}).to_string()),
            "unknown method",
        ),
        (
            Bytes::from(
                json!({"method": "publish", "payload": {"channel": "zz:a", "data": {}}})
                    .to_string(),
            ),
            "unknown channel",
        ),
        (
            Bytes::from(json!({"method": "publish", "payload": {"channel": "ev:a"}}).to_string()),
            "data missing",
        ),
        (
            Bytes::from(json!({"method": "publish"}).to_string()),
            "payload missing",
        ),
        (
            Bytes::from(
                json!({"method": "broadcast", "payload": {"channels": [], "data": 1}}).to_string(),
            ),
            "channels empty",
        ),
        (
            Bytes::from(json!({"method": "disconnect", "payload": {}}).to_string()),
            "user missing",
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let m = Message {
            id: format!("p{i}"),
            body: body.clone(),
            ..Default::default()
        };
        let why = poison(p.process(&m).await);
        assert!(
            why.contains(want),
            "case {i}: {why:?} should mention {want:?}"
        );
    }
    assert_eq!(
        p.metrics().failed.load(Ordering::Relaxed),
        cases.len() as u64
    );
    assert_eq!(p.metrics().published.load(Ordering::Relaxed), 0);
}

fn route(node: &std::sync::Arc<pushwire_core::Node>, channel: &str, tag_field: &str) -> Processor {
    let mut c = ConsumerConfig::new("r", ConsumerType::RedisStream);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: channel.into(),
        tag_field: tag_field.into(),
        skip_history: false,
    };
    Processor::new(node.clone(), &c).expect("route processor")
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
    let p = processor(&node);
    tokio::time::timeout(std::time::Duration::from_secs(1), p.ready())
        .await
        .expect("not overloaded");
    assert_eq!(p.queued_bytes(), 0);
    assert_eq!(p.metrics().paused.load(Ordering::Relaxed), 0);
}
