//! Connection and subscription tokens under attack (issue 5, docs/security.md "Tokens").
//!
//! Every test here fails if its defence is removed: expired tokens (109 / 3005), another key,
//! `alg: none`, algorithm confusion (HS256 signed with the RSA public key), the algorithm pin,
//! audience and issuer, RSA/ECDSA/JWKS happy paths, the JWKS cache (unknown `kid` refresh,
//! rate limit, key sets kept apart), a JWKS endpoint down or slow (sessions keep working, new
//! connects get 100 quickly), forged subscription tokens, and client `refresh`.
//!
//! Keys: PEM fixtures under `tests/fixtures/` (see its README). JWKS: a real HTTP server on
//! 127.0.0.1 started by the test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use pushwire_core::config::{SubscriptionTokenConfig, TokenConfig};
use pushwire_test_support::{now, token, TestServer, WsClient};
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture(&format!("{name}.key.pem")).as_bytes()).expect("rsa key")
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(fixture("ec_p256.key.pem").as_bytes()).expect("ec key")
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "callers pass `json!` literals; a `&` at every call site buys nothing in a test"
)]
fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    encode(&h, &claims, key).expect("sign")
}

fn claims(user: &str) -> Value {
    json!({"sub": user, "exp": now() + 300})
}

/// A JWKS with the keys of the fixture files `jwks_<kid>.json`.
fn jwks(kids: &[&str]) -> Value {
    let keys: Vec<Value> = kids
        .iter()
        .map(|kid| {
            let set: Value = serde_json::from_str(&fixture(&format!("jwks_{kid}.json"))).unwrap();
            set["keys"][0].clone()
        })
        .collect();
    json!({ "keys": keys })
}

async fn server_with(token: TokenConfig) -> TestServer {
    TestServer::start_with(|c| c.client.token = token).await
}

/// Sends connect with `token` and returns the reply (result or error).
async fn connect_reply(server: &TestServer, token: &str) -> (WsClient, Value) {
    let mut c = WsClient::open(&server.ws_url()).await;
    let reply = c.command(json!({"connect": {"token": token}})).await;
    (c, reply)
}

/// Sends connect with `token` and expects the server to close the connection.
async fn connect_closed(server: &TestServer, token: &str) -> (u16, String) {
    let mut c = WsClient::open(&server.ws_url()).await;
    c.send_text(&json!({"id": 1, "connect": {"token": token}}).to_string())
        .await;
    c.expect_close().await
}

async fn assert_invalid(server: &TestServer, token: &str, what: &str) {
    assert_eq!(
        connect_closed(server, token).await,
        (3500, "invalid token".into()),
        "{what}"
    );
}

async fn assert_connects(server: &TestServer, token: &str) -> WsClient {
    let (c, reply) = connect_reply(server, token).await;
    assert!(reply["connect"].is_object(), "connect failed: {reply}");
    c
}

/// A real JWKS endpoint: serves a settable body, counts requests, can be made slow or taken
/// down (connections are not kept alive, so down means refused).
struct JwksServer {
    addr: std::net::SocketAddr,
    state: Arc<JwksState>,
    task: tokio::task::JoinHandle<()>,
}

struct JwksState {
    body: Mutex<Value>,
    delay: Mutex<Duration>,
    hits: AtomicUsize,
}

async fn serve_jwks(State(s): State<Arc<JwksState>>) -> impl IntoResponse {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let delay = *s.delay.lock();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = s.body.lock().to_string();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CONNECTION, "close"),
        ],
        body,
    )
}

impl JwksServer {
    async fn start(body: Value) -> JwksServer {
        let state = Arc::new(JwksState {
            body: Mutex::new(body),
            delay: Mutex::new(Duration::ZERO),
            hits: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/jwks", axum::routing::get(serve_jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer { addr, state, task }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn set_body(&self, body: Value) {
        *self.state.body.lock() = body;
    }

    fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock() = delay;
    }

    /// Stops listening: later fetches are refused.
    async fn stop(&self) {
        self.task.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            tokio::net::TcpStream::connect(self.addr).await.is_err(),
            "JWKS server still accepting"
        );
    }
}

fn jwks_config(url: &str) -> TokenConfig {
    TokenConfig {
        jwks_public_endpoint: url.into(),
        jwks_fetch_timeout: Duration::from_millis(500),
        jwks_refresh_min_interval: Duration::from_millis(300),
        ..Default::default()
    }
}

// ---- expiry and refresh -------------------------------------------------------------------

#[tokio::test]
async fn expired_token_gets_109_on_connect_and_3005_on_refresh() {
    let server = TestServer::start().await;
    let expired = token(json!({"sub": "u1", "exp": now() - 5}));
    let (_c, reply) = connect_reply(&server, &expired).await;
    assert_eq!(reply["error"]["code"], json!(109), "{reply}");
    assert_eq!(reply["error"]["message"], json!("token expired"));

    let (mut c, _) = WsClient::connected(
        &server.ws_url(),
        Some(&token(json!({"sub": "u1", "exp": now() + 60}))),
    )
    .await;
    c.send_text(&json!({"id": 9, "refresh": {"token": expired}}).to_string())
        .await;
    assert_eq!(c.expect_close().await.0, 3005);
    server.stop().await;
}

#[tokio::test]
async fn client_refresh_extends_and_refuses_another_user() {
    let server = TestServer::start().await;
    let (mut c, connect) = WsClient::connected(
        &server.ws_url(),
        Some(&token(json!({"sub": "u1", "exp": now() + 2}))),
    )
    .await;
    assert_eq!(connect["expires"], json!(true));
    let r = c
        .command(json!({"refresh": {"token": token(json!({"sub": "u1", "exp": now() + 600}))}}))
        .await;
    assert_eq!(r["refresh"]["expires"], json!(true), "{r}");
    assert!(r["refresh"]["ttl"].as_u64().unwrap() > 500);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.publish("news", json!({"alive": true})).await;
    let r = c.command(json!({"subscribe": {"channel": "news"}})).await;
    assert!(
        r["subscribe"].is_object(),
        "still connected after the old exp: {r}"
    );

    let other = token(json!({"sub": "u2", "exp": now() + 600}));
    c.send_text(&json!({"id": 99, "refresh": {"token": other}}).to_string())
        .await;
    assert_eq!(c.expect_close().await, (3500, "invalid token".into()));
    server.stop().await;
}

// ---- signatures and algorithms --------------------------------------------------------------

#[tokio::test]
async fn token_signed_with_another_key_is_refused() {
    let server = TestServer::start().await;
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims("u1"),
        &EncodingKey::from_secret(b"not-the-secret"),
    )
    .unwrap();
    assert_invalid(&server, &forged, "HMAC, other secret").await;
    server.stop().await;

    let server = server_with(TokenConfig {
        rsa_public_key: fixture("rsa_a.pub.pem"),
        ..Default::default()
    })
    .await;
    let forged = sign(Algorithm::RS256, None, &rsa_key("rsa_b"), claims("u1"));
    assert_invalid(&server, &forged, "RSA, other key").await;
    // The payload of a good token with the signature of another: refused.
    let good = sign(Algorithm::RS256, None, &rsa_key("rsa_a"), claims("u1"));
    let mut parts: Vec<&str> = good.split('.').collect();
    let other = sign(Algorithm::RS256, None, &rsa_key("rsa_a"), claims("admin"));
    parts[1] = other.split('.').nth(1).unwrap();
    assert_invalid(&server, &parts.join("."), "payload swapped").await;
    assert_connects(&server, &good).await;
    server.stop().await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let server = TestServer::start().await;
    let b64 = |v: Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    for alg in ["none", "None", "NONE", ""] {
        let t = format!(
            "{}.{}.",
            b64(json!({"alg": alg, "typ": "JWT"})),
            b64(claims("admin"))
        );
        assert_invalid(&server, &t, alg).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn hs256_token_to_rs256_only_config_is_refused() {
    let public_pem = fixture("rsa_a.pub.pem");
    let server = server_with(TokenConfig {
        rsa_public_key: public_pem.clone(),
        algorithms: vec!["RS256".into()],
        ..Default::default()
    })
    .await;
    // The classic confusion: HMAC keyed with the (public) RSA key.
    for secret in [public_pem.as_bytes(), public_pem.trim().as_bytes()] {
        let t = encode(
            &Header::new(Algorithm::HS256),
            &claims("admin"),
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert_invalid(&server, &t, "HS256 keyed with the RSA public key").await;
    }
    // The pin: RS512 with the right key is still refused when only RS256 is allowed.
    let rs512 = sign(Algorithm::RS512, None, &rsa_key("rsa_a"), claims("u1"));
    assert_invalid(&server, &rs512, "RS512 outside the pin").await;
    let rs256 = sign(Algorithm::RS256, None, &rsa_key("rsa_a"), claims("u1"));
    assert_connects(&server, &rs256).await;
    server.stop().await;
}

#[tokio::test]
async fn rsa_and_ecdsa_happy_paths() {
    let server = server_with(TokenConfig {
        rsa_public_key: fixture("rsa_a.pub.pem"),
        ecdsa_public_key: fixture("ec_p256.pub.pem"),
        ..Default::default()
    })
    .await;
    for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
        let t = sign(alg, None, &rsa_key("rsa_a"), claims("u-rsa"));
        let (_c, reply) = connect_reply(&server, &t).await;
        assert!(reply["connect"]["client"].is_string(), "{alg:?}: {reply}");
        assert_eq!(reply["connect"]["expires"], json!(true));
    }
    let t = sign(Algorithm::ES256, None, &ec_key(), claims("u-ec"));
    let mut c = assert_connects(&server, &t).await;
    // The user id came from the ECDSA token: user-limited channel `#u-ec` is allowed.
    let r = c
        .command(json!({"subscribe": {"channel": "news#u-ec"}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
    // An HMAC token is refused: no HMAC key is configured.
    assert_invalid(&server, &token(claims("u1")), "HS256 without HMAC key").await;
    server.stop().await;
}

#[tokio::test]
async fn wrong_audience_or_issuer_is_refused() {
    let server = TestServer::start_with(|c| {
        c.client.token.audience = "pushwire".into();
        c.client.token.issuer = "https://auth.example".into();
    })
    .await;
    let ok = json!({"sub": "u1", "aud": "pushwire", "iss": "https://auth.example"});
    assert_connects(&server, &token(ok.clone())).await;
    let ok_array =
        json!({"sub": "u1", "aud": ["other", "pushwire"], "iss": "https://auth.example"});
    assert_connects(&server, &token(ok_array)).await;
    for (what, bad) in [
        (
            "other audience",
            json!({"sub": "u1", "aud": "billing", "iss": "https://auth.example"}),
        ),
        (
            "no audience",
            json!({"sub": "u1", "iss": "https://auth.example"}),
        ),
        (
            "other issuer",
            json!({"sub": "u1", "aud": "pushwire", "iss": "https://evil.example"}),
        ),
        ("no issuer", json!({"sub": "u1", "aud": "pushwire"})),
    ] {
        assert_invalid(&server, &token(bad), what).await;
    }
    server.stop().await;
}

// ---- JWKS ---------------------------------------------------------------------------------

#[tokio::test]
async fn jwks_happy_path_fetches_once() {
    let jwks_server = JwksServer::start(jwks(&["key-a", "key-ec"])).await;
    let server = server_with(jwks_config(&jwks_server.url())).await;
    let rs = sign(
        Algorithm::RS256,
        Some("key-a"),
        &rsa_key("rsa_a"),
        claims("u1"),
    );
    let es = sign(Algorithm::ES256, Some("key-ec"), &ec_key(), claims("u2"));
    assert_connects(&server, &rs).await;
    assert_connects(&server, &es).await;
    assert_connects(&server, &rs).await;
    assert_eq!(jwks_server.hits(), 1, "keys are cached");
    // A kid that names a key of the other family is refused.
    let mixed = sign(
        Algorithm::RS256,
        Some("key-ec"),
        &rsa_key("rsa_a"),
        claims("u1"),
    );
    assert_invalid(&server, &mixed, "RS256 with an EC kid").await;
    // No kid: there is no static key to fall back on.
    let no_kid = sign(Algorithm::RS256, None, &rsa_key("rsa_a"), claims("u1"));
    assert_invalid(&server, &no_kid, "no kid").await;
    server.stop().await;
}

#[tokio::test]
async fn jwks_unknown_kid_refreshes_within_a_rate_limit() {
    let jwks_server = JwksServer::start(jwks(&["key-a"])).await;
    let server = server_with(TokenConfig {
        jwks_refresh_min_interval: Duration::from_secs(1),
        ..jwks_config(&jwks_server.url())
    })
    .await;
    let a = sign(
        Algorithm::RS256,
        Some("key-a"),
        &rsa_key("rsa_a"),
        claims("u1"),
    );
    let b = sign(
        Algorithm::RS256,
        Some("key-b"),
        &rsa_key("rsa_b"),
        claims("u1"),
    );
    assert_connects(&server, &a).await;
    assert_eq!(jwks_server.hits(), 1);

    // Key rotation: key-b appears at the endpoint; the first unknown kid after the interval
    // triggers one fetch and is accepted.
    jwks_server.set_body(jwks(&["key-a", "key-b"]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_connects(&server, &b).await;
    assert_eq!(jwks_server.hits(), 2, "unknown kid refreshed the set");

    // A burst of unknown kids: refused as invalid, and at most one more fetch.
    for i in 0..20 {
        let t = sign(
            Algorithm::RS256,
            Some(&format!("unknown-{i}")),
            &rsa_key("rsa_a"),
            claims("u1"),
        );
        assert_invalid(&server, &t, "unknown kid").await;
    }
    assert!(
        jwks_server.hits() <= 3,
        "rate limit: {} fetches",
        jwks_server.hits()
    );
    server.stop().await;
}

#[tokio::test]
async fn jwks_down_keeps_sessions_and_fails_new_keys_clearly() {
    let jwks_server = JwksServer::start(jwks(&["key-a"])).await;
    let server = server_with(jwks_config(&jwks_server.url())).await;
    let a = sign(
        Algorithm::RS256,
        Some("key-a"),
        &rsa_key("rsa_a"),
        json!({"sub": "u1", "exp": now() + 60}),
    );
    let mut session = assert_connects(&server, &a).await;
    let r = session
        .command(json!({"subscribe": {"channel": "news"}}))
        .await;
    assert!(r["subscribe"].is_object());

    jwks_server.stop().await;
    tokio::time::sleep(Duration::from_millis(400)).await; // past the refresh interval

    // The session keeps working: publications arrive, and its refresh (known kid) succeeds.
    server.publish("news", json!({"n": 1})).await;
    assert_eq!(
        session.next_publication("news").await["data"],
        json!({"n": 1})
    );
    let fresh = sign(
        Algorithm::RS256,
        Some("key-a"),
        &rsa_key("rsa_a"),
        json!({"sub": "u1", "exp": now() + 120}),
    );
    let r = session.command(json!({"refresh": {"token": fresh}})).await;
    assert_eq!(r["refresh"]["expires"], json!(true), "{r}");
    // A new connection with a cached key still connects.
    assert_connects(&server, &a).await;

    // A key that needs the endpoint: error 100 (temporary, the SDK retries), not 3500.
    let b = sign(
        Algorithm::RS256,
        Some("key-b"),
        &rsa_key("rsa_b"),
        claims("u2"),
    );
    let (_c, reply) = connect_reply(&server, &b).await;
    assert_eq!(reply["error"]["code"], json!(100), "{reply}");
    assert_eq!(reply["error"]["temporary"], json!(true), "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn jwks_slow_is_bounded_by_the_timeout() {
    let jwks_server = JwksServer::start(jwks(&["key-a"])).await;
    jwks_server.set_delay(Duration::from_secs(30));
    let server = server_with(TokenConfig {
        hmac_secret_key: pushwire_test_support::SECRET.into(),
        ..jwks_config(&jwks_server.url())
    })
    .await;
    let a = sign(
        Algorithm::RS256,
        Some("key-a"),
        &rsa_key("rsa_a"),
        claims("u1"),
    );
    let started = Instant::now();
    let slow = {
        let url = server.ws_url();
        tokio::spawn(async move {
            let mut c = WsClient::open(&url).await;
            c.command(json!({"connect": {"token": a}})).await
        })
    };
    // Meanwhile HMAC clients are served at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let hmac_started = Instant::now();
    assert_connects(&server, &token(claims("u2"))).await;
    assert!(hmac_started.elapsed() < Duration::from_millis(300));

    let reply = slow.await.unwrap();
    let took = started.elapsed();
    assert_eq!(reply["error"]["code"], json!(100), "{reply}");
    assert!(
        took >= Duration::from_millis(450),
        "waited for the fetch: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "bounded by the 500ms timeout: {took:?}"
    );
    assert_eq!(jwks_server.hits(), 1);
    server.stop().await;
}

#[tokio::test]
async fn jwks_key_sets_do_not_share_kids() {
    // Both endpoints publish kid "shared", for different keys (two tenants).
    let rename = |kid: &str| {
        let mut set = jwks(&[kid]);
        set["keys"][0]["kid"] = json!("shared");
        set
    };
    let conn_jwks = JwksServer::start(rename("key-a")).await;
    let sub_jwks = JwksServer::start(rename("key-b")).await;
    let conn_url = conn_jwks.url();
    let sub_url = sub_jwks.url();
    let server = TestServer::start_with(move |c| {
        c.client.token = TokenConfig {
            issuer: "tenant-a".into(),
            ..jwks_config(&conn_url)
        };
        c.client.subscription_token = SubscriptionTokenConfig {
            enabled: true,
            jwks_public_endpoint: sub_url,
            issuer: "tenant-b".into(),
            ..Default::default()
        };
    })
    .await;
    let conn = sign(
        Algorithm::RS256,
        Some("shared"),
        &rsa_key("rsa_a"),
        json!({"sub": "u1", "iss": "tenant-a"}),
    );
    let mut c = assert_connects(&server, &conn).await;
    // Signed with tenant A's key, claiming tenant B: refused (subscribe error 103).
    let forged = sign(
        Algorithm::RS256,
        Some("shared"),
        &rsa_key("rsa_a"),
        json!({"sub": "u1", "iss": "tenant-b", "channel": "$room"}),
    );
    let r = c
        .command(json!({"subscribe": {"channel": "$room", "token": forged}}))
        .await;
    assert_eq!(r["error"]["code"], json!(103), "{r}");
    let good = sign(
        Algorithm::RS256,
        Some("shared"),
        &rsa_key("rsa_b"),
        json!({"sub": "u1", "iss": "tenant-b", "channel": "$room"}),
    );
    let r = c
        .command(json!({"subscribe": {"channel": "$room", "token": good}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
    assert_eq!((conn_jwks.hits(), sub_jwks.hits()), (1, 1));
    server.stop().await;
}

// ---- subscription tokens ------------------------------------------------------------------

#[tokio::test]
async fn forged_subscription_token_for_another_channel_closes_3500() {
    let server = TestServer::start().await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), Some(&token(claims("u1")))).await;
    // Wrong key: 103.
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "u1", "channel": "$vip"}),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    let r = c
        .command(json!({"subscribe": {"channel": "$vip", "token": wrong_key}}))
        .await;
    assert_eq!(r["error"]["code"], json!(103), "{r}");
    // Expired: 109.
    let expired = token(json!({"sub": "u1", "channel": "$vip", "exp": now() - 1}));
    let r = c
        .command(json!({"subscribe": {"channel": "$vip", "token": expired}}))
        .await;
    assert_eq!(r["error"]["code"], json!(109), "{r}");
    // The right channel works.
    let good = token(json!({"sub": "u1", "channel": "$vip", "data": {"welcome": 1}}));
    let r = c
        .command(json!({"subscribe": {"channel": "$vip", "token": good}}))
        .await;
    assert_eq!(r["subscribe"]["data"], json!({"welcome": 1}), "{r}");
    // Another user's token: 3500.
    let theirs = token(json!({"sub": "u2", "channel": "$vip2"}));
    let mut c2 = WsClient::connected(&server.ws_url(), Some(&token(claims("u1"))))
        .await
        .0;
    c2.send_text(
        &json!({"id": 50, "subscribe": {"channel": "$vip2", "token": theirs}}).to_string(),
    )
    .await;
    assert_eq!(c2.expect_close().await, (3500, "invalid token".into()));
    // A valid token for another channel: 3500.
    let other = token(json!({"sub": "u1", "channel": "$public-ish"}));
    c.send_text(&json!({"id": 51, "subscribe": {"channel": "$admin", "token": other}}).to_string())
        .await;
    assert_eq!(c.expect_close().await, (3500, "invalid token".into()));
    server.stop().await;
}

#[tokio::test]
async fn subscription_token_keys_when_enabled() {
    let server = TestServer::start_with(|c| {
        c.client.subscription_token = SubscriptionTokenConfig {
            enabled: true,
            hmac_secret_key: "subscription-secret".into(),
            ..Default::default()
        };
    })
    .await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), Some(&token(claims("u1")))).await;
    let sub_claims = json!({"sub": "u1", "channel": "$x"});
    // Signed with the connection secret: not a subscription token any more.
    let r = c
        .command(json!({"subscribe": {"channel": "$x", "token": token(sub_claims.clone())}}))
        .await;
    assert_eq!(r["error"]["code"], json!(103), "{r}");
    let t = encode(
        &Header::new(Algorithm::HS256),
        &sub_claims,
        &EncodingKey::from_secret(b"subscription-secret"),
    )
    .unwrap();
    let r = c
        .command(json!({"subscribe": {"channel": "$x", "token": t}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
    server.stop().await;
}

#[tokio::test]
async fn connection_token_subs_claim_subscribes_with_data() {
    let server = TestServer::start().await;
    let t = token(json!({
        "sub": "u1",
        "subs": {"chat:lobby": {"data": {"motd": "hi"}, "info": {"role": "mod"}}},
        "meta": {"plan": "pro"},
    }));
    let (_c, connect) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    assert_eq!(
        connect["subs"]["chat:lobby"]["data"],
        json!({"motd": "hi"}),
        "{connect}"
    );
    let (_, presence) = server
        .api("presence", json!({"channel": "chat:lobby"}))
        .await;
    let clients: Vec<&Value> = presence["result"]["presence"]
        .as_object()
        .expect("presence")
        .values()
        .collect();
    assert_eq!(clients.len(), 1);
    assert_eq!(
        clients[0]["chan_info"],
        json!({"role": "mod"}),
        "{presence}"
    );
    assert!(
        !presence.to_string().contains("plan"),
        "meta never leaves the server"
    );
    server.stop().await;
}

// ---- gentoken -----------------------------------------------------------------------------

/// Runs `pushwire gentoken` with a config file holding the test secret; returns stdout.
fn gentoken(args: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!("pushwire-gentoken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[client.token]\nhmac_secret_key = \"{}\"\n",
            pushwire_test_support::SECRET
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .arg("gentoken")
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .expect("run pushwire gentoken");
    assert!(
        out.status.success(),
        "gentoken failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn gentoken_prints_tokens_the_server_accepts() {
    let server = TestServer::start().await;
    let conn = gentoken(&["--user", "42", "--ttl", "1h"]);
    let (mut c, connect) = WsClient::connected(&server.ws_url(), Some(&conn)).await;
    let ttl = connect["ttl"].as_u64().expect("the token expires");
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
    let sub = gentoken(&["--user", "42", "--ttl", "10m", "--channel", "$gen"]);
    let r = c
        .command(json!({"subscribe": {"channel": "$gen", "token": sub}}))
        .await;
    assert_eq!(r["subscribe"]["expires"], json!(true), "{r}");
    // Another user's connection may not use it.
    let (mut other, _) =
        WsClient::connected(&server.ws_url(), Some(&gentoken(&["--user", "7"]))).await;
    other
        .send_text(&json!({"id": 5, "subscribe": {"channel": "$gen", "token": sub}}).to_string())
        .await;
    assert_eq!(other.expect_close().await.0, 3500);
    server.stop().await;
}

#[tokio::test]
async fn previous_hmac_secret_is_accepted_until_its_deadline() {
    // `token` signs with the test SECRET: the previous secret here.
    let rotated = |valid_until: i64| {
        TestServer::start_with(move |c| {
            c.client.token.hmac_secret_key = "the-new-secret".into();
            c.client.token.hmac_previous_secret_key = pushwire_test_support::SECRET.into();
            c.client.token.hmac_previous_secret_key_valid_until = valid_until;
        })
    };
    let server = rotated(now() + 60).await;
    assert_connects(&server, &token(claims("u1"))).await;
    let new = encode(
        &Header::new(Algorithm::HS256),
        &claims("u1"),
        &EncodingKey::from_secret(b"the-new-secret"),
    )
    .unwrap();
    assert_connects(&server, &new).await;
    server.stop().await;

    let server = rotated(now() - 1).await;
    assert_invalid(
        &server,
        &token(claims("u1")),
        "previous secret past its deadline",
    )
    .await;
    assert_connects(&server, &new).await;
    server.stop().await;
}

#[tokio::test]
async fn override_claim_changes_namespace_options_per_subscription() {
    // `chat:` has presence and pushes join/leave to every subscriber (force_push_join_leave).
    let server = TestServer::start().await;
    let t = token(json!({
        "sub": "u1",
        "subs": {
            "chat:quiet": {"override": {
                "presence": {"value": false},
                "force_push_join_leave": {"value": false},
            }},
            "chat:lobby": {},
        },
    }));
    let (mut a, _) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    let present = |v: &Value| v["result"]["presence"].as_object().map_or(0, |m| m.len());
    for (channel, expected) in [("chat:lobby", 1), ("chat:quiet", 0)] {
        let (_, presence) = server.api("presence", json!({"channel": channel})).await;
        assert_eq!(present(&presence), expected, "{channel}: {presence}");
    }
    // Another user joins both channels: `a` is told on lobby only.
    let t2 = token(json!({"sub": "u2", "channels": ["chat:quiet", "chat:lobby"]}));
    let (_b, _) = WsClient::connected(&server.ws_url(), Some(&t2)).await;
    server.publish("chat:quiet", json!({"after": "join"})).await;
    server.publish("chat:lobby", json!({"after": "join"})).await;
    // Read until both publications arrived; count the joins seen on the way (`a`'s own join
    // on lobby included).
    let (mut joins, mut pubs) = (Vec::new(), 0);
    while pubs < 2 {
        let m = a.next_message().await.expect("open");
        let push = &m["push"];
        let channel = push["channel"].as_str().unwrap_or("").to_owned();
        if push["join"].is_object() {
            joins.push(channel);
        } else if push["pub"].is_object() {
            pubs += 1;
        }
    }
    assert!(joins.iter().any(|c| c == "chat:lobby"), "{joins:?}");
    assert!(!joins.iter().any(|c| c == "chat:quiet"), "{joins:?}");
    server.stop().await;
}

#[tokio::test]
async fn api_subscribe_applies_override() {
    let server = TestServer::start().await;
    let (mut c, _) =
        WsClient::connected(&server.ws_url(), Some(&token(json!({"sub": "u1"})))).await;
    let (status, body) = server
        .api(
            "subscribe",
            json!({"user": "u1", "channel": "chat:hidden",
                   "override": {"presence": {"value": false}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = server
        .api("subscribe", json!({"user": "u1", "channel": "chat:seen"}))
        .await;
    assert!(body["error"].is_null(), "{body}");
    // Both Subscribe pushes arrived before presence is read.
    let mut pushed = 0;
    while pushed < 2 {
        let m = c.next_message().await.expect("open");
        if m["push"]["subscribe"].is_object() {
            pushed += 1;
        }
    }
    let present = |v: &Value| v["result"]["presence"].as_object().map_or(0, |m| m.len());
    for (channel, expected) in [("chat:seen", 1), ("chat:hidden", 0)] {
        let (_, presence) = server.api("presence", json!({"channel": channel})).await;
        assert_eq!(present(&presence), expected, "{channel}: {presence}");
    }
    server.stop().await;
}
