//! The consumers' `api_command` path against the HTTP API: one table of requests, each sent
//! to `POST /api/<method>` and as a consumer message, must get the same verdict (both accept,
//! or both refuse with the same code); plus idempotency, broadcast and poison
//! classification of the consumer path.

use std::sync::atomic::Ordering;

use pushwire_consumers::{ConsumerConfig, ConsumerType, Message, Outcome, Processor};
use pushwire_server::api::consumer::ConsumerApi;
use pushwire_test_support::TestServer;
use serde_json::{json, Value};

/// A processor in `api_command` mode on the server's node, through the server's API.
fn processor(server: &TestServer) -> Processor {
    Processor::new(
        server.node().clone(),
        ConsumerApi::shared(server.node().clone()),
        &ConsumerConfig::new("t", ConsumerType::Rabbitmq),
    )
    .expect("processor")
}

fn message(id: &str, method: &str, payload: &Value) -> Message {
    Message {
        id: id.into(),
        body: json!({"method": method, "payload": payload})
            .to_string()
            .into_bytes()
            .into(),
        ..Default::default()
    }
}

/// `Ok(())` or the refusal's error code, from an HTTP answer (400 = 107, bad params).
fn http_verdict(status: u16, body: &Value) -> Result<(), u64> {
    match status {
        400 => Err(107),
        200 => match body["error"]["code"].as_u64() {
            Some(code) => Err(code),
            None => Ok(()),
        },
        other => panic!("unexpected HTTP status {other}: {body}"),
    }
}

/// `Ok(())` or the poison's error code (the `(NNN)` it ends with).
fn consumer_verdict(outcome: Outcome) -> Result<(), u64> {
    match outcome {
        Outcome::Done => Ok(()),
        Outcome::Poison(why) => {
            let code = why
                .rsplit_once('(')
                .and_then(|(_, c)| c.trim_end_matches(')').parse().ok())
                .unwrap_or_else(|| panic!("poison without a code: {why}"));
            Err(code)
        }
        Outcome::Retry(why) => panic!("nothing here is temporary: {why}"),
    }
}

/// (method, params, expected verdict): what the HTTP API accepts and refuses. The consumer
/// copy of the parser used to accept code 0 as a literal close code, codes outside
/// 3000..=4999, reasons of 123+ bytes, and refuse `null` for optional fields.
fn cases() -> Vec<(&'static str, Value, Result<(), u64>)> {
    let long = "r".repeat(123);
    let just_fits = "r".repeat(122);
    vec![
        (
            "disconnect",
            json!({"user": "u1", "disconnect": {"code": 0, "reason": ""}}),
            Ok(()),
        ),
        (
            "disconnect",
            json!({"user": "u1", "disconnect": {"code": 2999, "reason": "x"}}),
            Err(107),
        ),
        (
            "disconnect",
            json!({"user": "u1", "disconnect": {"code": 5000}}),
            Err(107),
        ),
        (
            "disconnect",
            json!({"user": "u1", "disconnect": {"code": 4000, "reason": long}}),
            Err(107),
        ),
        (
            "disconnect",
            json!({"user": "u1", "disconnect": {"code": 4000, "reason": just_fits}}),
            Ok(()),
        ),
        (
            "disconnect",
            json!({"user": "u1", "disconnect": null}),
            Ok(()),
        ),
        (
            "disconnect",
            json!({"user": "u1", "disconnect": {"code": null, "reason": null}}),
            Ok(()),
        ),
        ("disconnect", json!({"user": null}), Err(107)),
        ("disconnect", json!({}), Err(107)),
        (
            "disconnect",
            json!({"user": "u1", "whitelist": null, "client": null, "session": null}),
            Ok(()),
        ),
        (
            "unsubscribe",
            json!({"user": "u1", "channel": null}),
            Ok(()),
        ),
        ("unsubscribe", json!({"user": ""}), Err(107)),
        (
            "subscribe",
            json!({"user": "u1", "channel": "chat:s", "info": null, "data": null}),
            Ok(()),
        ),
        (
            "refresh",
            json!({"user": "u1", "expire_at": null, "expired": null}),
            Ok(()),
        ),
        (
            "publish",
            json!({"channel": "chat:n", "data": {"a": 1}, "tags": null, "skip_history": null, "b64data": null, "idempotency_key": null, "version": null}),
            Ok(()),
        ),
        ("publish", json!({"channel": null, "data": 1}), Err(107)),
        (
            "publish",
            json!({"channel": "chat:n", "data": null}),
            Err(107),
        ),
        ("publish", json!({"channel": "chat:n"}), Err(107)),
        ("publish", json!({"channel": 5, "data": 1}), Err(107)),
        (
            "publish",
            json!({"channel": "chat:n", "b64data": "***"}),
            Err(107),
        ),
        ("publish", json!({"channel": "nope:x", "data": 1}), Err(102)),
        (
            "publish",
            json!({"channel": "chat:n", "data": 1, "tags": {"k": 1}}),
            Err(107),
        ),
        ("broadcast", json!({"channels": [], "data": 1}), Err(107)),
        ("broadcast", json!({"channels": null, "data": 1}), Err(107)),
        ("history_remove", json!({"channel": null}), Err(107)),
        ("history_remove", json!({"channel": "chat:n"}), Ok(())),
        ("presence", json!({"channel": "nope:x"}), Err(102)),
    ]
}

#[tokio::test]
async fn the_consumer_path_refuses_exactly_what_the_http_api_refuses() {
    let server = TestServer::start().await;
    let p = processor(&server);
    for (i, (method, params, want)) in cases().into_iter().enumerate() {
        let (status, body) = server.api(method, params.clone()).await;
        let http = http_verdict(status, &body);
        assert_eq!(http, want, "HTTP {method} {params}: {body}");
        let consumer =
            consumer_verdict(p.process(&message(&format!("c{i}"), method, &params)).await);
        assert_eq!(consumer, want, "consumer {method} {params}");
    }
    // Paths that are not a JSON method call on HTTP: an unknown method and `batch`.
    for method in ["nope", "batch"] {
        let got = consumer_verdict(p.process(&message("m", method, &json!({}))).await);
        assert_eq!(got, Err(104), "{method}");
    }
    server.stop().await;
}

#[tokio::test]
async fn consumer_commands_are_idempotent_per_message_id_unless_the_payload_has_a_key() {
    let server = TestServer::start().await;
    let p = processor(&server);
    let publish = json!({"channel": "chat:once", "data": {"n": 1}});
    assert_eq!(
        p.process(&message("m1", "publish", &publish)).await,
        Outcome::Done
    );
    assert_eq!(
        p.process(&message("m1", "publish", &publish)).await,
        Outcome::Done
    );
    assert_eq!(
        p.process(&message("m2", "publish", &publish)).await,
        Outcome::Done
    );
    let keyed = json!({"channel": "chat:once", "data": {"n": 2}, "idempotency_key": "k1"});
    assert_eq!(
        p.process(&message("m3", "publish", &keyed)).await,
        Outcome::Done
    );
    assert_eq!(
        p.process(&message("m4", "publish", &keyed)).await,
        Outcome::Done
    );
    let (_, h) = server
        .api("history", json!({"channel": "chat:once", "limit": -1}))
        .await;
    let data: Vec<Value> = h["result"]["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(
        data,
        vec![json!({"n": 1}), json!({"n": 1}), json!({"n": 2})]
    );
    let m = p.metrics();
    assert_eq!(m.received.load(Ordering::Relaxed), 5);
    assert_eq!(m.published.load(Ordering::Relaxed), 3);
    assert_eq!(m.duplicates.load(Ordering::Relaxed), 2);
    assert_eq!(m.failed.load(Ordering::Relaxed), 0);
    server.stop().await;
}

#[tokio::test]
async fn consumer_broadcast_is_a_duplicate_only_when_every_channel_was_and_poison_on_any_refusal() {
    let server = TestServer::start().await;
    let p = processor(&server);
    let b = json!({"channels": ["chat:b1", "tags:b2"], "data": {"n": 7}, "tags": {"type": "paid"}});
    assert_eq!(
        p.process(&message("b1", "broadcast", &b)).await,
        Outcome::Done
    );
    assert_eq!(
        p.process(&message("b1", "broadcast", &b)).await,
        Outcome::Done
    );
    assert_eq!(p.metrics().duplicates.load(Ordering::Relaxed), 1);
    let (_, h) = server
        .api("history", json!({"channel": "tags:b2", "limit": -1}))
        .await;
    assert_eq!(
        h["result"]["publications"][0]["tags"],
        json!({"type": "paid"})
    );
    // One channel refused (unknown namespace) while the other took it: poison, code 102.
    let partial = json!({"channels": ["chat:b1", "nope:b"], "data": {"n": 8}});
    let got = consumer_verdict(p.process(&message("b2", "broadcast", &partial)).await);
    assert_eq!(got, Err(102));
    // A body that is not an API command at all.
    let junk = Message {
        id: "j".into(),
        body: b"not json".to_vec().into(),
        ..Default::default()
    };
    match p.process(&junk).await {
        Outcome::Poison(why) => assert!(why.contains("not an API command"), "{why}"),
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_consumer_disconnect_with_code_0_closes_with_the_default_3503() {
    let server = TestServer::start().await;
    let t = pushwire_test_support::token(
        json!({"sub": "u0", "exp": pushwire_test_support::now() + 3600}),
    );
    let (mut c, _) = pushwire_test_support::WsClient::connected(&server.ws_url(), Some(&t)).await;
    let p = processor(&server);
    let d = json!({"user": "u0", "disconnect": {"code": 0, "reason": ""}});
    assert_eq!(
        p.process(&message("d", "disconnect", &d)).await,
        Outcome::Done
    );
    assert_eq!(
        c.expect_close().await,
        (3503, "force disconnect".to_owned())
    );
    server.stop().await;
}
