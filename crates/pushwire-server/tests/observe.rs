//! Operators' view: `/metrics` exposes what the Grafana dashboard (deploy/grafana) queries, and
//! the numbers move with the traffic.

use pushwire_test_support::{TestServer, WsClient};
use serde_json::{json, Value};

async fn metrics(server: &TestServer) -> String {
    reqwest::get(format!("{}/metrics", server.http_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body")
}

fn value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        .trim()
        .parse()
        .expect("number")
}

#[tokio::test]
async fn dashboard_queries_only_exported_metrics() {
    let server = TestServer::start().await;
    let text = metrics(&server).await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/pushwire.json"
    );
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("json");
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let start = expr.find("pushwire_").expect("a pushwire metric");
            let name: String = expr[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
    }
    assert!(names.len() >= 10);
    for name in names {
        value(&text, &name);
    }
    server.stop().await;
}

#[tokio::test]
async fn metrics_follow_traffic() {
    let server = TestServer::start().await;
    let before = metrics(&server).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    c.command(json!({"subscribe": {"channel": "chat:m"}})).await;
    server.publish("chat:m", json!({"n": 1})).await;
    c.next_publication("chat:m").await;
    let after = metrics(&server).await;
    assert_eq!(value(&after, "pushwire_clients"), 1);
    assert_eq!(value(&after, "pushwire_subscriptions"), 1);
    assert_eq!(
        value(&after, "pushwire_publications_total")
            - value(&before, "pushwire_publications_total"),
        1
    );
    assert!(value(&after, "pushwire_messages_queued_total") >= 1);
    assert!(value(&after, "pushwire_commands_total") >= 2);
    server.stop().await;
}
