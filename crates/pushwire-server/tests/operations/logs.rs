//! Logs of the real binary, run as a subprocess: human-readable lines by default, one JSON
//! object per line with `--log-format json`; connects and disconnects at debug with the client
//! and user ids; and no token, key or secret ever appears, whatever the client sends.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pushwire_test_support::WsClient;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

const SECRET: &str = "logs-test-hmac-secret-4f1d";
const API_KEY: &str = "logs-test-api-key-93ab";
const USER: &str = "log-user-7";

#[allow(
    clippy::needless_pass_by_value,
    reason = "callers pass `json!` literals; a `&` at every call site buys nothing in a test"
)]
fn sign(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

struct Server {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

fn collect(r: impl AsyncRead + Unpin + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut r = BufReader::new(r).lines();
        while let Ok(Some(l)) = r.next_line().await {
            lines.lock().push(l);
        }
    });
}

async fn start(extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args(["serve", "--port", "0", "--log-level", "debug"])
        .args(extra)
        .env("PUSHWIRE_CLIENT__TOKEN__HMAC_SECRET_KEY", SECRET)
        .env("PUSHWIRE_HTTP_API__KEY", API_KEY)
        .env(
            "PUSHWIRE_CHANNEL__WITHOUT_NAMESPACE__ALLOW_SUBSCRIBE_FOR_CLIENT",
            "true",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start pushwire");
    let lines = Arc::new(Mutex::new(Vec::new()));
    collect(child.stdout.take().expect("stdout"), lines.clone());
    collect(child.stderr.take().expect("stderr"), lines.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let port = lines
            .lock()
            .iter()
            .filter(|l| l.contains("pushwire serving"))
            .find_map(|l| {
                let at = l.find("127.0.0.1:")? + "127.0.0.1:".len();
                l[at..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok()
            });
        if let Some(port) = port {
            return Server { child, port, lines };
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pushwire did not start: {:?}",
            lines.lock()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Server {
    fn ws(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// SIGTERM, wait for the exit, return every line it printed.
    async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().expect("pid").to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;

        self.lines.lock().clone()
    }
}

/// Connects with tokens (valid, forged, in a query string), subscribes, publishes through the
/// API (one call with a wrong key); returns the tokens and keys that must never be logged.
async fn traffic(server: &Server) -> Vec<String> {
    let token = sign(json!({"sub": USER}), SECRET);
    let (mut c, connected) =
        WsClient::connected(&server.ws("/connection/websocket"), Some(&token)).await;
    let client_id = connected["client"].as_str().expect("client id").to_owned();
    c.command(json!({"subscribe": {"channel": "news"}})).await;
    let http = reqwest::Client::builder().no_proxy().build().expect("http");
    let api = format!("http://127.0.0.1:{}/api/publish", server.port);
    let ok = http
        .post(&api)
        .header("X-API-Key", API_KEY)
        .json(&json!({"channel": "news", "data": {"n": 1}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(ok.status().as_u16(), 200);
    c.next_publication("news").await;
    let wrong_key = "wrong-key-that-must-not-be-logged";
    let denied = http
        .post(&api)
        .header("X-API-Key", wrong_key)
        .json(&json!({"channel": "news", "data": {}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(denied.status().as_u16(), 401);
    // A forged token: closed with 3500.
    let forged = sign(json!({"sub": "mallory"}), "not-the-secret-at-all");
    let mut f = WsClient::open(&server.ws("/connection/websocket")).await;
    f.send_text(&json!({"id": 1, "connect": {"token": forged}}).to_string())
        .await;
    assert_eq!(f.expect_close().await.0, 3500);
    // A bad subscription token.
    let sub_token = sign(
        json!({"sub": USER, "channel": "other"}),
        "wrong-sub-secret-xyz",
    );
    let reply = c
        .command(json!({"subscribe": {"channel": "private", "token": sub_token}}))
        .await;
    assert!(reply["error"].is_object(), "{reply}");
    // A token in a query string (unidirectional WebSocket).
    let query_token = sign(json!({"sub": "query-user"}), SECRET);
    let connect = json!({"token": query_token}).to_string();
    let mut u = WsClient::open(&format!(
        "{}?cf_connect={}",
        server.ws("/connection/uni_websocket"),
        connect
            .replace('"', "%22")
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace(':', "%3A")
    ))
    .await;
    assert!(u.next_message().await.is_some(), "uni connect push");
    drop(u);
    c.stream().close(None).await.expect("close");
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    vec![
        token,
        forged,
        sub_token,
        query_token,
        SECRET.to_owned(),
        API_KEY.to_owned(),
        wrong_key.to_owned(),
        client_id,
    ]
}

fn assert_secret_free(lines: &[String], secrets: &[String]) {
    // The last entry is the client id, which must be logged; the others never.
    let (client_id, secrets) = secrets.split_last().expect("secrets");
    let all = lines.join("\n");
    for s in secrets {
        assert!(
            !all.contains(s.as_str()),
            "{s} leaked into the logs:\n{all}"
        );
        // Nor a token's signature or payload on its own.
        for part in s.split('.').filter(|p| p.len() > 20) {
            assert!(!all.contains(part), "part of a token leaked:\n{all}");
        }
    }
    let connected = lines
        .iter()
        .find(|l| {
            l.contains("connected") && !l.contains("disconnected") && l.contains(client_id.as_str())
        })
        .unwrap_or_else(|| panic!("no connect line for {client_id}:\n{all}"));
    assert!(connected.contains(USER), "{connected}");
    assert!(
        connected.contains("DEBUG") || connected.contains("\"DEBUG\""),
        "{connected}"
    );
    let disconnected = lines
        .iter()
        .find(|l| l.contains("disconnected") && l.contains(client_id.as_str()))
        .unwrap_or_else(|| panic!("no disconnect line for {client_id}:\n{all}"));
    assert!(
        disconnected.contains(USER) && disconnected.contains("3000"),
        "{disconnected}"
    );
    assert!(
        lines.iter().any(|l| l.contains("invalid connection token")),
        "the forged token is logged as such (without the token):\n{all}"
    );
}

#[tokio::test]
async fn text_logs_by_default_without_secrets() {
    let server = start(&[]).await;
    let secrets = traffic(&server).await;
    let lines = server.stop().await;
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(!l.trim_start().starts_with('{'), "not JSON by default: {l}");
        assert!(
            !l.contains('\u{1b}'),
            "no colour codes when not a terminal: {l}"
        );
    }
    assert!(lines
        .iter()
        .any(|l| l.contains(" INFO ") && l.contains("pushwire serving")));
    assert_secret_free(&lines, &secrets);
}

#[tokio::test]
async fn json_logs_with_the_flag_without_secrets() {
    let server = start(&["--log-format", "json"]).await;
    let secrets = traffic(&server).await;
    let lines = server.stop().await;
    for l in lines.iter().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
    assert_secret_free(&lines, &secrets);
}
