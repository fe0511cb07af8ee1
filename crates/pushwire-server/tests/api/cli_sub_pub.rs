//! `pushwire sub` and `pushwire pub` end to end: the built binary in real shell pipelines
//! against a real server.

use std::process::Stdio;
use std::time::Duration;

use pushwire_test_support::{TestServer, API_KEY};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_pushwire");
const WAIT: Duration = Duration::from_secs(15);

struct Sub {
    child: Child,
    out: Lines<BufReader<ChildStdout>>,
    err: Lines<BufReader<ChildStderr>>,
}

/// Starts `pushwire sub` (through `sh -c` with `pipe` appended, when given) and waits until it
/// reports the subscription on standard error.
async fn sub(server: &TestServer, channel: &str, extra: &str, pipe: &str) -> Sub {
    let cmd = format!(
        "{BIN} sub {channel} --url ws://{}/connection/websocket {extra} {pipe}",
        server.addr
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sub");
    let out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let want = format!("subscribed to {channel}");
    tokio::time::timeout(WAIT, async {
        while let Some(line) = err.next_line().await.unwrap() {
            if line.contains(&want) {
                return;
            }
        }
        panic!("sub exited before subscribing");
    })
    .await
    .expect("sub subscribes");
    Sub { child, out, err }
}

async fn next_line(s: &mut Sub) -> Value {
    let line = tokio::time::timeout(WAIT, s.out.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("sub still running");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON line: {line:?}: {e}"))
}

async fn sh(cmd: &str) -> std::process::Output {
    tokio::time::timeout(WAIT, Command::new("sh").arg("-c").arg(cmd).output())
        .await
        .expect("command finishes")
        .expect("runs")
}

#[tokio::test]
async fn pub_from_stdin_lines_reaches_sub_as_json_lines() {
    let server = TestServer::start().await;
    let mut s = sub(&server, "chat:cli", "", "").await;
    let out = sh(&format!(
        "printf '{{\"n\":1}}\\n{{\"n\": 2, \"s\": \"two\"}}\\n\\n[3]\\n' | \
         PUSHWIRE_API_KEY={API_KEY} {BIN} pub chat:cli - --api-url http://{}/api",
        server.addr
    ))
    .await;
    assert!(out.status.success(), "pub failed: {out:?}");
    let lines = [
        next_line(&mut s).await,
        next_line(&mut s).await,
        next_line(&mut s).await,
    ];
    assert_eq!(
        lines[0],
        json!({"channel": "chat:cli", "offset": 1, "data": {"n": 1}})
    );
    assert_eq!(
        lines[1],
        json!({"channel": "chat:cli", "offset": 2, "data": {"n": 2, "s": "two"}})
    );
    assert_eq!(
        lines[2],
        json!({"channel": "chat:cli", "offset": 3, "data": [3]})
    );
    s.child.kill().await.ok();
    server.stop().await;
}

#[tokio::test]
async fn protobuf_sub_and_single_pub_with_tags() {
    let server = TestServer::start().await;
    let mut s = sub(&server, "chat:pb", "--protobuf", "").await;
    let out = sh(&format!(
        "{BIN} pub chat:pb '{{\"hello\":\"world\"}}' --api-url http://{}/api --api-key {API_KEY}",
        server.addr
    ))
    .await;
    assert!(out.status.success(), "pub failed: {out:?}");
    assert_eq!(
        next_line(&mut s).await,
        json!({"channel": "chat:pb", "offset": 1, "data": {"hello": "world"}})
    );
    // Tags published through the API appear in the line.
    let (status, body) = server
        .api(
            "publish",
            json!({"channel": "chat:pb", "data": {"x": 1}, "tags": {"kind": "t"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        next_line(&mut s).await,
        json!({"channel": "chat:pb", "offset": 2, "data": {"x": 1}, "tags": {"kind": "t"}})
    );
    s.child.kill().await.ok();
    server.stop().await;
}

#[tokio::test]
async fn sub_ends_cleanly_when_the_pipeline_reader_closes() {
    let server = TestServer::start().await;
    let mut s = sub(&server, "chat:head", "", "| head -n 2").await;
    for n in 1..=3 {
        server.publish("chat:head", json!({ "n": n })).await;
    }
    assert_eq!(next_line(&mut s).await["offset"], 1);
    assert_eq!(next_line(&mut s).await["offset"], 2);
    // `sub` learns that head is gone when its next write fails; publication 3 may already sit
    // in the pipe's buffer (written before head exited), so keep publishing until it does.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 4;
    let status = loop {
        if let Ok(done) = tokio::time::timeout(Duration::from_millis(200), s.child.wait()).await {
            break done.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pipeline ends after head exits"
        );
        server.publish("chat:head", json!({ "n": n })).await;
        n += 1;
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = {
        let mut v = Vec::new();
        while let Ok(Some(l)) = s.err.next_line().await {
            v.push(l);
        }
        v
    };
    assert!(rest.iter().all(|l| !l.contains("error")), "{rest:?}");
    server.stop().await;
}

#[tokio::test]
async fn bad_input_exits_non_zero_with_a_message() {
    let server = TestServer::start().await;
    let api = format!("--api-url http://{}/api --api-key {API_KEY}", server.addr);

    let cases = [
        // DATA that is not JSON.
        format!("{BIN} pub chat:x '{{oops' {api}"),
        // Wrong API key.
        format!(
            "{BIN} pub chat:x '1' --api-url http://{}/api --api-key wrong",
            server.addr
        ),
        // Unknown namespace: the API's error reply.
        format!("{BIN} pub nope:x '1' {api}"),
        // Nobody listening.
        format!("{BIN} pub chat:x '1' --api-url http://127.0.0.1:1/api"),
        // Malformed URLs.
        format!("{BIN} pub chat:x '1' --api-url 'not a url'"),
        format!("{BIN} sub chat:x --url 'not a url'"),
        // A token the server rejects (3500: terminal, no reconnect loop).
        format!(
            "{BIN} sub chat:x --url ws://{}/connection/websocket --token garbage",
            server.addr
        ),
    ];
    for cmd in &cases {
        let out = sh(cmd).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd}: succeeded");
        assert!(stderr.contains("error"), "{cmd}: stderr {stderr}");
    }

    // One bad line among good ones: the good ones are published, the exit code says failure.
    let out = sh(&format!(
        "printf '{{\"n\":1}}\\nbad\\n{{\"n\":3}}\\n' | {BIN} pub chat:mixed - {api}"
    ))
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 3 publications failed"));
    let (_, body) = server
        .api("history", json!({"channel": "chat:mixed", "limit": -1}))
        .await;
    assert_eq!(body["result"]["publications"].as_array().unwrap().len(), 2);
    server.stop().await;
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/centrifugo")
        .join(name)
}

/// Runs the binary with `args` and only `env` (plus PATH) as environment; exit code, stdout,
/// stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn checkconfig_centrifugo_prints_the_report_and_fails_only_for_refusals() {
    let ok = fixture("trailfed.json");
    let (code, out, err) = run(&["checkconfig", "--centrifugo", ok.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("client.token.hmac_secret_key"), "{out}");
    assert!(out.contains("supported"), "{out}");
    assert!(out.contains("valid"), "{out}");

    let mapped = fixture("sdk-centrifugo-v6.json");
    let (code, out, err) = run(
        &["checkconfig", "--centrifugo", mapped.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("prometheus.enabled"), "{out}");
    assert!(out.contains("mapped"), "{out}");

    let refused = fixture("centrifugo-testdata.yaml");
    let (code, out, err) = run(
        &["checkconfig", "--centrifugo", refused.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("consumers[0].kafka.tls.enabled"), "{out}");
    assert!(out.contains("UNSUPPORTED"), "{out}");
    assert!(err.contains("would not start"), "{err}");

    let v5 = fixture("v5-social-forge.json");
    let (code, _, err) = run(&["checkconfig", "--centrifugo", v5.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("Centrifugo v5") && err.contains("migration_v6"),
        "{err}"
    );
}

#[test]
fn centrifugo_env_and_file_print_the_same_effective_config() {
    let file = fixture("trailfed.json");
    let (code, from_file, err) = run(
        &[
            "checkconfig",
            "--centrifugo",
            file.to_str().unwrap(),
            "--print-effective",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let namespaces = r#"[{"name":"timeline","presence":false,"history_size":50,"history_ttl":"1h"},{"name":"moderation","presence":true,"history_size":200,"history_ttl":"24h"}]"#;
    let (code, from_env, err) = run(
        &["checkconfig", "--print-effective"],
        &[
            (
                "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY",
                "CHANGE_ME_centrifugo_dev_secret",
            ),
            (
                "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS",
                "http://localhost:8090 http://localhost:5173",
            ),
            ("CENTRIFUGO_HTTP_API_KEY", "CHANGE_ME_centrifugo_api_key"),
            ("CENTRIFUGO_CHANNEL_NAMESPACES", namespaces),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let json_of = |text: &str| -> Value {
        let start = text.find("{\n").expect("effective config printed");
        serde_json::from_str(&text[start..]).unwrap()
    };
    let (a, b) = (json_of(&from_file), json_of(&from_env));
    assert_eq!(a["channel"]["namespaces"][1]["history_size"], json!(200));
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_typo_stops_start_up_naming_the_key_and_starts_with_one_warning_under_warn() {
    let dir = std::env::temp_dir().join(format!("pushwire-typo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.json");
    std::fs::write(
        &file,
        r#"{"client": {"token": {"hmac_secret_key": "s"}, "allowed_origin": ["https://a.example"]},
            "http_api": {"key": "k"}}"#,
    )
    .unwrap();
    let (code, _, err) = run(&["serve", "-c", file.to_str().unwrap(), "--port", "0"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("client.allowed_origin: unknown key"), "{err}");
    assert!(
        err.contains("did you mean client.allowed_origins?"),
        "{err}"
    );

    let node = pushwire_test_support::node_process::NodeProcess::start_file(
        BIN,
        &file,
        &[("PUSHWIRE_CONFIG__UNKNOWN_KEYS", "warn")],
    )
    .await;
    let log = node.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("allowed_origin"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("client.allowed_origin: unknown key ignored"),
        "{log}"
    );
    drop(node);
    std::fs::remove_dir_all(&dir).ok();
}
