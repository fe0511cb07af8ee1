//! Shared scenario: API commands other than `publish`, taken from a source, act on
//! connections.

use pushwire_consumers::Mode;
use pushwire_test_support::{TestServer, WsClient};
use serde_json::json;

use super::source::Source;

/// A consumer in command mode takes `broadcast`, `unsubscribe` and `disconnect` from `source`:
/// a connected user's client gets the broadcast, then an unsubscribe push for the channel,
/// then is closed with the command's code and reason.
pub async fn api_commands_other_than_publish_act_on_connections<S: Source>(source: &S) {
    let (config, channel) = source.consumer("cmd", S::ADDR, "chat", Mode::ApiCommand);
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;
    source.wait_ready().await;
    let user = format!("u{}", super::unique());
    let token = pushwire_test_support::token(json!({"sub": user}));
    let (mut ws, _) = WsClient::connected(&server.ws_url(), Some(&token)).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(reply.get("error").is_none(), "{reply}");

    // broadcast, then unsubscribe the user from the channel, then disconnect them.
    let commands = [
        json!({"method": "broadcast", "payload": {"channels": [channel], "data": {"n": 1}}}),
        json!({"method": "unsubscribe", "payload": {"user": user, "channel": channel}}),
        json!({"method": "disconnect", "payload": {"user": user, "disconnect": {"code": 4501, "reason": "bye"}}}),
    ];
    for (i, c) in commands.iter().enumerate() {
        let key = format!("{channel}-cmd-{i}");
        source.produce(c.to_string().as_bytes(), &key).await;
    }
    let p = ws.next_publication(&channel).await;
    assert_eq!(p["data"]["n"], json!(1));
    let unsub = loop {
        let m = ws.next_message().await.expect("open");
        if m["push"]["unsubscribe"].is_object() {
            break m;
        }
    };
    assert_eq!(unsub["push"]["channel"], json!(channel), "{unsub}");
    let (code, reason) = ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (4501, "bye"));
    server.stop().await;
    source.cleanup().await;
}
