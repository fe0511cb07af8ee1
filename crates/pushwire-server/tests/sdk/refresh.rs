//! Real SDKs refresh short-lived connection and subscription tokens through their getToken
//! callbacks without dropping a publication (`sdk-tests/js/refresh.mjs`,
//! `sdk-tests/python/refresh.py`).
//!
//! The server closes an unrefreshed connection or subscription two seconds after its token
//! expires, so a missing refresh fails the scripts (disconnect or unsubscribe event, lost
//! publications) as well as the server-side checks here.

use std::time::Duration;

use pushwire_test_support::sdk::{eventually, run_node, run_python, SdkRun};
use pushwire_test_support::TestServer;

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.client.expired_close_delay = Duration::from_secs(2);
        c.client.expired_sub_close_delay = Duration::from_secs(2);
    })
    .await
}

async fn check(server: TestServer, run: SdkRun) {
    let r = run.result();
    let published = r["published"].as_u64().expect("published");
    assert!(published >= 50, "publications flowed: {r}");
    assert_eq!(r["received"].as_u64(), Some(published), "{r}");
    assert!(r["connection_tokens"].as_u64().unwrap() >= 2, "{r}");
    assert!(r["subscription_tokens"].as_u64().unwrap() >= 2, "{r}");
    eventually("the SDK client is gone", || {
        server.node().info().num_clients == 0
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_refreshes_connection_and_subscription_tokens() {
    let server = server().await;
    let run = run_node("js/refresh.mjs", &server).await;
    check(server, run).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_refreshes_connection_and_subscription_tokens() {
    let server = server().await;
    let run = run_python("python/refresh.py", &server).await;
    check(server, run).await;
}
