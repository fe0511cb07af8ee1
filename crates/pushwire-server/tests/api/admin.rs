//! The admin page and its endpoints: off by default (404), login with the password (cookie
//! `HttpOnly; SameSite=Strict`, or bearer token), 401 on a wrong password then 429, the API
//! methods through the server API dispatch, and the page itself in headless Chromium
//! (`sdk-tests/browser/admin.mjs`, playwright-core driving `/usr/bin/chromium`).
//!
//! `PUSHWIRE_ADMIN_SCREENSHOT=<path.png>` makes the browser test also save a screenshot of the
//! page under load (scripts/admin-screenshot.sh writes docs/admin.png that way).

use std::path::Path;

use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::sdk::{repo_root, require, run_in};
use pushwire_test_support::{TestServer, WsClient};
use reqwest::header::{AUTHORIZATION, CONTENT_SECURITY_POLICY, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PASSWORD: &str = "admin-test-password";
const SECRET: &str = "admin-test-secret-0123456789";

async fn admin_server() -> TestServer {
    TestServer::start_with(|c| {
        c.admin.enabled = true;
        c.admin.password = PASSWORD.into();
        c.admin.secret = SECRET.into();
    })
    .await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

async fn login(server: &TestServer, password: &str) -> reqwest::Response {
    http()
        .post(format!("{}/admin/api/login", server.http_url()))
        .json(&json!({ "password": password }))
        .send()
        .await
        .expect("login")
}

#[tokio::test]
async fn admin_is_off_by_default() {
    let server = TestServer::start().await;
    for (method, path) in [
        ("GET", "/admin"),
        ("GET", "/admin/app.js"),
        ("POST", "/admin/api/login"),
        ("GET", "/admin/api/stats"),
        ("POST", "/admin/api/publish"),
    ] {
        let url = format!("{}{path}", server.http_url());
        let resp = match method {
            "GET" => http().get(url).send().await,
            _ => http().post(url).json(&json!({"password": ""})).send().await,
        }
        .expect("request");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn page_is_served_from_the_binary_with_a_strict_policy() {
    let server = admin_server().await;
    let resp = http()
        .get(format!("{}/admin", server.http_url()))
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = resp.text().await.expect("html");
    assert!(html.contains("/admin/app.js") && html.contains("id=\"login-form\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resource"
    );
    for asset in ["app.js", "app.css"] {
        let resp = http()
            .get(format!("{}/admin/{asset}", server.http_url()))
            .send()
            .await
            .expect("asset");
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        let text = resp.text().await.expect("text");
        assert!(
            !text.contains("https://"),
            "{asset} fetches nothing external"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn wrong_password_is_401_then_rate_limited() {
    let server = admin_server().await;
    for attempt in 1..=5 {
        let resp = login(&server, "guess").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
        assert!(resp.headers().get(SET_COOKIE).is_none());
    }
    let resp = login(&server, "guess").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    // Even the right password waits for the window to pass.
    let resp = login(&server, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    server.stop().await;
}

#[tokio::test]
async fn session_cookie_or_bearer_token_opens_the_endpoints() {
    let server = admin_server().await;
    let stats = format!("{}/admin/api/stats", server.http_url());
    assert_eq!(
        http().get(&stats).send().await.expect("stats").status(),
        StatusCode::UNAUTHORIZED
    );
    let resp = login(&server, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    let token = resp.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert!(cookie.starts_with(&format!("pushwire_admin={token};")));

    let (_c, _) = WsClient::connected(&server.ws_url(), None).await;
    let by_bearer: Value = http()
        .get(&stats)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(by_bearer["clients"], json!(1), "{by_bearer}");
    assert_eq!(by_bearer["connections"], json!(1), "{by_bearer}");
    let by_cookie = http()
        .get(&stats)
        .header(COOKIE, format!("pushwire_admin={token}"))
        .send()
        .await
        .expect("stats");
    assert_eq!(by_cookie.status(), StatusCode::OK);
    // A token signed with another secret, or tampered with, does not.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in [forged.as_str(), "x.y.z", ""] {
        let resp = http()
            .get(&stats)
            .header(AUTHORIZATION, format!("Bearer {bad}"))
            .send()
            .await
            .expect("stats");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }
    server.stop().await;
}

#[tokio::test]
async fn api_methods_run_through_the_server_api_dispatch() {
    let server = admin_server().await;
    let token = login(&server, PASSWORD)
        .await
        .json::<Value>()
        .await
        .expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let call = |method: &'static str, body: Value| {
        let url = format!("{}/admin/api/{method}", server.http_url());
        let token = token.clone();
        async move {
            let resp = http()
                .post(url)
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .json(&body)
                .send()
                .await
                .expect("call");
            (
                resp.status(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    c.command(json!({"subscribe": {"channel": "chat:adm"}}))
        .await;
    let (status, channels) = call("channels", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        channels["result"]["channels"]["chat:adm"]["num_clients"],
        json!(1),
        "{channels}"
    );
    let (_, published) = call("publish", json!({"channel": "chat:adm", "data": {"a": 1}})).await;
    assert_eq!(published["result"]["offset"], json!(1), "{published}");
    assert_eq!(
        c.next_publication("chat:adm").await["data"],
        json!({"a": 1})
    );
    let (_, history) = call("history", json!({"channel": "chat:adm", "limit": 10})).await;
    assert_eq!(
        history["result"]["publications"][0]["data"],
        json!({"a": 1}),
        "{history}"
    );
    // Errors are the API's.
    let (_, unknown) = call("publish", json!({"channel": "nope:x", "data": {}})).await;
    assert_eq!(unknown["error"]["code"], json!(102), "{unknown}");
    let (status, _) = call("frobnicate", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Counted like any API call.
    let s = Scrape::of(&server).await;
    assert_eq!(
        s.count("pushwire_api_requests_total{method=\"publish\",code=\"0\"}"),
        1
    );
    assert_eq!(
        s.count("pushwire_api_requests_total{method=\"publish\",code=\"102\"}"),
        1
    );
    server.stop().await;
}

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test]
async fn chromium_admin_page_live_numbers_publish_history_disconnect() {
    let server = admin_server().await;
    let dir = repo_root().join("sdk-tests/browser");
    for pkg in ["playwright-core", "ws"] {
        require(
            &dir.join(format!("node_modules/{pkg}/package.json")),
            pkg,
            "scripts/setup-browser.sh",
        );
    }
    require(Path::new(CHROMIUM), "Chromium", "scripts/setup-browser.sh");
    let shot = std::env::var("PUSHWIRE_ADMIN_SCREENSHOT").ok();
    let mut args = vec!["admin.mjs", PASSWORD];
    if let Some(p) = &shot {
        args.push(p);
    }
    let result = run_in(Path::new("node"), &dir, &args, &server)
        .await
        .result();
    assert!(
        result["userAgent"]
            .as_str()
            .is_some_and(|ua| ua.contains("HeadlessChrome")),
        "{result}"
    );
    assert_eq!(
        result["wrongPassword"],
        json!("Wrong password."),
        "{result}"
    );
    assert_eq!(
        result["cookies"],
        json!([{"name": "pushwire_admin", "httpOnly": true, "sameSite": "Strict"}]),
        "{result}"
    );
    assert_eq!(result["cookieReadableByScript"], json!(false));
    let before = result["clientsBefore"].as_u64().expect("clientsBefore");
    assert_eq!(result["clientsAfter"], json!(before + 1), "{result}");
    assert!(result["channelRow"]
        .as_str()
        .is_some_and(|r| r.contains("chat:admin-") && r.contains('1')));
    assert_eq!(
        result["received"],
        json!({"from": "admin page", "n": 42}),
        "{result}"
    );
    assert!(result["publishResult"]
        .as_str()
        .is_some_and(|r| r.starts_with("published")));
    assert_eq!(
        result["history"],
        json!([r#"{"from":"admin page","n":42}"#]),
        "{result}"
    );
    assert_eq!(result["disconnectCode"], json!(3503), "{result}");
    assert_eq!(
        result["external"],
        json!([]),
        "the page fetched nothing elsewhere"
    );
    if let Some(p) = shot {
        assert!(
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 10_000),
            "screenshot at {p}"
        );
    }
    server.stop().await;
}
