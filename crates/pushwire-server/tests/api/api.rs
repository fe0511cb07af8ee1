//! Server HTTP API end to end: auth, status codes, every method, batch, broadcast, the legacy
//! route and the transport error mode, over real HTTP (and WebSocket for delivery).

use std::time::Duration;

use pushwire_test_support::sdk::run_python_with;
use pushwire_test_support::{now, token, TestServer, WsClient, API_KEY};
use serde_json::{json, Value};

/// A raw `POST` to `path` with optional headers; returns status and body text.
async fn post(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", server.http_url()))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

async fn connected_user(server: &TestServer, user: &str) -> (WsClient, String) {
    let t = token(json!({"sub": user, "exp": now() + 3600}));
    let (c, result) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    let id = result["client"].as_str().expect("client id").to_owned();
    (c, id)
}

async fn subscribe(c: &mut WsClient, channel: &str) {
    let r = c.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(r["subscribe"].is_object(), "subscribe failed: {r}");
}

#[tokio::test]
async fn publish_positions_and_delivery() {
    let server = TestServer::start().await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    subscribe(&mut c, "chat:x").await;

    let first = server.publish("chat:x", json!({"n": 1})).await;
    assert_eq!(first["offset"], json!(1));
    let epoch = first["epoch"].as_str().expect("epoch").to_owned();
    assert!(!epoch.is_empty());
    let second = server.publish("chat:x", json!({"n": 2})).await;
    assert_eq!(second, json!({"offset": 2, "epoch": epoch}));

    let p = c.next_publication("chat:x").await;
    assert_eq!(
        (p["data"].clone(), p["offset"].clone()),
        (json!({"n": 1}), json!(1))
    );
    let p = c.next_publication("chat:x").await;
    assert_eq!(
        (p["data"].clone(), p["offset"].clone()),
        (json!({"n": 2}), json!(2))
    );

    // No history: an empty result, still under "result".
    let (status, body) = server
        .api("publish", json!({"channel": "news", "data": "plain"}))
        .await;
    assert_eq!((status, body), (200, json!({"result": {}})));
    server.stop().await;
}

#[tokio::test]
async fn publish_raw_data_is_opaque_and_b64data_works() {
    let server = TestServer::start().await;
    let key = [("X-API-Key", API_KEY)];
    let data = r#"{"big":12345678901234567890123,"f":1.50}"#;
    let (status, _) = post(
        &server,
        "/api/publish",
        &key,
        &format!(r#"{{"channel":"chat:raw","data":{data}}}"#),
    )
    .await;
    assert_eq!(status, 200);
    // The payload comes back byte for byte (no number normalisation).
    let (_, text) = post(
        &server,
        "/api/history",
        &key,
        r#"{"channel":"chat:raw","limit":-1}"#,
    )
    .await;
    assert!(text.contains(&format!(r#""data":{data}"#)), "{text}");

    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    subscribe(&mut c, "news").await;
    // base64 of {"b":1}
    let (status, body) = server
        .api(
            "publish",
            json!({"channel": "news", "b64data": "eyJiIjoxfQ=="}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"result": {}})));
    assert_eq!(c.next_publication("news").await["data"], json!({"b": 1}));
    server.stop().await;
}

#[tokio::test]
async fn publish_errors() {
    let server = TestServer::start().await;
    let cases = [
        (
            json!({"channel": "nope:x", "data": {}}),
            102,
            "unknown channel",
        ),
        (json!({"channel": "", "data": {}}), 107, "bad request"),
        (json!({"channel": "news"}), 107, "bad request"),
        (json!({"channel": "news", "data": null}), 107, "bad request"),
        (
            json!({"channel": "news", "b64data": "***"}),
            107,
            "bad request",
        ),
    ];
    for (req, code, message) in cases {
        let (status, body) = server.api("publish", req.clone()).await;
        assert_eq!(status, 200, "{req}");
        assert_eq!(
            body,
            json!({"error": {"code": code, "message": message}}),
            "{req}"
        );
    }
    // Wrong types in the params are a bad body.
    let (status, body) = server
        .api("publish", json!({"channel": 5, "data": {}}))
        .await;
    assert_eq!((status, body), (400, Value::Null));
    server.stop().await;
}

#[tokio::test]
async fn idempotency_key_deduplicates() {
    let server = TestServer::start().await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    subscribe(&mut c, "chat:idem").await;
    let req = json!({"channel": "chat:idem", "data": {"m": 1}, "idempotency_key": "m-1"});
    let (_, first) = server.api("publish", req.clone()).await;
    let (_, again) = server.api("publish", req).await;
    assert_eq!(first["result"]["offset"], json!(1));
    assert_eq!(again, first);
    assert_eq!(
        c.next_publication("chat:idem").await["data"],
        json!({"m": 1})
    );
    assert!(c.silent_for(Duration::from_millis(300)).await);
    server.stop().await;
}

#[tokio::test]
async fn auth() {
    let server = TestServer::start().await;
    let body = r#"{}"#;
    assert_eq!(
        post(&server, "/api/info", &[], body).await,
        (401, String::new())
    );
    assert_eq!(
        post(&server, "/api/info", &[("X-API-Key", "wrong")], body).await,
        (401, String::new())
    );
    let auth_header = format!("apikey {API_KEY}");
    let (status, text) = post(
        &server,
        "/api/info",
        &[("Authorization", &auth_header)],
        body,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let upper = format!("APIKEY {API_KEY}");
    let (status, _) = post(&server, "/api/info", &[("Authorization", &upper)], body).await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &server,
        "/api/info",
        &[("Authorization", "apikey nope")],
        body,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post(&server, &format!("/api/info?api_key={API_KEY}"), &[], body).await;
    assert_eq!(status, 200);
    // The legacy route is protected too.
    let (status, text) = post(&server, "/api", &[], r#"{"method":"info"}"#).await;
    assert_eq!((status, text), (401, String::new()));
    server.stop().await;
}

#[tokio::test]
async fn empty_configured_key_refuses_unless_insecure() {
    let server = TestServer::start_with(|c| c.http_api.key = String::new()).await;
    let (status, text) = post(&server, "/api/info", &[("X-API-Key", "")], "{}").await;
    assert_eq!((status, text), (401, String::new()));
    server.stop().await;

    let server = TestServer::start_with(|c| {
        c.http_api.key = String::new();
        c.http_api.insecure = true;
    })
    .await;
    let (status, _) = post(&server, "/api/info", &[], "{}").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn http_statuses() {
    let server = TestServer::start_with(|c| c.http_api.max_body_size = 2048).await;
    let key = [("X-API-Key", API_KEY)];
    let get = reqwest::Client::new()
        .get(format!("{}/api/publish", server.http_url()))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("get");
    assert_eq!(get.status().as_u16(), 405);
    for bad in ["{oops", "", "  ", "[1,2]", "null", "\"x\""] {
        let (status, text) = post(&server, "/api/publish", &key, bad).await;
        assert_eq!(status, 400, "body {bad:?}");
        assert!(!text.is_empty() && serde_json::from_str::<Value>(&text).is_err());
    }
    let (status, _) = post(&server, "/api/nope", &key, "{}").await;
    assert_eq!(status, 404);
    let big = format!(r#"{{"channel":"news","data":"{}"}}"#, "x".repeat(4096));
    let (status, _) = post(&server, "/api/publish", &key, &big).await;
    assert_eq!(status, 413);
    server.stop().await;
}

#[tokio::test]
async fn configured_transport_error_mode() {
    let server = TestServer::start_with(|c| {
        c.http_api.error_mode = pushwire_server::config::ApiErrorMode::Transport;
    })
    .await;
    let (status, body) = server
        .api("publish", json!({"channel": "nope:x", "data": {}}))
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"code": 102, "message": "unknown channel"}))
    );
    let (status, body) = server
        .api("publish", json!({"channel": "news", "data": {}}))
        .await;
    assert_eq!((status, body), (200, json!({"result": {}})));
    server.stop().await;
}

#[tokio::test]
async fn transport_error_mode() {
    let server = TestServer::start().await;
    let headers = [
        ("X-API-Key", API_KEY),
        ("X-Centrifugo-Error-Mode", "transport"),
    ];
    let (status, text) = post(
        &server,
        "/api/publish",
        &headers,
        r#"{"channel":"nope:x","data":{}}"#,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json"),
        json!({"code": 102, "message": "unknown channel"})
    );
    let (status, text) = post(&server, "/api/history", &headers, r#"{"channel":"news"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json"),
        json!({"code": 108, "message": "not available"})
    );
    // Success keeps the usual envelope.
    let (status, text) = post(
        &server,
        "/api/publish",
        &headers,
        r#"{"channel":"news","data":1}"#,
    )
    .await;
    assert_eq!((status, text.as_str()), (200, r#"{"result":{}}"#));
    server.stop().await;
}

/// The batch answer is the bare `{"replies":[…]}` (no `result` wrapper), like Centrifugo's:
/// cent 5.x reads `replies` at the top level.
#[tokio::test]
async fn batch_keys_replies_by_method() {
    let server = TestServer::start().await;
    for parallel in [false, true] {
        let (status, body) = server
            .api(
                "batch",
                json!({
                    "commands": [
                        {"publish": {"channel": "a", "data": {}}},
                        {"publish": {"channel": "x:b", "data": {}}},
                        {"presence_stats": {"channel": "chat:p"}},
                        {"batch": {"commands": []}},
                        {"nothing": {}},
                    ],
                    "parallel": parallel,
                }),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"replies": [
                {"publish": {}},
                {"error": {"code": 102, "message": "unknown channel"}},
                {"presence_stats": {"num_clients": 0, "num_users": 0}},
                {"error": {"code": 104, "message": "method not found"}},
                {"error": {"code": 104, "message": "method not found"}},
            ]})
        );
    }
    let (status, body) = server.api("batch", json!({})).await;
    assert_eq!((status, body), (200, json!({"replies": []})));
    server.stop().await;
}

#[tokio::test]
async fn broadcast_answers_per_channel() {
    let server = TestServer::start().await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    subscribe(&mut c, "news").await;
    subscribe(&mut c, "chat:b").await;
    let (status, body) = server
        .api(
            "broadcast",
            json!({"channels": ["news", "chat:b", "nope:c", ""], "data": {"all": true}}),
        )
        .await;
    assert_eq!(status, 200);
    let responses = body["result"]["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 4);
    assert_eq!(responses[0], json!({"result": {}}));
    assert_eq!(responses[1]["result"]["offset"], json!(1));
    assert!(responses[1]["result"]["epoch"].is_string());
    assert_eq!(
        responses[2],
        json!({"error": {"code": 102, "message": "unknown channel"}})
    );
    assert_eq!(
        responses[3],
        json!({"error": {"code": 107, "message": "bad request"}})
    );
    assert_eq!(
        c.next_publication("news").await["data"],
        json!({"all": true})
    );
    assert_eq!(
        c.next_publication("chat:b").await["data"],
        json!({"all": true})
    );

    let (_, body) = server
        .api("broadcast", json!({"channels": [], "data": {}}))
        .await;
    assert_eq!(body["error"]["code"], json!(107));
    server.stop().await;
}

#[tokio::test]
async fn history_limit_since_and_remove() {
    let server = TestServer::start().await;
    for n in 1..=3 {
        server.publish("chat:h", json!({"n": n})).await;
    }
    let (_, body) = server
        .api("history", json!({"channel": "chat:h", "limit": 2}))
        .await;
    let r = &body["result"];
    let epoch = r["epoch"].as_str().expect("epoch").to_owned();
    assert_eq!(r["offset"], json!(3));
    let pubs = r["publications"].as_array().expect("publications");
    let got: Vec<_> = pubs
        .iter()
        .map(|p| (p["data"]["n"].clone(), p["offset"].clone()))
        .collect();
    assert_eq!(got, vec![(json!(1), json!(1)), (json!(2), json!(2))]);

    let (_, body) = server
        .api(
            "history",
            json!({"channel": "chat:h", "limit": -1, "since": {"offset": 1, "epoch": epoch}}),
        )
        .await;
    let offsets: Vec<_> = body["result"]["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["offset"].clone())
        .collect();
    assert_eq!(offsets, vec![json!(2), json!(3)]);

    let (_, body) = server
        .api(
            "history",
            json!({"channel": "chat:h", "since": {"offset": 1, "epoch": "other"}, "limit": -1}),
        )
        .await;
    assert_eq!(body["error"]["code"], json!(112));
    let (_, body) = server.api("history", json!({"channel": "news"})).await;
    assert_eq!(
        body,
        json!({"error": {"code": 108, "message": "not available"}})
    );

    let (_, body) = server
        .api("history_remove", json!({"channel": "chat:h"}))
        .await;
    assert_eq!(body, json!({"result": {}}));
    let (_, body) = server
        .api("history", json!({"channel": "chat:h", "limit": -1}))
        .await;
    assert_eq!(
        body,
        json!({"result": {"publications": [], "epoch": epoch, "offset": 3}})
    );
    server.stop().await;
}

#[tokio::test]
async fn presence_and_stats() {
    let server = TestServer::start().await;
    let (mut c, client_id) = connected_user(&server, "u1").await;
    subscribe(&mut c, "chat:x").await;
    let (_, body) = server.api("presence", json!({"channel": "chat:x"})).await;
    let presence = body["result"]["presence"].as_object().expect("presence");
    assert_eq!(presence.len(), 1);
    assert_eq!(presence[&client_id]["client"], json!(client_id));
    assert_eq!(presence[&client_id]["user"], json!("u1"));
    let (_, body) = server
        .api("presence_stats", json!({"channel": "chat:x"}))
        .await;
    assert_eq!(body, json!({"result": {"num_clients": 1, "num_users": 1}}));
    let (_, body) = server.api("presence", json!({"channel": "news"})).await;
    assert_eq!(body["error"]["code"], json!(108));
    let (_, body) = server.api("presence", json!({})).await;
    assert_eq!(body["error"]["code"], json!(107));
    server.stop().await;
}

#[tokio::test]
async fn channels_with_pattern() {
    let server = TestServer::start().await;
    let (mut a, _) = WsClient::connected(&server.ws_url(), None).await;
    let (mut b, _) = WsClient::connected(&server.ws_url(), None).await;
    subscribe(&mut a, "chat:one").await;
    subscribe(&mut b, "chat:one").await;
    subscribe(&mut a, "chat:two").await;
    subscribe(&mut a, "news").await;
    let (_, body) = server.api("channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(
        body,
        json!({"result": {"channels": {
            "chat:one": {"num_clients": 2},
            "chat:two": {"num_clients": 1},
        }}})
    );
    let (_, body) = server.api("channels", json!({"pattern": "chat:?ne"})).await;
    assert_eq!(
        body,
        json!({"result": {"channels": {"chat:one": {"num_clients": 2}}}})
    );
    let (_, body) = server.api("channels", json!({})).await;
    let all = body["result"]["channels"].as_object().expect("channels");
    assert_eq!(all.len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn info_reports_this_node() {
    let server = TestServer::start().await;
    let (_c, _) = WsClient::connected(&server.ws_url(), None).await;
    let (_, body) = server.api("info", json!({})).await;
    let nodes = body["result"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["uid"], json!(server.node().id()));
    assert_eq!(nodes[0]["num_clients"], json!(1));
    server.stop().await;
}

#[tokio::test]
async fn disconnect_closes_with_3503() {
    let server = TestServer::start().await;
    let (mut c, _) = connected_user(&server, "u1").await;
    let (status, body) = server.api("disconnect", json!({"user": "u1"})).await;
    assert_eq!((status, body), (200, json!({"result": {}})));
    assert_eq!(
        c.expect_close().await,
        (3503, "force disconnect".to_owned())
    );

    let (mut spared, spared_id) = connected_user(&server, "u2").await;
    let (mut gone, _) = connected_user(&server, "u2").await;
    let (_, body) = server
        .api(
            "disconnect",
            json!({"user": "u2", "whitelist": [spared_id], "disconnect": {"code": 4001, "reason": "bye"}}),
        )
        .await;
    assert_eq!(body, json!({"result": {}}));
    assert_eq!(gone.expect_close().await, (4001, "bye".to_owned()));
    // The whitelisted connection is still served.
    subscribe(&mut spared, "news").await;

    for bad in [
        json!({"user": ""}),
        json!({"user": "u2", "disconnect": {"code": 1000, "reason": "x"}}),
        json!({"user": "u2", "disconnect": {"code": 4000, "reason": "r".repeat(123)}}),
    ] {
        let (_, body) = server.api("disconnect", bad.clone()).await;
        assert_eq!(body["error"]["code"], json!(107), "{bad}");
    }
    server.stop().await;
}

#[tokio::test]
async fn unsubscribe_sends_push_2000() {
    let server = TestServer::start().await;
    let (mut c, _) = connected_user(&server, "u1").await;
    subscribe(&mut c, "chat:u").await;
    let (_, body) = server
        .api("unsubscribe", json!({"user": "u1", "channel": "chat:u"}))
        .await;
    assert_eq!(body, json!({"result": {}}));
    let unsubscribe = loop {
        let m = c.next_message().await.expect("connection open");
        if m["push"]["unsubscribe"].is_object() {
            break m;
        }
    };
    assert_eq!(unsubscribe["push"]["channel"], json!("chat:u"));
    assert_eq!(unsubscribe["push"]["unsubscribe"]["code"], json!(2000));
    let (_, body) = server
        .api("unsubscribe", json!({"user": "u1", "channel": "nope:x"}))
        .await;
    assert_eq!(body["error"]["code"], json!(102));
    server.stop().await;
}

#[tokio::test]
async fn server_side_subscribe_and_refresh() {
    let server = TestServer::start().await;
    let token = token(json!({"sub": "u1", "exp": now() + 600}));
    let (mut c, _) = WsClient::connected(&server.ws_url(), Some(&token)).await;
    server.publish("chat:s", json!({"n": 1})).await;
    let (status, body) = server
        .api(
            "subscribe",
            json!({"user": "u1", "channel": "chat:s", "data": {"welcome": true}}),
        )
        .await;
    assert_eq!((status, &body), (200, &json!({"result": {}})));
    let push = c.next_message().await.expect("subscribe push");
    assert_eq!(push["push"]["channel"], json!("chat:s"));
    let sub = &push["push"]["subscribe"];
    assert_eq!(sub["recoverable"], json!(true));
    assert_eq!(sub["offset"], json!(1));
    assert_eq!(sub["data"], json!({"welcome": true}));
    server.publish("chat:s", json!({"n": 2})).await;
    assert_eq!(c.next_publication("chat:s").await["data"], json!({"n": 2}));
    // A second subscribe of the same channel is a no-op, an unknown namespace an error.
    let (_, body) = server
        .api("subscribe", json!({"user": "u1", "channel": "chat:s"}))
        .await;
    assert_eq!(body, json!({"result": {}}));
    let (_, body) = server
        .api("subscribe", json!({"user": "u1", "channel": "nope:x"}))
        .await;
    assert_eq!(body["error"]["code"], json!(102));
    let (_, body) = server.api("subscribe", json!({"user": "u1"})).await;
    assert_eq!(body["error"]["code"], json!(107));

    let expire_at = now() + 3600;
    let (_, body) = server
        .api("refresh", json!({"user": "u1", "expire_at": expire_at}))
        .await;
    assert_eq!(body, json!({"result": {}}));
    let push = c.next_message().await.expect("refresh push");
    assert_eq!(push["push"]["refresh"]["expires"], json!(true));
    let ttl = push["push"]["refresh"]["ttl"].as_i64().unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    let (_, body) = server
        .api("refresh", json!({"user": "u1", "expired": true}))
        .await;
    assert_eq!(body, json!({"result": {}}));
    assert_eq!(c.expect_close().await, (3005, "connection expired".into()));

    let (_, body) = server.api("rpc", json!({"method": "anything"})).await;
    assert_eq!(body["error"]["code"], json!(104));
    server.stop().await;
}

#[tokio::test]
async fn legacy_route_newline_delimited() {
    let server = TestServer::start().await;
    let body = concat!(
        r#"{"id":1,"method":"publish","params":{"channel":"chat:l","data":{"a":1}}}"#,
        "\n",
        r#"{"method":"HISTORY","params":{"channel":"chat:l","limit":-1}}"#,
        "\n",
        r#"{"id":3,"method":6,"params":{"channel":"news"}}"#,
        "\n",
        r#"{"id":4,"method":"nope"}"#,
        "\n",
        r#"{"params":{"channel":"nope:x","data":{}}}"#,
        "\n",
    );
    let (status, text) = post(&server, "/api", &[("X-API-Key", API_KEY)], body).await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = text
        .split('\n')
        .map(|l| serde_json::from_str(l).expect("line is JSON"))
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[0]["id"], json!(1));
    assert_eq!(lines[0]["result"]["offset"], json!(1));
    assert!(lines[1].get("id").is_none());
    assert_eq!(
        lines[1]["result"]["publications"][0]["data"],
        json!({"a": 1})
    );
    assert_eq!(
        lines[2],
        json!({"id": 3, "error": {"code": 108, "message": "not available"}})
    );
    assert_eq!(
        lines[3],
        json!({"id": 4, "error": {"code": 104, "message": "method not found"}})
    );
    assert_eq!(
        lines[4],
        json!({"error": {"code": 102, "message": "unknown channel"}})
    );

    let (status, _) = post(&server, "/api", &[("X-API-Key", API_KEY)], "{oops").await;
    assert_eq!(status, 400);
    let (status, _) = post(&server, "/api", &[("X-API-Key", API_KEY)], "").await;
    assert_eq!(status, 400);
    server.stop().await;
}

/// Adversarial finding 5: a 2.5 KB batch of 50 `history limit -1` calls on a channel of
/// 100 x 60 KB built a 300 MB reply. Batches are capped in commands
/// (`http_api.batch_max_commands`) and reply bytes (`http_api.batch_max_reply_size`): past the
/// reply budget the remaining commands answer 106 without running; the legacy route too.
#[tokio::test]
async fn batch_commands_and_reply_bytes_are_capped() {
    let server = TestServer::start_with(|c| {
        c.http_api.batch_max_commands = 100;
        c.http_api.batch_max_reply_size = 8 * 1024 * 1024;
    })
    .await;
    let pad = "z".repeat(60 * 1024);
    for i in 0..100 {
        server
            .publish("chat:big", json!({ "i": i, "pad": pad }))
            .await;
    }
    let history = json!({"history": {"channel": "chat:big", "limit": -1}});
    let commands: Vec<Value> = (0..50).map(|_| history.clone()).collect();
    let (status, body) = server.api("batch", json!({ "commands": commands })).await;
    assert_eq!(status, 200);
    let replies = body["replies"].as_array().expect("replies").clone();
    assert_eq!(replies.len(), 50);
    let ran = replies.iter().filter(|r| r["history"].is_object()).count();
    let refused = replies
        .iter()
        .filter(|r| r["error"]["code"] == json!(106))
        .count();
    // Each reply is about 6 MB: the second passes the 8 MB budget, the rest are refused.
    assert_eq!((ran, refused), (2, 48), "{ran} ran, {refused} refused");
    // Too many commands: refused whole.
    let commands: Vec<Value> = (0..101).map(|_| json!({"info": {}})).collect();
    let (_, body) = server.api("batch", json!({ "commands": commands })).await;
    assert_eq!(body["error"]["code"], json!(106), "{body}");
    // The legacy route stops the same way.
    let line = r#"{"method":"history","params":{"channel":"chat:big","limit":-1}}"#;
    let legacy = [line; 10].join("\n");
    let resp = reqwest::Client::new()
        .post(format!("{}/api", server.http_url()))
        .header("X-API-Key", API_KEY)
        .body(legacy)
        .send()
        .await
        .expect("legacy");
    let text = resp.text().await.expect("body");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 10);
    assert!(lines[0]["result"].is_object());
    assert!(lines[9]["error"]["code"] == json!(106), "{}", lines[9]);
    // Other publishes are served meanwhile.
    server.publish("chat:other", json!({"ok": true})).await;
    server.stop().await;
}

/// A server with the gRPC API on (`grpc_api.*`, key [`API_KEY`]) changed by `f`.
async fn grpc_api_server(f: impl FnOnce(&mut pushwire_server::ServerConfig)) -> TestServer {
    TestServer::start_with(|c| {
        c.grpc_api.enabled = true;
        c.grpc_api.port = 0;
        c.grpc_api.key = API_KEY.into();
        f(c);
    })
    .await
}

/// What `sdk-tests/python/grpc_api.py` (grpcio + centrifuge-python) must have seen: every
/// method over gRPC agreeing with the HTTP API on the same state, errors in the `error` field,
/// UNAUTHENTICATED for a wrong or missing key, delivery to a real subscriber.
fn assert_grpc_scenario(r: &Value) {
    assert_eq!(r["unauthenticated"], json!(true));
    assert_eq!(r["delivered"], json!({"n": 1}));
    assert_eq!(r["publish_offset"], json!(1));
    assert_eq!(r["history_offsets"], json!([1, 2]));
    assert_eq!(r["presence_users"], json!(["grpc-user"]));
    assert_eq!(r["presence_stats"], json!([1, 1]));
    assert!(r["info_num_clients"].as_u64() >= Some(1), "{r}");
    assert_eq!(r["errors"], json!([107, 102, 104]));
    assert_eq!(r["transport_status"], json!("INVALID_ARGUMENT"));
    assert_eq!(r["broadcast_offsets"], json!([3, 1]));
    assert_eq!(r["batch"], json!([4, 1, 107]));
    assert_eq!(r["disconnect"], json!([4500, "bye"]));
    assert_eq!(r["methods"].as_array().map(Vec::len), Some(14));
}

#[tokio::test]
async fn grpc_api_every_method_agrees_with_the_http_api() {
    let server = grpc_api_server(|_| {}).await;
    let addr = server
        .grpc_api_addr()
        .expect("gRPC API listening")
        .to_string();
    let run = run_python_with(
        "python/grpc_api.py",
        &server,
        &[("PUSHWIRE_GRPC_API", &addr)],
    )
    .await;
    assert_grpc_scenario(&run.result());
    // The calls went through the one dispatch path: counted with the HTTP API's metrics.
    let metrics = reqwest::get(format!("{}/metrics", server.http_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("pushwire_api_refused_total") && l.contains("unauthorized"))
        .unwrap_or_default()
        .to_owned();
    assert!(refused.ends_with(" 2"), "two refused gRPC calls: {refused}");
    server.stop().await;
}

#[tokio::test]
async fn grpc_api_over_tls() {
    let cert = pushwire_test_support::cert::TestCert::new();
    let server = grpc_api_server(|c| c.grpc_api.tls = cert.server_tls()).await;
    let addr = server
        .grpc_api_addr()
        .expect("gRPC API listening")
        .to_string();
    let ca = cert.cert_file().display().to_string();
    let env = [
        ("PUSHWIRE_GRPC_API", addr.as_str()),
        ("PUSHWIRE_GRPC_API_CA", &ca),
    ];
    let run = run_python_with("python/grpc_api.py", &server, &env).await;
    assert!(run.stdout.contains("gRPC over TLS"), "{}", run.stdout);
    assert_grpc_scenario(&run.result());
    server.stop().await;
}

/// A raw unary call with tonic: `authorization` as given.
async fn grpc_call<Req, Resp>(
    addr: std::net::SocketAddr,
    method: &'static str,
    key: Option<&str>,
    req: Req,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(req);
    if let Some(key) = key {
        request.metadata_mut().insert(
            "authorization",
            format!("apikey {key}").parse().expect("metadata"),
        );
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    grpc.unary(request, path, tonic_prost::ProstCodec::default())
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn grpc_api_limits_unknown_methods_and_insecure() {
    use pushwire_server::grpc_api::wire as w;
    const PUBLISH: &str = "/centrifugal.centrifugo.api.CentrifugoApi/Publish";
    let server = grpc_api_server(|c| c.grpc_api.max_receive_message_size = 2048).await;
    let addr = server.grpc_api_addr().expect("listening");
    let publish = |data: Vec<u8>| w::PublishRequest {
        channel: "chat:limits".into(),
        data,
        ..Default::default()
    };
    let ok: w::PublishResponse = grpc_call(addr, PUBLISH, Some(API_KEY), publish(b"[1]".to_vec()))
        .await
        .expect("small publish");
    assert_eq!(ok.result.map(|r| r.offset), Some(1));
    let big = format!("\"{}\"", "x".repeat(4096)).into_bytes();
    let e = grpc_call::<_, w::PublishResponse>(addr, PUBLISH, Some(API_KEY), publish(big))
        .await
        .expect_err("over max_receive_message_size");
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    // Nothing was published by the refused call.
    let (_, h) = server
        .api("history", json!({"channel": "chat:limits", "limit": -1}))
        .await;
    assert_eq!(h["result"]["offset"], json!(1));
    // A method of Centrifugo's service that pushwire does not have.
    let e = grpc_call::<_, w::InfoResponse>(
        addr,
        "/centrifugal.centrifugo.api.CentrifugoApi/Connections",
        Some(API_KEY),
        w::InfoRequest {},
    )
    .await
    .expect_err("unknown method");
    assert_eq!(e.code(), tonic::Code::Unimplemented, "{e:?}");
    server.stop().await;

    // insecure: no key needed; the default (secure) needs the exact key.
    let server = grpc_api_server(|c| {
        c.grpc_api.key.clear();
        c.grpc_api.insecure = true;
    })
    .await;
    let addr = server.grpc_api_addr().expect("listening");
    let ok: w::PublishResponse = grpc_call(addr, PUBLISH, None, publish(b"{}".to_vec()))
        .await
        .expect("insecure");
    assert!(ok.error.is_none(), "{ok:?}");
    server.stop().await;
}
